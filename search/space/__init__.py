"""The space file: schema, distributions, sampling and resolution to a fixed config.

One rule keeps space files small: any value under ``model`` or ``train`` may be a distribution
(``{float: [lo, hi]}``, ``{int: [lo, hi]}``, ``{choice: [...]}``) instead of a fixed value. Its Optuna
parameter is named ``section.key``; a trial's sampled values, merged with the fixed ones, resolve the
space to one fixed config that can be exported and replayed.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from search.errors import SpaceError
from search.space._yaml import dump_yaml, parse_yaml
from search.space._checks import check_leaves
from search.space._enqueue import enqueued_params
from search.space._schema import (CAPACITY_KEYS, DIST_KEYS, SECTIONS_WITH_DISTRIBUTIONS, Space, flatten,
                                  is_distribution, nest)
from search.space._sections import NAME, SCHEME_READS, SEED_TRIAL_ATTR, DataSection, StudySection, ValidationSection

__all__ = ["CAPACITY_KEYS", "DIST_KEYS", "SCHEME_READS", "SECTIONS_WITH_DISTRIBUTIONS", "SEED_TRIAL_ATTR",
           "DataSection", "Space", "StudySection", "ValidationSection", "dump_yaml", "enqueued_params", "flatten",
           "is_distribution", "load", "nest", "parse", "parse_yaml", "read", "validate"]


def load(path: str | os.PathLike[str] | Mapping[str, Any], study_name: str | None = None) -> Space:
    """Read and validate a space file (or a mapping of its sections, as the file would read). Every problem
    is a :class:`SpaceError` naming file and field."""
    if isinstance(path, Mapping):
        raw = copy.deepcopy(dict(path))
        if study_name is not None:
            _rename(raw, study_name)
        _not_an_ablation_name(raw, "<space>")
        return validate(raw)
    raw, source, file = _read(path, study_name)
    _not_an_ablation_name(raw, source)
    return validate(raw, source=source, path=file)


def read(path: str | os.PathLike[str], study_name: str | None = None) -> Space:
    """A space file with its sections and types checked, as :func:`parse` checks a mapping: for a file whose
    builder is handed over later (``search.run(path, builder=f)``), whose model settings only it knows."""
    raw, source, file = _read(path, study_name)
    _not_an_ablation_name(raw, source)
    space = parse(raw, source)
    space._path = file
    return space


def _near_space_files(path: Path) -> str:
    """The file likely meant: ``churn`` for ``churn.yaml`` (a study's name where its space file was asked for),
    else the space files beside where it was looked for."""
    for suffix in (".yaml", ".yml"):
        for folder in (path.parent, path.parent / "spaces"):
            if path.suffix not in (".yaml", ".yml") and (folder / (path.name + suffix)).is_file():
                return (f"; did you mean {str(folder / (path.name + suffix))!r}? (a study is continued by "
                        f"running its space file again)")
    try:
        near = sorted(p.name for p in path.parent.glob("*.y*ml"))
    except OSError:
        return ""
    return f" (space files in {str(path.parent)!r}: {', '.join(near[:5])}{', ...' if len(near) > 5 else ''})" \
        if near else ""


def _read(path: str | os.PathLike[str], study_name: str | None) -> tuple[dict[str, Any], str, Path]:
    """The mapping a space file holds, its name for messages, and its path."""
    if not isinstance(path, (str, os.PathLike)):
        raise SpaceError("a space is a space file's path or a mapping of its sections", field="space",
                         expected="a str or pathlib.Path, or a dict", found=type(path).__name__)
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise SpaceError("is a folder, not a space file; name one of the .yaml files in it", source=source,
                         found=", ".join(sorted(p.name for p in path.glob("*.y*ml"))[:5]) or "no .yaml file in it")
    try:
        text = _text_of(path.read_bytes())
    except FileNotFoundError:
        raise SpaceError("the space file does not exist" + _near_space_files(path), source=source) from None
    except UnicodeDecodeError as exc:
        raise SpaceError(f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}); save it as "
                         f"UTF-8 (in most editors: Save As, encoding UTF-8)", source=source) from None
    except OSError as exc:
        raise SpaceError(f"cannot read the space file ({exc})", source=source) from None
    if "\x00" in text:
        raise SpaceError("is not UTF-8 text (it holds NUL bytes: UTF-16 saved without its byte-order mark, or a "
                         "binary file); save it as UTF-8 (in most editors: Save As, encoding UTF-8)", source=source)
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "is given twice" in problem:  # valid YAML; the rule is ours
            raise SpaceError(f"has a key given twice{where}: {problem}", source=source) from None
        if "<block" in problem:  # PyYAML's words for a layout slip
            problem += " (a key indented less or more than the keys beside it: check that line and the one above)"
        elif "'\\t'" in problem:
            problem += " (a tab: YAML indents with spaces only; replace the tabs with spaces)"
        elif "another document" in problem:
            problem += " (a second '---' document: a space file is one document)"
        raise SpaceError(f"is not valid YAML{where}: {problem}", source=source) from None
    if raw is None:
        raise SpaceError("the space file is empty (or only comments)", source=source,
                         expected="a mapping with sections study, data and optionally validation, model, train")
    if not isinstance(raw, dict):
        raise SpaceError("the space file must be a mapping with sections study, data, validation, "
                         "model, train", source=source, found=type(raw).__name__)
    if study_name is not None:
        _rename(raw, study_name)
    return raw, source, path


def _text_of(data: bytes) -> str:
    """UTF-8 (with or without Windows' byte-order mark), or UTF-16 with its mark (Notepad's "Unicode")."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def _not_an_ablation_name(raw: dict[str, Any], source: str) -> None:
    """A user's study may not be named as a study's ablation is (the ablation's own space is made, not read)."""
    name = raw.get("study", {}).get("name") if isinstance(raw.get("study"), dict) else None
    if isinstance(name, str) and ".ablation." in name:
        raise SpaceError("'.ablation.' is how a study's ablation is named (<study>.ablation.t<trial>); a study of "
                         "that name would be taken for one and hidden from the lists", source=source,
                         field="study.name", expected="a name without '.ablation.'", found=name)


def _rename(raw: dict[str, Any], study_name: str) -> None:
    if not isinstance(study_name, str) or not NAME.fullmatch(study_name) or len(study_name) > 100:
        raise SpaceError("a study name is up to 100 letters, digits, '_', '.' and '-', starting with a letter or "
                         "digit (it names folders under --home)", field="--study-name", found=study_name)
    if raw.get("study") is None:
        raw["study"] = {}
    if isinstance(raw["study"], dict):
        raw["study"]["name"] = study_name


def parse(raw: Mapping[str, Any], source: str = "<space>") -> Space:
    """The sections and their types checked, as :func:`validate` does first, with the same errors; the checks
    that need the model family (its settings, a builder) are left to :func:`validate`, for a space whose
    builder is handed over later (``search.run(..., builder=f)``)."""
    plain = _plain_values(raw, source) if isinstance(raw, Mapping) else dict(raw)
    try:
        return Space.model_validate(plain)
    except ValidationError as exc:
        raise _from_pydantic(exc, source) from None


# What to write instead of the Keras objects a KerasTuner or Keras user hands over in a space's dict.
_INSTEAD = {"Optimizer": "a name, train.optimizer: adam, with train.learning_rate: 0.001",
            "EarlyStopping": "train.early_stopping: <patience in epochs> (0 for none)",
            "Callback": "a train setting instead (train.early_stopping: <patience> for early stopping); Keras "
                        "callbacks are not taken",
            "Regularizer": "model.l2: 0.001 (or model.l1)", "Loss": "nothing: the loss follows the task",
            "Layer": "a builder, build(settings, input_shape, n_outputs), handed over as builder=",
            "Model": "a builder, build(settings, input_shape, n_outputs), handed over as builder="}


def _plain_values(raw: Any, source: str, field: str = "") -> Any:
    """A copy of ``raw`` as a YAML file would hold it: names, numbers, true/false, null, lists and mappings of
    them (a path is its text, a NumPy number a number). A Keras object in a dict space (an optimizer, a
    callback) has no file form to store, compare or replay, and is refused by its field."""
    if isinstance(raw, Mapping):
        return {key: _plain_values(value, source, f"{field}.{key}" if field else str(key))
                for key, value in raw.items()}
    if isinstance(raw, (list, tuple)):
        return [_plain_values(value, source, f"{field}[{i}]") for i, value in enumerate(raw)]
    if raw is None or isinstance(raw, (str, bool, int, float)):
        return raw
    if isinstance(raw, os.PathLike):
        return os.fspath(raw)
    if type(raw).__module__ == "numpy" and getattr(raw, "ndim", None) == 0:
        return raw.item()
    kind = type(raw)
    instead = next((_INSTEAD[b.__name__] for b in kind.__mro__ if b.__name__ in _INSTEAD), None)
    raise SpaceError("a space holds plain values, as its file would: names, numbers, true/false, lists"
                     + (f"; write {instead}" if instead else ""), source=source, field=field or None,
                     expected="a name, a number, true/false, a list or a distribution such as {choice: [...]}",
                     found=f"a {kind.__module__}.{kind.__qualname__} object")


def validate(raw: dict[str, Any], source: str = "<space>", path: Path | None = None) -> Space:
    space = parse(raw, source)
    space._path = path
    check_leaves(space, source)
    enqueued_params(space, source)
    return space


def _from_pydantic(exc: ValidationError, source: str) -> SpaceError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    if err["type"] == "missing":
        # A misspelled required section is missing and unknown at once: name the spelling found.
        parent, name = tuple(err["loc"][:-1]), str(err["loc"][-1])
        strays = [str(e["loc"][-1]) for e in exc.errors()
                  if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent]
        near = next((s for s in strays if did_you_mean(s, [name])), None)
        hint = (f"; the file has '{near}' there instead (a misspelling of '{name}'?)" if near else
                f"; the file has unknown field(s) {', '.join(map(repr, strays[:5]))} there" if strays else "")
        return SpaceError("this required field is missing" + hint, source=source, field=field)
    # Every problem the schema found, said at once: one per run made a file of six mistakes six runs.
    others = [f"field '{'.'.join(str(p) for p in e['loc'])}': {_pydantic_words(e)[0]}"
              + (did_you_mean(e["loc"][-1], _fields_at(e["loc"][:-1])) if e["type"] == "extra_forbidden" else "")
              for e in exc.errors()[1:]]
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(err["loc"][:-1])
        more = f"; {len(others)} more problem(s): " + "; ".join(others[:5]) + ("; ..." if len(others) > 5 else "")
        return SpaceError("unknown field (check its spelling and section)" + did_you_mean(err["loc"][-1], allowed)
                          + (more if others else ""), source=source, field=field,
                          expected="one of " + ", ".join(allowed) if allowed else None)
    msg, expected = _pydantic_words(err)
    if err["type"] == "literal_error":
        msg += did_you_mean(err.get("input"), [str(v) for v in (err.get("ctx") or {}).get("expected", "").replace(
            "'", "").replace(" or ", ", ").split(", ") if v])
    if "input" in err and err["input"] is None:
        msg += " (found an empty value, YAML's null)"
    if not others:
        return SpaceError("the value is out of range" if expected else msg, source=source, field=field,
                          expected=expected, found=err.get("input"))
    # An empty value says so above already; a mapping is the section itself, too long to show.
    found = f" (found {err['input']!r})" if err.get("input") is not None and not isinstance(err["input"], dict) \
        else ""
    return SpaceError(f"{msg}{found}; {len(others)} more problem(s): " + "; ".join(others[:5])
                      + ("; ..." if len(others) > 5 else ""), source=source, field=field)


_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "above"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "below")}


