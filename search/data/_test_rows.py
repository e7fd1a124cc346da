"""The held-out test rows, chosen once from the study seed: provided ones as given, the latest rows of
time-ordered data, whole groups of grouped data, else a stratified draw; each way says where the test rows
cannot measure a class."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from search.errors import DataError

if TYPE_CHECKING:
    from search.data import Dataset

def split_test(dataset: Dataset, test_size: float, seed: int, time_ordered: bool,
               where: str = "<space>") -> tuple[np.ndarray, np.ndarray]:
    """Return sorted ``(dev_idx, test_idx)``.

    Provided test rows are the test set as given. Otherwise time-ordered data holds out its *last* rows
    (the future); grouped data holds out whole groups; classification is stratified. The same seed
    always gives the same rows.
    """
    from sklearn.model_selection import train_test_split

    if dataset.test_mask is not None:
        dev, test = np.nonzero(~dataset.test_mask)[0], np.nonzero(dataset.test_mask)[0]
        if len(dev) < 2:
            raise DataError(f"only {len(dev)} development row(s) are left besides the {len(test)} provided test "
                            f"rows", source=where, field="data.source", expected="at least 2 development rows")
        # A test folder without one of the class folders, a test file without one of the labels.
        _say_classes_not_tested(dataset, test, lambda absent: f"have no row among the provided test rows "
                                f"({dataset.test_source or 'data.test'}): the test score cannot measure them; add rows "
                                f"of them to the test data")
        return dev, test
    n = len(dataset.X)
    n_test = int(np.ceil(n * test_size))
    if n_test < 1 or n - n_test < 2:
        raise DataError(f"test_size {test_size} leaves {n_test} test and {n - n_test} development rows "
                        f"out of {n}", source=where, field="data.test_size",
                        expected="at least 1 test row and 2 development rows")
    idx = np.arange(n)
    if time_ordered or dataset.groups is not None:
        if time_ordered:
            cut = _time_cut(dataset, n - n_test, where)
            dev, test = idx[:cut], idx[cut:]
        else:
            dev, test = _group_holdout(dataset, n_test, test_size, seed, where)
        _classes_in_development(dataset, dev, test, "the latest rows" if time_ordered else "whole groups", where)
        how = "the latest rows" if time_ordered else "whole groups"
        _say_classes_not_tested(dataset, test, lambda absent: f"have no test row (the test rows are {how}, which "
                                f"hold none of them): the test score cannot measure them")
        return dev, test
    stratify = dataset.y if dataset.is_classification else None
    if stratify is not None:
        counts = np.bincount(dataset.y)
        if counts.min() < 2:
            rare = dataset.classes[int(counts.argmin())]
            if dataset.source.startswith("images:"):  # a folder has no target column: its class folders are it
                raise DataError(f"class folder {rare!r} of {dataset.source.partition(':')[2]} holds only "
                                f"{counts.min()} image(s); a stratified test split needs at least 2 per class: add "
                                f"images to it, or remove the folder", source=where, field="data.source")
            raise DataError(f"class {rare!r} has only {counts.min()} row(s); a stratified test split needs at "
                            f"least 2 per class{rare_class_hint(dataset, rare)}", source=where, field="data.target")
    k = len(dataset.classes) if stratify is not None else 0
    if stratify is not None and (n_test < k or n - n_test < k):
        short = "test" if n_test < k else "development"
        raise DataError(f"a stratified test set keeps every class on both sides, but test_size {test_size} of "
                        f"{n} rows leaves {min(n_test, n - n_test)} {short} rows for {k} classes", source=where,
                        field="data.test_size", expected=f"between {k / n:.2g} and {1 - k / n:.2g}", found=test_size)
    try:
        dev, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot hold out a stratified test set ({exc})", source=where,
                        field="data.test_size", found=test_size) from None
    # A class of very few rows rounds down to none.
    _say_classes_not_tested(dataset, test, lambda absent: f"have no test row (a share of {test_size} of "
                            f"{int(counts[absent[0]])} rows rounds to none): the test score cannot measure them; "
                            f"raise data.test_size or bring more rows of them")
    return np.sort(dev), np.sort(test)


def _say_classes_not_tested(dataset: Dataset, test: np.ndarray, why: Callable[[np.ndarray], str]) -> None:
    """A warning naming the classes without a test row, however the test rows were chosen (``why`` says it)."""
    if not dataset.is_classification:
        return
    absent = np.flatnonzero(np.bincount(dataset.y[test], minlength=len(dataset.classes)) == 0)
    if len(absent):
        dataset.warnings.append(f"class(es) {', '.join(repr(dataset.classes[c]) for c in absent[:5])} {why(absent)}")


def _time_cut(dataset: Dataset, cut: int, where: str) -> int:
    """Where the latest rows begin: at ``cut``, or where the time at ``cut`` begins when rows before it share
    that time (so a moment is never both development and test); past it where that leaves too few rows."""
    periods = dataset.periods
    if periods is None or periods[cut - 1] != periods[cut]:
        return cut
    start = int(np.searchsorted(periods, periods[cut], "left"))
    end = int(np.searchsorted(periods, periods[cut], "right"))
    moved = start if start >= 2 else end
    if moved >= len(periods):
        raise DataError("every row shares one time of data.order: no later rows can be held out", source=where,
                        field="data.order", expected="rows at two or more times")
    dataset.notes.append(f"rows sharing a time stay on one side: the test rows are the latest "
                         f"{len(periods) - moved} instead of {len(periods) - cut}")
    return moved


def _group_holdout(dataset: Dataset, n_test: int, test_size: float, seed: int,
                   where: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups, drawn in a seeded order, as many as bring the held-out rows closest to ``n_test``: a
    share of the *rows*, as everywhere else (a share of the groups held out 184 of 200 rows where one group
    was most of the data). A group is skipped when taking it would move further from ``n_test``."""
    assert dataset.groups is not None, "grouped data only"
    names, inverse, counts = np.unique(dataset.groups.astype(str), return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise DataError(f"every row is in group {str(names[0])!r}: no whole group can be held out for the test",
                        source=where, field="data.group", expected="at least 2 groups")
    chosen: list[int] = []
    total = 0
    for g in np.random.default_rng(seed).permutation(len(names)):
        if abs(total + counts[g] - n_test) < abs(total - n_test) and len(chosen) < len(names) - 1:
            chosen.append(int(g))
            total += int(counts[g])
    if not chosen:  # every group alone is more than twice the target: the smallest one
        chosen = [int(np.argmin(counts))]
    held = np.isin(inverse.ravel(), chosen)
    dev, test = np.nonzero(~held)[0], np.nonzero(held)[0]
    if len(dev) < 2:
        raise DataError(f"holding out whole groups leaves {len(dev)} development row(s)", source=where,
                        field="data.test_size", expected="groups small enough to leave 2 development rows")
    share = len(test) / len(inverse)
    if abs(share - test_size) > 0.3 * test_size:  # 30 % off the share asked for
        dataset.warnings.append(f"the held-out test rows are {share:.0%} of the rows, not test_size {test_size:g}: "
                                f"whole groups of uneven sizes ({len(chosen)} of {len(names)} groups, the largest "
                                f"{int(counts.max())} rows) cannot come closer")
    return dev, test


def _classes_in_development(dataset: Dataset, dev: np.ndarray, test: np.ndarray, how: str, where: str) -> None:
    """A class the held-out rows have and the development rows lack cannot be learnt, only failed on."""
    if not dataset.is_classification:
        return
    lacking = sorted(set(np.unique(dataset.y[test]).tolist()) - set(np.unique(dataset.y[dev]).tolist()))
    if lacking:
        names = ", ".join(repr(dataset.classes[c]) for c in lacking[:5])
        rows = int(np.isin(dataset.y[test], lacking).sum())
        raise DataError(f"class(es) {names} occur only in the held-out test rows ({how}; {rows} row(s)): a model "
                        f"cannot learn a class it never sees", source=where, field="data.test_size",
                        expected="every class among the development rows (more data, another test_size, or "
                                 "without those rows)")


def spelled_like(dataset: Any, label: Any) -> str:
    """" (it is spelled like class 'yes': a typo?)" where a rare class's label is nearly a common one's."""
    from collections import Counter

    from search.data._checks import rare_near_spellings

    counts = np.bincount(dataset.y, minlength=len(dataset.classes))
    # 'YES' and 'Yes ' beside 'Yes': the first error told a stranger to lower validation.k, which made them
    # classes of their own; the warning that they differ only by case came once the error was out of the way.
    folded = str(label).strip().casefold()
    alike = [c for c, n in sorted(zip(dataset.classes, counts), key=lambda x: -int(x[1]))
             if str(c) != str(label) and str(c).strip().casefold() == folded]
    if alike:
        return (f" (it differs from class {alike[0]!r} only by case or surrounding spaces: the same label? Write "
                f"them alike in the data)")
    near = dict(rare_near_spellings(Counter({str(c): int(n) for c, n in zip(dataset.classes, counts)})))
    return f" (it is spelled like class {near[str(label)]!r}: a typo?)" if str(label) in near else ""


def rare_class_hint(dataset: Any, label: Any) -> str:
    """Why a class may be too small to split: the target's numbers read as classes (a count or a temperature
    of few values, by task: auto), or a label spelled nearly as a common one's."""
    if len(dataset.classes) > 2 and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                                        for c in dataset.classes):
        return (f" (the target's {len(dataset.classes)} whole numbers are read as classes: set data.task: "
                f"regression if it is a quantity)")
    return spelled_like(dataset, label)


