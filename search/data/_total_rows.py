"""A row that is no observation: a spreadsheet's Total row, holding the sums of the rows above it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from search.errors import DataError


def refuse_total_row(columns: dict[str, Any], path: Path, where: str, field: str) -> None:
    """Refuse a first or last row that holds the sum of the column's other rows in two columns at least,
    beyond each one's range of values: trained on, one such row outweighs all the others; drawn for the test
    rows, it decides the test score, and its size inflates the noise the overfit alarm is measured against.

    A column centred on zero (a profit, a deviation, a standardized feature) has a sum inside its own range,
    so its total tells nothing either way; a column that holds something else there (an average, an ID) may
    stand beside the sums, as long as the sums are at least as many. By chance, two columns' sums to six
    digits are not met."""
    numeric = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()
               if np.asarray(values).dtype.kind in "iuf"}
    if len(numeric) < 2 or len(next(iter(numeric.values()))) < 4:
        return
    for row, which in ((-1, "last"), (0, "first")):
        matched: list[str] = []
        others = 0
        for name, values in numeric.items():
            value, rest = values[row], np.delete(values, row)
            if not np.isfinite(value) or not np.all(np.isfinite(rest)):
                continue
            with np.errstate(over="ignore"):  # sums past the float range: no total, and refused elsewhere by name
                total = float(rest.sum())
            if not np.isclose(value, total, rtol=1e-6, atol=0.0):
                others += 1
            elif abs(total) > float(np.abs(rest).max()):
                matched.append(name)
        if len(matched) >= 2 and len(matched) >= others:
            index = len(next(iter(numeric.values()))) - 1 if row == -1 else 0
            raise DataError(f"the {which} row of {path} (row {index}, counting data rows from 0) holds the sums of "
                            f"the other rows in column(s) {', '.join(map(repr, matched[:5]))}: a spreadsheet's "
                            f"Total row, not an observation; trained on or tested on, it would outweigh every "
                            f"other row. Delete it from the file", source=where, field=field,
                            expected="one observation per row", found=f"the sums in row {index}")