def _pydantic_words(err: Any) -> tuple[str, str | None]:
    """A schema error in our words: a bound says what it expects ('at least 1'), not pydantic's sentence."""
    if err["type"] in _BOUNDS and (err.get("ctx") or {}).get(_BOUNDS[err["type"]][0]) is not None:
        key, word = _BOUNDS[err["type"]]
        bound = f"{err['ctx'][key]:g}" if isinstance(err["ctx"][key], (int, float)) else str(err["ctx"][key])
        return f"the value must be {word} {bound}", f"a number {word} {bound}"
    if err["type"] == "extra_forbidden":
        return "unknown field (check its spelling and section)", None
    if err["type"] == "missing":
        return "this required field is missing", None
    given = err.get("input")
    if err["type"] in ("string_type", "literal_error") and isinstance(given, bool):
        # `target: no`, `pruner: off`: YAML 1.1 reads these words unquoted as true and false.
        return (err["msg"].removeprefix("Value error, ") + f" (YAML reads an unquoted yes, no, on, off, true or "
                f"false as {str(given).lower()}: quote the text, e.g. 'no')"), None
    if err["type"] == "string_type" and isinstance(given, (int, float)):
        return (f"this is text, but YAML read {given!r} as a number: quote it as the file writes it "
                f"(e.g. '{given}')"), None
    return err["msg"].removeprefix("Value error, "), None


