"""The space file: schema, distributions, sampling and resolution to a fixed config.

One rule keeps space files small: any value under ``model`` or ``train`` may be a distribution
(``{float: [lo, hi]}``, ``{int: [lo, hi]}``, ``{choice: [...]}``) instead of a fixed value. Its Optuna


"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from search.errors import SpaceError
from search.models import CUSTOM_PREFIX, FAMILIES, TRAIN_PARAMS, Param, family_params

DIST_KEYS = ("float", "int", "choice")
SECTIONS_WITH_DISTRIBUTIONS = ("model", "train")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudySection(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = 0
    n_trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random", "grid", "cmaes", "gp"] = "tpe"
    pruner: Literal["median", "percentile", "hyperband", "successive_halving", "none"] = "median"
    baseline: bool = True
    max_consecutive_failures: int = Field(5, ge=1)
    keep_checkpoints: int = Field(5, ge=1)  # split checkpoints are kept for the best K trials only
    # Across-split pruning (search/pruning.py): "paired" stops a trial that is worse than the best one
    # on every finished split by more than the best trial's split spread.
    split_pruner: Literal["paired", "wilcoxon", "none"] = "paired"
    # [val_loss] or [val_loss, params|latency]: a second, minimized objective makes a Pareto study.
    objectives: list[Literal["val_loss", "params", "latency"]] = Field(default_factory=lambda: ["val_loss"])
    # Set in exported configs: seeds are derived as if this were the trial number, so a replay
    # of trial N in a new study trains with trial N's seeds.
    seed_trial: int | None = Field(None, ge=0)


    @field_validator("objectives")
    @classmethod
    def _loss_first(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value or value[0] != "val_loss" or len(value) > 2 or len(set(value)) != len(value):
            raise ValueError("objectives is [val_loss] or [val_loss, params] or [val_loss, latency]")
        if len(value) > 1 and info.data.get("sampler") == "cmaes":
            raise ValueError("the cmaes sampler optimizes one objective; use tpe, random, grid or gp "
                             "with a second objective")
        return value

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


class DataSection(_Strict):
    source: str
    target: str | None = None
    group: str | None = None
    order: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    preprocess: Literal["standardize", "minmax", "none"] = "standardize"  # "none" for image data
    duplicates: Literal["drop", "keep"] = "drop"
    # Image data (pixels arrive in [0, 1]): sklearn:digits / npz:<path> as (n, h, w, c) arrays, and the
    # decoding of images:<dir> folders.
    as_images: bool = False
    image_size: tuple[int, int] | None = None  # [height, width]; every image is resized to it
    color_mode: Literal["rgb", "grayscale", "rgba"] = "rgb"
    skip_bad_images: bool = False

    @model_validator(mode="before")
    @classmethod
    def _images_keep_their_pixels(cls, data: Any) -> Any:
        # Pixels are already in [0, 1]; per-pixel standardization would only be an odd default.
        if isinstance(data, dict) and "preprocess" not in data and (
                data.get("as_images") is True or str(data.get("source", "")).startswith("images:")):
            data = {**data, "preprocess": "none"}
        return data

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError("image_size is [height, width], both at least 1")
        return value

    @property
    def is_images(self) -> bool:
        return self.as_images or self.source.startswith("images:")


class ValidationSection(_Strict):
    scheme: Literal["holdout", "kfold", "iterated_kfold", "group_kfold", "time_series"] = "kfold"
    k: int = Field(5, ge=2)
    repeats: int = Field(3, ge=1)
    fraction: float = Field(0.2, gt=0.0, lt=1.0)
    stratify: bool | None = None  # None: stratify when the task is classification
    shuffle: bool | None = None   # None: shuffle unless the scheme is time_series

    # Field validators (not one model validator), so that a message names validation.shuffle itself.
    @field_validator("shuffle")
    @classmethod
    def _time_series_never_shuffles(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("scheme") == "time_series":
            raise ValueError("time_series validation keeps time order, so shuffle must be false or absent")
        return value

    @field_validator("stratify")
    @classmethod
    def _time_series_never_stratifies(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("scheme") == "time_series":
            raise ValueError("time_series validation cannot be stratified; remove 'stratify'")
        return value


class Space(_Strict):
    """A validated space file. ``model`` and ``train`` hold fixed values or distributions."""

    study: StudySection
    data: DataSection
    validation: ValidationSection = ValidationSection()
    model: dict[str, Any] = Field(default_factory=lambda: {"family": "mlp"})
    train: dict[str, Any] = Field(default_factory=dict)

    # Not part of the file: where it came from, for messages and for finding a user's builder module.
    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def family(self) -> str:
        return self.model.get("family", "mlp")

    def params_of(self, section: str) -> dict[str, Param] | None:
        return TRAIN_PARAMS if section == "train" else family_params(self.family)

    def leaves(self) -> dict[str, Any]:
        """Every setting (fixed or distribution) by dotted name, defaults filled in."""
        out: dict[str, Any] = {"model.family": self.family}
        for section in SECTIONS_WITH_DISTRIBUTIONS:
            values = dict(getattr(self, section))
            values.pop("family", None)
            specs = self.params_of(section) or {}
            for key, spec in specs.items():
                out[f"{section}.{key}"] = values.pop(key, spec.default)
            for key, value in values.items():  # a custom builder's own settings
                out[f"{section}.{key}"] = value
        return out

    def distributions(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.leaves().items() if is_distribution(v)}

    def sample(self, trial: Any) -> dict[str, dict[str, Any]]:
        """Ask the trial for every distribution; return nested ``{"model": {...}, "train": {...}}``."""
        flat = {name: (_suggest(trial, name, v) if is_distribution(v) else v)
                for name, v in self.leaves().items()}
        return nest(flat)

    def baseline_params(self) -> dict[str, Any]:
        """Optuna params of the unregularized baseline: searched regularizers off, the rest at defaults."""
        params: dict[str, Any] = {}
        for name, dist in self.distributions().items():
            spec = self._spec(name)
            if spec is not None and spec.is_regularizer:
                if dist.get("or_off"):
                    params[f"{name}.on"] = False
                else:
                    params[name] = spec.off
                continue
            if dist.get("or_off"):
                params[f"{name}.on"] = True
            params[name] = _default_of(dist)
        return params

    def resolve(self, settings: dict[str, dict[str, Any]], **study_overrides: Any) -> "Space":
        """A copy with every distribution replaced by the given value: runnable as is."""
        data = self.model_dump(mode="json")
        for section in SECTIONS_WITH_DISTRIBUTIONS:
            data[section] = copy.deepcopy(settings[section])
        data["study"].update(study_overrides)
        data["study"]["sampler"] = "tpe"
        resolved = Space.model_validate(data)
        resolved._path = self._path
        return resolved

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

    def grid(self) -> dict[str, list[Any]]:
        """The search space for Optuna's GridSampler; every distribution must be finite."""
        grid: dict[str, list[Any]] = {}
        for name, dist in self.distributions().items():
            if "choice" in dist:
                grid[name] = list(dist["choice"])
            elif "int" in dist:
                lo, hi = dist["int"]
                grid[name] = list(range(int(lo), int(hi) + 1, int(dist.get("step") or 1)))
            else:
                lo, hi = dist["float"]
                n = int(round((hi - lo) / dist["step"]))
                grid[name] = [round(lo + i * dist["step"], 12) for i in range(n + 1)]
        return grid

    def _spec(self, name: str) -> Param | None:
        section, _, key = name.partition(".")
        return (self.params_of(section) or {}).get(key)


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in DIST_KEYS)


def nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS_WITH_DISTRIBUTIONS}
    for name, value in flat.items():
        section, _, key = name.partition(".")
        out[section][key] = value
    return out


def flatten(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in settings.items() for k, v in values.items()}


def _suggest(trial: Any, name: str, dist: dict[str, Any]) -> Any:
    if "choice" in dist:
        return trial.suggest_categorical(name, list(dist["choice"]))
    if dist.get("or_off") and not trial.suggest_categorical(f"{name}.on", [False, True]):
        return 0 if "int" in dist else 0.0
    if "int" in dist:
        lo, hi = dist["int"]
        return trial.suggest_int(name, int(lo), int(hi), step=int(dist.get("step") or 1),
                                 log=bool(dist.get("log")))
    lo, hi = dist["float"]
    return trial.suggest_float(name, float(lo), float(hi), step=dist.get("step"), log=bool(dist.get("log")))


def _default_of(dist: dict[str, Any]) -> Any:
    if "default" in dist:
        return dist["default"]
    if "choice" in dist:
        return dist["choice"][0]
    kind = "int" if "int" in dist else "float"
    lo, hi = dist[kind]
    mid = math.sqrt(lo * hi) if dist.get("log") else (lo + hi) / 2
    step = dist.get("step")
    if step:
        mid = lo + round((mid - lo) / step) * step
    return int(round(mid)) if kind == "int" else float(mid)


# ---------------------------------------------------------------------------------------------
# Loading and checking


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
        raw = yaml.safe_load(text)
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
    _check_leaves(space, source)
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


