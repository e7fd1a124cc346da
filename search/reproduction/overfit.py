"""The validation-overfit alarm: is the test loss worse than the cross-validation estimate can explain?

A search that tries many settings against the same validation rows picks, among other things, the
settings that happen to suit those rows. Its best cross-validation loss is then optimistic, and the
only honest judge is data no trial saw: the held-out test rows.

The comparison is like for like: the trial's own split models (the models whose best validation losses
make up the estimate) are scored on the test rows, and the mean of those test losses is compared with
the mean of their validation losses. Two sources of honest noise separate them:

- the cross-validation estimate's own error, the larger of the spread of the splits (standard deviation
  over splits / sqrt(splits per repeat)) and the row-sampling error of the validation rows; the second
  is a floor, so that a hold-out (one split) or three folds that agree by chance do not make the
  estimate look exact. Under iterated k-fold every row is validated once per repeat, so the k x R split
  losses are not independent: the row-sampling error is computed from each row's loss *averaged over
  the repeats* (standard deviation of those means / sqrt(rows)), never from k x R splits as if they
  were fresh data, which would shrink it by about sqrt(R);
- the test loss's row-sampling error: standard deviation of the per-row test losses / sqrt(n_test).

The estimate itself is optimistic for a reason that is not the search: each split's score is the
*minimum* of its validation curve over the epochs (epoch selection). That optimism is measured, as
the mean over splits of the validation loss at the epoch the final model's epoch rule uses minus the
split's minimum, shown, and added to the estimate before the comparison, so the alarm blames only
what epoch selection cannot explain.

The alarm fires when the test loss exceeds the estimate by more than ``Z_ALARM`` times their combined
error (one-sided, about a 2% false-alarm rate when nothing is wrong).

For a classifier, a class's rows have losses of their own size (a rare class's rows cost many times a
common one's), so validation rows and test rows that hold the classes in different shares differ in loss
for that reason alone: a time-series validation block with no failure in it against test rows with eight
was alarmed as a search that overfit. The estimate is therefore taken at the test rows' class shares
(each class's mean validation row loss, weighted by its share of the test rows, added as a shift to the
stored estimate), with the matching row-sampling error. Where a class of the test rows has fewer than
``MIN_CLASS_ROWS`` validation rows to judge it by, there is nothing to compare with: no alarm, and the
summary says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from search._numbers import sig
from typing import Mapping, Sequence

import numpy as np

Z_ALARM = 2.0
MIN_CLASS_ROWS = 2  # validation rows of a test class needed to estimate its loss (and that estimate's error)

REMEDY = ("the search has overfit its validation data: its best trials were chosen partly for suiting the "
          "validation rows, so the cross-validation score of the picked trial is biased low. Quote the test "
          "score, not the validation score. For an unbiased estimate of the whole search, use nested "
          "cross-validation (an outer split around the whole search) or judge the pick once on a fresh "
          "hold-out set; more repeats of k-fold reduce noise but do not remove this selection bias. Fewer "
          "trials, or a smaller space, also reduce it")


@dataclass
class OverfitCheck:
    cv_mean: float        # mean over splits of the best validation loss (the trial's value)
    cv_std: float         # standard deviation over splits (0 for one split)
    n_splits: int
    cv_error: float       # the estimate's standard error (see the module docstring)
    test_loss: float      # mean over the split models of their test loss
    test_error: float     # the test loss's row-sampling standard error
    z: float              # (test_loss - (cv_mean + optimism)) / sqrt(cv_error² + test_error²)
    optimism: float = 0.0  # epoch-selection optimism: loss at the epoch rule's epoch minus the minimum
    trials: int = 0        # completed trials the pick was chosen among (0: not known)
    time_ordered: bool = False  # the test rows are the latest rows, after every validation block
    class_shift: float = math.nan  # the estimate at the test rows' class shares minus the estimate as validated
    # (nan where there are no class shares: a regression target)
    unlike: str = ""           # why the validation rows cannot judge the test rows (a class they lack): no alarm

    @property
    def fired(self) -> bool:
        return not self.unlike and self.z > Z_ALARM

    def summary(self) -> str:
        spread = (f"± {sig(self.cv_std)} over {self.n_splits} split(s)" if self.n_splits > 1 else
                  f"on 1 split (standard error {sig(self.cv_error)} from its rows)")
        shift = 0.0 if math.isnan(self.class_shift) else self.class_shift
        shown = abs(shift) >= 0.01 * abs(self.cv_mean)  # the same mix on both sides moves it by noise
        mix = f", {self.cv_mean + shift:.4g} at the test rows' class shares" if shown else ""
        head = f"split models: test loss {self.test_loss:.4g} vs cross-validation {self.cv_mean:.4g} {spread}{mix}"
        if self.unlike:
            return f"{head}; not compared: {self.unlike}"
        return (f"{head}, of which {sig(self.optimism)} is epoch-selection optimism; gap "
                f"{self.test_loss - self.cv_mean - shift - self.optimism:+.3g} "
                f"= {round(self.z, 1) + 0.0:+.1f} standard errors (alarm above {Z_ALARM:g})")

    def warning(self) -> str:
        gap = (f"the test loss {self.test_loss:.4g} is worse than the cross-validation estimate {self.cv_mean:.4g} "
               f"by {self.z:.1f} standard errors, more than the spread of the splits and the size of the test set "
               f"explain")
        drift = ("the test rows are later than every validation block, so a drift or trend over time raises "
                 "their loss as well")
        if self.trials == 1:  # nothing was chosen, so nothing was chosen for suiting the validation rows
            return (f"test rows unlike the validation rows: {gap}. With one trial there was no selection to "
                    f"overfit: " + (f"{drift}" if self.time_ordered else "the test rows differ from the "
                                    "development rows (an unrepresentative test set, or data that changed)"))
        if self.time_ordered:  # drift is as likely a cause as the selection, and this check cannot tell which
            return (f"test rows later than the validation rows score worse: {gap}. Two causes give this and "
                    f"this check cannot tell them apart: {drift}, which no selection explains (then it is the "
                    f"data that changed: retrain on the latest rows, and judge the model on later data as it "
                    f"arrives); or " + REMEDY)
        return f"validation overfit: {gap}; " + REMEDY

    def metrics(self) -> dict[str, float]:
        return {**({} if self.unlike else {"overfit_z": self.z}),
                **({} if math.isnan(self.class_shift) else {"cv_val_loss_class_shift": self.class_shift}),
                "cv_val_loss_mean": self.cv_mean, "cv_val_loss_std": self.cv_std,
                "cv_val_loss_error": self.cv_error, "split_models_test_loss_mean": self.test_loss,
                "split_models_test_loss_error": self.test_error, "epoch_selection_optimism": self.optimism}


def check(val_losses: Sequence[float], val_row_losses: Sequence[np.ndarray], test_losses: Sequence[float],
          test_row_losses: Sequence[np.ndarray], val_row_index: Sequence[np.ndarray] | None = None,
          repeats: int = 1, optimism: float = 0.0, val_labels: Sequence[np.ndarray] | None = None,
          test_labels: np.ndarray | None = None) -> OverfitCheck:
    """Compare split models on test rows with their validation losses.

    ``val_losses[k]`` is split k's stored best validation loss, ``val_row_losses[k]`` its model's per-row
    losses on its validation rows (``val_row_index[k]`` their row numbers, so that a row validated in
    several repeats counts once), ``test_losses[k]`` the same model's test loss and ``test_row_losses[k]``
    its per-row test losses, all data losses without weight penalties. ``repeats`` is the number of
    reshuffled repeats of the plan, ``optimism`` the measured epoch-selection optimism. A classifier's
    ``val_labels[k]`` (split k's validation rows' classes) and ``test_labels`` put the estimate at the test
    rows' class shares.
    """
    k = len(val_losses)
    cv_mean = float(np.mean(val_losses))
    cv_std = float(np.std(val_losses, ddof=1)) if k > 1 else 0.0
    rows, labels = _row_means(val_row_losses, val_row_index, val_labels)
    row_error = float(np.std(rows, ddof=1) / math.sqrt(len(rows))) if len(rows) > 1 else 0.0
    shift, unlike = math.nan, ""  # nan: no class shares (regression), nothing to shift by
    if labels is not None and test_labels is not None and len(rows):
        shift, mixed_error, unlike = _at_test_shares(rows, labels, np.asarray(test_labels))
        row_error = row_error if unlike else mixed_error
    independent = max(1, k // max(1, repeats))  # the folds of one repeat share no validation rows
    cv_error = max(cv_std / math.sqrt(independent), row_error)
    test_rows = np.mean(np.stack(test_row_losses), axis=0)
    test_error = float(np.std(test_rows, ddof=1) / math.sqrt(len(test_rows))) if len(test_rows) > 1 else 0.0
    test_loss = float(np.mean(test_losses))
    scale = math.hypot(cv_error, test_error)
    gap = test_loss - cv_mean - (0.0 if math.isnan(shift) else shift) - max(0.0, optimism)
    z = gap / scale if scale > 0 else (math.inf if gap > 0 else 0.0)
    return OverfitCheck(cv_mean, cv_std, k, cv_error, test_loss, test_error, float(z), max(0.0, optimism),
                        class_shift=shift, unlike=unlike)


def _at_test_shares(rows: np.ndarray, labels: np.ndarray, test_labels: np.ndarray) -> tuple[float, float, str]:
    """(the validation rows' mean loss at the test rows' class shares minus their plain mean, its row-sampling
    error, why it cannot be taken: a test class with too few validation rows)."""
    classes, counts = np.unique(test_labels, return_counts=True)
    mean, variance, lacking = 0.0, 0.0, []
    for c, n_test in zip(classes, counts):
        own = rows[labels == c]
        if len(own) < MIN_CLASS_ROWS:
            lacking.append(f"{len(own)} validation row(s) of class {_shown(c)} against {n_test} of the "
                           f"{len(test_labels)} test rows")
            continue
        share = n_test / len(test_labels)
        mean += share * float(np.mean(own))
        variance += share ** 2 * float(np.var(own, ddof=1)) / len(own)
    if lacking:
        return 0.0, 0.0, ("the validation rows judged hold " + "; ".join(lacking) + ", and a class's rows have "
                          "losses of their own size, so the two losses differ by their class mix alone. More rows "
                          "per validation block (fewer splits, or validation.val_size for time series) give each "
                          "class rows to judge by")
    return mean - float(np.mean(rows)), math.sqrt(variance), ""


def _shown(label: object) -> str:
    return repr(label.item() if isinstance(label, np.generic) else label)


def _row_means(losses: Sequence[np.ndarray], index: Sequence[np.ndarray] | None,
               labels: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Each validation row's loss, averaged over the splits (repeats) that validated it, and its class."""
    if index is None:
        rows = np.concatenate([np.asarray(r, dtype=np.float64) for r in losses]) if losses else np.zeros(0)
        return rows, (np.concatenate([np.asarray(c) for c in labels]) if labels is not None and losses else None)
    total: dict[int, float] = {}
    count: dict[int, int] = {}
    label: dict[int, object] = {}
    for k, (rows, values) in enumerate(zip(index, losses)):
        for j, (i, v) in enumerate(zip(np.asarray(rows).tolist(), np.asarray(values, dtype=np.float64).tolist())):
            total[i] = total.get(i, 0.0) + v
            count[i] = count.get(i, 0) + 1
            if labels is not None:
                label[i] = labels[k][j]
    means = np.array([total[i] / count[i] for i in total])
    return means, (np.array([label[i] for i in total]) if labels is not None else None)


def epoch_selection_optimism(curves: Mapping[int, Sequence[float]], best_epochs: Mapping[int, int]) -> float:
    """Mean over splits of (validation loss at the median best epoch - the split's minimum).

    The final model trains for the epoch rule's epochs (the median best epoch, in updates), not for each
    split's lucky minimum; the difference is how much picking the minimum flattered the estimate.
    A split that early stopping ended before that epoch has no loss there and is left out: its last
    epoch stood in for it, and a curve that climbed through its patience window (a fold holding a skewed
    target's outliers) was counted as "optimism" of most of the cross-validation loss, hiding the alarm.
    """
    if not curves or not best_epochs:
        return 0.0
    rule = max(int(round(float(np.median(list(best_epochs.values()))))), 1)
    gaps = []
    for k, curve in curves.items():
        values = [v for v in curve if v is not None and math.isfinite(v)]
        if not values or len(curve) < rule:
            continue
        at = curve[rule - 1]
        if at is not None and math.isfinite(at):
            gaps.append(float(at) - min(values))
    return float(np.mean(gaps)) if gaps else 0.0
