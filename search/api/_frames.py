"""A frame handed to the API as a scikit-learn user holds it: the target still among its columns (named by
``data.target`` or ``y="<column>"``), and columns to leave out (``data.drop``), taken apart here before the
rows are checked and saved, in the words of the call."""
from __future__ import annotations

import sys
from typing import Any

from search.errors import DataError, SpaceError


def _is_frame(x: Any) -> bool:
    pd = sys.modules.get("pandas")  # a frame exists only where pandas was imported
    return pd is not None and isinstance(x, pd.DataFrame)


def _columns(x: Any) -> str:
    names = [str(c) for c in x.columns]
    return ", ".join(map(repr, names[:12])) + (", ..." if len(names) > 12 else "")


def take_target(x: Any, y: Any, target: str | None, names: tuple[str, str]) -> tuple[Any, Any, str]:
    """``x`` and ``y`` with the target taken out of ``x`` where ``y`` names its column or is left out for
    ``data.target`` to name it; and a warning where a ``y`` given apart makes ``data.target`` unread ("": none).

    Raises:
        SpaceError: neither ``y`` nor ``data.target`` says where the target is, or they name no column of ``x``.
    """
    if x is None:
        return x, y, ""
    if isinstance(y, str):
        column, field = y, names[1]
    elif y is None and target is not None:
        column, field = target, "data.target"
    elif y is None:
        raise SpaceError(f"in-memory data needs both {names[0]} and {names[1]}; pass {names[1]}=, or leave the target "
                         f"among the columns of a DataFrame {names[0]} and name it in data.target (or "
                         f"{names[1]}='<column>')", field=f"{names[0]}, {names[1]}",
                         expected=f"{names[1]}, or data.target naming a column of {names[0]}")
    else:
        given = getattr(y, "name", None)
        unread = target is not None and str(given) != target
        return x, y, (f"the space's data.target {target!r} is not read: {names[1]} is the target (it may be "
                      f"left out, or name {names[1]}'s column)" if unread and names[1] == "y" else "")
    if not _is_frame(x):
        raise SpaceError(f"{field} names a column of {names[0]} ({column!r}), and {names[0]} has no named columns; "
                         f"pass {names[0]} as a pandas DataFrame that holds it, or the targets as {names[1]}=",
                         field=field, expected=f"a DataFrame {names[0]}", found=type(x).__name__)
    if column not in x.columns:
        raise SpaceError(f"{field} names a column that {names[0]} does not have", field=field,
                         expected="one of " + _columns(x), found=column)
    return x.drop(columns=[column]), x[column], ""


def drop_columns(x: Any, x_test: Any, drop: list[str], roles: dict[str, str]) -> tuple[Any, Any]:
    """``data.drop``'s columns left out of a frame ``x`` (and of ``x_test``, matched by name), checked as a CSV's
    are: each a column of ``x``, none of them a column with a role (``data.group``, ``data.order``)."""
    if not drop or x is None:
        return x, x_test
    if not _is_frame(x):
        raise SpaceError("data.drop names columns to leave out, and x has no named columns; pass x as a pandas "
                         "DataFrame, or leave the features out of x", field="data.drop",
                         expected="a DataFrame x, or no data.drop", found=list(drop))
    for column in drop:
        if column not in x.columns:
            raise DataError("data.drop names a column that x does not have", field="data.drop",
                            expected="one of " + _columns(x), found=column)
        role = next((r for r, c in roles.items() if c == column), None)
        if role is not None:
            raise DataError(f"column {column!r} of x is {role}, so it cannot also be dropped", field="data.drop",
                            expected=f"a column other than {role}", found=column)
    if _is_frame(x_test):
        x_test = x_test.drop(columns=[c for c in drop if c in x_test.columns])
    return x.drop(columns=drop), x_test
