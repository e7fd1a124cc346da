"""What a target is, read once per study: classes or a quantity (``data.task: auto``), its class codes, and
the notes where that reading may be wrong (whole numbers read as a quantity, a stray value among labels,
a quantity of few values read as classes, a target float32 cannot hold finely enough)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from search.data import _checks
from search.errors import DataError

MAX_CLASSES_DETECTED = 20


def notes_on_the_task(y: np.ndarray, kind: str, name: str, detected: bool) -> tuple[list[str], list[str]]:
    """(warnings, notes) on the reading of the target ``name`` as ``kind``; ``detected``: by ``task: auto``,
    whose reading may be the wrong one."""
    warnings: list[str] = []
    notes: list[str] = []
    if detected and kind == "regression":
        warnings += _many_whole_numbers(y, name) + _strays_among_labels(y, name)
    if kind == "regression":
        warnings += _offset_target(y, name) + _checks.skewed_target(y, name)
    if detected and kind == "classification":
        warnings += _spaced_whole_numbers(y, name)  # the task itself may be wrong
        notes += _counted_classes(y, name)
    return warnings, notes


def kind(y: np.ndarray, declared: str, known: str | None, where: str) -> str:
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    if declared == "auto":
        declared = known or _detect(y, numeric)
    if declared == "regression" and not numeric:
        raise DataError("the task is regression but the target is not numeric", source=where,
                        field="data.task", expected="numbers or task: classification", found=_checks.first_distinct(y))
    return declared


def code(y: np.ndarray, kind: str, where: str, what: str = "the target") -> tuple[np.ndarray, list[Any], str]:
    if kind == "regression":
        if len(y) > 1 and np.all(y == y[0]):
            raise DataError(f"{what} is {y[0].item()!r} in every row: there is nothing to learn",
                            source=where, field="data.target", expected="a target that varies")
        return y.astype(np.float32), [], "regression"
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        # Said as the regression case says it: a constant whole number is taken for one class by the task's
        # detection, and "one class" read as if the numbers had been misread as labels.
        raise DataError(f"{what} is {classes[0].item() if hasattr(classes[0], 'item') else classes[0]!r} in all "
                        f"its {len(y)} rows: there is nothing to learn; a classification target needs at least "
                        f"two classes", source=where,
                        field="data.target", expected="a column with two or more classes",
                        found=classes.tolist())
    if classes.dtype.kind == "f" and len(classes) > MAX_CLASSES_DETECTED and \
            not np.all(classes == np.round(classes)):
        raise DataError(f"the task is classification, but the target holds {len(classes)} different numbers, not "
                        f"all whole (e.g. {classes[0].item():g}, {classes[len(classes) // 2].item():g}): each would "
                        f"be a class of its own", source=where, field="data.task",
                        expected="task: regression, or a target of class labels", found="classification")
    task = "binary" if len(classes) == 2 else "multiclass"
    return codes.ravel().astype(np.int32), [c.item() if hasattr(c, "item") else c for c in classes], task


def code_test(y: np.ndarray, classes: list[Any], kind: str, test_label: str, label: str, where: str) -> np.ndarray:
    if kind == "regression":
        return y.astype(np.float32)
    known = np.asarray(classes, dtype=object)
    present = np.isin(y.astype(object), known)
    if not present.all():
        unseen = Counter(y[~present].tolist())
        counted = ", ".join(f"{k!r} ({n} row{'s' if n != 1 else ''})" for k, n in sorted(unseen.items(), key=str))
        raise DataError(f"test label(s) {counted} "
                        f"of {test_label} never occur in {label}; a model cannot learn a class it never sees",
                        source=where, field="data.test", expected="labels among " + ", ".join(map(repr, classes)))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.asarray([lookup[v.item() if hasattr(v, "item") else v] for v in y], dtype=np.int32)


def _many_whole_numbers(y: np.ndarray, name: str) -> list[str]:
    """Said where ``task: auto`` read whole numbers as a quantity only because there are more than 20 of them:
    class labels 0-29 would otherwise be scored as a regression without a word."""
    values = y.astype(np.float64)
    distinct = np.unique(values)
    # Labels look like 0..K-1 or 1..K with several rows each; a quantity such as ages 18-90 does not.
    codes = (np.all(values == np.round(values)) and distinct[0] in (0, 1) and len(distinct) <= 200
             and distinct[-1] - distinct[0] == len(distinct) - 1 and len(distinct) * 5 <= len(values))
    if not codes:
        return []
    return [f"the target '{name}' holds {len(distinct)} different whole numbers, more than the "
            f"{MAX_CLASSES_DETECTED} that task: auto reads as classes, so it is read as a quantity (regression); "
            f"if they are class labels, set data.task: classification"]


def _strays_among_labels(y: np.ndarray, name: str) -> list[str]:
    """Said where ``task: auto`` read a target as a quantity because of a few values off its class labels (0/1
    and one 0.5 typed by hand): the rest of its rows hold at most 20 whole numbers, and would have been classes."""
    values = np.asarray(y, dtype=np.float64)
    whole = np.isfinite(values) & (values == np.round(values))
    strays = values[~whole]
    labels = np.unique(values[whole])
    if not 0 < len(strays) <= max(1, len(values) // 100) or not 2 <= len(labels) <= MAX_CLASSES_DETECTED:
        return []
    counted = Counter(strays.tolist())
    shown = ", ".join(f"{v:g} ({n} row{'s' if n != 1 else ''})" for v, n in sorted(counted.items())[:5])
    return [f"the target '{name}' holds the whole numbers {', '.join(f'{v:g}' for v in labels[:6])}"
            f"{', …' if len(labels) > 6 else ''} in {int(whole.sum())} of its {len(values)} rows, and {shown} in the "
            f"other {len(strays)}: task: auto read it as a quantity (regression) because of those; if the whole "
            f"numbers are class labels, correct or remove those rows"]


def _spaced_whole_numbers(y: np.ndarray, name: str) -> list[str]:
    """Said where ``task: auto`` read whole numbers as classes that do not look like class codes (rents of
    1000 to 1700 in steps of 50): a quantity of few distinct values would otherwise be classified unasked."""
    if not (np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_)):
        return []
    distinct = np.unique(y.astype(np.float64))
    if len(distinct) <= 2 or distinct[-1] - distinct[0] == len(distinct) - 1:
        return []  # two values, or consecutive codes such as 0..K-1 or 1..K
    return [f"the target '{name}' holds {len(distinct)} different whole numbers ({distinct[0]:g} to "
            f"{distinct[-1]:g}), read as classes by task: auto; if they are a quantity, set data.task: regression"]


def _counted_classes(y: np.ndarray, name: str, fewest: int = 6) -> list[str]:
    """Said where ``task: auto`` read consecutive whole numbers as classes (visits 0 to 12): codes 0..K-1 look
    the same, so a note, not a warning; a count read as 13 classes then scored as underfit, unexplained."""
    if not (np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_)):
        return []
    distinct = np.unique(y.astype(np.float64))
    if len(distinct) < fewest or distinct[-1] - distinct[0] != len(distinct) - 1:
        return []
    return [f"the target '{name}' holds {len(distinct)} consecutive whole numbers ({distinct[0]:g} to "
            f"{distinct[-1]:g}), read as {len(distinct)} classes by task: auto; if it counts or measures "
            f"something, set data.task: regression"]


def _offset_target(y: np.ndarray, name: str) -> list[str]:
    """A regression target far from zero that varies little (timestamps, prices of 1e9 ± 700): float32, the
    precision the model trains and predicts in, moves in steps of about |mean| x 1.2e-7, which rounded a
    visible share of its spread away without a word."""
    values = np.asarray(y, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 or not values.std():
        return []
    with np.errstate(over="ignore"):  # a target past float32's range is refused by name (target_finite)
        mean, std = float(values.mean()), float(values.std())
        step = float(np.spacing(np.float32(abs(mean))))
    if step < 0.01 * std:
        return []
    return [f"the target '{name}' is about {mean:.6g} and varies by a standard deviation of only {std:.3g}: as "
            f"float32, the precision the model trains and predicts in, it moves in steps of {step:.3g}, "
            f"{step / std:.0%} of that spread; subtract a constant from it in the data (predict {name} - {mean:.6g})"]


def _detect(y: np.ndarray, numeric: bool) -> str:
    if not numeric:
        return "classification"
    values = y.astype(np.float64)
    integral = np.all(np.isfinite(values)) and np.all(values == np.round(values))
    return "classification" if integral and len(np.unique(values)) <= MAX_CLASSES_DETECTED else "regression"
