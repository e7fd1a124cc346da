"""Checks on the rows a user brings, run before anything is stored.

Each check either returns cleaned arrays or raises one :class:`DataError` paragraph that names the
file, the column or array, what was expected and what was found. Warnings (things that may be meant,
such as two label spellings) are returned as text for the data summary to print.
"""
from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search.errors import DataError

SQUARED_MAX = 1e18  # a margin under sqrt(3.4e38) = 1.8e19 for mean and spread
SQUARED_MIN = 1e-18  # squares of 1e-36, a margin over float32's smallest normal number, 1.2e-38
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Values of a split column that mark a test row, and those that mark a development row.
TEST_MARKS = {"test", "1", "true", "yes"}
DEV_MARKS = {"train", "dev", "development", "0", "false", "no"}


# -- files --------------------------------------------------------------------------------------------
def npz_member(archive: Any, key: str, path: Path, where: str, field: str) -> np.ndarray:
    """An array of an archive, never unpickled; object arrays and non-array members are refused."""
    try:
        value = archive[key]
    except ValueError:  # numpy refuses object arrays under allow_pickle=False
        raise DataError(f"array '{key}' of {path} holds Python objects (an object array), which are never "
                        f"unpickled; save it with a numeric or string dtype, e.g. np.asarray(a, dtype=float)",
                        source=where, field=field) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read array '{key}' of {path} ({exc})", source=where, field=field) from None
    if not isinstance(value, np.ndarray):
        raise DataError(f"member '{key}' of {path} is not a NumPy array (no .npy header); write the archive "
                        f"with np.savez", source=where, field=field, found=type(value).__name__)
    return value


def npz_arrays(X: np.ndarray, y: np.ndarray, extra: dict[str, tuple[str, np.ndarray]], path: Path,
               where: str, names: tuple[str, str], field: str = "data.source"
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list[str]]:
    """Shapes, lengths and dtypes of X, y and the one-per-row arrays; returns them with notes."""
    x_key, y_key = names
    notes: list[str] = []
    if X.ndim == 0:
        raise DataError(f"array '{x_key}' of {path} is a single value, not rows of features", source=where,
                        field=field, expected="shape (rows, features)", found=f"shape {X.shape}")
    if X.ndim == 1:
        raise DataError(f"array '{x_key}' of {path} is 1-D: one value per row, or one row of values? Reshape "
                        f"it to (n, 1) for a single feature (X.reshape(-1, 1)) or to (1, n) for a single row",
                        source=where, field=field, expected="shape (rows, features)",
                        found=f"shape {X.shape}")
    if X.size == 0 and len(X):
        raise DataError(f"array '{x_key}' of {path} has no feature columns", source=where, field=field,
                        expected="shape (rows, features) with at least one feature", found=f"shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"array '{x_key}' of {path} is not numeric", source=where, field=field,
                        expected="integer, float or bool values", found=f"dtype {X.dtype}")
    y = _one_per_row(y, y_key, path, where, "data.target", notes)
    if y.dtype.kind == "S":
        try:
            y = y.astype(str)
        except UnicodeDecodeError:
            raise DataError(f"array '{y_key}' of {path} holds bytes that are not text", source=where,
                            field="data.target", expected="numbers or text labels") from None
    if y.dtype.kind not in "biufU":
        raise DataError(f"array '{y_key}' of {path} cannot be a target", source=where, field="data.target",
                        expected="numbers, bools or text labels", found=f"dtype {y.dtype}")
    lengths = {x_key: len(X), y_key: len(y)}
    out: dict[str, np.ndarray] = {}
    for role, (key, values) in extra.items():
        values = _one_per_row(values, key, path, where, f"data.{role}", notes)
        times = "M" if role == "order" else ""  # datetime64: times, not marks of a group
        if values.dtype.kind not in "biufUS" + times:
            raise DataError(f"array '{key}' of {path} cannot mark rows", source=where, field=f"data.{role}",
                            expected=f"numbers or text{' or datetime64 times' if times else ''}",
                            found=f"dtype {values.dtype}")
        if values.dtype.kind in "fM" and np.isnan(values).any():
            kind = "NaN" if values.dtype.kind == "f" else "NaT"
            raise DataError(f"array '{key}' of {path} has {int(np.isnan(values).sum())} missing ({kind}) value(s), the "
                            f"first at row {int(np.flatnonzero(np.isnan(values))[0])}; every row needs its "
                            f"{'time' if role == 'order' else 'group'}", source=where, field=f"data.{role}")
        lengths[key] = len(values)
        out[role] = values
    if len(set(lengths.values())) > 1:
        raise DataError(f"the arrays of {path} have different numbers of rows: "
                        + ", ".join(f"'{k}' {n}" for k, n in lengths.items()), source=where, field=field,
                        expected="one entry per row in every array")
    return X, y, out, notes


