"""Model families: each turns resolved settings into an uncompiled Keras model.

A family is a module with ``PARAMS`` (what the space file may set) and
``build(settings, input_shape, head)``. A ``python:module:function`` family is the user's own
builder, called as ``function(settings, input_shape, n_outputs)``.
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from search.errors import SpaceError
from search.models import cnn, mlp, transfer
from search.models._builders import (CUSTOM_PREFIX, builder_by_path, builder_fingerprint, handed_over,
                                     load_custom_builder, named_only_there, only_in_this_process, register_builder)
from search.models._head import Head
from search.models._params import TRAIN_PARAMS, Param

FAMILIES = {"mlp": mlp, "cnn": cnn, "transfer": transfer}

__all__ = ["CUSTOM_PREFIX", "FAMILIES", "Head", "Param", "TRAIN_PARAMS", "build", "builder_by_path",
           "builder_fingerprint", "check_custom_builder",
           "family_params", "handed_over", "load_custom_builder", "named_only_there",
           "only_in_this_process", "preflight", "register_builder"]


def family_params(family: str) -> dict[str, Param] | None:
    """The declared settings of a built-in family, or None for a user's own builder."""
    if family.startswith(CUSTOM_PREFIX):
        return None
    return FAMILIES[family].PARAMS


# Every model a user's builder returned in this process: one returned again (a builder that caches its
# model) would start a trial or a split from weights another one trained, some on its validation rows.
_RETURNED: weakref.WeakSet[Any] = weakref.WeakSet()


def build(model_settings: dict[str, Any], input_shape: tuple[int, ...], head: Head,
          search_dir: Path | None = None, source: str | None = None) -> Any:
    family = model_settings["family"]
    if family.startswith(CUSTOM_PREFIX):
        import keras

        builder = load_custom_builder(family, search_dir, source)
        model = builder(dict(model_settings), tuple(input_shape), head.n_outputs)
        if not isinstance(model, keras.Model):
            raise SpaceError(f"the builder {family} returned {type(model).__name__}, not a keras.Model",
                             source=source, field="model.family")
        if model in _RETURNED:
            raise SpaceError(f"the builder {family} returned a model it had returned before (the same object): "
                             f"each trial and each split must start from new weights, or one starts from "
                             f"weights another trained, some of them on its validation rows; build a new model "
                             f"in every call (keras.models.clone_model gives a fresh copy of a kept one)",
                             source=source, field="model.family", expected="a new keras.Model on every call",
                             found="the same model object again")
        _RETURNED.add(model)
        if not model.built:  # a Sequential without keras.Input: its weights exist only once it is built
            model.build((None, *input_shape))
        return model
    params = {k: v for k, v in model_settings.items() if k != "family"}
    module = FAMILIES[family]
    extra = {"search_dir": search_dir} if getattr(module, "USES_FILES", False) else {}
    return module.build(params, tuple(input_shape), head, **extra)


def preflight(model: dict[str, Any], input_shape: tuple[int, ...], preprocess: str,
              search_dir: Path | None = None, source: str | None = None, sample: Any = None,
              images: bool = True) -> list[str]:
    """Checks that need the data's shape (or files the family reads), run once before any trial; returns
    warnings. ``sample``: a few development rows, for checks that look at what the model makes of them;
    ``images``: whether the data says its rows are images (an image folder, or data.as_images)."""
    family = model.get("family", "mlp")
    if family.startswith(CUSTOM_PREFIX):
        return []
    module = FAMILIES[family]
    if getattr(module, "IMAGE_INPUT", False) and len(input_shape) != 3:
        # An npz X of (n, h, w) reads as rows of (h, w) until data.as_images says they are pixels.
        hint = (" (the rows are 2-D: if they are images, set data.as_images: true to read them as pixels)"
                if len(input_shape) == 2 else "")
        raise SpaceError(f"the {family} family needs images (height, width, channels){hint}", source=source,
                         field="model.family", expected="data from images:<dir>, or an npz X of shape "
                         "(n, h, w) or (n, h, w, c) or sklearn:digits with data.as_images: true",
                         found=f"rows of shape {tuple(input_shape)}")
    if getattr(module, "IMAGE_INPUT", False) and not images:
        # Trained as they were: a channels-first (n, 3, 16, 16) array read as 3 px high with 16 channels, and
        # 0-255 pixels never checked, where data.as_images checks both.
        raise SpaceError(f"the {family} family takes images, and these rows of shape {tuple(input_shape)} are "
                         f"not marked as images, so nothing checks that their last axis is the colour channels "
                         f"or that their pixels lie in [0, 1]", source=source, field="data.as_images",
                         expected="data.as_images: true (npz or arrays of shape (n, height, width, channels))",
                         found="as_images not set")
    if hasattr(module, "preflight"):
        return list(module.preflight(model, tuple(input_shape), preprocess, search_dir, source, sample))
    return []


