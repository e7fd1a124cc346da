"""Model families: each turns resolved settings into an uncompiled Keras model.

A family is a module with ``PARAMS`` (what the space file may set) and
``build(settings, input_shape, head)``. A ``python:module:function`` family is the user's own
builder, called as ``function(settings, input_shape, n_outputs)``.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable

from search.errors import SpaceError
from search.models import cnn, mlp, transfer
from search.models._head import Head
from search.models._params import TRAIN_PARAMS, Param

FAMILIES = {"mlp": mlp, "cnn": cnn, "transfer": transfer}
CUSTOM_PREFIX = "python:"

__all__ = ["FAMILIES", "Head", "Param", "TRAIN_PARAMS", "build", "family_params", "load_custom_builder",
           "preflight", "register_builder"]


def family_params(family: str) -> dict[str, Param] | None:
    """The declared settings of a built-in family, or None for a user's own builder."""
    if family.startswith(CUSTOM_PREFIX):
        return None
    return FAMILIES[family].PARAMS


# Builder functions handed over in this process (``search.run(..., builder=f)``), by their family name.
_REGISTERED: dict[str, Callable[..., Any]] = {}


def register_builder(builder: Callable[..., Any]) -> str:
    """Make a function usable as ``model.family`` in this process; returns its family name."""
    if not callable(builder):
        raise SpaceError("a builder must be a function (settings, input_shape, n_outputs) -> keras.Model",
                         field="builder", found=type(builder).__name__)
    name = f"{CUSTOM_PREFIX}{getattr(builder, '__module__', None) or 'builder'}:" \
           f"{getattr(builder, '__qualname__', None) or 'build'}"
    _REGISTERED[name] = builder
    return name


def load_custom_builder(family: str, search_dir: Path | None = None,
                        source: str | None = None) -> Callable[..., Any]:
    """Import ``python:module:function``; the space file's folder is searched first."""
    if family in _REGISTERED:
        return _REGISTERED[family]
    spec = family[len(CUSTOM_PREFIX):]
    module_name, _, func_name = spec.rpartition(":")
    if not module_name or not func_name:
        raise SpaceError("a custom builder is written python:<module>:<function>", source=source,
                         field="model.family", expected="e.g. 'python:my_models:build'", found=family)
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.insert(0, str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpaceError(f"cannot import module '{module_name}' ({exc})", source=source,
                         field="model.family") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SpaceError(f"module '{module_name}' has no function '{func_name}'", source=source,
                         field="model.family", found=family) from None
    return func


def build(model_settings: dict[str, Any], input_shape: tuple[int, ...], head: Head,
          search_dir: Path | None = None) -> Any:
    family = model_settings["family"]
    if family.startswith(CUSTOM_PREFIX):
        import keras

        builder = load_custom_builder(family, search_dir)
        model = builder(dict(model_settings), tuple(input_shape), head.n_outputs)
        if not isinstance(model, keras.Model):
            raise SpaceError(f"the builder {family} returned {type(model).__name__}, not a keras.Model",
                             field="model.family")
        return model
    params = {k: v for k, v in model_settings.items() if k != "family"}
    module = FAMILIES[family]
    extra = {"search_dir": search_dir} if getattr(module, "USES_FILES", False) else {}
    return module.build(params, tuple(input_shape), head, **extra)


def preflight(model: dict[str, Any], input_shape: tuple[int, ...], preprocess: str,
              search_dir: Path | None = None, source: str | None = None) -> None:
    """Checks that need the data's shape (or files the family reads), run once before any trial."""
    family = model.get("family", "mlp")
    if family.startswith(CUSTOM_PREFIX):
        return
    module = FAMILIES[family]
    if getattr(module, "IMAGE_INPUT", False) and len(input_shape) != 3:
        raise SpaceError(f"the {family} family needs images (height, width, channels)", source=source,
                         field="model.family", expected="data from images:<dir>, an npz X of shape "
                         "(n, h, w) or (n, h, w, c), or sklearn:digits with data.as_images: true",
                         found=f"rows of shape {tuple(input_shape)}")
    if hasattr(module, "preflight"):
        module.preflight(model, tuple(input_shape), preprocess, search_dir, source)
