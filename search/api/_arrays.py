"""In-memory rows handed to the API (NumPy arrays, lists, pandas frames), checked and saved under the home
folder, so that the study can be continued and reproduced later, also from the command."""
from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from search.data import _checks
from search.errors import DataError, SpaceError

def _plain(values: Any, name: str, labels: bool = False) -> np.ndarray:
    """A NumPy array from what a notebook holds: pandas frames and series (bool, nullable ``Int64``/``Float64``
    and ``category`` columns included; ``pd.NA`` becomes NaN), lists, or arrays; text stays text. ``labels``:
    a single column of booleans or integers without gaps keeps its type, so a pandas ``y`` names its classes
    as the same NumPy array would (``True``, not ``1.0``)."""
    pd = sys.modules.get("pandas")  # a pandas object exists only where pandas was imported
    if hasattr(values, "tocsr") and hasattr(values, "nnz"):  # scipy.sparse: np.asarray makes a 0-d object of it
        raise DataError(f"{name} is a scipy sparse matrix ({type(values).__name__}, shape {values.shape}), which the "
                        f"Keras models here take dense; pass {name}.toarray()", field=name,
                        expected="a NumPy array or a pandas frame", found=type(values).__name__)
    if pd is not None and isinstance(values, (pd.DataFrame, pd.Series)):
        frame = values.to_frame() if isinstance(values, pd.Series) else values
        twice = frame.columns[frame.columns.duplicated()]
        if len(twice):
            raise DataError(f"{name} has duplicated column name(s) {', '.join(map(repr, map(str, twice[:5])))}; "
                            f"each feature needs a name of its own (the model's inputs are matched by name)",
                            field=name, expected="distinct column names", found=f"{len(twice)} repeated")
        columns, text = [], []
        for i, column in enumerate(frame.columns):
            data = frame.iloc[:, i]
            if isinstance(data.dtype, pd.CategoricalDtype):
                data = data.astype(data.cat.categories.dtype)
            if pd.api.types.is_datetime64_any_dtype(data) or pd.api.types.is_timedelta64_dtype(data):
                raise SpaceError(f"{name}'s column {str(column)!r} holds dates or durations, which would go in as "
                                 f"nanosecond counts (some 1e18); turn them into numbers that mean something "
                                 f"first (days since a start, day of week, month)", field=name,
                                 expected="numeric, boolean or categorical-number columns", found=str(data.dtype))
            kept = next((t for t, is_kind in ((bool, pd.api.types.is_bool_dtype),
                                                (np.int64, pd.api.types.is_integer_dtype)) if is_kind(data)), None)
            if labels and frame.shape[1] == 1 and kept is not None and not data.isna().any():
                columns.append(data.to_numpy(dtype=kept))
            elif pd.api.types.is_bool_dtype(data) or pd.api.types.is_numeric_dtype(data):
                columns.append(data.to_numpy(dtype=np.float64, na_value=np.nan))
            elif _numbers_with_gaps(pd, data):  # numbers held as objects, None for a gap (JSON, .where)
                columns.append(pd.to_numeric(data, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                columns.append(data.astype(object).to_numpy())
                text.append(str(column))
        if labels and text:
            _labels_in_one_column(pd, frame, name)
        if isinstance(values, pd.Series) or (labels and frame.shape[1] == 1):  # y['label'] or y[['label']]
            single = columns[0]
            return single.astype(str) if text and all(isinstance(v, str) for v in single) else single
        numeric = [(str(c), frame.iloc[:, i].dropna().iloc[0]) for i, c in enumerate(frame.columns)
                   if str(c) in text and _numbers_as_text(pd, frame.iloc[:, i])]
        if numeric:  # a frame read with dtype=str: one-hot encoding 100 distinct numbers made 100 columns
            raise SpaceError(f"{name}'s column(s) {', '.join(repr(c) for c, _ in numeric[:5])} hold numbers written "
                             f"as text (such as {numeric[0][1]!r}); make them numbers first: "
                             f"{name}[cols] = {name}[cols].apply(pd.to_numeric)", field=name,
                             expected="numeric columns", found="text")
        if text:
            raise SpaceError(f"{name}'s column(s) {', '.join(map(repr, text[:5]))} are not numeric; set "
                             f"data.categorical: one_hot, which encodes a category as one 0/1 column per value (and "
                             f"the final model's pyfunc form then takes it as text), or encode them first "
                             f"(pandas.get_dummies)",
                             field=name, expected="numeric, boolean or categorical-number columns")
        return np.column_stack(columns) if columns else np.zeros((len(frame), 0))
    array = np.asarray(values)
    if array.dtype == object and array.size and all(isinstance(v, str) for v in array.ravel()):
        return array.astype(str)
    if array.dtype == object and array.size:
        _objects(array, name, labels)  # refuses all but numbers with gaps
        return np.array([np.nan if v is None else v for v in array.ravel()], dtype=np.float64).reshape(array.shape)
    return array


def _objects(array: np.ndarray, name: str, labels: bool) -> None:
    """An array of Python objects, in the words of what it holds: labels with gaps, or the first cell that
    is not a number."""
    flat = array.ravel()
    gap = np.array([v is None or (isinstance(v, float) and v != v) for v in flat])
    if labels and array.ndim == 1 and all(isinstance(v, str) for v in flat[~gap]):
        _no_missing_labels(gap, name)
    text = [i for i, v in enumerate(flat) if isinstance(v, str)]
    if labels and text and len(text) < len(flat):
        other = next(i for i, v in enumerate(flat) if not isinstance(v, str))
        raise DataError(f"{name} mixes text ({flat[text[0]]!r} at position {text[0]}) and other values "
                        f"({flat[other]!r} at position {other}); make every label text ({name}.astype(str)) or "
                        f"every label a number", field=name, expected="labels of one kind",
                        found=f"{len(text)} text, {len(flat) - len(text)} other")
    for index in np.ndindex(array.shape):
        value = array[index]
        if value is not None and not isinstance(value, (bool, int, float, np.number)):
            where = f"row {index[0]}" + (f", column {index[1]}" if len(index) > 1 else "")
            rule = "labels are numbers or text" if labels else "features must be numbers: encode text first"
            shown = f"{str(value)[:40]!r} at {where}"
            raise SpaceError(f"{name} holds {type(value).__name__} {shown}; {rule} (a category as one 0/1 column "
                             f"per value: pandas.get_dummies)", field=name,
                             expected="numbers" + (" or text" if labels else ""), found=shown)


def _numbers_as_text(pd: Any, data: Any) -> bool:
    """Whether every present cell of a column is text that reads as a number ("0.126", " 3")."""
    present = data.dropna()
    return bool(len(present)) and all(isinstance(v, str) for v in present) and \
        bool(pd.to_numeric(present.str.strip(), errors="coerce").notna().all())


def _numbers_with_gaps(pd: Any, data: Any) -> bool:
    present = data.dropna()
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all()) \
        and not any(isinstance(v, str) for v in present)


def _labels_in_one_column(pd: Any, frame: Any, name: str) -> None:
    """Text labels as the data checks cannot name them: two columns, or gaps (rows without a label)."""
    if frame.shape[1] > 1:
        raise DataError(f"{name} has {frame.shape[1]} columns ({', '.join(map(repr, map(str, frame.columns[:5])))}); "
                        f"a model here predicts one target", field=name, expected=f"one column: {name}['<column>']",
                        found=f"shape {frame.shape}")
    _no_missing_labels(frame.iloc[:, 0].isna().to_numpy(), name)


def _no_missing_labels(gaps: np.ndarray, name: str) -> None:
    if gaps.any():
        rows = ", ".join(map(str, np.flatnonzero(gaps)[:5])) + (", ..." if gaps.sum() > 5 else "")
        raise DataError(f"{name} has {int(gaps.sum())} missing label(s) (NaN or None), at position(s) {rows}; a row "
                        f"without a label cannot be trained or scored: drop those rows from x and {name} first",
                        field=name, expected="a label in every row", found=f"{int(gaps.sum())} missing")


def _save_arrays(home: Path, name: str, x: Any, y: Any, names: tuple[str, str],
                 made: list[Path], fills: bool = False, row_shape: tuple[int, ...] | None = None,
                 roles: dict[str, str] | None = None, task: str = "auto") -> tuple[Path, tuple[int, ...]]:
    """In-memory rows as an npz under ``<home>/data``, named by their content: the same arrays, the same file.
    Returns the file and the shape of one row of ``x``; ``row_shape``: the shape the development rows have
    (for test rows), checked here so that the message names the arguments, not the files they went to.
    ``roles``: ``data.group`` / ``data.order`` by the columns of ``x`` they name, which are taken out of the
    features and saved as the arrays of those names, as the npz reader takes them. ``task``: data.task, with
    which a ``y`` of numbers held as text is refused by its cells unless it says classification."""
    extras: dict[str, Any] = {}
    for field, column in (roles or {}).items():
        if not hasattr(x, "columns"):
            raise SpaceError(f"{field} names a column of x ({column!r}), and x has no named columns; pass x as a "
                             f"pandas DataFrame that holds it", field=field, found=column)
        if column not in x.columns:
            raise SpaceError(f"{field} names a column that {names[0]} does not have", field=field,
                             expected="one of " + ", ".join(map(str, x.columns)), found=column)
        missing = np.asarray(x[column].isna())
        if field == "data.group" and missing.any():
            # As text, a gap became the group 'nan', one group of every row whose id is missing.
            rows = np.flatnonzero(missing)
            raise DataError(f"column {column!r} of {names[0]} (data.group) has {len(rows)} missing group id(s), at "
                            f"position(s) {', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}: every "
                            f"row needs its group, or the rows without one would be pooled as one group; fill or "
                            f"drop them first", field=field, expected="a group id in every row", found="NaN/None")
        values = x[column].to_numpy()
        # Text (ids, dates written out) as fixed-width strings: an object array would need pickling.
        extras[column] = values.astype(str) if values.dtype == object else values
        x = x.drop(columns=[column])
    columns = getattr(x, "columns", None)  # a pandas frame's column names, kept for the summary and the model
    given = x
    target = getattr(y, "name", None) if not hasattr(y, "columns") else (list(y.columns) or [None])[0]
    if columns is not None and target is not None and target in columns:
        # df[...] passed whole with y=df["target"]: the target among the features. A frame of text columns
        # was refused for it, one of numbers trained on it with a leak warning.
        raise DataError(f"{names[0]} has a column named {target!r}, the name of {names[1]}: the target among the "
                        f"features; pass {names[0]}=frame.drop(columns=[{target!r}])", field=names[1],
                        expected=f"a name that is not a column of {names[0]}", found=target)
    _same_rows(x, y, names)
    _numbers_held_as_text(y, names[1], task)
    x, y = _plain(x, names[0]), _plain(y, names[1], labels=True)
    if x.dtype == object or y.dtype == object:
        raise SpaceError("in-memory data must be numeric or string arrays, not Python objects",
                         field=", ".join(names), found=f"{names[0]} {x.dtype}, {names[1]} {y.dtype}")
    _shaped_as_rows(x, y, names, given)
    if x.ndim and y.ndim and len(x) != len(y):
        raise DataError(f"{names[0]} has {len(x)} rows but {names[1]} has {len(y)}", field=names[1],
                        expected=f"one {names[1]} value per row of {names[0]}", found=f"{len(y)} values")
    if row_shape is not None and x.ndim and tuple(x.shape[1:]) != tuple(row_shape):
        raise DataError(f"the rows of {names[0]} have shape {list(x.shape[1:])} but those of x have "
                        f"{list(row_shape)}", field=names[0], expected="the same features per row as x")
    for array, label in ((x, names[0]), (y, names[1])):  # named as the caller passed them, not as a file
        # Features may miss values where data.missing fills them: the data checks count them then.
        if array.dtype.kind not in "fc":
            continue
        bad_cells = np.isinf(array) if label == names[0] and fills else ~np.isfinite(array)
        if bad_cells.any():
            bad = np.argwhere(bad_cells)
            hint = "; or set data.missing: median (or mean)" if label == names[0] and np.isnan(array).any() else ""
            first = tuple(int(i) for i in bad[0])
            column = (f" (row {first[0]}, column {columns[first[1]]!r})" if label == names[0] and columns is not None
                      and len(first) == 2 and first[1] < len(columns) else "")
            raise DataError(f"{label} has {len(bad)} missing (NaN) or infinite value(s), the first at index "
                            f"{first}{column}; fill or drop those rows first{hint}", field=label,
                            expected="finite numbers", found=array[tuple(bad[0])].item())
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"X": x, "y": y}
    if columns is not None and x.ndim == 2 and len(columns) == x.shape[1]:
        arrays["feature_names"] = np.asarray([str(c) for c in columns])
    np.savez(buffer, **arrays, **extras)
    return _write_once(home, name, ".npz", buffer.getvalue(), made), tuple(x.shape[1:])