def _one_per_row(values: np.ndarray, key: str, path: Path, where: str, field: str, notes: list[str]) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        notes.append(f"array '{key}' of {path} has shape {values.shape}; read as one value per row")
        return values.ravel()
    if field == "data.target" and _one_hot(values):
        notes.append(f"array '{key}' of {path} is one-hot ({values.shape[1]} columns, one 1 per row): read as the "
                     f"class of each row, 0 to {values.shape[1] - 1}")
        return np.argmax(values, axis=1)
    if values.ndim != 1:
        hint = " (several targets? give one label or one number per row)" if values.ndim == 2 else ""
        raise DataError(f"array '{key}' of {path} must hold one value per row{hint}", source=where, field=field,
                        expected="shape (rows,) or (rows, 1)", found=f"shape {values.shape}")
    return values


def _one_hot(values: np.ndarray) -> bool:
    """Keras' categorical labels: (rows, classes) of 0 and 1 with exactly one 1 in every row."""
    if values.ndim != 2 or values.shape[1] < 2 or values.dtype.kind not in "biuf" or not len(values):
        return False
    return bool(np.isin(values, (0, 1)).all() and (values.sum(axis=1) == 1).all())


# -- values -------------------------------------------------------------------------------------------
def features_finite(X: np.ndarray, names: Sequence[str] | None, what: str, where: str,
                    missing: str = "refuse", notes: list[str] | None = None, field: str = "data.source") -> None:
    """Finite in float64 and still finite as float32, the precision the model trains in. With ``missing``
    ``mean`` or ``median`` (``data.missing``), NaN is a missing value that each split fills: counted in
    ``notes``, refused only in a column that has no value at all.

    Integers always fit float32's range; float arrays are scanned with reductions first, so a large
    image set costs no float64 copy when it is clean.
    """
    flat = X.reshape(len(X), -1)
    if flat.dtype.kind != "f" or flat.size == 0:
        return
    if not np.isfinite(flat).all():
        if missing == "refuse":
            hint = "; or set data.missing: median (or mean) to fill them per split from its training rows" \
                if np.isnan(flat).any() else ""
            _bad_feature(flat, ~np.isfinite(flat), "NaN or infinite values", names, what, where, hint, field)
        if np.isinf(flat).any():
            _bad_feature(flat, np.isinf(flat), "infinite values", names, what, where, field=field)
        _note_missing(flat, names, what, where, missing, notes)
    if np.nanmax(flat) > FLOAT32_MAX or np.nanmin(flat) < -FLOAT32_MAX:
        _bad_feature(flat, (flat > FLOAT32_MAX) | (flat < -FLOAT32_MAX),
                     f"values beyond ±{FLOAT32_MAX:.3g}, which become infinite as float32", names, what, where,
                     field=field)


