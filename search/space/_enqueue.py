"""``study.enqueue``: configs the user wants tried first, checked against the space and turned into Optuna params.

A point names some searched settings (``model.dropout: 0.3``, or ``dropout: 0.3`` where the name is
unambiguous); the sampler fills in the rest, as Optuna's ``enqueue_trial`` does with partial params.
"""
from __future__ import annotations

import math
from typing import Any

from search.errors import SpaceError
from search.space._schema import Space, is_distribution


def enqueued_params(space: Space, source: str | None = None) -> list[dict[str, Any]]:
    """The Optuna params of each ``study.enqueue`` point, in order; a bad point is a :class:`SpaceError`."""
    points = space.study.enqueue
    if not points:
        return []
    where = source or (str(space.path) if space.path else "<space>")
    if space.study.sampler == "grid":
        raise SpaceError("the grid sampler already tries every point of the grid; remove study.enqueue, or use "
                         "tpe, random, cmaes or gp", source=where, field="study.enqueue")
    if space.study.workflow == "phased":
        raise SpaceError("the phased workflow decides what each phase searches; study.enqueue works with "
                         "workflow: joint", source=where, field="study.enqueue")
    leaves = space.leaves()
    return [_params_of(point, leaves, where, f"study.enqueue[{i}]") for i, point in enumerate(points)]


def _params_of(point: Any, leaves: dict[str, Any], where: str, field: str) -> dict[str, Any]:
    searched = [name for name, value in leaves.items() if is_distribution(value)]
    if not isinstance(point, dict) or not point:
        raise SpaceError("each entry of study.enqueue is a mapping of searched settings to the values to try",
                         source=where, field=field, expected="e.g. {model.dropout: 0.3, train.learning_rate: 0.001}",
                         found=point)
    params: dict[str, Any] = {}
    for key, value in point.items():
        name = _full_name(str(key), leaves, where, field, searched)
        dist = leaves[name]
        if not is_distribution(dist):
            if _same(value, dist):
                continue  # the value the file fixes anyway
            raise SpaceError(f"{name} is fixed at {dist!r} in this file, so a trial cannot try {value!r}; search "
                             f"it (a distribution) or drop it from the entry", source=where, field=f"{field}.{key}")
        params.update(_param(name, dist, value, where, f"{field}.{key}"))
    return params


def _full_name(key: str, leaves: dict[str, Any], where: str, field: str, searched: list[str]) -> str:
    if key in leaves and key != "model.family":
        return key
    matches = [name for name in leaves if name.partition(".")[2] == key and name != "model.family"]
    if len(matches) == 1:
        return matches[0]
    from search.space import did_you_mean

    expected = "one of " + (", ".join(searched) if searched else "(nothing is searched in this file)")
    if len(matches) > 1:
        raise SpaceError(f"'{key}' is a setting of more than one section; write {' or '.join(matches)}",
                         source=where, field=f"{field}.{key}", found=key)
    names = searched + [name.partition(".")[2] for name in searched]
    raise SpaceError("not a setting of this file" + did_you_mean(key, names), source=where, field=f"{field}.{key}",
                     expected=expected, found=key)


def _param(name: str, dist: dict[str, Any], value: Any, where: str, field: str) -> dict[str, Any]:
    if "choice" in dist:
        if not any(_same(value, c) for c in dist["choice"]):
            raise SpaceError("not one of the choices", source=where, field=field,
                             expected="one of " + ", ".join(map(repr, dist["choice"])), found=value)
        return {name: next(c for c in dist["choice"] if _same(value, c))}
    kind = "int" if "int" in dist else "float"
    lo, hi = dist[kind]
    expected = f"{'a whole number' if kind == 'int' else 'a number'} in [{lo:g}, {hi:g}]" + (
        " or 0 (off)" if dist.get("or_off") else "")
    if value is False or value == "off":
        value = 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError("not a number", source=where, field=field, expected=expected, found=value)
    if dist.get("or_off") and value == 0:
        return {f"{name}.on": False}
    if kind == "int" and not float(value).is_integer():
        raise SpaceError("not a whole number", source=where, field=field, expected=expected, found=value)
    if not lo <= value <= hi:
        raise SpaceError("outside the searched range", source=where, field=field, expected=expected, found=value)
    step = dist.get("step")
    if step and not math.isclose((value - lo) / step, round((value - lo) / step), abs_tol=1e-9):
        raise SpaceError(f"not on the range's steps of {step:g} from {lo:g}", source=where, field=field,
                         expected=expected, found=value)
    typed = int(value) if kind == "int" else float(value)
    return {**({f"{name}.on": True} if dist.get("or_off") else {}), name: typed}


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind: YAML's ``true`` is not the choice ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b