def _write_once(home: Path, name: str, suffix: str, content: bytes, made: list[Path]) -> Path:
    """``content`` under ``<home>/data``, named by its digest: the same rows, the same file, written once (and
    listed in ``made``, for removal should the data be refused)."""
    digest = hashlib.sha256(content).hexdigest()[:12]
    path = (home / "data" / f"{name}-{digest}{suffix}").resolve()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
        made.append(path)
    return path


def has_text_columns(x: Any) -> bool:
    """A pandas frame with a column of text (or of text categories): data.categorical: one_hot's to encode."""
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(x, pd.DataFrame):
        return False
    for i in range(x.shape[1]):
        data = x.iloc[:, i]
        if isinstance(data.dtype, pd.CategoricalDtype):
            data = data.astype(data.cat.categories.dtype)
        if not (pd.api.types.is_bool_dtype(data) or pd.api.types.is_numeric_dtype(data)
                or pd.api.types.is_datetime64_any_dtype(data) or _numbers_with_gaps(pd, data)):
            return True
    return False


def save_frame(home: Path, name: str, x: Any, y: Any, names: tuple[str, str], made: list[Path], target: str,
               task: str = "auto") -> Path:
    """A frame with text columns and its targets as a CSV under ``<home>/data``, named by its content, so that
    ``data.categorical: one_hot`` encodes its categories as it does a CSV's, and the final model's pyfunc
    form takes them as text (an npz holds numbers only: the text columns were refused)."""
    import pandas as pd

    _same_rows(x, y, names)
    _numbers_held_as_text(y, names[1], task)
    if target in x.columns:
        raise DataError(f"{names[0]} has a column named {target!r}, the name of {names[1]}; rename one of them",
                        field=names[1], expected=f"a name that is not a column of {names[0]}", found=target)
    labels = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if labels.ndim != 1 and not (labels.ndim == 2 and labels.shape[1] == 1):
        raise DataError(f"{names[1]} must hold one label or value per row", field=names[1],
                        expected=f"shape ({len(x)},)", found=f"shape {labels.shape}")
    if len(labels) != len(x):
        raise DataError(f"{names[0]} has {len(x)} rows but {names[1]} has {len(labels)}", field=names[1],
                        expected=f"one {names[1]} value per row of {names[0]}", found=f"{len(labels)} values")
    frame = x.reset_index(drop=True).copy()
    frame[target] = labels.ravel()
    return _write_once(home, name, ".csv", frame.to_csv(index=False).encode("utf-8"), made)


