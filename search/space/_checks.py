"""Checks pydantic cannot express: known settings per model family, and well-formed distributions."""
from __future__ import annotations

import math
from typing import Any

from search.errors import SpaceError
from search.models import CUSTOM_PREFIX, FAMILIES, Param
from search.models._params import WELL_KNOWN, article
from search.space._schema import DECLARATIONS, DIST_KEYS, SECTIONS_WITH_DISTRIBUTIONS, Space, is_distribution


def check_leaves(space: Space, source: str) -> None:
    family = space.family
    if not isinstance(family, str) or not (family in FAMILIES or family.startswith(CUSTOM_PREFIX)):
        raise SpaceError("unknown model family", source=source, field="model.family",
                         expected="one of " + ", ".join(FAMILIES) + " or python:<module>:<function>",
                         found=family)
    if family.startswith(CUSTOM_PREFIX):
        from search.models import load_custom_builder

        load_custom_builder(family, space.path.parent if space.path else None, source)
    _check_declared_regularizers(space, source)
    _check_declared_capacity(space, source)
    _unknown_settings(space, source)
    for section in SECTIONS_WITH_DISTRIBUTIONS:
        specs = space.params_of(section)
        for key, value in getattr(space, section).items():
            if key == "family" or (key in DECLARATIONS and section == "model" and space.is_custom):
                continue
            field = f"{section}.{key}"
            spec = specs.get(key) if specs is not None else _well_known(space, key, value) if section == "model" \
                else None
            if value is None:
                # A default of nothing (transfer's weights file) is no default to fall back on.
                default = (f"; or remove the line to use the default ({spec.default!r})"
                           if spec is not None and spec.default not in ("", None) else "")
                raise SpaceError(f"the value is empty (YAML's null); give one{default}", source=source,
                                 field=field, expected=spec.check(None) if spec is not None else "a value")
            if is_distribution(value):
                _check_distribution(value, spec, source, field, space.study.sampler)
            elif isinstance(value, dict):
                raise SpaceError("a distribution must have one of the keys float, int, choice",
                                 source=source, field=field, found=value)
            elif spec is not None and (problem := spec.check(value)):
                hint = ""
                if isinstance(value, list):  # GridSearchCV's and KerasTuner's habit
                    hint = (f" (a list is not a search: to try these values write {{choice: {value}}}"
                            + (f", to search a range {{{spec.kind}: [low, high]}}" if spec.kind in ("int", "float")
                               else "") + ")")
                raise SpaceError("bad value" + hint, source=source, field=field, expected=problem, found=value)


def _well_known(space: Space, key: str, value: Any) -> Param | None:
    """A builder's setting named as a built-in family's, checked against the same range. One the builder
    declares under model.regularizers is that regularizer, checked as the families' is (a value, and a search
    that can switch it off); any other only where it is one number or a numeric range: a builder's own
    per-layer list (``dropout: [0.1, 0.2]``) or schedule name (``learning_rate: cosine``) is its own to read."""
    import dataclasses

    spec = WELL_KNOWN.get(key)
    if spec is None or key in (space.model.get("regularizers") or []):
        return spec
    numeric = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        is_distribution(value) and any(k in value for k in ("float", "int")))
    if not numeric:
        return None
    return dataclasses.replace(spec, off=None) if spec.is_regularizer else spec


def _unknown_settings(space: Space, source: str) -> None:
    """Settings no family or section knows, all of them in one error (one a run made a KerasTuner file of
    four such names four runs), the first as the field."""
    from search.space import did_you_mean

    found: list[tuple[str, str, str, list[str]]] = []
    for section in SECTIONS_WITH_DISTRIBUTIONS:
        specs = space.params_of(section)
        if specs is None:
            continue
        for key in getattr(space, section):
            if key == "family" or key in specs or (key in DECLARATIONS and section == "model" and space.is_custom):
                continue
            names = [*(["family"] if section == "model" else []), *specs]
            elsewhere = _families_with(key) if section == "model" else []
            where_it_is = (f" of family {space.family}; it is a setting of the {' and '.join(elsewhere)} "
                           f"famil{'ies' if len(elsewhere) > 1 else 'y'}" if elsewhere else "")
            other = next((o for o in SECTIONS_WITH_DISTRIBUTIONS if o != section
                          and key in (space.params_of(o) or {})), None)
            if other is not None and not elsewhere:  # learning_rate under model, dropout under train
                where_it_is = f" of {section}; {key} is a {other} setting: move it under {other}"
                elsewhere = [other]
            found.append((f"{section}.{key}", key, "unknown setting" + where_it_is
                          + ("" if elsewhere else did_you_mean(key, names)), names))
    if found:
        field, key, said, names = found[0]
        more = "; ".join(f"field '{f}': {s}" for f, _, s, _ in found[1:])
        raise SpaceError(said + (f"; {len(found) - 1} more problem(s): {more}" if more else ""), source=source,
                         field=field, expected="one of " + ", ".join(names), found=key)