def _check_leaves(space: Space, source: str) -> None:
    family = space.family
    if not isinstance(family, str) or not (family in FAMILIES or family.startswith(CUSTOM_PREFIX)):
        raise SpaceError("unknown model family", source=source, field="model.family",
                         expected="one of " + ", ".join(FAMILIES) + " or python:<module>:<function>",
                         found=family)
    if family.startswith(CUSTOM_PREFIX):
        from search.models import load_custom_builder

        load_custom_builder(family, space.path.parent if space.path else None, source)
    for section in SECTIONS_WITH_DISTRIBUTIONS:
        specs = space.params_of(section)
        for key, value in getattr(space, section).items():
            if key == "family":
                continue
            field = f"{section}.{key}"
            spec = None if specs is None else specs.get(key)
            if specs is not None and spec is None:
                raise SpaceError("unknown setting", source=source, field=field,
                                 expected="one of " + ", ".join(specs), found=key)
            if is_distribution(value):
                _check_distribution(value, spec, source, field, space.study.sampler)
            elif isinstance(value, dict):
                raise SpaceError("a distribution must have one of the keys float, int, choice",
                                 source=source, field=field, found=value)
            elif spec is not None and (problem := spec.check(value)):
                raise SpaceError("bad value", source=source, field=field, expected=problem, found=value)


_DIST_FIELDS = {"float": {"float", "log", "step", "or_off", "default"},
                "int": {"int", "log", "step", "or_off", "default"},
                "choice": {"choice", "default"}}


def _check_distribution(dist: dict[str, Any], spec: Param | None, source: str, field: str,
                        sampler: str) -> None:
    kinds = [k for k in DIST_KEYS if k in dist]
    if len(kinds) != 1:
        raise SpaceError("a distribution has exactly one of float, int, choice", source=source,
                         field=field, found=dist)
    kind = kinds[0]
    if extra := set(dist) - _DIST_FIELDS[kind]:
        raise SpaceError(f"unknown key(s) {sorted(extra)} in a {kind} distribution", source=source,
                         field=field, expected="keys among " + ", ".join(sorted(_DIST_FIELDS[kind])))
    if kind == "choice":
        choices = dist["choice"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError("'choice' takes a non-empty list", source=source, field=field, found=choices)
        for c in choices:
            if not isinstance(c, (bool, int, float, str)) or (spec and spec.check(c)):
                raise SpaceError("bad choice", source=source, field=field,
                                 expected=spec.check(c) if spec and spec.check(c) else
                                 "numbers, strings or booleans", found=c)
        if spec is not None and spec.is_regularizer and spec.off not in choices:
            raise _cannot_be_off(source, field, spec)
        return
    bounds = dist[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in bounds)):
        raise SpaceError(f"'{kind}' takes [low, high]", source=source, field=field, found=bounds)
    lo, hi = bounds
    if lo > hi:
        raise SpaceError("low is above high", source=source, field=field, found=bounds)
    if spec is not None:
        if spec.kind != kind:
            raise SpaceError(f"this setting is a {spec.kind}, not a {kind} distribution", source=source,
                             field=field, expected=f"{{{spec.kind}: [low, high]}} or {{choice: [...]}}"
                             if spec.kind in ("int", "float") else "{choice: [...]}", found=dist)
        for b in bounds:
            if problem := spec.check(b):
                raise SpaceError("bound out of range", source=source, field=field, expected=problem, found=b)
    if dist.get("log") and lo <= 0:
        raise SpaceError("a log-scaled range needs low > 0 (add 'or_off: true' to also allow 0)",
                         source=source, field=field, found=bounds)
    step = dist.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise SpaceError("step must be a positive number", source=source, field=field, found=step)
    if step is not None and dist.get("log"):
        raise SpaceError("a distribution cannot have both 'log' and 'step'", source=source, field=field)
    if sampler == "grid" and kind == "float" and step is None:
        raise SpaceError("the grid sampler needs a finite grid: give this float range a 'step' or use "
                         "'choice'", source=source, field=field, found=dist)
    if sampler == "grid" and dist.get("or_off"):
        raise SpaceError("the grid sampler cannot use 'or_off: true'; list the values with 'choice', "
                         "including 0", source=source, field=field, found=dist)
    if spec is not None and spec.is_regularizer and not dist.get("or_off") and not lo <= spec.off <= hi:
        raise _cannot_be_off(source, field, spec)


def _cannot_be_off(source: str, field: str, spec: Param) -> SpaceError:
    return SpaceError(f"a searched regularizer must be able to switch off, so that the unregularized "
                      f"baseline lies inside the space: include {spec.off!r} in the range or the choices, "
                      f"or add 'or_off: true'", source=source, field=field)
