"""Loading a data set once per study, detecting its task, and holding out the test rows.

The held-out test rows are chosen here, from the study seed, and no trial ever receives them: the
search only ever sees the *development* rows (``dev_idx``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.data._sources import SKLEARN_SETS, read
from search.errors import DataError

__all__ = ["Dataset", "SKLEARN_SETS", "load", "split_test", "fingerprint_indices"]

MAX_CLASSES_DETECTED = 20


@dataclass
class Dataset:
    X: np.ndarray              # float32 features, rows in time order when an order column is given
    y: np.ndarray              # int32 class codes, or float32 targets for regression
    task: str                  # "binary" | "multiclass" | "regression"
    classes: list[Any] = field(default_factory=list)
    groups: np.ndarray | None = None
    has_order: bool = False
    feature_names: list[str] | None = None
    duplicates_dropped: int = 0
    fingerprint: str = ""
    source: str = ""
    images_skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad_images)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "rows": int(len(self.X)), "features": int(np.prod(self.input_shape)),
                "task": self.task, "classes": len(self.classes), "duplicates_dropped": self.duplicates_dropped,
                "fingerprint": self.fingerprint, "input_shape": list(self.input_shape),
                "images_skipped": len(self.images_skipped)}


def load(section: Any, space_path: Path | None = None) -> Dataset:
    """Read ``data.source`` and return a de-duplicated, typed :class:`Dataset` with its fingerprint."""
    where = str(space_path) if space_path else "<space>"
    bases = [Path.cwd()] + ([space_path.parent] if space_path else [])
    raw = read(section.source, section, bases, where)
    X, y, groups, order = raw.X, raw.y, raw.groups, raw.order
    if len(X) == 0:
        raise DataError("the data set has no rows", source=where, field="data.source")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise DataError("the features contain NaN or infinite values", source=where, field="data.source")
    if order is not None:
        # Stable sort, so rows with equal timestamps keep file order.
        perm = np.argsort(order, kind="stable")
        X, y = X[perm], y[perm]
        groups = groups[perm] if groups is not None else None
    dropped = 0
    if section.duplicates == "drop":
        flat = np.ascontiguousarray(X.reshape(len(X), -1))
        _, first = np.unique(flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))),
                             return_index=True)
        keep = np.sort(first)
        dropped = len(X) - len(keep)
        X, y = X[keep], y[keep]
        groups = groups[keep] if groups is not None else None
    task, y_coded, classes = _task(y, section.task, raw.declared_task, where)
    X = X.astype(np.float32)
    digest = hashlib.sha256()
    for part in (X, y_coded, groups if groups is not None else np.zeros(0)):
        digest.update(str(part.shape).encode() + str(part.dtype).encode())
        digest.update(np.ascontiguousarray(part).tobytes() if part.dtype != object else repr(part.tolist()).encode())
    return Dataset(X=X, y=y_coded, task=task, classes=classes, groups=groups, has_order=order is not None,
                   feature_names=raw.feature_names, duplicates_dropped=dropped,
                   fingerprint=digest.hexdigest()[:16], source=section.source,
                   images_skipped=[str(p) for p in raw.skipped])


def _task(y: np.ndarray, declared: str, known: str | None, where: str) -> tuple[str, np.ndarray, list[Any]]:
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    if declared == "auto":
        declared = known or _detect(y, numeric)
    if declared == "regression":
        if not numeric:
            raise DataError("the task is regression but the target is not numeric", source=where,
                            field="data.task", expected="numbers or task: classification", found=y[:3].tolist())
        if not np.isfinite(y.astype(np.float64)).all():
            raise DataError("the target contains NaN or infinite values", source=where, field="data.target")
        return "regression", y.astype(np.float32), []
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError("a classification target needs at least two classes", source=where,
                        field="data.target", found=classes.tolist())
    task = "binary" if len(classes) == 2 else "multiclass"
    return task, codes.astype(np.int32), [c.item() if hasattr(c, "item") else c for c in classes]


def _detect(y: np.ndarray, numeric: bool) -> str:
    if not numeric:
        return "classification"
    values = y.astype(np.float64)
    integral = np.all(np.isfinite(values)) and np.all(values == np.round(values))
    return "classification" if integral and len(np.unique(values)) <= MAX_CLASSES_DETECTED else "regression"


def split_test(dataset: Dataset, test_size: float, seed: int, time_ordered: bool,
               where: str = "<space>") -> tuple[np.ndarray, np.ndarray]:
    """Return sorted ``(dev_idx, test_idx)``.

    Time-ordered data holds out its *last* rows (the future); grouped data holds out whole groups;
    classification is stratified. The same seed always gives the same rows.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    n = len(dataset.X)
    n_test = int(np.ceil(n * test_size))
    if n_test < 1 or n - n_test < 2:
        raise DataError(f"test_size {test_size} leaves {n_test} test and {n - n_test} development rows "
                        f"out of {n}", source=where, field="data.test_size",
                        expected="at least 1 test row and 2 development rows")
    idx = np.arange(n)
    if time_ordered:
        return idx[: n - n_test], idx[n - n_test:]
    if dataset.groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        dev, test = next(splitter.split(dataset.X, groups=dataset.groups))
        return np.sort(dev), np.sort(test)
    stratify = dataset.y if dataset.is_classification else None
    if stratify is not None:
        counts = np.bincount(dataset.y)
        if counts.min() < 2:
            raise DataError(f"class {dataset.classes[int(counts.argmin())]!r} has only {counts.min()} row(s); a "
                            f"stratified test split needs at least 2 per class", source=where,
                            field="data.target")
    try:
        dev, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot hold out a stratified test set ({exc})", source=where,
                        field="data.test_size", found=test_size) from None
    return np.sort(dev), np.sort(test)


def fingerprint_indices(idx: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(idx, dtype=np.int64).tobytes()).hexdigest()[:16]