def _note_missing(flat: np.ndarray, names: Sequence[str] | None, what: str, where: str, missing: str,
                  notes: list[str] | None) -> None:
    counts = np.isnan(flat).sum(axis=0)

    def name(column: int) -> str:
        return f"'{names[column]}'" if names and len(names) == flat.shape[1] else f"feature {column}"

    empty = np.flatnonzero(counts == len(flat))
    if len(empty):
        raise DataError(f"column {name(int(empty[0]))} of {what} has no value in any row: nothing to fill it "
                        f"from; drop the column", source=where, field="data.missing", found="all missing")
    if notes is not None:
        columns = np.flatnonzero(counts)
        listed = ", ".join(f"{name(int(c))} ({int(counts[c])})" for c in columns[:8]) + (
            f" and {len(columns) - 8} more" if len(columns) > 8 else "")
        notes.append(f"{int(counts.sum())} missing value(s) in {what}, in {listed}: each split fills them with "
                     f"the {missing} of its training rows (data.missing: {missing})")
        mostly = [c for c in columns if counts[c] * 2 > len(flat)]
        if mostly:
            verb = "is" if len(mostly) == 1 else "are"
            shares = ", ".join(f"{counts[c] / len(flat):.0%}" for c in mostly[:5])
            notes.append(f"{', '.join(name(int(c)) for c in mostly[:5])} of {what} {verb} mostly gaps ({shares} of "
                         f"the rows): filled, such a column holds the {missing} in most rows, and whether a value was "
                         f"there at all, which may be what matters, is lost; drop it (data.drop), or add a 0/1 column "
                         f"that says which rows have a value")


def _bad_feature(flat: np.ndarray, hits: np.ndarray, problem: str, names: Sequence[str] | None, what: str,
                 where: str, hint: str = "", field: str = "data.source") -> None:
    rows, cols = np.nonzero(hits)
    column = int(cols[0])
    name = f"column '{names[column]}'" if names and len(names) == flat.shape[1] else f"feature {column}"
    raise DataError(f"{name} of {what} has {problem} ({int(hits[:, column].sum())} row(s), first in data "
                    f"row {int(rows[0])}, counting from 0); fix or drop those rows, or rescale the column{hint}",
                    source=where, field=field, expected="finite numbers", found=flat[rows[0], column].item())


# Whole numbers past 2**24 are no longer all apart in float32, the precision the model trains in.
FLOAT32_WHOLE = 2 ** 24
# Past this many cells, float columns are not searched for values float32 merges (only whole numbers are).
PRECISION_CELLS = 5_000_000


def float32_merges(columns: Sequence[tuple[str, np.ndarray]], what: str) -> list[str]:
    """Warnings for columns whose distinct values float32 (or float64, for whole numbers past 2**53)
    merges: 20240131-style dates, epoch milliseconds, identifiers. Each merged pair reaches the model as
    one value, and rows that differ only there become duplicates."""
    warnings = []
    cells = sum(len(values) for _, values in columns)
    for name, values in columns:
        values = np.asarray(values)
        if values.dtype.kind not in "iuf" or not len(values):
            continue
        if values.dtype.kind in "iu":
            if int(np.abs(values).max()) < FLOAT32_WHOLE:
                continue
        elif cells > PRECISION_CELLS or not np.isfinite(values).any():
            continue
        kept = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        distinct = len(np.unique(kept))
        with np.errstate(over="ignore"):  # past float32's range: refused by name by features_finite
            merged = len(np.unique(kept.astype(np.float32)))
        if merged == distinct:
            continue
        if values.dtype.kind == "f" and len({float(f"{v:.10g}") for v in np.unique(kept)}) <= merged:
            continue  # copies apart by the noise of arithmetic (-1.8940000000000001, -1.894): one value, no loss
        scale = float(np.median(np.abs(kept.astype(np.float64))))
        with np.errstate(over="ignore"):  # past float32's range: refused by name by features_finite
            step = float(np.spacing(np.float32(scale)))
        kind = "subtract a constant first (such as its smallest value, or count days from a start date)"
        if distinct == len(kept):
            kind = f"if it identifies the rows, drop it; otherwise {kind}"
        warnings.append(f"column '{name}' of {what}: its {distinct} distinct values are {merged} in float32, the "
                        f"precision the model trains in (values near {scale:.4g} lie {step:g} apart there); {kind}")
    return warnings


def first_distinct(values: np.ndarray, most: int = 3) -> list[Any]:
    """The first few different values, in row order: what a message shows as found (not one value thrice)."""
    return list(dict.fromkeys(values[:1000].tolist()))[:most]