def _numbers_held_as_text(y: Any, name: str, task: str) -> None:
    """A ``y`` of stay lengths read from a CSV whose few cells say ``3 days`` or ``>30`` is text: as labels each
    length was a class, and the study failed later on classes seen only in the test rows, never naming the
    cells. The CSV reader's check, in the words of the argument."""
    import pandas as pd

    from search.data import _csv_target

    if isinstance(y, pd.DataFrame) and y.shape[1] == 1:
        y = y.iloc[:, 0]
    values = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y).ravel()) if np.ndim(y) == 1 else None
    if values is None or not _csv_target.holds_text(values):
        return
    if pd.to_numeric(values.dropna().astype(str).str.strip(), errors="coerce").notna().all():
        return  # every cell a number written as text: _plain's and the data checks' to read
    column = str(values.name) if values.name is not None else name
    _csv_target.number_target_as_text(values.reset_index(drop=True), column, task, Path(f"the {name} passed"), name)


def _same_rows(x: Any, y: Any, names: tuple[str, str]) -> None:
    """Two pandas objects are lined up by position here (as scikit-learn does), so their indexes must agree:
    a ``y`` shuffled or filtered apart from ``x`` would pair rows with other rows' labels without a word."""
    pd = sys.modules.get("pandas")
    kinds = () if pd is None else (pd.DataFrame, pd.Series)
    if not (isinstance(x, kinds) and isinstance(y, kinds)) or len(x) != len(y) or x.index.equals(y.index):
        return
    try:
        reordered = x.index.sort_values().equals(y.index.sort_values())
    except TypeError:  # labels of types that do not sort together
        reordered = False
    how = "the same labels in another order" if reordered else "other labels"
    at = next((i for i, (a, b) in enumerate(zip(x.index, y.index)) if a != b), 0)  # where they part
    pair = f"{names[0]} has label {_plain_label(x.index[at])!r} and {names[1]} {_plain_label(y.index[at])!r}"
    raise DataError(f"{names[0]} and {names[1]} are pandas objects whose indexes differ ({how}: at position {at}, "
                    f"{pair}); rows are paired by position, so this "
                    f"would pair rows with other rows' labels. Pass {names[1]}.loc[{names[0]}.index] to pair them by "
                    f"label, or {names[1]}.to_numpy() to pair them by position", field=names[1],
                    expected=f"the index of {names[0]}", found=how)