def _check_declared_regularizers(space: Space, source: str) -> None:
    """``model.regularizers`` of a custom builder names settings the file has, each able to switch off."""
    declared = space.model.get("regularizers")
    if declared is None:
        return
    if not space.is_custom:
        # No family named: the space was meant for a builder that was not handed over (search.run without
        # builder=, continuing a notebook's study), which is the mistake to name.
        unnamed = "family" not in space.model
        raise SpaceError("model.regularizers declares a custom builder's regularizers; "
                         + ("no builder is named (model.family) or handed over (builder=), so the space is "
                            "read as the built-in mlp family's; pass the builder again (search.run(..., "
                            "builder=build)), or name it in model.family" if unnamed else
                            "a built-in family knows its own"), source=source, field="model.regularizers",
                         expected="a builder with it" if unnamed else "no model.regularizers with family "
                         + space.family, found=declared)
    if not isinstance(declared, (list, dict)) or not all(isinstance(k, str) for k in declared):
        raise SpaceError("model.regularizers is a list of the builder's settings, or a mapping of each to the "
                         "value that switches it off", source=source, field="model.regularizers",
                         expected="e.g. [dropout, l2] or {dropout: 0.0, l2: 0.0}", found=declared)
    leaves = space.leaves()
    regularizers = space.regularizers()
    for key in declared:
        name = key if "." in key else f"model.{key}"
        if name not in leaves:
            raise SpaceError(f"model.regularizers names '{key}', which is not a setting in this file",
                             source=source, field="model.regularizers",
                             expected="names among " + ", ".join(k for k in leaves if k != "model.family"),
                             found=key)
        dist, off = leaves[name], regularizers[name]
        if not is_distribution(dist) or dist.get("or_off"):
            continue
        bounds = dist.get("float") or dist.get("int")
        if not (off in dist["choice"] if "choice" in dist else bounds[0] <= off <= bounds[1]):
            raise SpaceError(f"a searched regularizer must be able to switch off, so that the unregularized "
                             f"baseline lies inside the space: include {off!r} in the range or the choices, "
                             f"or add 'or_off: true'", source=source, field=name)


