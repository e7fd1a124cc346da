"""Where rows come from: scikit-learn's bundled sets, CSV files (search/data/_csv.py) and NumPy ``.npz``
archives.

Each reader returns raw arrays (features, target, optional groups and order) and a description; task
detection, de-duplication and fingerprints happen once, in ``search.data``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from search.data import _checks, _total_rows
from search.data._csv import read_csv
from search.data._raw import Raw
from search.errors import DataError

__all__ = ["SKLEARN_SETS", "Raw", "read"]

SKLEARN_SETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")


def _meant(source: str, base_dirs: list[Path]) -> str:
    """The source the user likely meant: a folder or file given without its kind, or the kind misspelt."""
    import difflib

    kind, sep, rest = source.partition(":")
    path_text = rest if sep and len(kind) > 1 else source  # C:\data is a path, not a kind
    close = difflib.get_close_matches(kind, ["sklearn", "csv", "npz", "images"], n=1) if sep else []
    path = Path(path_text).expanduser()
    found = next((base / path for base in [Path.cwd(), *base_dirs] if (base / path).exists()), None)
    if found is not None and found.is_dir():
        return f": {path_text!r} is a folder; for a folder of images in class subfolders, write 'images:{path_text}'"
    if close:
        return f": did you mean '{close[0]}:{rest}'?"
    return ""


def read(source: str, section: Any, base_dirs: list[Path], where: str, field: str = "data.source",
         split_column: str | None = None) -> Raw:
    """Read one source; ``field`` is the space field that named it (``data.source`` or ``data.test``)."""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in ("sklearn", "csv", "npz", "images"):
        raise DataError(f"unknown data source{_meant(source, base_dirs)}", source=where, field=field,
                        expected="'sklearn:<name>', 'csv:<path>', 'npz:<path>' or 'images:<dir>'", found=source)
    if split_column is not None and kind not in ("csv", "npz"):
        raise DataError(f"a split column needs a csv or npz source, not {kind}", source=where,
                        field="data.split_column", expected="data.test: <a second source> for this kind of data")
    if getattr(section, "drop", None) and kind != "csv":
        raise DataError(f"data.drop leaves out columns of a CSV file; a {kind}: source has no named columns (leave "
                        f"the features out of X before saving it)", source=where, field="data.drop",
                        expected="a csv: source, or no data.drop", found=list(section.drop))
    if getattr(section, "categorical", "refuse") != "refuse" and kind != "csv":
        raise DataError(f"data.categorical encodes the text columns of a CSV file; a {kind}: source has none",
                        source=where, field="data.categorical", expected="a csv: source, or categorical: refuse",
                        found=section.categorical)
    if kind == "images" and field == "data.source" and getattr(section, "missing", "refuse") != "refuse":
        raise DataError("data.missing fills missing feature values of a CSV file or an npz; an image folder has "
                        "none, so it would be ignored", source=where, field="data.missing",
                        expected="a csv: or npz: source, or no data.missing", found=section.missing)
    if field == "data.test" and kind == "sklearn":
        raise DataError("scikit-learn's bundled sets have no separate test rows", source=where, field=field,
                        expected="a csv:, npz: or images: source", found=source)
    if kind == "sklearn":
        return _sklearn(rest, where, getattr(section, "as_images", False))
    if kind == "images":
        return _images(rest, section, base_dirs, where, field)
    path = _find(rest, base_dirs, where, field)
    reader = read_csv if kind == "csv" else _npz
    return reader(path, section, where, split_column, field)


def _find(name: str, base_dirs: list[Path], where: str, field: str) -> Path:
    tried = []
    for base in base_dirs:
        candidate = (base / Path(name).expanduser()).resolve()  # csv:~/data.csv, as a shell reads it
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    folders = [t for t in dict.fromkeys(tried) if Path(t).is_dir()]
    if folders:
        raise DataError(f"{folders[0]} is a folder, not a data file (images:<dir> reads a folder of class "
                        f"subfolders)", source=where, field=field, expected="a file", found=name)
    raise DataError("the data file does not exist", source=where, field=field,
                    expected="an existing file (looked at " + " and ".join(dict.fromkeys(tried)) + ")",
                    found=name)


def _sklearn(name: str, where: str, as_images: bool = False) -> Raw:
    if name not in SKLEARN_SETS:
        raise DataError("unknown scikit-learn data set", source=where, field="data.source",
                        expected="sklearn:" + " | sklearn:".join(SKLEARN_SETS), found=f"sklearn:{name}")
    if as_images and name != "digits":
        raise DataError("only sklearn:digits has images", source=where, field="data.as_images",
                        expected="false, or source sklearn:digits", found=True)
    import sklearn.datasets as ds

    bunch = getattr(ds, f"load_{name}")()
    if as_images:  # 8×8 grey images with 17 levels (0–16), as pixels in [0, 1]
        return Raw(np.asarray(bunch.images, dtype=np.float64)[..., None] / 16.0, np.asarray(bunch.target),
                   declared_task="classification")
    task = "regression" if name == "diabetes" else "classification"
    return Raw(np.asarray(bunch.data), np.asarray(bunch.target), feature_names=list(bunch.feature_names)
               if hasattr(bunch, "feature_names") else None, declared_task=task)


def _npz(path: Path, section: Any, where: str, split_column: str | None = None,
         field: str = "data.source") -> Raw:
    if path.stat().st_size == 0:
        raise DataError(f"the file {path} is empty (0 bytes)", source=where, field=field,
                        expected="a NumPy .npz archive")
    with open(path, "rb") as handle:
        start = handle.read(64)
    if not start.startswith((b"PK", b"\x93NUMPY")):  # neither a zip (npz) nor a .npy: numpy's guess is pickle
        text = start.decode("utf-8", errors="replace").splitlines()[0][:40] if start.strip() else ""
        kind = f" (it starts with {text!r}: a text file; a CSV is read with csv:<path>)" if text.isprintable() \
            and text else ""
        raise DataError(f"{path} is not a NumPy .npz archive{kind}", source=where, field=field,
                        expected="a file written by np.savez(path, X=features, y=target)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as a NumPy .npz archive ({exc})", source=where,
                        field=field) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a plain .npy: one array, no names
        raise DataError(f"{path} is a single .npy array, not an .npz archive", source=where, field=field,
                        expected="np.savez(path, X=features, y=target)")
    keys = set(archive.files)
    x_key = next((k for k in ("X", "x", "features") if k in keys), None)
    y_key = section.target or next((k for k in ("y", "target", "labels") if k in keys), None)
    if section.target is not None and section.target not in keys:
        raise DataError(f"{path} has no array '{section.target}'", source=where, field="data.target",
                        expected="one of " + ", ".join(sorted(keys)), found=section.target)
    if x_key is None or y_key not in keys:
        raise DataError(f"{path} must hold arrays 'X' (features) and 'y' (target)", source=where,
                        field=field, expected="arrays named X and y", found=sorted(keys))
    X = _checks.npz_member(archive, x_key, path, where, field)
    y = _checks.npz_member(archive, y_key, path, where, "data.target")
    extra = {}
    for role, key in (("group", section.group), ("order", section.order), ("split_column", split_column)):
        if key is not None:
            if key not in keys:
                raise DataError(f"{path} has no array '{key}'", source=where, field=f"data.{role}",
                                expected="one of " + ", ".join(sorted(keys)), found=key)
            extra[role] = (key, _checks.npz_member(archive, key, path, where, f"data.{role}"))
    X, y, more, notes = _checks.npz_arrays(X, y, extra, path, where, (x_key, y_key), field)
    if (x_key, y_key) != ("X", "y") and section.target is None:  # read by another name: said, not guessed quietly
        notes.append(f"{path}: array '{x_key}' read as the features and '{y_key}' as the target (data.target "
                     f"names another array)")
    names = _npz_feature_names(archive, keys, X, path, where, field)
    merges = [] if getattr(section, "as_images", False) or X.ndim != 2 else _checks.float32_merges(
        [(names[j] if names else f"{x_key}[:, {j}]", X[:, j]) for j in range(X.shape[1])], str(path))
    if getattr(section, "as_images", False):
        X = _npz_images(X, path, where)
        merges += _dim_pixels(X, path)
    if X.ndim == 2 and np.asarray(y).ndim == 1:  # a frame saved by search.run goes this way too
        _total_rows.refuse_total_row({**{names[j] if names else f"{x_key}[:, {j}]": X[:, j]
                                         for j in range(X.shape[1])}, y_key: y}, path, where, field)
    mask = _checks.split_marks(more["split_column"], split_column, path, where) if split_column else None
    return Raw(np.asarray(X, dtype=np.float64), y, groups=more.get("group"), order=more.get("order"),
               feature_names=names, test_mask=mask, notes=notes, warnings=merges, label=str(path))


def _npz_feature_names(archive: Any, keys: set[str], X: np.ndarray, path: Path, where: str,
                       field: str) -> list[str] | None:
    """The columns' names from an optional ``feature_names`` array (the API saves a frame's columns there)."""
    if "feature_names" not in keys:
        return None
    names = _checks.npz_member(archive, "feature_names", path, where, field)
    if X.ndim != 2 or names.ndim != 1 or len(names) != X.shape[1] or names.dtype.kind not in "US":
        raise DataError(f"array 'feature_names' of {path} must name each column of X once", source=where,
                        field=field, expected=f"{X.shape[1] if X.ndim == 2 else 'one'} names, as text",
                        found=f"shape {names.shape}, dtype {names.dtype}")
    return [str(n) for n in names.astype(str)]


def _npz_images(X: np.ndarray, path: Path, where: str) -> np.ndarray:
    """(n, h, w) or (n, h, w, c) image arrays; integer pixels are scaled to [0, 1], and pixels outside it
    refused (0-255 values stored as floats would reach the model 255 times too bright)."""
    dtype_name = str(X.dtype)
    if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] not in (1, 3, 4)):
        raise DataError(f"{path}: with as_images, X must be (n, height, width) or (n, height, width, channels) "
                        f"with 1, 3 or 4 channels", source=where, field="data.as_images", found=list(X.shape))
    if np.issubdtype(X.dtype, np.unsignedinteger):
        scale = float(np.iinfo(X.dtype).max)
    elif np.issubdtype(X.dtype, np.integer) and X.size and 0 <= X.min() and X.max() <= 255:
        scale = 255.0  # `np.array` of Python ints is int64: 8-bit pixels all the same
    else:
        scale = 1.0  # float pixels are taken as given, in [0, 1]
    X = np.asarray(X, dtype=np.float64) / scale
    low, high = (float(X.min()), float(X.max())) if X.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise DataError(f"{path}: with as_images, pixels must lie in [0, 1] (or be unsigned integers, scaled by "
                        f"their type's maximum); X ({dtype_name}) runs from {low:g} to {high:g}", source=where,
                        field="data.as_images", expected="X divided by its white level: X / 255.0 for 8-bit "
                        "values stored as floats" + (f", X / {high:g} if {high:g} is white" if high < 255 else ""),
                        found=f"{low:g}..{high:g}")
    return X[..., None] if X.ndim == 3 else X


# Photographs and scans reach past half of white; sklearn's digits stored as uint8 (0-16) reach 0.063.
DIM_PIXELS = 0.25


def _dim_pixels(X: np.ndarray, path: Path) -> list[str]:
    """Pixels in [0, 1] that use a small part of it: integers whose white is below their type's maximum
    (digits' 0-16 stored as uint8, divided by 255), or floats divided by the wrong white level."""
    high = float(X.max()) if X.size else 0.0
    if not 0.0 < high < DIM_PIXELS:
        return []
    return [f"{path}: the brightest pixel of X is {high:.3g} of white, after the scaling data.as_images gives it "
            f"(unsigned integers divided by their type's maximum): if the images were written with another white "
            f"level (digits' 16), divide X by it and save floats in [0, 1], or the models see every image near "
            f"black"]


def _images(name: str, section: Any, base_dirs: list[Path], where: str, field: str) -> Raw:
    from search.data._images import read_folder

    tried = []
    for base in base_dirs:
        candidate = (base / Path(name).expanduser()).resolve()
        if candidate.is_dir():
            X, y, skipped, notes, names = read_folder(candidate, section, where, 1 if field == "data.test" else 2,
                                                      field)
            return Raw(X, y, declared_task="classification", skipped=skipped, label=str(candidate), notes=notes,
                       rows=np.asarray(names))
        tried.append(str(candidate))
    files = [t for t in dict.fromkeys(tried) if Path(t).is_file()]
    if files:
        raise DataError(f"{files[0]} is a file, not a folder; images:<dir> reads a folder with one subfolder per "
                        f"class (a table of rows is read with csv:<path> or npz:<path>)", source=where, field=field,
                        expected="a folder", found=name)
    raise DataError("the image folder does not exist", source=where, field=field,
                    expected="an existing folder with one subfolder per class (looked at "
                    + " and ".join(dict.fromkeys(tried)) + ")", found=name)