def check_custom_builder(model_settings: dict[str, Any], input_shape: tuple[int, ...], head: Head,
                         search_dir: Path | None = None, source: str | None = None,
                         target: Any = None) -> list[str]:
    """Build the user's model once, on one trial's settings, before any trial: a builder that fails or
    whose output does not fit the task would otherwise fail every trial, each with TensorFlow's words.
    Returns warnings: for a regression ``target`` (the training values), an output that cannot reach it."""
    import numpy as np

    family = model_settings["family"]
    shown = {k: v for k, v in model_settings.items() if k != "family"}
    try:
        model = build(model_settings, input_shape, head, search_dir, source)
        out = model(np.zeros((2, *input_shape), dtype="float32"), training=False)
    except SpaceError:  # already names the space file and the field
        raise
    except Exception as exc:  # noqa: BLE001  (the user's code: whatever it raises is a mistake in it)
        raise SpaceError(f"the builder {family} failed when called with the settings {shown}, input shape "
                         f"{tuple(input_shape)} and {head.n_outputs} output(s): {type(exc).__name__}: "
                         f"{_sentences(_one_line(exc), 300)}", source=source, field="model.family") from None
    outputs = out if isinstance(out, (list, tuple)) else list(out.values()) if isinstance(out, dict) else [out]
    shape = tuple(outputs[0].shape) if len(outputs) == 1 else None
    one_unit = shape is not None and head.n_outputs == 1 and len(shape) == 1  # (batch,): scored as (batch, 1)
    if not one_unit and (shape is None or len(shape) != 2 or shape[-1] != head.n_outputs):
        what = {"binary": "1 output (a sigmoid, for two classes)", "regression": "1 output (linear, for a "
                "regression target)"}.get(head.task, f"{head.n_outputs} outputs (a softmax over the classes)")
        found = f"{len(outputs)} outputs" if shape is None else f"output shape {shape[1:]}"
        rows = (f"; it was built for rows of shape {tuple(input_shape)}, and its output keeps their extra axes: "
                f"flatten them in the model (keras.layers.Flatten()), or reshape x to one row of numbers per "
                f"sample" if shape is not None and len(shape) > 2 and len(input_shape) > 1 else "")
        if head.task == "binary" and shape is not None and len(shape) == 2 and shape[-1] == 2:
            # The two-unit softmax of Keras' examples: one sigmoid unit is the same model, scored by log loss.
            rows = ("; a binary task's builder gets n_outputs=1 and ends in one sigmoid unit, where a two-unit "
                    "softmax is the same model: Dense(n_outputs, activation='sigmoid' if n_outputs == 1 else "
                    "'softmax') serves every classification task")
        raise SpaceError(f"the model of the builder {family} does not fit this {head.task} task{rows}", source=source,
                         field="model.family", expected=f"one output layer of {what}, shape (batch, "
                         f"{head.n_outputs})", found=found)
    if head.task != "regression":
        _outputs_probabilities(model, input_shape, head, family, source)
    _saves_and_loads(model, family, source)
    warnings = _compiled_warning(model, family)
    return warnings + (_reaches_the_target(model, input_shape, family, target) if head.task == "regression" else [])


def _compiled_warning(model: Any, family: str) -> list[str]:
    """Every trial compiles the model with the file's train settings: a builder's own compile (its optimizer,
    learning rate, loss, metrics) was replaced without a word."""
    if not getattr(model, "compiled", False):
        return []
    optimizer = getattr(getattr(model, "optimizer", None), "name", None)
    own = f" (its {optimizer} optimizer among them)" if optimizer else ""
    return [f"the builder {family} compiles its model; every trial compiles it again with train.optimizer, "
            f"train.learning_rate and the task's loss, so the builder's own compile settings{own} are not used: "
            f"return the model uncompiled, and set or search them under train"]


def _reaches_the_target(model: Any, input_shape: tuple[int, ...], family: str, target: Any) -> list[str]:
    """Built-in families rescale their linear output by the training rows' target mean and std; a builder's
    model gets the target as it is. A target far from unit scale, or an output bounded away from it (a
    sigmoid on a target of hundreds), trains without an error and scores badly: said before training."""
    import numpy as np

    if target is None or not len(target):
        return []
    y = np.asarray(target, dtype=np.float64)
    mean, std, low, high = float(y.mean()), float(y.std()), float(y.min()), float(y.max())
    rows = np.random.default_rng(0).normal(0.0, 3.0, size=(64, *input_shape)).astype("float32")
    out = np.asarray(model(rows, training=False), dtype=np.float64).ravel()
    out = out[np.isfinite(out)]
    # Exactly 1 for every row is a softmax over one unit (a constant 0 may be a zero initializer, which learns).
    if len(out) > 1 and float(np.abs(out - 1.0).max()) <= 1e-6:
        return [f"the model of the builder {family} gives the same output, 1, for every row (a "
                f"softmax over one unit is always 1): it cannot learn the regression target; end the model with a "
                f"linear unit (activation=None)"]
    if len(out) and out.min() >= -1e-6 and out.max() <= 1 + 1e-6 and (low < -1e-6 or high > 1 + 1e-6):
        return [f"the model of the builder {family} outputs values in [0, 1] only (a sigmoid?), and the regression "
                f"target runs from {low:.4g} to {high:.4g}: end the model with a linear unit "
                f"(activation=None)"]
    # The builder rescales its output itself: its fresh output is of the target's order of magnitude.
    already = len(out) and (abs(float(out.mean())) > 0.1 * abs(mean) if abs(mean) > std else
                            float(out.std()) > 0.1 * std)
    if not already and (std > 10 or abs(mean) > 10 * max(std, 1e-12)):
        # Rounded: the numbers come from all rows, test rows included, and are a scale, not a statistic to fit.
        return [f"the regression target has a mean of about {mean:.2g} and a standard deviation of about {std:.2g}; "
                f"built-in families rescale their output by the training rows' own, a builder's model gets the "
                f"target as it is and starts far from it: end it with keras.layers.Rescaling(scale={std:.2g}, "
                f"offset={mean:.2g}) after its linear unit, or scale the target in the data"]
    return []


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line, without the bold Keras writes for a terminal."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(exc).split()))


