"""The schema of a space file and what a trial does with it: sample, resolve, baseline, grid."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from search.models import TRAIN_PARAMS, Param, family_params
from search.models._params import DIST_KEYS as DIST_KEYS, is_distribution
from search.space._sections import DataSection, StudySection, ValidationSection, _Strict
from search.space._yaml import dump_yaml

SECTIONS_WITH_DISTRIBUTIONS = ("model", "train")
# Settings that size the network, by name: what phase 1 of the phased workflow (search/workflow/phases.py) scales.
# A custom builder may name its own with ``model.capacity``.
CAPACITY_KEYS = ("layers", "units", "filters", "blocks", "convs_per_block", "dense_units", "kernel_size")
# Declarations about a custom builder's settings, kept beside them under ``model`` but not passed as settings.
DECLARATIONS = ("regularizers", "capacity")

class Space(_Strict):
    """A validated space file. ``model`` and ``train`` hold fixed values or distributions."""

    study: StudySection
    data: DataSection
    validation: ValidationSection = ValidationSection()
    model: dict[str, Any] = Field(default_factory=lambda: {"family": "mlp"})
    train: dict[str, Any] = Field(default_factory=dict)

    # Not part of the file: where it came from, for messages and for finding a user's builder module.
    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_take_their_defaults(cls, data: Any) -> Any:
        """``train:`` with every line commented out is YAML's null: the section's defaults, as if left out."""
        if isinstance(data, dict):
            data = {key: ({} if key in ("study", "data") else None) if value is None else value
                    for key, value in data.items()}
            data = {key: value for key, value in data.items() if value is not None}
        return data

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def family(self) -> str:
        return self.model.get("family", "mlp")

    def params_of(self, section: str) -> dict[str, Param] | None:
        return TRAIN_PARAMS if section == "train" else family_params(self.family)

    @property
    def is_custom(self) -> bool:
        return self.family.startswith("python:")

    def regularizers(self) -> dict[str, Any]:
        """Every regularizer setting by dotted name, with the value that switches it off.

        Built-in families declare theirs (``Param.off``); a custom builder's come from the space file's
        ``model.regularizers``: a list of its settings (off is 0, or false for a boolean) or a mapping
        of setting to its off value.
        """
        out: dict[str, Any] = {}
        for name in self.leaves():
            spec = self._spec(name)
            if spec is not None and spec.is_regularizer:
                out[name] = spec.off
        declared = self._declared_regularizers()
        if isinstance(declared, list):
            declared = {key: None for key in declared}
        leaves = self.leaves()
        for key, off in (declared or {}).items():
            name = key if "." in key else f"model.{key}"
            if name in leaves:
                out[name] = off if off is not None else _natural_off(leaves.get(name))
        return out

    def _declared_regularizers(self) -> Any:
        """A custom builder's regularizers: the space file's ``model.regularizers``, else the builder
        module's ``REGULARIZERS`` (a list of its settings, or a mapping of each to its off value)."""
        if not self.is_custom:
            return None
        if self.model.get("regularizers"):
            return self.model.get("regularizers")
        import sys

        from search.models import load_custom_builder

        try:
            builder = load_custom_builder(self.family, self.path.parent if self.path else None)
        except Exception:  # reported where the builder is used; here it only declares nothing
            return None
        declared = getattr(sys.modules.get(getattr(builder, "__module__", "") or ""), "REGULARIZERS", None)
        return declared if isinstance(declared, (list, tuple, dict)) else None

    def fixed_regularizers(self) -> dict[str, Any]:
        """Regularizers the file fixes on (``dropout: 0.3``): the baseline switches off only searched ones, so
        it keeps these, and is no unregularized baseline."""
        leaves, out = self.leaves(), {}
        for name, off in self.regularizers().items():
            value = leaves.get(name)
            if value is not None and not is_distribution(value) and value != off and value not in (0, 0.0, False):
                out[name] = value
        return out

    @property
    def declares_regularizers(self) -> bool:
        """Whether the baseline is really unregularized: true of built-in families, and of a custom one
        whose space file or builder module names its regularizers."""
        return not self.is_custom or bool(self._declared_regularizers())

    def capacity(self) -> list[str]:
        """The settings that size the network, by dotted name: ``model.capacity`` of a custom builder, else
        the settings named like :data:`CAPACITY_KEYS` that this file's family has."""
        declared = self.model.get("capacity") if self.is_custom else None
        keys = declared if isinstance(declared, list) else CAPACITY_KEYS
        leaves = self.leaves()
        return [name for name in (k if "." in k else f"model.{k}" for k in keys) if name in leaves]

    def leaves(self) -> dict[str, Any]:
        """Every setting (fixed or distribution) by dotted name, defaults filled in."""
        out: dict[str, Any] = {"model.family": self.family}
        for section in SECTIONS_WITH_DISTRIBUTIONS:
            values = dict(getattr(self, section))
            values.pop("family", None)
            if section == "model" and self.is_custom:
                for key in DECLARATIONS:  # declarations, not settings of the builder
                    values.pop(key, None)
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
        regularizers = self.regularizers()
        for name, dist in self.distributions().items():
            if name in regularizers:
                if dist.get("or_off"):
                    params[f"{name}.on"] = False
                else:
                    params[name] = regularizers[name]
                continue
            if dist.get("or_off"):
                params[f"{name}.on"] = True
            params[name] = _default_of(dist)
        return params

    def resolve(self, settings: dict[str, dict[str, Any]], **study_overrides: Any) -> "Space":
        """A copy with every distribution replaced by the given value: runnable as is."""
        data = self.as_data()
        for section in SECTIONS_WITH_DISTRIBUTIONS:
            data[section] = copy.deepcopy(settings[section])
        for key in (DECLARATIONS if self.is_custom else ()):  # declarations, kept with the config
            if key in self.model:
                data["model"].setdefault(key, copy.deepcopy(self.model[key]))
        data["study"].update(study_overrides)
        data["study"]["sampler"] = "tpe"
        data["study"]["workflow"] = "joint"  # nothing is left to search in phases
        data["study"]["enqueue"] = []  # nor configs to try first
        resolved = Space.model_validate(data)
        resolved._path = self._path
        return resolved

    def as_data(self, exclude_none: bool = False) -> dict[str, Any]:
        """The space as the mapping a file would hold, for a copy to be derived and validated again.

        Validation settings the scheme does not read are left out unless given, so that a derived space (a
        trial's resolved config, an export, a phase's space, the API's) warns only about those its writer
        gave: a `repeats: 3` written under kfold, meant for iterated_kfold, is said; the default is not."""
        data = self.model_dump(mode="json", exclude_none=exclude_none)
        for name in self.validation.unread():
            if name not in self.validation.model_fields_set:
                data["validation"].pop(name, None)
        return data

    def to_yaml(self) -> str:
        return dump_yaml(self.as_data(exclude_none=True))

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


def _natural_off(value: Any) -> Any:
    """The off value of a declared regularizer given without one: false for a boolean, else 0."""
    if is_distribution(value):
        sample, is_float = (value.get("choice") or value.get("float") or value.get("int"))[0], "float" in value
    else:
        sample, is_float = value, isinstance(value, float)
    if isinstance(sample, bool):
        return False
    return 0.0 if is_float else 0


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