def target_finite(y: np.ndarray, column: str, what: str, where: str) -> np.ndarray:
    """A regression target as float32; non-finite and float32-overflowing values are refused."""
    if y.dtype.kind not in "biuf":
        raise DataError(f"the target '{column}' of {what} is not numeric, but the task is regression", source=where,
                        field="data.target", expected="numbers", found=first_distinct(y))
    values = y.astype(np.float64)
    # Losses are squared errors in the target's units: past the square root of float32's largest value they
    # overflow to infinity, every trial looks diverged and is pruned, and no trial completes.
    for problem, bad in (("NaN or infinite values", ~np.isfinite(values)),
                         (f"values beyond ±{SQUARED_MAX:.3g}, whose squared errors overflow float32 (rescale the "
                          "target, e.g. divide it by a power of ten or take its logarithm)",
                          np.abs(np.nan_to_num(values)) > SQUARED_MAX)):
        if bad.any():
            raise DataError(f"the target '{column}' of {what} has {problem} ({int(bad.sum())} row(s), first in "
                            f"data row {int(np.argmax(bad))}, counting from 0); a regression target must be finite "
                            f"in float32",
                            source=where, field="data.target", found=values[np.argmax(bad)].item())
    spread = float(np.std(values)) if len(values) > 1 else 0.0
    if 0 < spread < SQUARED_MIN:  # 1e-25 of a unit: "R² of -1.72e+49", predictions 24 orders of magnitude off
        power = int(np.ceil(-np.log10(spread)))
        raise DataError(f"the target '{column}' of {what} varies by a standard deviation of only {spread:.3g}: its "
                        f"squared errors, which the loss sums, fall below float32's smallest normal number "
                        f"({float(np.finfo(np.float32).tiny):.3g}), the precision the model trains in, so no trial "
                        f"can learn it; rescale the target first (multiply it by 1e{power}, a change of its units)",
                        source=where, field="data.target", expected=f"a standard deviation of at least {SQUARED_MIN:g}",
                        found=f"{spread:.3g}")
    with np.errstate(over="ignore"):
        single = values.astype(np.float32)
    if len(values) > 1 and np.all(single == single[0]) and not np.all(values == values[0]):
        raise DataError(f"the target '{column}' of {what} varies only past float32's precision, the precision the "
                        f"model trains in: its values ({values.min():.10g} to {values.max():.10g}) are all "
                        f"{float(single[0]):.10g} there; subtract a constant first (such as {values.min():.10g})",
                        source=where, field="data.target", expected="a target that varies in float32")
    return single


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def label_spellings(y: np.ndarray, what: str, role: str = "labels") -> str | None:
    """Text labels (or group ids: ``role``) that differ only by surrounding spaces or case: a warning, never
    merged silently."""
    if y.dtype.kind not in "UO":
        return None
    counts = Counter(str(v) for v in y)
    families: dict[str, list[str]] = {}
    for label in counts:
        families.setdefault(label.strip().casefold(), []).append(label)
    clashes = [sorted(group) for group in families.values() if len(group) > 1]
    typos = rare_near_spellings(counts) if role in ("labels",) or role.startswith("values of column") else []
    said = ""
    if typos:
        noun = "class" if role == "labels" else "value"
        said = ("; ".join(f"{noun} {rare!r} ({_rows(counts[rare])}) is spelled like {common!r} "
                          f"({_rows(counts[common])})" for rare, common in typos)
                + f": a typo? Each is kept as a {noun} of its own; if it means the other, fix it in the data")
    if not clashes:
        return f"{role} of {what}: {said}" if said else None
    said = f". Also {said}" if said else ""
    text = "; ".join(", ".join(f"{label!r} ({_rows(counts[label])})" for label in group) for group in clashes)
    if role.startswith("values of column"):  # a one-hot category: two 0/1 columns for one value
        return (f"{role} of {what} differ only by case: {text}. Each is one-hot encoded as a column of its own "
                f"(surrounding spaces are taken off first); if they mean the same value, fix their spelling in "
                f"the data{said}")
    if role != "labels":  # a group split in two is the leak data.group is there to prevent
        return (f"{role} of {what} differ only by surrounding spaces or case: {text}. They are kept as separate "
                f"groups, so rows of one may sit on both sides of a split; if they name the same group, fix their "
                f"spelling in the data")
    return (f"labels of {what} differ only by surrounding spaces or case: {text}. They are kept as "
            f"separate classes; if they mean the same class, fix their spelling in the data{said}")