def _sentences(text: str, limit: int) -> str:
    """``text`` cut to whole sentences within ``limit`` characters (a cut mid-word read as the message's own
    words: "class CustomLayer(keras.layers.)"), or to the limit with an ellipsis where no sentence fits."""
    if len(text) <= limit:
        return text
    end = text.rfind(". ", 0, limit)
    return text[:end + 1] if end > limit // 3 else text[:limit].rstrip() + " …"


def _saves_and_loads(model: Any, family: str, source: str | None) -> None:
    """Every split model is saved as a checkpoint and loaded again (reproduce, split models, fused copies): a
    model Keras cannot rebuild from its config (an unregistered custom layer, a subclassed ``keras.Model``
    without ``get_config``) trained every trial and then failed each of those with Keras' words."""
    import re

    import keras

    try:
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model), safe_mode=False)
    except Exception as exc:  # noqa: BLE001  (the user's classes: whatever Keras raises is the reason)
        reason = _one_line(exc)
        located = re.search(r"Could not locate (?:class|function) '([^']+)'", reason)
        cause = (f"Keras cannot find its class {located.group(1)!r} when loading: register it with "
                 f"@keras.saving.register_keras_serializable() above the class" if located else
                 f"{type(exc).__name__}: {_sentences(reason, 240)}")
        raise SpaceError(f"the model of the builder {family} cannot be saved and loaded again, as every checkpoint "
                         f"is ({cause}); build a functional or Sequential model of registered layers (a subclassed "
                         f"keras.Model needs get_config and from_config)", source=source,
                         field="model.family") from None


def _outputs_probabilities(model: Any, input_shape: tuple[int, ...], head: Head, family: str,
                           source: str | None) -> None:
    """The loss is cross-entropy on probabilities: a builder that ends in logits (a Dense without an
    activation) would train and be scored on numbers that mean nothing, without an error anywhere."""
    import numpy as np

    rows = np.random.default_rng(0).normal(0.0, 3.0, size=(16, *input_shape)).astype("float32")
    out = np.asarray(model(rows, training=False), dtype=np.float64).reshape(len(rows), -1)
    out = out[np.isfinite(out).all(axis=1)]  # a model that diverges is the trials' to find, as such
    if not len(out):
        return
    if head.task == "binary" and len(out) > 1 and float(np.abs(out - 1.0).max()) <= 1e-6:
        # Keras scores a softmax output from the logits under it, so the trials' losses would not be those of
        # the saved models, which say 1 for every row.
        raise SpaceError(f"the model of the builder {family} gives the same output, 1, for every row (a softmax "
                         f"over one unit is always 1): it cannot tell the two classes apart; end the model with "
                         f"Dense(1, activation='sigmoid') (for every classification task: Dense(n_outputs, "
                         f"activation='sigmoid' if n_outputs == 1 else 'softmax'))", source=source,
                         field="model.family",
                         expected="1 output in [0, 1] (a sigmoid)", found="1 for every row")
    in_range = bool(np.all((out >= -1e-6) & (out <= 1 + 1e-6)))
    sums_to_one = head.task == "binary" or bool(np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
    if not (in_range and sums_to_one):
        last = "a sigmoid (activation='sigmoid')" if head.task == "binary" else "a softmax (activation='softmax')"
        raise SpaceError(f"the model of the builder {family} does not output probabilities (its outputs on random "
                         f"rows range from {out.min():.3g} to {out.max():.3g}"
                         f"{'' if sums_to_one else ' and its rows do not sum to 1'}); the loss here is "
                         f"cross-entropy on probabilities, so end the model with {last}", source=source,
                         field="model.family", expected=f"{head.n_outputs} output(s) in [0, 1]"
                         + ("" if head.task == "binary" else " summing to 1 per row"), found="logits or scores")
