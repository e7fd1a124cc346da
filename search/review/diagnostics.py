"""Overfitting diagnostics of learning curves: pure functions on per-epoch loss histories.

No Keras, Optuna or MLflow here, so every rule can be tested on constructed curves. The rule for the
``fit`` tag is the one README.md states ("Reading a trial's fit"); change both together.

Epochs are 1-based throughout, as in the rest of the harness.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

# Validation loss must rise for this many epochs in a row (see overfit_onset) to mark an onset.
DEFAULT_PATIENCE = 3
# ... and end the window at least this much (relative) above the onset epoch's value, so that noise
# on a plateau does not count as a rise.
RISE_TOLERANCE = 0.02
# A split whose best losses stay at or above this share of the chance-level loss learned too little.
UNDERFIT_RATIO = 0.7
# The fit rule's overfitting: after the best epoch the validation loss ends (mean of its last RISE_TAIL
# epochs) above its best by at least OVERFIT_GAP_SHARE of the generalization gap at the best epoch and
# at least OVERFIT_CHANCE_SHARE of the chance-level loss. A few rising epochs before early stopping
# ends a split are the rule doing its job and stay under these margins.
OVERFIT_GAP_SHARE = 0.5
OVERFIT_CHANCE_SHARE = 0.05
RISE_TAIL = 3
# Ties between splits are broken toward the more serious diagnosis.
_SEVERITY = ("overfit", "underfit", "good")


@dataclass(frozen=True)
class SplitDiagnosis:
    split: int
    best_epoch: int           # epoch of the lowest validation loss (0 when there is none)
    best_val_loss: float
    train_loss_at_best: float
    gap: float                # validation minus training loss at the best epoch
    onset: int | None         # the epoch after which validation loss turned up, when overfit; else None
    fit: str                  # "underfit" | "good" | "overfit"
    rise: float = 0.0         # how far validation loss ended above its best (see OVERFIT_GAP_SHARE)


@dataclass(frozen=True)
class TrialDiagnosis:
    splits: tuple[SplitDiagnosis, ...]
    fit: str
    gap: float                # mean over splits
    onset: int | None         # median onset of the overfitting splits, when the trial is overfit
    overfit_splits: int

    def metrics(self) -> dict[str, float]:
        """Trial-level and per-split numbers, by MLflow metric name."""
        out: dict[str, float] = {"gap_mean": self.gap, "overfit_splits": float(self.overfit_splits)}
        if self.onset is not None:
            out["overfit_onset"] = float(self.onset)
        for s in self.splits:
            out[f"split_{s.split}/gap"] = s.gap
            if s.onset is not None:
                out[f"split_{s.split}/overfit_onset"] = float(s.onset)
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def attrs(self) -> dict[str, object]:
        """What a study keeps per trial (Optuna user attributes) for tables and reports."""
        return {"fit": self.fit, "gap_mean": self.gap if math.isfinite(self.gap) else None,
                "overfit_onset": self.onset}


def overfit_onset(loss: Sequence[float], val_loss: Sequence[float], patience: int = DEFAULT_PATIENCE,
                  tolerance: float = RISE_TOLERANCE) -> int | None:
    """The first epoch *e* after which validation loss rises for ``patience`` epochs while training
    loss keeps falling.

    Precisely: every validation loss of epochs e+1 … e+P is above epoch e's, the one at e+P is at least
    ``tolerance`` (relative) above it, and the training loss at e+P is below the one at e.
    """
    n = min(len(loss), len(val_loss))
    for e in range(n - patience):
        v0, l0 = val_loss[e], loss[e]
        window = val_loss[e + 1:e + 1 + patience]
        if not (math.isfinite(v0) and math.isfinite(l0) and all(math.isfinite(v) for v in window)):
            continue
        rises = all(v > v0 for v in window) and window[-1] >= v0 + tolerance * abs(v0)
        if rises and loss[e + patience] < l0:
            return e + 1
    return None


def diagnose_split(loss: Sequence[float], val_loss: Sequence[float], reference: float | None = None,
                   patience: int = DEFAULT_PATIENCE, split: int = 0,
                   own: tuple[float, float] | None = None) -> SplitDiagnosis:
    """Best epoch, gap and onset of one split's curves, and its fit (see README for the rule).

    ``reference`` is the chance-level loss (see :func:`chance_loss`); without it a split is never
    called underfit, and the overfitting margin is a share of the best validation loss instead.
    ``own`` is the split's own pair (see :func:`split_chance_losses`), which the rule uses where given:
    splits of one data set differ (a fold holding the outliers of a skewed target has ten times the
    variance of another), and a model no better than the mean was called good on the quiet folds.
    ``patience`` is kept for callers; the rule no longer counts rising epochs (early stopping's own
    patience window would always count as an onset).
    """
    loss, val_loss = [float(v) for v in loss], [float(v) for v in val_loss]
    finite = [i for i, v in enumerate(val_loss) if math.isfinite(v)]
    if not finite:
        return SplitDiagnosis(split, 0, math.nan, math.nan, math.nan, None, "underfit")
    best = min(finite, key=lambda i: val_loss[i])  # the first of equal minima, as training keeps it
    train = loss[best] if best < len(loss) else math.nan
    gap = val_loss[best] - train
    after = [v for v in val_loss[best + 1:] if math.isfinite(v)]
    rise = float(np.mean(after[-RISE_TAIL:])) - val_loss[best] if after else 0.0
    train_reference, val_reference = own if own is not None and min(own) > 0 else (reference, reference)
    scale = val_reference if val_reference is not None and val_reference > 0 else abs(val_loss[best])
    margin = max(OVERFIT_GAP_SHARE * gap if math.isfinite(gap) else 0.0, OVERFIT_CHANCE_SHARE * scale)
    onset = None
    if after and rise >= margin:
        fit, onset = "overfit", best + 1
    elif train_reference is not None and val_reference is not None and train_reference > 0 and \
            val_reference > 0 and _learned_too_little(train, val_loss[best], train_reference, val_reference):
        fit = "underfit"
    else:
        fit = "good"
    return SplitDiagnosis(split, best + 1, val_loss[best], train, gap, onset, fit, rise)


def _learned_too_little(train: float, val: float, train_reference: float, val_reference: float) -> bool:
    # The better of the two: dropout inflates the training loss Keras reports, so a high training loss
    # alone does not mean the network cannot fit its rows. Each is measured against its own rows' chance.
    shares = [v / r for v, r in ((train, train_reference), (val, val_reference)) if math.isfinite(v)]
    return not shares or min(shares) >= UNDERFIT_RATIO


def diagnose_trial(histories: Mapping[int, Mapping[str, Sequence[float]]], reference: float | None = None,
                   patience: int = DEFAULT_PATIENCE,
                   own: Mapping[int, tuple[float, float]] | None = None) -> TrialDiagnosis:
    """Every split's diagnosis (``histories``: split → {"loss": [...], "val_loss": [...]}) and the trial's;
    ``own``: each split's chance-level losses (:func:`split_chance_losses`), where known.

    The trial's fit is the most common split fit, ties going to overfit, then underfit.
    """
    own = own or {}
    splits = tuple(diagnose_split(h.get("loss", []), h.get("val_loss", []), reference, patience, split=k,
                                  own=own.get(k)) for k, h in sorted(histories.items()))
    if not splits:
        return TrialDiagnosis((), "good", math.nan, None, 0)
    counts = Counter(s.fit for s in splits)
    fit = max(_SEVERITY, key=lambda f: (counts[f], -_SEVERITY.index(f)))
    onsets = sorted(s.onset for s in splits if s.onset is not None)
    onset = int(np.median(onsets) // 1) if fit == "overfit" and onsets else None
    gaps = [s.gap for s in splits if math.isfinite(s.gap)]
    return TrialDiagnosis(splits, fit, float(np.mean(gaps)) if gaps else math.nan, onset, len(onsets))


def chance_loss(y: np.ndarray, task: str) -> float:
    """The loss of always predicting the training prior: what a network that learned nothing scores.

    Cross-entropy of the class frequencies for classification (binary or multiclass), the variance of
    the target for regression (mean squared error of predicting its mean).
    """
    y = np.asarray(y)
    if task == "regression":
        return float(np.var(y.astype(float)))
    _, counts = np.unique(y, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mean_curve(histories: Mapping[int, Mapping[str, Sequence[float]]], key: str) -> list[float]:
    """Per-epoch mean over splits, to the last epoch any split trained.

    A split that stopped early keeps the weights of its best epoch (lowest validation loss), so from its stop
    on it counts with that epoch's value. A mean of the splits still training alone dropped when the harder
    ones stopped: its lowest point was half the trial's score in one study, drawn as the trial's best.
    """
    series: list[tuple[list[float], int]] = []
    for history in histories.values():
        values = list(history.get(key, []))
        if not values:
            continue
        val = [v if v is not None and math.isfinite(v) else math.inf for v in history.get("val_loss", [])]
        best = int(np.argmin(val)) if len(val) == len(values) and min(val, default=math.inf) < math.inf \
            else len(values) - 1
        series.append((values, best))
    if not series:
        return []
    out = []
    for e in range(max(len(values) for values, _ in series)):
        at = [values[e] if e < len(values) else values[best] for values, best in series]
        finite = [v for v in at if v is not None and math.isfinite(v)]
        out.append(float(np.mean(finite)) if finite else math.nan)
    return out


# A trial trained with train.class_weight: balanced (its chance-level loss is that of equal shares).
CLASS_WEIGHTED_ATTR = "class_weighted"


def equal_shares_loss(study: Any) -> float | None:
    """The cross-entropy of predicting every class alike, log(classes): what a class-weighted model that learned
    nothing aims at. None where the study says no number of classes."""
    classes = (study.user_attrs.get("data_summary") or {}).get("classes") or {}
    return math.log(len(classes)) if len(classes) >= 2 else None


def split_chance_losses(y: np.ndarray, task: str, splits: Sequence[Any]) -> dict[int, tuple[float, float]]:
    """Each split's chance-level losses (training rows, validation rows): what predicting the training rows'
    prior scores on each. On the validation rows that is the prior of the *training* rows (their mean, their
    class shares), as a network that learned nothing predicts it."""
    y = np.asarray(y)
    out: dict[int, tuple[float, float]] = {}
    for split in splits:
        train, val = y[split.train], y[split.val]
        if not len(train) or not len(val):
            continue
        if task == "regression":
            mean = float(np.mean(train.astype(float)))
            out[int(split.index)] = (float(np.var(train.astype(float))),
                                     float(np.mean((val.astype(float) - mean) ** 2)))
            continue
        classes, counts = np.unique(train, return_counts=True)
        shares = dict(zip(classes.tolist(), (counts / counts.sum()).tolist()))
        # A class the training rows lack gets the smallest share a row could have had, not log(0).
        floor = 1.0 / (len(train) + 1)
        val_shares = np.array([shares.get(c, floor) for c in val.tolist()])
        out[int(split.index)] = (chance_loss(train, task), float(-np.mean(np.log(val_shares))))
    return out


def split_references_from_attr(value: Any) -> dict[int, tuple[float, float]]:
    """The study attribute's form ({"0": [train, val], ...}) read back; {} for a study from before it."""
    if not isinstance(value, Mapping):
        return {}
    out: dict[int, tuple[float, float]] = {}
    for key, pair in value.items():
        try:
            train, val = (float(v) for v in pair)
            out[int(key)] = (train, val)
        except (TypeError, ValueError):
            continue
    return out