def joined_labels(y: np.ndarray, what: str) -> str | None:
    """Text labels that are other labels joined by a separator (``sports,news`` beside ``news`` and ``sports``):
    rows of several labels at once, which a one-label-per-row model learns as classes of their own."""
    import re

    if y.dtype.kind not in "UO":
        return None
    counts = Counter(str(v) for v in y)
    single = {label.strip() for label in counts if not re.search(r"[,;|+/&]", label)}
    joined = [label for label in counts if len(parts := [p.strip() for p in re.split(r"[,;|+/&]", label)]) > 1
              and all(p in single for p in parts)]
    if not joined:
        return None
    shown = ", ".join(f"{label!r} ({_rows(counts[label])})" for label in sorted(joined, key=lambda v: -counts[v])[:5])
    return (f"labels of {what}: {shown} join other labels with a separator: rows of several labels at once? Each is "
            f"kept as a class of its own (a model here predicts one label per row, and 'a,b' and 'b,a' are two "
            f"classes); if a row has several labels, this is a multi-label task, which the built-in losses do not "
            f"train: give each row one label, or search one binary target per label")


def _edits(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: a letter inserted, deleted, replaced, or two neighbours swapped (Damerau)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous: list[int] = []
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        before, previous, row = previous, row, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[len(b)]


def rare_near_spellings(counts: Counter[str]) -> list[tuple[str, str]]:
    """(rare, common) pairs of text values where the rare one (a few rows) is spelled nearly as the common one
    (four times as many rows or more): 'yse' beside 'yes' became a class of its own without a word."""
    from difflib import SequenceMatcher

    total = sum(counts.values())
    # A typo sits beside a value many rows hold: the 200 most common are enough, and keep thousands of labels
    # (2,000 took 12 s compared all with all) to a fraction of a second.
    commons = [(common, m, common.casefold()) for common, m in counts.most_common(200) if len(common) >= 2]
    pairs: list[tuple[str, str]] = []
    for rare, n in counts.items():
        if n > max(3, total // 100) or not rare.strip():
            continue
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(rare.casefold())
        best: tuple[float, str] | None = None
        for common, m, folded in commons:
            if m < 4 * n or folded == rare.casefold():
                continue
            # Numbered names (type_1 ... type_9) differ by their digits on purpose.
            if re.sub(r"\d", "", common) == re.sub(r"\d", "", rare):
                continue
            matcher.set_seq1(folded)  # the cheap upper bounds first: most pairs end there
            if matcher.real_quick_ratio() < 0.6 or matcher.quick_ratio() < 0.6:
                continue
            score = matcher.ratio()
            # A typo is a key or two off (yse, Plnat, Sqaure); 'star' beside 'square' (ratio 0.6) is another word.
            if score >= 0.6 and _edits(rare.casefold(), folded) <= (1 if min(len(rare), len(common)) < 8 else 2) \
                    and (best is None or (score, common) > best):
                best = (score, common)
        if best is not None:
            pairs.append((rare, best[1]))
            if len(pairs) == 5:
                break
    return pairs


def split_marks(values: np.ndarray, column: str, path: Path, where: str) -> np.ndarray:
    """A split column's values as a test mask: test/train (dev), 1/0, true/false, yes/no."""
    text = np.char.lower(np.char.strip(np.asarray(values).astype(str)))
    text = np.where(np.isin(text, ["1.0"]), "1", np.where(np.isin(text, ["0.0"]), "0", text))
    unknown = sorted(set(text.tolist()) - TEST_MARKS - DEV_MARKS)
    if unknown:
        raise DataError(f"split column '{column}' of {path} has values that mark neither test nor development "
                        f"rows", source=where, field="data.split_column",
                        expected="test/train, 1/0 or true/false", found=unknown[:5])
    return np.isin(text, list(TEST_MARKS))


# -- cleaning -----------------------------------------------------------------------------------------
def duplicates(X: np.ndarray, y: np.ndarray, mode: str, regression: bool, what: str,
               where: str, order: np.ndarray | None = None,
               names: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, int], list[str]]:
    """Return ``(kept row indices, y for those rows, dropped counts by reason, warnings)``.

    Identical features with one label: one copy kept. With different labels (classification) no copy
    can be trusted, so all are dropped; a regression target is averaged over the copies instead, which
    is what a model trained on all of them would aim for under squared error. Rows of time-ordered data
    (``order``, data.order's values) are copies only at the same time: averaging days that share their
    features put later targets into earlier rows, and the test rows' into the training rows. ``names``: each
    row's place in its source (a file's row, an image's path), by which the copies are named.
    """
    import pandas as pd

    n = len(X)
    if mode == "keep" or n == 0:
        return np.arange(n), y, {}, []
    flat = X.reshape(n, -1)
    if order is not None:
        flat = np.column_stack([flat, pd.factorize(pd.Series(order))[0].astype(flat.dtype)])
    first, inverse, counts, conflicting = _copies_of(flat, y)
    n_conflict_rows = int(counts[conflicting].sum())
    n_exact = int((counts[~conflicting] - 1).sum())
    if mode == "refuse" and (n_exact or n_conflict_rows):
        example = int(np.argmax(counts > 1))
        found = [f"{n_exact} repeated cop{'y' if n_exact == 1 else 'ies'} with the same label" if n_exact else "",
                 f"{n_conflict_rows} rows in {int(conflicting.sum())} group(s) whose copies disagree on the label"
                 if n_conflict_rows else ""]
        raise DataError(f"{what} has rows with identical features: {' and '.join(x for x in found if x)} (e.g. "
                        f"{_copies(np.nonzero(inverse == example)[0], names)}); data.duplicates: refuse asks to "
                        f"stop here", source=where,
                        field="data.duplicates", expected="no duplicated rows, or duplicates: drop")
    dropped: dict[str, int] = {}
    warnings: list[str] = []
    lost = n_exact + (int((counts[conflicting] - 1).sum()) if regression else n_conflict_rows)
    if lost > n / 2:
        warnings.append(f"{what}: {lost} of {n} rows are dropped as duplicates (identical features"
                        f"{' at the same time' if order is not None else ''}), leaving {n - lost}: the features "
                        f"barely tell the rows apart. If the rows are separate observations (repeated "
                        f"measurements, days with the same features), set data.duplicates: keep")
    if n_exact:
        dropped["exact duplicates"] = n_exact
    if regression:
        means = np.bincount(inverse, weights=y.astype(np.float64)) / counts
        keep = np.sort(first)
        if conflicting.any():
            dropped["duplicates with different targets (averaged into one row)"] = \
                int((counts[conflicting] - 1).sum())
        return keep, means[inverse[keep]].astype(y.dtype), dropped, warnings
    keep = np.sort(first[~conflicting])
    if n_conflict_rows:
        dropped["conflicting duplicates"] = n_conflict_rows
        shown = _copies(np.nonzero(inverse == int(np.argmax(conflicting)))[0], names)
        # By class: a fraud analyst's 40 dropped rows held 10 of the 111 frauds, 9 % of the rare class, unsaid.
        ambiguous = conflicting[inverse]
        labels, per = np.unique(y[ambiguous], return_counts=True)
        totals = dict(zip(*np.unique(y, return_counts=True)))
        by_class = ", ".join(f"{int(n)} of the {int(totals[label])} of class {label!r}"
                             for label, n in sorted(zip(labels.tolist(), per.tolist()), key=lambda x: -x[1] /
                                                    totals[x[0]]))
        warnings.append(f"{what} has {int(conflicting.sum())} feature row(s) that appear with different labels "
                        f"({n_conflict_rows} rows in all: {by_class}; e.g. {shown}); they are ambiguous, so every "
                        f"copy is dropped (data.duplicates: refuse stops instead)")
    if n_exact and _are_files(names):  # an image left out is looked for by its file, which a count does not give
        repeated = np.flatnonzero((counts > 1) & ~conflicting)
        examples = "; ".join(_copies(np.nonzero(inverse == g)[0], names) for g in repeated[:3])
        warnings.append(f"{what}: {n_exact} file(s) repeat another file of the same class and are left out, one "
                        f"copy kept ({examples}{'; …' if len(repeated) > 3 else ''})")
    return keep, y[keep], dropped, warnings


def _copies_of(flat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by identical features: each group's first row, each row's group, the groups' sizes, and
    whether a group's rows disagree on the label."""
    _, first, inverse, counts = np.unique(_row_keys(flat), return_index=True, return_inverse=True,
                                          return_counts=True)
    inverse = inverse.ravel()
    _, y_codes = np.unique(y, return_inverse=True)
    pairs = np.unique(np.stack([inverse, y_codes.ravel()], axis=1), axis=0)
    return first, inverse, counts, np.bincount(pairs[:, 0], minlength=len(first)) > 1


def _are_files(names: np.ndarray | None) -> bool:
    return names is not None and np.asarray(names).dtype.kind in "UO"


def _copies(rows: np.ndarray, names: np.ndarray | None) -> str:
    """Up to three copies of one row, by file where they are files, else by row of the source."""
    shown = rows[:3]
    if _are_files(names):
        assert names is not None
        return ", ".join(str(names[i]) for i in shown)
    return "rows " + ", ".join(str(names[i] if names is not None else i) for i in shown)


def vanished_classes(before: np.ndarray, after: np.ndarray, why: str, what: str, where: str,
                     merged: Sequence[str] = (), images: bool = False) -> None:
    """A class that cleaning removed entirely would silently turn the task into another one. ``merged``:
    the warnings of :func:`float32_merges`, which explain repeats the file does not hold as written."""
    lost = sorted(set(before.tolist()) - set(after.tolist()), key=str)
    if lost:
        counts = Counter(before.tolist())
        cause = (f" ({'; '.join(merged)})" if merged else
                 " (two class folders holding the same images, say)" if images else "")
        raise DataError(f"class(es) {', '.join(f'{c!r} ({_rows(counts[c])})' for c in lost)} of {what} lose every "
                        f"row to {why}: their features all repeat rows of other classes{cause}. Fix the data, or "
                        f"set data.duplicates: keep", source=where, field="data.duplicates")


def repeats_of(X_dev: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """A mask of development rows whose features are also a test row's."""
    if len(X_dev) == 0 or len(X_test) == 0:
        return np.zeros(len(X_dev), bool)
    keys = _row_keys(np.concatenate([X_dev, X_test]).reshape(len(X_dev) + len(X_test), -1))
    return np.isin(keys[: len(X_dev)], keys[len(X_dev):])


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """One hashable key per row, equal for rows whose features are equal as numbers.

    Rows are compared by their bytes, and -0.0 (which a spreadsheet writes for a small negative rounded
    to zero) has other bytes than 0.0; NaNs may differ in payload bits. Both are made one value first,
    so that copies a model cannot tell apart are one row. The model reads float32: rows that differ only
    below its precision (a CSV written after arithmetic holds -1.8940000000000001 beside -1.894) are one
    row to it, and compared at that precision.
    """
    if rows.dtype.kind == "f":
        rows = rows.astype(np.float32)
        rows = rows + rows.dtype.type(0.0)  # -0.0 + 0.0 is 0.0
        rows[np.isnan(rows)] = np.nan
    flat = np.ascontiguousarray(rows)
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


# The share of a regression target's variance its largest 1 % of deviations may hold before it is warned about.
# Measured on 1,000 rows: a normal target 0.10, an exponential one 0.17, a log-normal of sigma 0.5 0.16 and of
# sigma 1 0.38; scikit-learn's diabetes 0.06; a stranger's house prices with a few typos of x8 0.74.
SKEWED_SHARE = 0.3
# Below this many rows the top 1 % is one row, and a normal target of 30 rows already holds 0.16 in it.
_SKEW_MIN_ROWS = 50


def skewed_target(y: np.ndarray, name: str) -> list[str]:
    """A regression target whose few largest deviations from its mean hold most of its variance: the squared
    error that ranks trials and makes the test score is then the error on those rows (a stranger's 2 of 240
    test prices gave an RMSE of 85k beside an MAE of 21k), and nothing said so."""
    values = np.asarray(y, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < _SKEW_MIN_ROWS or not values.std():
        return []
    squared = (values - values.mean()) ** 2
    top = max(1, int(np.ceil(0.01 * len(values))))
    share = float(np.sort(squared)[-top:].sum() / squared.sum())
    if share < SKEWED_SHARE:
        return []
    remedy = (f"predicting its logarithm is the usual remedy (add a column log({name}) to the file and set "
              f"data.target to it; the scores are then in log units)" if values.min() > 0 else
              "a transform that tames its tails (in the file, before the search) is the usual remedy")
    return [f"the target '{name}' is skewed: its {top} row(s) farthest from its mean ({top / len(values):.0%} of "
            f"the rows) hold {share:.0%} of its variance, so the squared error that ranks the trials, and the test "
            f"score, are mostly the error on those rows; check that they are not typos, and where they are real, "
            f"{remedy}"]


# data.duplicates: auto keeps every row where rows whose copies disagree on the label are at least COARSE_SHARE
# and the distinct feature rows at most DISTINCT_SHARE of the rows: the features then take few values (a table
# of a few categories), copies are the data's nature, not a record entered twice, and dropping the conflicting
# ones drops the hardest rows. A stranger's 800 customers of five coarse columns: 310 rows in conflicting groups
# (39 %), 495 distinct feature rows (62 %); the final model scored log loss 0.592 on its own test rows against
# 0.678 on the dropped rows. Another's 2,115 transactions of continuous features with 110 re-entered rows (5 %
# conflicting, 95 % distinct) are records entered twice: their copies are dropped.
COARSE_SHARE = 0.10
DISTINCT_SHARE = 0.9


def coarse(X: np.ndarray, y: np.ndarray, what: str) -> str | None:
    """The note that keeps every row (data.duplicates: auto), or None where the copies are to be dropped."""
    n = len(X)
    if n == 0:
        return None
    _, _, counts, conflicting = _copies_of(X.reshape(n, -1), y)
    rows = int(counts[conflicting].sum())
    if rows < COARSE_SHARE * n or len(counts) > DISTINCT_SHARE * n or len(counts) < 2:  # one for all: refused
        return None
    return (f"{what}: {rows} of its {n} rows ({rows / n:.0%}) share their features with rows of another label; "
            f"they hold {len(counts)} distinct feature rows in all, so copies are the nature of these rows, "
            f"not records entered twice: every row is kept (data.duplicates: auto), since dropping them dropped "
            f"the hardest rows and flattered the scores; data.duplicates: drop drops them anyway")


# A category column one-hot encoded is warned about where it has at least this many values and most of them
# are held by RARE_ROWS rows or fewer: a stranger's agent codes, 382 values in 800 rows, became 358 features
# with only a note, each weight learning from a row or two.
MANY_VALUES = 30
RARE_ROWS = 2


def many_rare_values(values: np.ndarray, name: str, what: str) -> str | None:
    """The warning for a category column of many values, most of them too rare to learn from."""
    import pandas as pd

    counts = pd.Series(values).value_counts()
    rare = int((counts <= RARE_ROWS).sum())
    if len(counts) < MANY_VALUES or rare * 2 < len(counts):
        return None
    return (f"column '{name}' of {what} holds {len(counts)} distinct values, {rare} of them in {RARE_ROWS} rows or "
            f"fewer: one-hot encoded, each is a column whose weight learns from a row or two, which is memorizing "
            f"those rows; leave the column out (data.drop) or group its rare values into one (such as 'other') in "
            f"the file")
