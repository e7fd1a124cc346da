"""Validation schemes as scikit-learn splitters over the development rows.

The plan is made once per study from the study seed, so split ``k`` holds the same rows in every
trial: trials are compared on identical data, and per-split values are comparable across trials.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn

import numpy as np

from search.data import Dataset, fingerprint_indices, rare_class_hint
from search.errors import ValidationSchemeError


@dataclass(frozen=True)
class Split:
    index: int
    train: np.ndarray  # absolute row indices into the dataset
    val: np.ndarray
    repeat: int = 0


def should_stratify(validation: Any, dataset: Dataset) -> bool:
    if validation.stratify is None:
        # A hold-out that keeps the file's order takes its last rows: there is nothing to stratify.
        unshuffled_holdout = validation.scheme == "holdout" and validation.shuffle is False
        return dataset.is_classification and validation.scheme != "time_series" and not unshuffled_holdout
    if validation.stratify and not dataset.is_classification:
        return False  # nothing to stratify on; regression targets are continuous
    return bool(validation.stratify)


class _LastRows:
    """A hold-out that keeps the rows' order: the last ``fraction`` of them validate (``shuffle: false``).
    With ``periods`` (data.order's time of each row, rows in time order) the cut falls between two times,
    never inside one: a day's rows were split between training and validation."""

    def __init__(self, fraction: float, periods: np.ndarray | None = None) -> None:
        self.fraction, self.periods = fraction, periods

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        n = len(X)
        cut = n - int(np.ceil(n * self.fraction))
        p = self.periods
        if p is not None and 0 < cut < n and p[cut - 1] == p[cut]:
            start = int(np.searchsorted(p, p[cut], "left"))
            cut = start if start > 0 else int(np.searchsorted(p, p[cut], "right"))
            if cut >= n:
                raise ValueError("every development row shares one time of data.order, so no later rows can "
                                 "validate; a hold-out of time-ordered rows needs rows at two or more times")
        yield np.arange(cut), np.arange(cut, n)


def _holdout(validation: Any, stratified: bool, shuffle: bool, seed: int) -> Any:
    from sklearn import model_selection as ms

    if not shuffle:
        return _LastRows(validation.fraction)
    cls = ms.StratifiedShuffleSplit if stratified else ms.ShuffleSplit
    return cls(n_splits=1, test_size=validation.fraction, random_state=seed)


def ignored_settings(validation: Any, dataset: Dataset) -> list[str]:
    """Warnings for validation settings that this scheme (or this task) does not use: given in the space
    file (a `repeats: 3` under kfold, meant for iterated_kfold, was dropped without a word where it equals
    the default), or set to other than the default."""
    defaults = type(validation)()
    out = [f"validation.{name} = {getattr(validation, name)} is not used by scheme {validation.scheme}: ignored"
           + (" (repeats is read by scheme iterated_kfold)" if name == "repeats" else "")
           for name in validation.unread()
           if name in validation.model_fields_set or getattr(validation, name) != getattr(defaults, name)]
    if validation.stratify and not dataset.is_classification:
        out.append("validation.stratify is true, but a regression target has no classes to stratify on: ignored")
    n = validation.k * validation.repeats if validation.scheme == "iterated_kfold" else 0
    if validation.scheme in ("kfold", "group_kfold", "time_series") and validation.k > MANY_SPLITS:
        out.append(f"validation.k = {validation.k}: every trial trains {validation.k} models on splits of about "
                   f"{max(1, len(dataset.y) // validation.k)} validation row(s) each, whose losses are noise; 5 or 10 "
                   f"folds (or iterated_kfold for a steadier estimate) are usual")
    if n > MANY_SPLITS:
        out.append(f"validation.k × repeats = {validation.k} × {validation.repeats}: every trial trains {n} models, "
                   f"about {n // validation.k} times a {validation.k}-fold trial; the estimate's spread shrinks "
                   f"only with the square root of the repeats (3 to 10 are usual), so a few repeats and more "
                   f"trials usually buy more")
    return out


def _gap_in_times(validation: Any, dataset: Dataset) -> list[str]:
    """A gap counts distinct times of data.order: where a day holds several (times of day), it is shorter
    in days than a reader of "gap: 7" for a 7-day target would take it to be."""
    labels = getattr(dataset, "times", []) or []
    if validation.scheme != "time_series" or not validation.gap or not any(" " in t for t in labels):
        return []
    per_day = len(labels) / max(1, len({t.split(" ")[0] for t in labels}))
    if per_day < 1.5:
        return []
    return [f"validation.gap = {validation.gap} counts distinct times of data.order, and its days hold {per_day:.1f} "
            f"of them on average (times of day): the gap is about {validation.gap / per_day:.1f} days, not "
            f"{validation.gap}; to leave out {validation.gap} days, set it to about {round(validation.gap * per_day)} "
            f"or give data.order dates without a time of day"]


# An iterated k-fold past this many splits per trial is named in a warning: most likely a typo or a
# misreading of "repeats" (the whole k-fold is repeated), and every trial would take that many fits.
MANY_SPLITS = 100


def _kfold(validation: Any, stratified: bool, shuffle: bool, seed: int) -> Any:
    from sklearn import model_selection as ms

    cls = ms.StratifiedKFold if stratified else ms.KFold
    return cls(n_splits=validation.k, shuffle=shuffle, random_state=seed if shuffle else None)


def _iterated_kfold(validation: Any, stratified: bool, shuffle: bool, seed: int) -> Any:
    from sklearn import model_selection as ms

    cls = ms.RepeatedStratifiedKFold if stratified else ms.RepeatedKFold
    return cls(n_splits=validation.k, n_repeats=validation.repeats, random_state=seed)


def _group_kfold(validation: Any, stratified: bool, shuffle: bool, seed: int) -> Any:
    from sklearn import model_selection as ms

    cls = ms.StratifiedGroupKFold if stratified else ms.GroupKFold
    return cls(n_splits=validation.k, shuffle=shuffle, random_state=seed if shuffle else None)


def _time_series(validation: Any, stratified: bool, shuffle: bool, seed: int) -> Any:
    from sklearn import model_selection as ms

    return ms.TimeSeriesSplit(n_splits=validation.k, gap=validation.gap, max_train_size=validation.max_train_size,
                              test_size=validation.val_size)


class _ByTime:
    """TimeSeriesSplit over the distinct times of ``data.order`` rather than over rows: rows that share a time
    are never split between training and validation, and ``gap`` counts times. Without ties it is
    TimeSeriesSplit over the rows."""

    def __init__(self, k: int, periods: np.ndarray, gap: int = 0, max_train_size: int | None = None,
                 val_size: int | None = None) -> None:
        self.k, self.periods, self.gap = k, periods, gap
        self.max_train_size, self.val_size = max_train_size, val_size

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        from sklearn.model_selection import TimeSeriesSplit

        times = np.unique(self.periods)
        for train, val in TimeSeriesSplit(n_splits=self.k, gap=self.gap, max_train_size=self.max_train_size,
                                          test_size=self.val_size).split(times):
            yield np.nonzero(np.isin(self.periods, times[train]))[0], np.nonzero(np.isin(self.periods, times[val]))[0]


# validation.scheme -> factory(section, stratified, shuffle, seed): a scikit-learn splitter. Adding a
# scheme is one entry here (and its feasibility rules in _check_feasible).
SPLITTERS: dict[str, Callable[[Any, bool, bool, int], Any]] = {
    "holdout": _holdout, "kfold": _kfold, "iterated_kfold": _iterated_kfold, "group_kfold": _group_kfold,
    "time_series": _time_series,
}


def make_splitter(validation: Any, dataset: Dataset, seed: int) -> Any:
    """The scikit-learn splitter for a validation section (not yet checked for feasibility)."""
    shuffle = validation.shuffle if validation.shuffle is not None else validation.scheme != "time_series"
    return SPLITTERS[validation.scheme](validation, should_stratify(validation, dataset), shuffle, seed)


def plan(validation: Any, dataset: Dataset, dev_idx: np.ndarray, seed: int,
         where: str = "<space>", purged: int = 0) -> list[Split]:
    """All (train, val) splits of the development rows; impossible schemes fail here, before training.
    ``purged``: the times (rows, without data.order) :func:`purge_before_test` left out of them."""
    _check_feasible(validation, dataset, dev_idx, where, purged)
    dataset.warnings.extend(w for w in ignored_settings(validation, dataset) + _gap_in_times(validation, dataset)
                            if w not in dataset.warnings)
    splitter = make_splitter(validation, dataset, seed)
    if validation.scheme == "time_series" and dataset.periods is not None:
        splitter = _ByTime(validation.k, dataset.periods[dev_idx], validation.gap, validation.max_train_size,
                           validation.val_size)
    elif isinstance(splitter, _LastRows) and dataset.periods is not None:
        splitter = _LastRows(validation.fraction, dataset.periods[dev_idx])
    y = dataset.y[dev_idx]
    groups = dataset.groups[dev_idx] if dataset.groups is not None else None
    stratify_on = y if should_stratify(validation, dataset) else None
    try:
        pairs = list(splitter.split(dataset.X[dev_idx], stratify_on, groups))
    except ValueError as exc:
        if validation.scheme == "holdout" and stratify_on is not None:
            # A stratified hold-out keeps every class on both sides: say which fractions can, in our words.
            n, classes = len(y), len(np.unique(y))
            side = min(round(n * validation.fraction), n - round(n * validation.fraction))
            raise ValidationSchemeError(
                f"a stratified hold-out keeps every class on both sides, but validation.fraction "
                f"{validation.fraction:g} of {n} development rows leaves {side} row{'s' if side != 1 else ''} "
                f"on one side for {classes} classes", source=where, field="validation.fraction",
                expected=f"between {classes / n:.2g} and {1 - classes / n:.2g}", found=validation.fraction) from None
        raise ValidationSchemeError(f"scikit-learn cannot make these splits: {exc}", source=where,
                                    field="validation") from None
    k = validation.k if validation.scheme == "iterated_kfold" else len(pairs)
    return [Split(index=i, train=dev_idx[tr], val=dev_idx[va], repeat=i // k) for i, (tr, va) in enumerate(pairs)]


def purge_before_test(validation: Any, dataset: Dataset, dev_idx: np.ndarray,
                      test_idx: np.ndarray) -> tuple[np.ndarray, int]:
    """The development rows without the last ``validation.gap`` times before the test rows (``time_series``):
    the final model, trained on the development rows, is then a gap before the rows it is tested on, as each
    split's model is before its validation rows (a target that looks ahead would otherwise carry the test
    period into its last training rows). Said in a note. Also returns how many times it left out."""
    gap = validation.gap if validation.scheme == "time_series" else 0
    if not gap or not len(test_idx) or not len(dev_idx):
        return dev_idx, 0
    times = dataset.periods if dataset.periods is not None else np.arange(len(dataset.X))
    first_test = times[test_idx].min()
    before = np.unique(times[dev_idx][times[dev_idx] < first_test])
    if not len(before):
        return dev_idx, 0
    purged = np.isin(times[dev_idx], before[-gap:])
    kept = dev_idx[~purged]
    unit = "time(s) of data.order" if dataset.periods is not None else "row(s)"
    dataset.notes.append(f"validation.gap: the last {min(gap, len(before))} {unit} of the development rows before "
                         f"the test rows ({int(purged.sum())} rows) are left out, so the final model, as each "
                         f"split's, trains a gap before the rows it is tested on")
    return kept, min(gap, len(before))


def fingerprint(splits: list[Split]) -> str:
    return fingerprint_indices(np.concatenate([np.concatenate([s.train, [-1], s.val, [-2]]) for s in splits]))


def _time_series_fits(n: int, k: int, gap: int, val_size: int | None = None) -> bool:
    """Whether TimeSeriesSplit makes k splits of n rows (or times) with ``gap`` left out before each
    validation block: blocks of ``val_size`` or n // (k + 1), and a first training part that the gap does not
    swallow. Not monotonic in n: the blocks grow by one at each multiple of k + 1."""
    block = val_size or n // (k + 1)
    return n >= k + 1 and block >= 1 and n - gap - block * k > 0


def _fits_before_test(total: int, k: int, gap: int, purged: bool, val_size: int | None = None) -> bool:
    """Whether ``total`` times make the plan once the gap before the test rows (when there is one) is out."""
    return _time_series_fits(total - (gap if purged else 0), k, gap, val_size)


def _blamed(total: int, k: int, gap: int, purged: bool = False, val_size: int | None = None) -> dict[str, Any]:
    """The setting a refused time-series plan names: the gap where k alone would fit, the validation block
    where the default one would, else k."""
    if gap and _fits_before_test(total, k, 0, purged, val_size):
        return {"field": "validation.gap", "found": gap}
    if val_size and _fits_before_test(total, k, gap, purged):
        return {"field": "validation.val_size", "found": val_size}
    return {"field": "validation.k", "found": k}


def _fewer(total: int, k: int, gap: int, purged: bool = False, val_size: int | None = None) -> str:
    """What a time-series plan of ``total`` rows or times can be given instead (a gap before the test rows,
    when there is one, takes as many times as the gap)."""
    ks = [j for j in range(2, k) if _fits_before_test(total, j, gap, purged, val_size)]
    largest_gap = max((g for g in range(gap) if _fits_before_test(total, k, g, purged, val_size)), default=None)
    sizes = [v for v in range(1, val_size) if _fits_before_test(total, k, gap, purged, v)] if val_size else []
    options = ([f"k <= {ks[-1]}"] if ks else []) + \
        ([f"validation.gap <= {largest_gap}"] if gap and largest_gap is not None else []) + \
        ([f"validation.val_size <= {sizes[-1]}"] if sizes else [])
    return " or ".join(options) or "more rows at more distinct times"


def _check_feasible(validation: Any, dataset: Dataset, dev_idx: np.ndarray, where: str, purged: int = 0) -> None:
    n, scheme, k = len(dev_idx), validation.scheme, validation.k

    def fail(message: str, field: str = "validation.k", **kw: Any) -> NoReturn:
        raise ValidationSchemeError(message, source=where, field=field, **kw)

    # A column the scheme cannot honour would be accepted and ignored: rows of one group on both sides of a
    # split, or validation rows from before the training rows. Refused, with the scheme that honours it.
    if dataset.groups is not None and dataset.has_order:
        # Each scheme's refusal named the other: group_kfold ignores time, time_series ignores groups.
        fail("data.group and data.order together ask for folds that keep each group whole and in time order, "
             "which no scheme here gives (group_kfold ignores time, time_series ignores groups)",
             "data.group", expected="one of the two: data.group with scheme group_kfold, or data.order with "
             "scheme time_series", found=f"data.group and data.order, scheme {scheme}")
    if dataset.groups is not None and scheme != "group_kfold":
        fail(f"data.group names groups, but validation.scheme {scheme} splits rows, not groups, so rows of one "
             f"group would land in both the training and the validation part", "validation.scheme",
             expected="scheme: group_kfold (or remove data.group)", found=scheme)
    # An unshuffled hold-out validates on the last rows, which data.order has made the latest.
    latest_last = scheme == "holdout" and validation.shuffle is False
    if dataset.has_order and scheme != "time_series" and not latest_last:
        fail(f"data.order gives the rows a time order, but validation.scheme {scheme} ignores it, so validation "
             f"rows would come before training rows in time", "validation.scheme",
             expected="scheme: time_series, or holdout with shuffle: false (or remove data.order)", found=scheme)
    if validation.scheme == "iterated_kfold" and validation.shuffle is False:
        fail("iterated k-fold reshuffles every repeat, so shuffle cannot be false", "validation.shuffle")
    total = len(dataset.y)
    # Where most rows went to the final test, that (data.test_size), not the scheme, is what to change.
    held = (f" ({total - n} of the {total} rows are held out for the final test: a smaller data.test_size leaves "
            f"more)" if total - n > n and not getattr(dataset, "test_source", None) else "")
    if scheme == "holdout":
        n_val = int(np.ceil(n * validation.fraction))
        if n_val < 1 or n - n_val < 1:
            fail(f"a validation fraction of {validation.fraction} of {n} development rows leaves an empty side",
                 "validation.fraction")
        if should_stratify(validation, dataset):
            counts = np.bincount(dataset.y[dev_idx], minlength=len(dataset.classes))
            if counts.min() < 2 or n_val < len(dataset.classes):
                fail(f"a stratified hold-out needs every class at least twice in the development rows and a "
                     f"validation part of at least {len(dataset.classes)} rows; found {int(counts.min())} of the "
                     f"smallest class and {n_val} validation rows{held}", "validation.fraction",
                     expected="a larger fraction, or stratify: false")
        return
    if scheme == "time_series":
        gap = validation.gap
        times = len(np.unique(dataset.periods[dev_idx])) if dataset.periods is not None else n
        size = validation.val_size
        if not _time_series_fits(times, k, gap, size):
            unit = "distinct times of data.order" if dataset.periods is not None else "development rows"
            total = times + purged  # as the user counts them: before the gap before the test rows
            block = size or times // (k + 1)
            first = times - gap - block * k
            why = (f"{k} folds need at least {k + 1} of them" if times < k + 1 else
                   f"each of the {k} validation blocks is {block} of them and the gap {gap}, which leaves "
                   f"{max(first, 0)} for the first split's training rows")
            # The rows the gap left out are no test rows: the hint about data.test_size would count them so.
            left = f", {purged} of them left out by the gap before the test rows" if purged else held
            fail(f"time_series with k={k}{f' and validation.gap={gap}' if gap else ''} cannot split {total} {unit}"
                 f"{left}: {why}", expected=_fewer(total, k, gap, bool(purged), size),
                 **_blamed(total, k, gap, bool(purged), size))
    elif n < k:
        fail(f"{k} folds need at least {k} development rows; there are {n}{held}",
             expected=f"k <= {n}" if n >= 2 else "more rows, or a smaller data.test_size", found=k)
    if scheme == "group_kfold":
        if dataset.groups is None and str(dataset.source).startswith("sklearn:"):
            fail(f"group_kfold needs a group column, and the bundled set {dataset.source} has none (data.group "
                 f"names a column of a CSV or an array of an npz)", "validation.scheme",
                 expected="kfold or iterated_kfold for a bundled set", found=scheme)
        if dataset.groups is None:
            fail("group_kfold needs a group column", "data.group", expected="data.group: <column name>")
        n_groups = len(np.unique(dataset.groups[dev_idx]))
        if n_groups < k:
            fail(f"group_kfold with k={k} needs at least {k} groups; the development rows have {n_groups}",
                 expected=f"k <= {n_groups}" if n_groups >= 2 else "more groups in the development rows (a "
                 "smaller data.test_size holds fewer out)", found=k)
    if should_stratify(validation, dataset) and scheme != "group_kfold":
        counts = np.bincount(dataset.y[dev_idx], minlength=len(dataset.classes))
        smallest = int(counts.min())
        if smallest < k:
            label = dataset.classes[int(counts.argmin())]
            typo = rare_class_hint(dataset, label)
            # 291 of 300 rows dropped as copies left 9: lowering k, as said, ran a study on them.
            dropped = int(getattr(dataset, "duplicates_dropped", 0) or 0)
            copies = (f" (data.duplicates dropped {dropped} of the {dropped + len(dataset.X)} rows as copies: "
                      f"if the rows are separate observations, set data.duplicates: keep)"
                      if dropped > len(dataset.X) else "")
            fail(f"stratified {k}-fold needs at least {k} rows of every class; class {label!r} has {smallest} "
                 f"in the development rows{held}{typo}{copies}",
                 expected=f"k <= {smallest}, or stratify: false" if smallest >= 2
                 else "stratify: false, or more rows of that class", found=k)