def development_vocabulary(dataset: Dataset, dev: np.ndarray) -> None:
    """data.categorical: one_hot on drawn test rows: the values that occur only among the test rows leave the
    features, so their rows have 0 in every column of that category, as a provided test file's unseen values do.

    Their columns were learned from nothing (0 in every training row) yet were inputs of every model: the
    test rows decided the features. A data.split_column's test rows are rows of the source, and count as drawn.
    """
    if not dataset.one_hot or dataset.feature_names is None:
        return
    seen = dataset.X[dev].any(axis=0)
    gone: dict[str, list[str]] = {}
    keep = np.ones(len(dataset.feature_names), dtype=bool)
    for name, values in dataset.one_hot.items():
        for value in values:
            column = f"{name}={value if value else '(empty)'}"
            j = dataset.feature_names.index(column)
            if not seen[j]:
                keep[j] = False
                gone.setdefault(name, []).append(value)
    if not gone:
        return
    dataset.X = dataset.X[:, keep]
    dataset.feature_names = [n for n, k in zip(dataset.feature_names, keep) if k]
    dataset.one_hot = {name: [v for v in values if v not in gone.get(name, [])]
                       for name, values in dataset.one_hot.items()}
    # The encoding's note counted the values as read, test rows' included: "'cat' (3 values)" beside 2 columns.
    for i, note in enumerate(dataset.notes):
        if "one-hot encoded as 0/1 columns" in note:
            for name, values in gone.items():
                before = len(dataset.one_hot[name]) + len(values)
                note = note.replace(f"'{name}' ({before} values", f"'{name}' ({before - len(values)} values")
            dataset.notes[i] = note
    dataset.notes += [f"column '{name}': value(s) {', '.join(map(repr, values[:5]))} occur only in the held-out test "
                      f"rows, so they are no feature (their rows have 0 in every {name}= column): the test rows "
                      f"decide nothing the models take" for name, values in gone.items()]
