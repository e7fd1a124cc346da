"""Pruning at two levels, inside a split's epoch curve and across finished splits, as one Optuna pruner.

A study has one pruner, but a cross-validated trial produces two kinds of numbers that must never be
compared with each other: the running validation loss of one epoch of one split, and the best
validation loss of a finished split. Both are reported as intermediate values of the trial, on disjoint
steps (``STEP_STRIDE`` is 10 000, so epochs are 1..9 999):

======================  ========================  =============================================
what                    step                      judged by
======================  ========================  =============================================
epoch ``e`` of split k  ``k * STEP_STRIDE + e``   the ``within`` pruner (median, percentile, ...)
split ``k`` finished    ``k * STEP_STRIDE``       the ``across`` rule (paired, wilcoxon)
======================  ========================  =============================================

:class:`SplitPruner` sends each ``should_prune()`` to one level, and shows that level only its own
steps: the within pruner sees the current split's epochs (Optuna's median pruner would otherwise take
the trial's best value over *all* steps, i.e. an earlier, easier split), and the across rule sees only
finished-split scores. Split ``k`` holds the same rows in every trial, so both levels compare like with
like.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
from optuna.pruners import BasePruner

from search._numbers import sig

STEP_STRIDE = 10_000
# The first epochs of every split are never judged: all curves start high and cross.
PRUNE_WARMUP_EPOCHS = 5
# Defaults of the within-split rule, chosen by benchmarks/fairness.py (the README gives the numbers):
# judge nothing until this many non-baseline trials are complete ...
PRUNE_STARTUP_TRIALS = 5
# ... and no epoch before this fraction of the epoch at which complete trials reached their best (median).
PRUNE_WARMUP_FRACTION = 0.5
# The complete trials a curve is judged against are read from the storage at most this often per trial.
REREAD_SECONDS = 1.0


def epoch_step(split: int, epoch: int) -> int:
    """The step of a 1-based epoch of a split."""
    return split * STEP_STRIDE + epoch


def split_step(split: int) -> int:
    """The step of a finished split's score (its best validation loss): the split's epoch-0 slot."""
    return split * STEP_STRIDE


def split_scores(trial: Any) -> dict[int, float]:
    """``{split: best validation loss}`` of the trial's finished splits, from its intermediate values."""
    return {step // STEP_STRIDE: value for step, value in trial.intermediate_values.items()
            if step % STEP_STRIDE == 0}


def _view(trial: Any, steps: dict[int, float]) -> Any:
    """A copy of a frozen trial that shows only ``steps``: what one level of pruning may compare."""
    view = copy.copy(trial)
    view.intermediate_values = dict(steps)
    return view


