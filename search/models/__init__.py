"""Model families: each turns resolved settings into an uncompiled Keras model.

A family is a module with ``PARAMS`` (what the space file may set) and
``build(settings, input_shape, head)``. A ``python:module:function`` family is the user's own
builder, called as ``function(settings, input_shape, n_outputs)``.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from search.errors import SpaceError
from search.models import cnn, mlp, transfer
from search.models._head import Head
from search.models._params import TRAIN_PARAMS, Param

FAMILIES = {"mlp": mlp, "cnn": cnn, "transfer": transfer}
CUSTOM_PREFIX = "python:"

__all__ = ["FAMILIES", "Head", "Param", "TRAIN_PARAMS", "build", "builder_by_path", "check_custom_builder",
           "family_params", "handed_over", "load_custom_builder", "named_only_there",
           "only_in_this_process", "preflight", "register_builder"]


def family_params(family: str) -> dict[str, Param] | None:
    """The declared settings of a built-in family, or None for a user's own builder."""
    if family.startswith(CUSTOM_PREFIX):
        return None
    return FAMILIES[family].PARAMS


# Builder functions handed over in this process (``search.run(..., builder=f)``), by their family name.
_REGISTERED: dict[str, Callable[..., Any]] = {}


def register_builder(builder: Callable[..., Any]) -> str:
    """Make a function usable as ``model.family`` in this process; returns its family name."""
    _a_builder(builder)
    base = f"{CUSTOM_PREFIX}{getattr(builder, '__module__', None) or 'builder'}:" \
           f"{getattr(builder, '__qualname__', None) or 'build'}"
    # Functions made by one factory (make_builder(3), make_builder(0)), lambdas and a notebook cell run
    # again share a name; a study's family must go on naming the function it ran with, so a different one
    # gets a name of its own, and the same code with the same captured values keeps the name.
    name, n = base, 1
    while name in _REGISTERED and not _same_function(_REGISTERED[name], builder):
        n += 1
        name = f"{base}~{n}"
    _REGISTERED[name] = builder
    return name


def _a_builder(builder: Any, field: str = "builder", source: str | None = None) -> None:
    import inspect

    expected = "a function build(settings, input_shape, n_outputs) that returns a new keras.Model"
    kind = type(builder)
    if any(b.__name__ in ("Model", "Layer") and b.__module__.startswith("keras") for b in kind.__mro__):
        # Callable, so it would be called as a builder, and fail in Keras' words.
        raise SpaceError("builder is a model, not a function that builds one: every split of every trial needs a "
                         "fresh model built with that trial's settings; wrap the code that made it in a function",
                         field=field, source=source, expected=expected, found=f"a {kind.__qualname__} object")
    if not callable(builder):
        raise SpaceError("a builder must be a function (settings, input_shape, n_outputs) -> keras.Model",
                         field=field, source=source, expected=expected, found=kind.__name__)
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # a builtin or an extension: called and judged as it is
        return
    try:
        signature.bind({}, (1,), 1)
    except TypeError:
        params = ", ".join(signature.parameters)
        habit = (" (KerasTuner's build(hp) reads hp.Int(...) and hp.Choice(...); here the space file's model "
                 "section holds the searched settings, and build reads them from the dict settings)"
                 if len(signature.parameters) == 1 else "")
        raise SpaceError(f"the builder takes ({params}), which cannot be called with the three arguments a builder "
                         f"gets{habit}", field=field, source=source, expected=expected,
                         found=f"{getattr(builder, '__qualname__', kind.__name__)}({params})") from None


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """The same code with the same captured values. Where the code sits does not count: a notebook cell run
    again with a comment or a blank line added is the same builder (Python's own comparison of code
    objects counts line numbers, so it was named a new one and its study refused)."""
    if a is b:
        return True
    code = getattr(a, "__code__", None)
    other = getattr(b, "__code__", None)
    if code is None or other is None or code_shape(code) != code_shape(other):
        return False
    try:
        cells = [tuple(c.cell_contents for c in (f.__closure__ or ())) for f in (a, b)]
        return bool(cells[0] == cells[1] and a.__defaults__ == b.__defaults__
                    and a.__kwdefaults__ == b.__kwdefaults__)
    except Exception:  # captured values that cannot be compared (arrays): taken as different
        return False


