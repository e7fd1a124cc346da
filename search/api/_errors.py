"""How the Python API's calls fail: as the package's own errors, with no password in them, in the words of
the call (``home=``), not of the command that shares its code (``--home``)."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar, cast

import numpy as np

from search.api._state import process_state_kept
from search.errors import ArgumentError, SpaceError, UserError

if TYPE_CHECKING:
    from search.space import Space

_F = TypeVar("_F", bound=Callable[..., Any])


def _hides_credentials(fn: _F) -> _F:
    """The URLs' passwords are hidden in whatever the call prints or logs later, also where they appear alone,
    and in the message of an exception it raises (a notebook shows it whole, with its chain); a user's
    mistake is raised from the call itself, without the package's frames. The process-wide Python state the
    call changes on its way (global random states, Optuna's verbosity, warnings filters) is given back."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        from search import _redact

        _redact.remember(kwargs.get("storage"), kwargs.get("tracking_uri"), os.environ.get("SEARCH_STORAGE"),
                         os.environ.get("MLFLOW_TRACKING_URI"))
        try:
            _arguments_fit(fn.__name__, signature, args, kwargs)
            with process_state_kept():
                return fn(*args, **kwargs)
        except Exception as exc:
            _redact_exception(exc)
            if isinstance(exc, UserError) and not _AS_COMMAND.get():
                _in_python_terms(exc)
                # A mistake in the call is the caller's to see, not the frames of this package it passed
                # through on the way (a notebook printed 4 to 10 of them above the one-paragraph message).
                raise exc.with_traceback(None)
            raise

    return cast(_F, call)


_AS_COMMAND: contextvars.ContextVar[bool] = contextvars.ContextVar("search_as_command", default=False)


def _arguments_fit(name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A misspelt or extra argument, said with the names the function takes (Python's TypeError named
    neither the near miss, ``n_trial`` for ``n_trials``, nor that everything after the first is by keyword)."""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        from search.space import did_you_mean

        names = list(signature.parameters)
        unknown = next((k for k in kwargs if k not in signature.parameters), None)
        hint = did_you_mean(unknown, names) if unknown else ""
        keywords = [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        positional = (f"; only {names[0]} is given by position, the rest by name ({name}({names[0]}, "
                      f"{keywords[0]}=...))" if len(args) > 1 and keywords else "")
        raise ArgumentError(f"search.{name}(): {exc}{hint}{positional}", field=unknown,
                        expected="one of " + ", ".join(names)) from None


@contextlib.contextmanager
def as_command() -> Iterator[None]:
    """Calls made by the command line: their errors keep naming its options (``--home``)."""
    token = _AS_COMMAND.set(True)
    try:
        yield
    finally:
        _AS_COMMAND.reset(token)


# The command's options that name a keyword argument of these functions: an error raised by the code both
# share says ``home=`` to a notebook, not ``--home``. Commands quoted in backticks are left as they are.
_FLAG = re.compile(r"--(home|storage|tracking-uri|study-name|trial|config|epochs|ensemble|verify|threads|"
                   r"allow-data-change|register|n-trials|timeout|figures|run-id)\b")
# The command's positional arguments, by the keyword argument that is them in these functions.
_POSITIONAL = {"STUDY": "study_name", "INPUT": "rows"}


def _in_python_terms(exc: UserError) -> None:
    def keywords(text: str) -> str:
        parts = text.split("`")
        parts[::2] = [_FLAG.sub(lambda m: m.group(1).replace("-", "_") + "=", part) for part in parts[::2]]
        return "`".join(parts)

    field = exc.field
    named = _FLAG.fullmatch(field or "")
    argument = _POSITIONAL.get(field or "") or (named.group(1).replace("-", "_") if named else None)

    def rewrite(text: str) -> str:
        if argument is not None:
            text = text.replace(f"field '{field}':", f"argument '{argument}':", 1)
        return keywords(text)

    exc.args = tuple(rewrite(a) if isinstance(a, str) else a for a in exc.args)
    if argument is not None:
        exc.field = argument


def _redact_exception(exc: BaseException) -> None:
    """Rewrite in place the messages of ``exc`` and of the exceptions chained to it that show a secret
    (SQLAlchemy's and MLflow's errors repeat the URL they were given); a message its own ``args`` do not
    make is replaced whole, and a chain that cannot be cleaned is cut."""
    from search import _redact

    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        text = str(link)
        if _redact.redact(text) != text:
            link.args = tuple(_redact.redact(a) if isinstance(a, str) else a for a in link.args)
            if _redact.redact(str(link)) != str(link):  # its __str__ reads other fields (SQLAlchemy's do)
                _show_instead(link, _redact.redact(text))
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _show_instead(exc: BaseException, text: str) -> None:
    """Make ``exc`` print as ``text``: its class swapped for a subclass of the same name with that ``__str__``
    (``except`` clauses for the original class still catch it)."""
    cls = type(exc)
    try:
        exc.__class__ = type(cls.__name__, (cls,), {"__str__": lambda self: text, "__module__": cls.__module__,
                                                   "__qualname__": cls.__qualname__})
    except TypeError:  # a class whose layout forbids it: keep its name, drop the message
        exc.args = (text,)


def _on_or_off(figures: Any) -> None:
    """``figures=`` is True, False or None (``$SEARCH_FIGURES``, checked here too): a string ("off") would
    read as True."""
    from search.tracking import figures_wanted

    if figures is not None and not isinstance(figures, bool):
        raise ArgumentError("figures is True, False or None (the command's --figures on|off; None: "
                            "$SEARCH_FIGURES, else on)", field="figures", found=figures)
    figures_wanted(figures)


def _callables(callbacks: Any) -> list[Any]:
    """``callbacks=`` as a list of functions: one function alone is taken as a list of one, as a notebook
    writes it; anything else is named before anything is stored, not found at the first trial's end."""
    if callbacks is None:
        return []
    listed = [callbacks] if callable(callbacks) else callbacks
    if isinstance(listed, (str, bytes)) or not hasattr(listed, "__iter__"):
        raise ArgumentError("callbacks is a list of functions, each called as callback(study, trial) after a trial",
                            field="callbacks", found=callbacks)
    listed = list(listed)
    for i, callback in enumerate(listed):
        if not callable(callback):
            raise ArgumentError("callbacks is a list of functions, each called as callback(study, trial) after a "
                                "trial", field=f"callbacks[{i}]", found=callback)
        try:
            signature = inspect.signature(callback)
        except (TypeError, ValueError):  # a builtin without one: found out at the first trial's end
            continue
        try:
            signature.bind(None, None)
        except TypeError:  # found before the first trial trains, not after it
            raise ArgumentError(f"each callback is called as callback(study, trial), with two arguments, and "
                                f"{getattr(callback, '__name__', 'this one')}{signature} cannot take them",
                                field=f"callbacks[{i}]", found=callback) from None
    return listed


def _output(out: Any, name: str = "out") -> None:
    """``out=`` is a stream that text is written to (``sys.stdout``, ``io.StringIO()``) or None: a file's name
    failed only after the whole search had run, at the first line of its summary."""
    if out is not None and not callable(getattr(out, "write", None)):
        hint = f"; for a file, open it: out=open({out!r}, 'w')" if isinstance(out, (str, os.PathLike)) else ""
        raise ArgumentError(f"{name} is where the text goes: a stream with a write method (sys.stdout, "
                            f"io.StringIO()) or None{hint}", field=name, found=out)


def _on_off(value: Any, name: str) -> None:
    """An on/off argument is True or False: the text "False" is true to Python, and read as on."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{name} is True or False", field=name, found=value)


def _arguments(**given: tuple[Any, int]) -> list[Any]:
    """Whole-number arguments (None: not given) at least their lowest value, checked before anything runs:
    the command's parser refuses the same values (``--epochs 0``), and a reproduce spends a test-set look.
    Returns them as ints, in the order given: a digit string (as a notebook's widget gives it) was
    accepted here and then compared with a number further in, a raw TypeError after the study was stored."""
    taken: list[Any] = []
    for name, (value, lowest) in given.items():
        if value is None:
            taken.append(None)
            continue
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        # 1e3 and 100.0 are whole numbers too (n_trials=1e3 is how a notebook writes a thousand); 2.5 is not.
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not whole or value < lowest:
            raise ArgumentError(f"{name} is a whole number, at least {lowest}", field=name, found=value)
        taken.append(int(value))
    return taken


def _space_argument(space: Any, study_name: str | None, in_memory: bool = False) -> "Space":
    """``space`` as :func:`run` takes it: a Space, a file's path, or a mapping of the file's sections.
    ``in_memory``: x and y are given, so a mapping needs no ``data.source`` (it is theirs)."""
    from collections.abc import Mapping

    from search import space as spaces
    from search.space import Space

    if study_name is not None and not isinstance(study_name, str):
        raise SpaceError("a study name is text", field="study_name",
                         found=f"{type(study_name).__name__} {study_name!r}")
    if isinstance(space, Space):
        return space
    if isinstance(space, Mapping):  # the builder, x and y may still be missing: the full checks come after
        raw = dict(space)
        if study_name is not None:
            raw["study"] = {**(raw.get("study") or {}), "name": study_name}
        if in_memory and isinstance(raw.get("data", {}), Mapping):
            raw["data"] = {"source": "arrays", **(raw.get("data") or {})}
        elif not raw.get("data"):
            raise SpaceError("the space has no data section, and no rows were passed: name the data in it "
                             "({'data': {'source': 'rows.csv', 'target': 'label'}}, or 'sklearn:iris'), or pass "
                             "the rows as x= and y=", field="data", expected="data.source, or x= and y=",
                             found="neither")
        return spaces.parse(raw)
    if isinstance(space, (str, os.PathLike)):
        return spaces.read(Path(space), study_name=study_name)  # as a mapping: the builder may come with the call
    raise SpaceError("space is a space file's path, a dict of its sections (study, data, validation, model, "
                     "train), or a search.Space", field="space", expected="a str, pathlib.Path, dict or Space",
                     found=type(space).__name__)


def _named_by_arguments(exc: UserError, named: dict[str, tuple[str, str]]) -> None:
    """The data checks name the npz files the arrays were saved to; the caller passed arguments."""
    text = str(exc)
    for path, (x, y) in named.items():
        text = text.replace(f"array 'X' of {path}", x).replace(f"array 'y' of {path}", y)
        text = text.replace(f"' of {path}", f"' of {x}")  # a column of a frame saved as a CSV: a column of x
        text = text.replace(path, f"the arrays {x} and {y}")
    # The fields the arrays stand in for, named as the call named them.
    stands_for = {"data.target": (("x", "y"), "y"), "data.test": (("x_test", "y_test"), "x_test, y_test"),
                  "data.source": (("x", "y"), "x")}
    arrays, argument = stands_for.get(exc.field or "", ((), ""))
    if arrays in named.values():
        text = text.replace(f"field '{exc.field}'", f"field '{argument}'", 1)
        exc.field = argument
    exc.args = (text,)


def _builder_not_here(settings: Any, input_shape: Any, n_outputs: Any) -> Any:
    """What :func:`best` reads a notebook-built study's config with: the config is read, never trained."""
    raise SpaceError("this config's builder was a function of the process that ran the study; pass it as "
                     "builder= to train it", field="builder")


def _folder(home: Any) -> Path:
    if isinstance(home, bool) or not isinstance(home, (str, os.PathLike)):
        raise ArgumentError("home is the folder of the stores", field="home", expected="a str or pathlib.Path",
                        found=f"{type(home).__name__} {home!r}"[:80])
    return Path(home).expanduser()