class RegularizationProfile:
    """Where a trial's searched regularizers sit: off (-1), or on at a position in their searched range (0..1).

    Two trials are *alike* when every regularizer both sampled is off in both, or on in both within
    ``radius`` of its range (on the sampling scale: log for a log range). Booleans and choices must
    match. Settings other than regularizers (capacity, learning rate) do not count.
    """

    def __init__(self, searched: dict[str, dict[str, Any]], off: dict[str, Any], radius: float = 0.25) -> None:
        self.searched, self.off, self.radius = searched, off, radius

    @classmethod
    def of_space(cls, space: Any, radius: float = 0.25) -> "RegularizationProfile":
        from search.space import is_distribution

        off = space.regularizers()
        searched = {name: dist for name, dist in space.leaves().items() if name in off and is_distribution(dist)}
        return cls(searched, off, radius)

    def coordinates(self, params: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, dist in self.searched.items():
            if dist.get("or_off") and params.get(f"{name}.on") is False:
                out[name] = -1.0
                continue
            if name not in params:
                continue
            value = params[name]
            if "choice" in dist:
                choices = list(dist["choice"])
                on = [c for c in choices if c != self.off[name]]
                out[name] = -1.0 if value == self.off[name] or value not in on else \
                    (on.index(value) / (len(on) - 1) if len(on) > 1 else 1.0)
                continue
            lo, hi = (float(v) for v in (dist.get("float") or dist.get("int") or (0.0, 1.0)))
            if not dist.get("or_off") and value == self.off[name]:
                out[name] = -1.0
                continue
            if dist.get("log") and lo > 0 and float(value) > 0:
                lo, hi, value = np.log(lo), np.log(hi), np.log(float(value))
            out[name] = float(np.clip((float(value) - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0
        return out

    def alike(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        ca, cb = self.coordinates(a), self.coordinates(b)
        for name in ca.keys() & cb.keys():
            x, y = ca[name], cb[name]
            if (x < 0) != (y < 0) or (x >= 0 and abs(x - y) > self.radius + 1e-9):
                return False
        return True


class LateMedianRule:
    """Within a split: stop a curve whose best value so far is worse than the complete trials' median.

    Optuna's median pruner, with the two defaults that made it unfair to regularized trials changed
    (measured in benchmarks/fairness.py): the unregularized baseline, the fastest starter by design, does
    not count toward the ``startup`` complete trials; and the warm-up is not a fixed epoch count but
    ``warmup_fraction`` of the median epoch at which complete trials reached their best validation loss
    (never less than ``PRUNE_WARMUP_EPOCHS``). Dropout, L2 and augmentation slow the first epochs down and
    win later; a curve is judged only once the trials that finished had done most of their learning.
    With a ``profile`` (the default, ``study.prune_compare: alike``), a curve is judged only against
    complete trials whose regularizers are alike (:class:`RegularizationProfile`), and only once
    ``startup`` of those exist: a heavily regularized curve is never cut for starting slower than
    unregularized ones. ``percentile`` 50 is the median; 25 keeps only curves in the best quarter.
    """

    def __init__(self, startup: int = PRUNE_STARTUP_TRIALS, warmup_fraction: float = PRUNE_WARMUP_FRACTION,
                 percentile: float = 50.0, profile: RegularizationProfile | None = None) -> None:
        self.startup, self.warmup_fraction, self.percentile = startup, warmup_fraction, percentile
        self.verdict = ""  # the numbers behind the last curve this rule stopped
        self.profile = profile  # when set, a curve is judged only against alike-regularized complete trials
        # ((study id, trial number), when read, (warm-up epoch, complete trials compared with))
        self._read: tuple[tuple[int, int], float, tuple[int, list[Any]]] | None = None

    def warmup(self, complete: list[Any]) -> int:
        """The first epoch this rule may judge, given the complete trials."""
        best_epochs = [float(t.user_attrs["best_epoch_mean"]) for t in complete
                       if isinstance(t.user_attrs.get("best_epoch_mean"), (int, float))]
        median = float(np.median(best_epochs)) if best_epochs else 0.0
        return max(PRUNE_WARMUP_EPOCHS, int(np.ceil(self.warmup_fraction * median)))

    def _compared(self, study: Any, trial: Any) -> tuple[int, list[Any]]:
        """The first epoch to judge, and the complete trials a curve is judged against (the alike ones
        under a profile), read at most every ``REREAD_SECONDS`` per trial.

        A read of the study costs about as much as a short epoch, and sorting out the alike trials grows
        with the study; done every epoch, they were the largest part of the harness's cost per trial. One
        worker's study gains no complete trial while one of its trials trains, so the decisions are the
        same; with several, a trial another worker completed in the last second counts from the next read.
        """
        from optuna.trial import TrialState

        key, now = (id(study), trial.number), time.monotonic()
        # A trial outside a study (number -1, made by ``create_trial``) has nothing to key on: read afresh.
        if (trial.number >= 0 and self._read is not None and self._read[0] == key
                and now - self._read[1] < REREAD_SECONDS):
            return self._read[2]
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if not t.user_attrs.get("baseline") and t.number != trial.number]
        warmup = self.warmup(complete)
        if self.profile is not None:
            complete = [t for t in complete if self.profile.alike(t.params, trial.params)]
        self._read = (key, now, (warmup, complete))
        return warmup, complete

    def prune(self, study: Any, trial: Any) -> bool:
        step = trial.last_step
        if step is None:
            return False
        warmup, complete = self._compared(study, trial)
        if step % STEP_STRIDE < warmup or len(complete) < self.startup:
            return False
        others = [t.intermediate_values[step] for t in complete if step in t.intermediate_values]
        others = [v for v in others if np.isfinite(v)]
        mine = [v for v in trial.intermediate_values.values() if np.isfinite(v)]
        if not others or not mine:
            return False
        bar = float(np.percentile(others, self.percentile))
        if min(mine) <= bar:
            return False
        # Said with the pruned trial, in numbers, as Optuna's users read "pruned at step N with value X".
        which = "median" if self.percentile == 50 else f"{self.percentile:g}th percentile"
        self.verdict = (f"its best validation loss on split {step // STEP_STRIDE} by epoch {step % STEP_STRIDE}, "
                        f"{sig(min(mine))}, was above the {which} of the {len(others)} compared complete trials "
                        f"at that epoch, {sig(bar)}")
        return True


class PairedSplitRule:
    """Across splits: prune a trial that is clearly worse than the best trial on the same splits.

    After ``min_splits`` finished splits (and before the last), let ``d_k`` be the trial's loss on split
    ``k`` minus the best complete trial's loss on split ``k``. Prune when the trial is worse on *every*
    finished split by more than ``margin`` times the best trial's split-to-split standard deviation.

    Why not Optuna's WilcoxonPruner: an exact signed-rank test on two pairs cannot give p < 0.25, so after
    two of five splits (or before the end of a 3-fold plan) it can never prune at a sane threshold. Why
    this rule is safe: the pairing removes split difficulty (split k has the same rows in every trial); to
    still end up ahead, the remaining splits would each have to beat the best trial by more than
    ``margin * std * n_done / n_left``, a gap larger than the spread of the best trial's own splits.
    It only ever stops trials; the value of a trial that completes is the mean of all its splits, as
    without pruning.
    """

    def __init__(self, min_splits: int = 2, margin: float = 1.0) -> None:
        self.min_splits, self.margin = min_splits, margin

    def prune(self, study: Any, trial: Any, n_splits: int | None = None) -> bool:
        mine = split_scores(trial)
        if len(mine) < self.min_splits or (n_splits is not None and len(mine) >= n_splits):
            return False
        best = _best_complete(study)
        if best is None:
            return False
        theirs = split_scores(best)
        shared = sorted(set(mine) & set(theirs))
        if len(shared) < self.min_splits:
            return False
        diffs = np.array([mine[k] - theirs[k] for k in shared])
        if not np.all(np.isfinite(diffs)):
            return False
        all_best = np.array(list(theirs.values()))
        spread = float(np.std(all_best, ddof=1)) if len(all_best) > 1 else 0.0
        # A floor keeps a best trial whose splits happen to agree exactly from making the rule hair-trigger.
        tolerance = self.margin * max(spread, 0.01 * float(np.mean(np.abs(all_best))))
        return bool(np.all(diffs > tolerance))


class WilcoxonSplitRule:
    """Across splits: Optuna's Wilcoxon signed-rank rule, on finished-split scores only.

    Needs more splits than the paired rule to act (p >= 0.25 with two pairs, >= 0.125 with three).
    """

    def __init__(self, p_threshold: float = 0.1, min_splits: int = 2) -> None:
        self.p_threshold, self.min_splits = p_threshold, min_splits

    def prune(self, study: Any, trial: Any, n_splits: int | None = None) -> bool:
        import scipy.stats as ss

        mine = split_scores(trial)
        if len(mine) < self.min_splits or (n_splits is not None and len(mine) >= n_splits):
            return False
        best = _best_complete(study)
        theirs = split_scores(best) if best is not None else {}
        shared = sorted(set(mine) & set(theirs))
        if len(shared) < max(2, self.min_splits):
            return False
        diffs = np.array([mine[k] - theirs[k] for k in shared])
        if not np.all(np.isfinite(diffs)) or np.mean(diffs) <= 0:
            return False
        p = ss.wilcoxon(diffs, alternative="greater", zero_method="zsplit").pvalue
        return bool(p < self.p_threshold)


class SplitPruner(BasePruner):
    """The study's pruner: an Optuna pruner inside a split, a split rule across splits.

    ``within`` is any Optuna pruner (or None). ``first_split_only`` is set for resource-based pruners
    (successive halving, Hyperband): their rungs are epoch counts, and a later split's epoch 15 is not
    the same resource as the first split's epoch 15 of another trial, so they judge only split 0.
    """

    def __init__(self, within: Any = None, across: Any = None, first_split_only: bool = False,
                 n_splits: int | None = None) -> None:
        self.within, self.across = within, across
        self.verdict = ""
        self.first_split_only, self.n_splits = first_split_only, n_splits

    def prune(self, study: Any, trial: Any) -> bool:
        step = trial.last_step
        if step is None:
            return False
        split = step // STEP_STRIDE
        if split_step(split) in trial.intermediate_values:  # split ``split`` just finished
            if self.across is None:
                return False
            return self.across.prune(study, _view(trial, {s: v for s, v in trial.intermediate_values.items()
                                                          if s % STEP_STRIDE == 0}), self.n_splits)
        if self.within is None:
            return False
        if self.first_split_only and split > 0:
            # One after another: split 0 has finished, nothing more to judge. Fused (all splits at once):
            # judge split 0's curve, the only one these rungs were set for.
            if split_step(0) in trial.intermediate_values or epoch_step(0, 1) not in trial.intermediate_values:
                return False
            split = 0
        curve = {s: v for s, v in trial.intermediate_values.items() if s // STEP_STRIDE == split}
        pruned = bool(self.within.prune(study, _view(trial, curve)))
        if pruned:  # kept until the next pruning: the trial's reason reads it once its splits stop
            self.verdict = str(getattr(self.within, "verdict", ""))
        return pruned


def _best_complete(study: Any) -> Any:
    try:
        return study.best_trial
    except (ValueError, RuntimeError):  # no complete trial yet; a multi-objective study
        return None