def _plain_label(label: Any) -> Any:
    return label.item() if isinstance(label, np.generic) else label  # 4, not np.int64(4)


def _shaped_as_rows(x: np.ndarray, y: np.ndarray, names: tuple[str, str], given: Any) -> None:
    """Shapes the data checks would refuse, refused here in the words of the call (they would name the npz)."""
    if x.ndim == 0:
        kind = "npz" if str(given).endswith(".npz") else "images" if Path(str(given)).is_dir() else "csv"
        hint = (f"; to read a file, name it in the space (data.source: {kind}:{given}) and leave out x and y"
                if isinstance(given, (str, Path)) else "")
        raise DataError(f"{names[0]} is a single value, not rows of features{hint}", field=names[0],
                        expected="an array of shape (rows, features), a list of rows or a pandas DataFrame",
                        found=f"{type(given).__name__} {given!r}"[:80])
    if x.ndim == 1:
        raise DataError(f"{names[0]} is 1-D (shape {x.shape}): rows of one feature are {names[0]}.reshape(-1, 1)",
                        field=names[0], expected="shape (rows, features), or (rows, height, width[, channels]) "
                        "for images", found=f"shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{names[0]} has no rows", field=names[0], found=f"shape {x.shape}")
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"{names[1]} must hold one label or value per row", field=names[1],
                        expected=f"shape ({len(x)},), or ({len(x)}, classes) one-hot", found=f"shape {y.shape}")
    if y.ndim == 2 and y.shape[1] > 1 and not _checks._one_hot(y):
        raise DataError(f"{names[1]} has {y.shape[1]} columns but is not one-hot (one 1 per row, the rest 0); "
                        f"a model here predicts one target", field=names[1],
                        expected=f"shape ({len(y)},), ({len(y)}, 1), or one-hot", found=f"shape {y.shape}")
