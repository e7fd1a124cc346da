"""A feature that alone gives the target away: a column known only after the outcome (a ticket opened
the day after the failure, the amount refunded), or the target itself under another name. A search then
reports a near-perfect score that no model will reach in use, without a word."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# One column alone ranking the two classes apart this well (AUC), or matching a regression target this
# closely (|Pearson r|, or the rank correlation), is rarer in honest data than in leaked columns:
# breast_cancer's best single feature reaches an AUC of 0.975, diabetes' a correlation of 0.59.
SEPARATES = 0.995
# A column of a few values (a flag, a status code) that names the class in this share of the rows, where a guess
# of the commonest class is wrong ten times as often: a "refund issued" flag beside a churn label. The mushroom
# data's odor, an honest feature that nearly decides edibility, agrees in 98.5 % of its rows.
AGREES, FEW_VALUES = 0.99, 10
ROWS, COLUMNS = 20_000, 2_000  # enough to see a leak; what it costs stays small on wide or long data


def giveaways(X: np.ndarray, y: np.ndarray, task: str, names: Sequence[str] | None, seed: int = 0,
              named_columns: bool = True) -> list[str]:
    """Warnings for the feature columns that alone separate a binary target's classes (AUC ≥ SEPARATES either
    way), sort a multiclass target's rows into all its classes, name a class target's class in AGREES of the
    rows with a few values, or track a regression target (|r| ≥ SEPARATES), on the rows given (the development
    rows)."""
    if X.ndim != 2 or len(y) < 20:
        return []
    rows = np.random.default_rng(seed).choice(len(y), ROWS, replace=False) if len(y) > ROWS else np.arange(len(y))
    X, y = np.asarray(X[rows][:, :COLUMNS], dtype=np.float64), np.asarray(y[rows])
    usable = np.isfinite(X).all(axis=0) & (np.ptp(X, axis=0) > 0)
    if not usable.any():
        return []
    found: list[tuple[int, str]] = []
    if task == "multiclass":
        found = [(int(j), f"sorts the rows into all {len(np.unique(y))} classes alone, each class a range of its "
                          f"values that no other class's row falls in") for j in np.flatnonzero(usable)
                 if _sorts_into_classes(X[:, j], y)]
    elif task == "binary":
        positive = y == 1
        n1, n0 = int(positive.sum()), int((~positive).sum())
        if min(n1, n0) < 10:
            return []
        from scipy.stats import rankdata

        ranks = rankdata(X[:, usable], axis=0)
        auc = (ranks[positive].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
        for j, a in zip(np.flatnonzero(usable), auc):
            if max(a, 1 - a) >= SEPARATES:
                found.append((int(j), f"ranks the two classes apart alone (ROC AUC {max(a, 1 - a):.3f})"))
    else:
        target = y.astype(np.float64)
        if not np.ptp(target) > 0:
            return []
        from scipy.stats import rankdata

        r = _correlations(X[:, usable], target)
        # A log, a bucket or a rank of a heavy-tailed target (a price, a count) follows its order, not its
        # line: log(price) beside price has r 0.67 but a rank correlation of 0.9998.
        rho = _correlations(rankdata(X[:, usable], axis=0), rankdata(target))
        for j, c, rank in zip(np.flatnonzero(usable), r, rho):
            if abs(c) >= SEPARATES:
                found.append((int(j), f"follows the target alone (correlation {c:+.3f})"))
            elif abs(rank) >= SEPARATES:
                found.append((int(j), f"follows the target's order alone (rank correlation {rank:+.3f}, as a "
                                      f"log, a bucket or a rank of the target would)"))
    if task in ("binary", "multiclass"):
        seen = {j for j, _ in found}
        for j in np.flatnonzero(usable):
            share, n = _agreement(X[:, j], y)
            if j not in seen and share >= AGREES:
                found.append((int(j), f"names the class alone in {share:.1%} of the rows (each of its {n} values "
                                      f"nearly always one class)"))
    return [_said(j, what, names, named_columns) for j, what in found[:5]]


def _agreement(column: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The share of rows whose class is their value's commonest one, for a column of at most FEW_VALUES values,
    where that guess errs at most a tenth as often as the commonest class overall (else 0.0); and the count of
    values."""
    if len(np.unique(column[:256])) > FEW_VALUES:  # a measurement, not a code: its first rows tell, cheaply
        return 0.0, FEW_VALUES + 1
    values, at = np.unique(column, return_inverse=True)
    if len(values) > FEW_VALUES:
        return 0.0, len(values)
    classes, codes = np.unique(y, return_inverse=True)
    table = np.zeros((len(values), len(classes)), dtype=np.int64)
    np.add.at(table, (at.ravel(), codes.ravel()), 1)
    share, baseline = table.max(axis=1).sum() / len(y), table.sum(axis=0).max() / len(y)
    return (float(share) if 1 - share <= 0.1 * (1 - baseline) else 0.0), len(values)


def _correlations(X: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pearson's r of each column of ``X`` with ``t``."""
    centred, t = X - X.mean(axis=0), t - t.mean()
    return centred.T @ t / (np.sqrt((centred ** 2).sum(axis=0)) * np.sqrt((t ** 2).sum()))


def _sorts_into_classes(column: np.ndarray, y: np.ndarray) -> bool:
    """Whether the column's values, in order, hold each class in one run of its own: a code of the class
    (0, 1, 2 for cat, dog, fox) does; an honest feature that sets one class apart (iris' petal length, which
    parts setosa from the rest) does not part all of them."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 3 or counts.min() < 5:
        return False
    values, at = np.unique(column, return_inverse=True)
    pairs = np.unique(np.stack([at.ravel(), np.searchsorted(classes, y).ravel()], axis=1), axis=0)
    if len(pairs) != len(values):  # a value shared by two classes
        return False
    runs = 1 + int(np.count_nonzero(np.diff(pairs[:, 1])))
    return runs == len(classes)


def _said(j: int, what: str, names: Sequence[str] | None, named_columns: bool = True) -> str:
    column = f"column {names[j]!r}" if names is not None and j < len(names) else f"feature {j}"
    # data.drop names a CSV's columns; arrays (an npz, the API's x) leave a column out where they are made.
    how = "data.drop" if named_columns else "from the arrays"
    return (f"{column} {what} on the development rows: if it is known only after the outcome, or is the "
            f"target under another name, the search's scores are a leak no model will reach in use; leave it out "
            f"({how}) unless it is truly known when predicting")


def of_dataset(dataset: Any, dev_idx: np.ndarray) -> list[str]:
    return giveaways(dataset.X[dev_idx], dataset.y[dev_idx], dataset.task, dataset.feature_names,
                     named_columns=not str(dataset.source).startswith(("npz:", "sklearn:")))
