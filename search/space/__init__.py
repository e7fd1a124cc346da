"""The space file: schema, distributions, sampling and resolution to a fixed config.

One rule keeps space files small: any value under ``model`` or ``train`` may be a distribution
(``{float: [lo, hi]}``, ``{int: [lo, hi]}``, ``{choice: [...]}``) instead of a fixed value. Its Optuna
parameter is named ``section.key``; a trial's sampled values, merged with the fixed ones, resolve the
space to one fixed config that can be exported and replayed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from search.errors import SpaceError
from search.space._checks import check_leaves
from search.space._schema import (DIST_KEYS, SECTIONS_WITH_DISTRIBUTIONS, DataSection, Space, StudySection,
                                  ValidationSection, flatten, is_distribution, nest)

__all__ = ["DIST_KEYS", "SECTIONS_WITH_DISTRIBUTIONS", "DataSection", "Space", "StudySection",
           "ValidationSection", "flatten", "is_distribution", "load", "nest", "parse_yaml", "validate"]


class _SpaceLoader(yaml.SafeLoader):
    """YAML as a space file's author means it: ``1e-3`` is a number, a key given twice is a mistake.

    PyYAML follows YAML 1.1, where a float needs a dot (``1e-3`` is the string "1e-3"), and it lets the
    last of two equal keys win without a word: a second ``train:`` section silently replaced the first.
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice in the same section (the second would silently "
                    "replace the first); keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """A space file's YAML (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_SpaceLoader)  # noqa: S506  (a SafeLoader)


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