# What other libraries call our validation schemes (scikit-learn's splitter names, spelled several ways).
_ALIASES = {"stratifiedkfold": "kfold", "repeatedkfold": "iterated_kfold", "repeatedstratifiedkfold": "iterated_kfold",
            "groupkfold": "group_kfold", "stratifiedgroupkfold": "group_kfold", "timeseriessplit": "time_series",
            "timeseries": "time_series", "traintestsplit": "holdout", "holdout": "holdout",
            # KerasTuner's and Keras' own names for settings
            "lr": "learning_rate", "maxtrials": "n_trials", "ntrials": "n_trials", "objective": "objectives",
            "batchsize": "batch_size", "numlayers": "layers", "nlayers": "layers", "patience": "early_stopping",
            "dropoutrate": "dropout", "l2reg": "l2", "l1reg": "l1"}


def did_you_mean(found: Any, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``options``, else nothing."""
    import difflib

    if not isinstance(found, str) or not options:
        return ""
    squeezed = "".join(ch for ch in found.lower() if ch.isalnum())
    alias = _ALIASES.get(squeezed)
    if alias in options:
        return f" (did you mean '{alias}'?)"
    close = difflib.get_close_matches(found, options, n=1, cutoff=0.75) or [
        o for o in options if "".join(ch for ch in o.lower() if ch.isalnum()) == squeezed]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names a section of the space file accepts (``()`` is the top level)."""
    cls: Any = Space
    for part in loc:
        info = cls.model_fields.get(part) if isinstance(part, str) else None
        cls = info.annotation if info is not None else None
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
    return list(cls.model_fields)