def _check_declared_capacity(space: Space, source: str) -> None:
    """``model.capacity`` of a custom builder: a list of the file's settings that size the network."""
    declared = space.model.get("capacity")
    if declared is None:
        return
    if not space.is_custom:
        raise SpaceError("model.capacity declares a custom builder's capacity settings; a built-in family's are "
                         "known by name (" + ", ".join(space.capacity()) + ")", source=source,
                         field="model.capacity", expected="no model.capacity with family " + space.family,
                         found=declared)
    if not isinstance(declared, list) or not all(isinstance(k, str) for k in declared):
        raise SpaceError("model.capacity is a list of the builder's settings that size the network",
                         source=source, field="model.capacity", expected="e.g. [layers, width]", found=declared)
    leaves, regularizers = space.leaves(), space.regularizers()
    for key in declared:
        name = key if "." in key else f"model.{key}"
        if name not in leaves:
            raise SpaceError(f"model.capacity names '{key}', which is not a setting in this file", source=source,
                             field="model.capacity",
                             expected="names among " + ", ".join(k for k in leaves if k != "model.family"), found=key)
        if name in regularizers:
            raise SpaceError(f"'{key}' is declared both a capacity setting and a regularizer; the phased workflow "
                             f"scales the one and switches the other off, so it cannot be both", source=source,
                             field="model.capacity", found=key)


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
    for key in ("log", "or_off"):
        if key in dist and not isinstance(dist[key], bool):
            raise SpaceError(f"'{key}' is a switch", source=source, field=f"{field}.{key}", expected="true or false",
                             found=dist[key])
    if kind == "choice":
        choices = dist["choice"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError("'choice' takes a non-empty list", source=source, field=field, found=choices)
        for c in choices:
            if not isinstance(c, (bool, int, float, str)) or (spec and spec.check(c)) or not _finite(c):
                raise SpaceError("bad choice", source=source, field=field,
                                 expected=spec.check(c) if spec and spec.check(c) else "finite numbers"
                                 if not _finite(c) else "numbers, strings or booleans", found=c)
        if spec is not None and spec.is_regularizer and spec.off not in choices:
            raise _cannot_be_off(source, field, spec)
        if "default" in dist and dist["default"] not in choices:
            raise SpaceError("the default (the value the baseline trial takes) is not one of the choices",
                             source=source, field=f"{field}.default", expected="one of " + ", ".join(map(str, choices)),
                             found=dist["default"])
        return
    bounds = dist[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in bounds)):
        raise SpaceError(f"'{kind}' takes [low, high]", source=source, field=field, found=bounds)
    if not all(_finite(b) for b in bounds):
        raise SpaceError(f"'{kind}' takes two finite numbers", source=source, field=field, found=bounds)
    lo, hi = bounds
    if lo > hi:
        raise SpaceError("low is above high", source=source, field=field, found=bounds)
    if spec is not None:
        if spec.kind != kind:
            raise SpaceError(f"this setting is {article(spec.kind)} {spec.kind}, not {article(kind)} {kind} "
                             f"distribution", source=source,
                             field=field, expected=f"{{{spec.kind}: [low, high]}} or {{choice: [...]}}"
                             if spec.kind in ("int", "float") else "{choice: [...]}", found=dist)
        for b in bounds:
            if problem := spec.check(b):
                raise SpaceError("bound out of range", source=source, field=field, expected=problem, found=b)
    if dist.get("log") and lo <= 0:
        raise SpaceError("a log-scaled range needs low > 0" + ("" if dist.get("or_off") else
                         " (add 'or_off: true' to also allow 0)"), source=source, field=field, found=bounds)
    _check_step(dist, kind, lo, hi, source, field)
    if sampler == "grid" and kind == "float" and dist.get("step") is None and dist.get("log"):
        # A log range takes no step (Optuna refuses both): 'add a step' was advice to a second refusal.
        points = [0.0] * bool(dist.get("or_off")) + [float(f"{lo * (hi / lo) ** (i / 3):.2g}") for i in range(4)]
        raise SpaceError("the grid sampler needs a finite grid, and a log-scaled range takes no 'step': list its "
                         f"points with 'choice', e.g. {{choice: {points}}}", source=source, field=field, found=dist)
    if sampler == "grid" and kind == "float" and dist.get("step") is None:
        raise SpaceError("the grid sampler needs a finite grid: give this float range a 'step' or use "
                         "'choice'", source=source, field=field, found=dist)
    if sampler == "grid" and dist.get("or_off"):
        raise SpaceError("the grid sampler cannot use 'or_off: true'; list the values with 'choice', "
                         "including 0", source=source, field=field, found=dist)
    if dist.get("or_off") and spec is not None and (problem := spec.check(0 if kind == "int" else 0.0)):
        raise SpaceError("'or_off: true' lets trials switch this setting off, to 0, which it cannot be",
                         source=source, field=f"{field}.or_off", expected=f"{problem} (remove 'or_off')", found=True)
    if spec is not None and spec.is_regularizer and not dist.get("or_off") and not lo <= spec.off <= hi:
        raise _cannot_be_off(source, field, spec)
    if "default" in dist:
        _check_default(dist["default"], kind, lo, hi, spec, source, f"{field}.default")


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _check_step(dist: dict[str, Any], kind: str, lo: float, hi: float, source: str, field: str) -> None:
    step = dist.get("step")
    if step is None:
        return
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not _finite(step) or step <= 0:
        raise SpaceError("step must be a positive number", source=source, field=f"{field}.step", found=step)
    if kind == "int" and not float(step).is_integer():
        raise SpaceError("the step of an int range is a whole number", source=source, field=f"{field}.step",
                         expected="1, 2, ...", found=step)
    if dist.get("log") and not (kind == "int" and step == 1):  # 1 is an int range's own step, as Optuna takes it
        raise SpaceError("a distribution cannot have both 'log' and a 'step' other than an int range's 1",
                         source=source, field=field)
    if hi > lo and step > hi - lo:
        raise SpaceError(f"the step is wider than the range [{lo:g}, {hi:g}], so only {lo:g} could ever be tried",
                         source=source, field=f"{field}.step", expected=f"at most {hi - lo:g}", found=step)
    steps = (hi - lo) / step
    if hi > lo and abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
        # Optuna would trim the range to its last step and say so in its own words at every trial.
        below, above = lo + math.floor(steps) * step, lo + math.ceil(steps) * step
        raise SpaceError(f"the step {step:g} does not divide the range [{lo:g}, {hi:g}]: {hi:g} is never reached",
                         source=source, field=field,
                         expected=f"an upper end the steps reach from {lo:g}: {below:.10g} or {above:.10g}",
                         found=f"[{lo:g}, {hi:g}] with step {step:g}")


def _check_default(default: Any, kind: str, lo: float, hi: float, spec: Param | None, source: str,
                   field: str) -> None:
    """The value the baseline trial takes: a value the range itself could give."""
    if isinstance(default, bool) or not isinstance(default, (int, float)) or not _finite(default):
        raise SpaceError("the default (the value the baseline trial takes) must be a number", source=source,
                         field=field, expected=f"{article(kind)} {kind} in [{lo:g}, {hi:g}]", found=default)
    if kind == "int" and not float(default).is_integer():
        raise SpaceError("the default of an int range is a whole number", source=source, field=field, found=default)
    if not lo <= default <= hi:
        raise SpaceError("the default (the value the baseline trial takes) is outside the range", source=source,
                         field=field, expected=f"{article(kind)} {kind} in [{lo:g}, {hi:g}]", found=default)


def _cannot_be_off(source: str, field: str, spec: Param) -> SpaceError:
    return SpaceError(f"a searched regularizer must be able to switch off, so that the unregularized "
                      f"baseline lies inside the space: include {spec.off!r} in the range or the choices, "
                      f"or add 'or_off: true'", source=source, field=field)


def _families_with(key: str) -> list[str]:
    """The built-in families that have a setting ``key`` (augment_flip is the cnn's and the transfer's)."""
    from search.models import FAMILIES

    return [name for name, family in FAMILIES.items() if key in getattr(family, "PARAMS", {})]