def code_shape(code: Any) -> tuple[Any, ...]:
    """What a function's code does, without where it sits: its bytecode, names and constants, nested
    functions' alike, but no line numbers or positions (comments and blank lines leave them unchanged)."""
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
            tuple(_stable(c) for c in code.co_consts),
            code.co_argcount, code.co_kwonlyargcount, code.co_flags)


def _stable(value: Any) -> Any:
    """A value (a constant, a default) as a key that is the same in every process and tells 1, 1.0 and True
    apart: sets and dicts in sorted order (a set of strings is ordered by string hashing, which differs
    between processes), code by its shape, anything else by its type and text."""
    if hasattr(value, "co_code"):
        return code_shape(value)
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, tuple(sorted((_stable(v) for v in value), key=repr)))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((_stable(k), _stable(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_stable(v) for v in value))
    return (type(value).__name__, repr(value))


def builder_fingerprint(builder: Any) -> str | None:
    """A short digest of a builder's code (:func:`code_shape`) and defaults; None for a callable without code."""
    import hashlib
    import re

    code = getattr(builder, "__code__", None)
    if code is None:
        return None
    defaults = repr(_stable((getattr(builder, "__defaults__", None), getattr(builder, "__kwdefaults__", None))))
    text = repr(code_shape(code)) + re.sub(r" at 0x[0-9a-f]+", "", defaults)  # an object's address is per process
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def only_in_this_process(family: str) -> str | None:
    """The name of a builder handed over in this process that no other process can import by its name (one
    defined in a script, a notebook or inside a function), else None. The command line cannot reproduce
    its study; Python can, where the function is defined."""
    builder = _REGISTERED.get(family)
    if builder is None or not named_only_there(family):
        return None
    return str(getattr(builder, "__name__", "the builder"))


def load_custom_builder(family: str, search_dir: Path | None = None,
                        source: str | None = None) -> Callable[..., Any]:
    """The function of ``python:<module or file>:<function>``.

    A module found as a file in the space file's folder (``my_models`` → ``my_models.py``, or a path such
    as ``lib/models.py``) is loaded from that file, as a module of its own under a private name; no folder
    is ever put on ``sys.path``, so a ``pandas.py`` or ``numpy.py`` beside the space file is never
    imported in place of the library. Anything else is imported as an installed module.
    """
    if family in _REGISTERED:
        return _REGISTERED[family]
    stand_in = _HANDED_OVER.get()
    if stand_in is not None and named_only_there(family):
        return stand_in
    spec = family[len(CUSTOM_PREFIX):]
    module_name, _, func_name = spec.rpartition(":")
    if not module_name or not func_name:
        raise SpaceError("a custom builder is written python:<module>:<function>", source=source,
                         field="model.family", expected="e.g. 'python:my_models:build'", found=family)
    short = func_name.split(".")[-1].split("~")[0]
    hint = (f"; a function defined in a notebook, a script or another function exists only in the process "
            f"that handed it over: pass it again (search.reproduce(..., builder={short})), or move it to a "
            f"module file and name it python:my_models:{short}" if named_only_there(family) else "")
    path = _builder_file(module_name, search_dir)
    if path is not None:
        module = _load_file(path, module_name, source)
    elif module_name.endswith(".py") or "/" in module_name:
        raise SpaceError(f"no builder file {module_name} in {Path(search_dir or Path.cwd()).resolve()}", source=source,
                         field="model.family", found=family)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpaceError(f"cannot import module '{module_name}' ({exc})" + (hint or (
                             f"; a builder of your own is a file beside the space file "
                             f"({module_name.replace('.', '/')}.py) or an installed module")), source=source,
                             field="model.family") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SpaceError(f"module '{module_name}' has no function '{func_name}'{hint}", source=source,
                         field="model.family", found=family) from None
    _a_builder(func, "model.family", source)
    return func


# A builder handed to one call (``search.reproduce(..., builder=f)``) for the family of a study that a notebook
# ran: its name (``python:__main__:build``) cannot be imported in another process.
_HANDED_OVER: contextvars.ContextVar[Callable[..., Any] | None] = contextvars.ContextVar("search_builder",
                                                                                        default=None)


@contextlib.contextmanager
def handed_over(builder: Callable[..., Any] | None) -> Iterator[None]:
    """Within the block, ``builder`` stands for any family that only the process that ran the study could name."""
    if builder is not None:
        _a_builder(builder)
    token = _HANDED_OVER.set(builder)
    try:
        yield
    finally:
        _HANDED_OVER.reset(token)


def named_only_there(family: str) -> bool:
    """A family naming a function of ``__main__``, one made inside another function, or a second function
    handed over under one name (``~2``): no other process can import it by that name."""
    module, _, function = family[len(CUSTOM_PREFIX):].rpartition(":")
    return family.startswith(CUSTOM_PREFIX) and (module in ("__main__", "builder") or "<locals>" in function
                                                 or "~" in function)


def builder_by_path(family: str, search_dir: Path | None = None) -> str:
    """``python:my_models:build`` as ``python:/abs/path/my_models.py:build`` when it is a file found from
    ``search_dir``, so that a config naming it runs from any folder; any other family as it is."""
    if not family.startswith(CUSTOM_PREFIX) or family in _REGISTERED:
        return family
    module_name, _, function = family[len(CUSTOM_PREFIX):].rpartition(":")
    path = _builder_file(module_name, search_dir) if module_name else None
    return family if path is None else f"{CUSTOM_PREFIX}{path}:{function}"


def _builder_file(module_name: str, search_dir: Path | None) -> Path | None:
    base = Path(search_dir) if search_dir is not None else Path.cwd()
    if module_name.endswith(".py") or "/" in module_name:
        candidates = [base / module_name]
    else:
        relative = Path(*module_name.split("."))
        candidates = [base / relative.with_suffix(".py"), base / relative / "__init__.py"]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def _load_file(path: Path, module_name: str, source: str | None) -> Any:
    """Execute ``path`` once per process as the module ``_search_user_builder_<hash of path>``.

    Registered in ``sys.modules`` before it runs, so the builder's own references to its module
    (``sys.modules[build.__module__]``, dataclasses, pickling) resolve.
    """
    import hashlib
    import importlib.util

    private = "_search_user_builder_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if private in sys.modules:
        return sys.modules[private]
    locations = [str(path.parent)] if path.name == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(private, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise SpaceError(f"cannot load {path} as a Python module", source=source, field="model.family")
    module = importlib.util.module_from_spec(spec)
    sys.modules[private] = module
    from search._tensorflow import import_quietly

    import_quietly()  # before the builder's own `import keras` prints TensorFlow's start-up notices
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[private]
        hint = (" (the builder's folder is not on sys.path: put helpers in the same file, or install them)"
                if isinstance(exc, ImportError) else "")
        raise SpaceError(f"running the builder file {path} failed: {type(exc).__name__}: {exc}{hint}",
                         source=source, field="model.family") from None
    return module


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
        if not model.built:  # a Sequential without keras.Input: its weights exist only once it is built
            model.build((None, *input_shape))
        return model
    params = {k: v for k, v in model_settings.items() if k != "family"}
    module = FAMILIES[family]
    extra = {"search_dir": search_dir} if getattr(module, "USES_FILES", False) else {}
    return module.build(params, tuple(input_shape), head, **extra)


def preflight(model: dict[str, Any], input_shape: tuple[int, ...], preprocess: str,
              search_dir: Path | None = None, source: str | None = None, sample: Any = None) -> list[str]:
    """Checks that need the data's shape (or files the family reads), run once before any trial; returns
    warnings. ``sample``: a few development rows, for checks that look at what the model makes of them."""
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
                         f"{_one_line(exc)[:300]}", source=source, field="model.family") from None
    outputs = out if isinstance(out, (list, tuple)) else list(out.values()) if isinstance(out, dict) else [out]
    shape = tuple(outputs[0].shape) if len(outputs) == 1 else None
    one_unit = shape is not None and head.n_outputs == 1 and len(shape) == 1  # (batch,): scored as (batch, 1)
    if not one_unit and (shape is None or len(shape) != 2 or shape[-1] != head.n_outputs):
        what = {"binary": "1 output (a sigmoid, for two classes)", "regression": "1 output (linear, for a "
                "regression target)"}.get(head.task, f"{head.n_outputs} outputs (a softmax over the classes)")
        found = f"{len(outputs)} outputs" if shape is None else f"output shape {shape[1:]}"
        raise SpaceError(f"the model of the builder {family} does not fit this {head.task} task", source=source,
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
    if len(out) and out.min() >= -1e-6 and out.max() <= 1 + 1e-6 and (low < -0.5 or high > 1.5):
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
                 f"{type(exc).__name__}: {reason[:240]}")
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
