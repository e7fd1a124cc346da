"""The space file: schema, distributions, sampling and resolution to a fixed config.

One rule keeps space files small: any value under ``model`` or ``train`` may be a distribution
(``{float: [lo, hi]}``, ``{int: [lo, hi]}``, ``{choice: [...]}``) instead of a fixed value. Its Optuna
parameter is named ``section.key``; a trial's sampled values, merged with the fixed ones, resolve the
space to one fixed config that can be exported and replayed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from search.errors import SpaceError
from search.space._yaml import dump_yaml, parse_yaml
from search.space._checks import check_leaves
from search.space._schema import (DIST_KEYS, SECTIONS_WITH_DISTRIBUTIONS, DataSection, Space, StudySection,
                                  ValidationSection, flatten, is_distribution, nest)

__all__ = ["DIST_KEYS", "SECTIONS_WITH_DISTRIBUTIONS", "DataSection", "Space", "StudySection",
           "ValidationSection", "dump_yaml", "flatten", "is_distribution", "load", "nest", "parse_yaml", "validate"]


def load(path: str | Path, study_name: str | None = None) -> Space:
    """Read and validate a space file. Every problem is a :class:`SpaceError` naming file and field."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError("the space file does not exist", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"cannot read the space file ({exc})", source=source) from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"is not valid YAML{where}: {problem}", source=source) from None
    if not isinstance(raw, dict):
        raise SpaceError("the space file must be a mapping with sections study, data, validation, "
                         "model, train", source=source, found=type(raw).__name__)
    if study_name:
        raw.setdefault("study", {})
        if isinstance(raw["study"], dict):
            raw["study"]["name"] = study_name
    return validate(raw, source=source, path=path)


def validate(raw: dict[str, Any], source: str = "<space>", path: Path | None = None) -> Space:
    try:
        space = Space.model_validate(raw)
    except ValidationError as exc:
        raise _from_pydantic(exc, source) from None
    space._path = path
    check_leaves(space, source)
    return space


def _from_pydantic(exc: ValidationError, source: str) -> SpaceError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    if err["type"] == "missing":
        return SpaceError("this required field is missing", source=source, field=field)
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(err["loc"][:-1])
        return SpaceError("unknown field (check its spelling and section)", source=source, field=field,
                          expected="one of " + ", ".join(allowed) if allowed else None)
    msg = err["msg"].removeprefix("Value error, ")
    more = f" ({len(exc.errors()) - 1} more problem(s) after this one)" if len(exc.errors()) > 1 else ""
    return SpaceError(msg + more, source=source, field=field, found=err.get("input"))


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names a section of the space file accepts (``()`` is the top level)."""
    cls: Any = Space
    for part in loc:
        info = cls.model_fields.get(part) if isinstance(part, str) else None
        cls = info.annotation if info is not None else None
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
    return list(cls.model_fields)


