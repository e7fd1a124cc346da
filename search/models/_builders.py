"""A user's own builder as a model family: handed over in Python (``builder=f``) or named in the space file
(``python:<module or file>:<function>``), checked for its call shape, named so that a study goes on naming
the function it ran with, and loaded from the space file's folder without touching ``sys.path``."""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from search.errors import SpaceError

CUSTOM_PREFIX = "python:"
_REGISTERED: dict[str, Callable[..., Any]] = {}


def register_builder(builder: Callable[..., Any]) -> str:
    """Make a function usable as ``model.family`` in this process; returns its family name."""
    _a_builder(builder)
    base = f"{CUSTOM_PREFIX}{getattr(builder, '__module__', None) or 'builder'}:" \
           f"{getattr(builder, '__qualname__', None) or 'build'}"
    # Functions made by one factory (make_builder(3), make_builder(0)) and lambdas share a name; a study's
    # family must go on naming the function it ran with, so a different one gets a name of its own, and the
    # same code with the same captured values keeps the name. A module's function defined again (a notebook
    # cell run again, edited) takes the name over, as a new process importing it would: its study goes on,
    # warned that the code changed (it was refused as another family, with advice to do what was done).
    name, n = base, 1
    if _defined_again(name, builder):
        _REGISTERED.pop(name)
    while name in _REGISTERED and not _same_function(_REGISTERED[name], builder):
        n += 1
        name = f"{base}~{n}"
    _REGISTERED[name] = builder
    return name


def _defined_again(name: str, builder: Callable[..., Any]) -> bool:
    """``builder`` is a new definition of the module-level function registered as ``name``."""
    before = _REGISTERED.get(name)
    qualname = str(getattr(builder, "__qualname__", ""))
    return (before is not None and before is not builder and "<" not in qualname
            and getattr(before, "__qualname__", None) == qualname
            and getattr(before, "__module__", None) == getattr(builder, "__module__", None))


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
    stand_in = _HANDED_OVER.get()
    if stand_in is not None and named_only_there(family):  # given for this call: it wins over an earlier one
        return stand_in
    if family in _REGISTERED:
        return _REGISTERED[family]
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
