"""One Optuna trial: sample settings, train a fresh model per split, report, prune, aggregate.

Intermediate values are reported at step ``split * STEP_STRIDE + epoch`` (epoch 1-based), and a
finished split's best validation loss at ``split * STEP_STRIDE``: split ``k`` holds the same rows in
every trial, and search/studies/pruning.py keeps the two levels apart, so a pruner only ever compares the same
epoch of the same split, or the same finished split.
"""
from __future__ import annotations

import errno
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from search import models
from search._redact import redact
from search.errors import FAILURE_ATTR, FailureKind
from search.runner import _outage, checkpoints
from search.studies import space_versions
from search.studies.space_versions import BUILDER_CODE_ATTR
from search.studies import pruning, writes
from search.studies._identity import INTERVAL_ATTR, interval_of, worker_identity
from search.data import Dataset
from search.runner.results import SplitResult, TrialListener, TrialOutcome
from search.space import Space
from search.splits import Split
from search.runner.stopping import StopRequest, TrialInterrupted

STEP_STRIDE = pruning.STEP_STRIDE
PRUNE_WARMUP_EPOCHS = pruning.PRUNE_WARMUP_EPOCHS
LISTENER_STRIKES = 3  # trials in a row in which a listener failed before it is turned off for the run


class OverBudget(Exception):
    """Other workers already hold the study's remaining budget; this trial does not train."""


class DiskFull(Exception):
    """A checkpoint could not be written: no trial can succeed until space is freed."""


@dataclass
class Objective:
    space: Space
    dataset: Dataset
    splits: Sequence[Split]
    home: Path
    listeners: Sequence[TrialListener] = ()
    stop: StopRequest | None = None
    budget: int | None = None  # the study's total of finished trials, shared by all workers
    # The space a trial samples from, when it changes between trials (the phased workflow, search/workflow/phases.py).
    space_for: Callable[[Any], Space] | None = None
    _warned: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)
    _muted: set[int] = field(default_factory=set, init=False, repr=False)       # for the rest of this trial
    _off: set[int] = field(default_factory=set, init=False, repr=False)         # for the rest of the run
    _failing: dict[int, int] = field(default_factory=dict, init=False, repr=False)  # trials in a row
    _space_digest: str = field(default="", init=False, repr=False)
    _builder_code: str | None = field(default=None, init=False, repr=False)
    running: Any = field(default=None, init=False, repr=False)  # the trial last started
    untold: tuple[Any, TrialOutcome] | None = field(default=None, init=False, repr=False)  # its end, not yet heard

    def __post_init__(self) -> None:
        from search.runner import _preflight

        # The version of the space file the study stores for this run (session.run), named by each trial.
        self._space_digest = space_versions.digest_of(self.space)
        # And the builder's code: reproduce says where the function it is given does something else.
        self._builder_code = _preflight.builder_code(self.space)

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        self.running = trial  # the run loop's to settle when the trial ends untold (search/runner/_outage.py)
        trial = writes.TrialWithBatchedWrites(trial)
        try:
            values = self._run(trial)
            trial.flush()  # Optuna refuses writes to a finished trial: all are made before it is told
        except BaseException as exc:
            if isinstance(exc, Exception) and (abandoned := _outage.abandonment(exc, trial.number)) is not None:
                raise abandoned from exc
            if isinstance(exc, _outage.TrialAbandoned):
                raise
            try:
                trial.flush()
            except Exception:  # the trial already failed for its own reason, which is the one to keep
                pass
            raise
        return values

    def _run(self, trial: Any) -> float | tuple[float, float]:
        import optuna

        # Lets a restarted run on this host tell a trial whose process died from one still running.
        trial.set_user_attr("worker", worker_identity())
        trial.set_user_attr(space_versions.DIGEST_ATTR, self._space_digest)
        if self._builder_code:
            trial.set_user_attr(BUILDER_CODE_ATTR, self._builder_code)
        if (interval := interval_of(getattr(getattr(trial, "study", None), "_storage", None))) is not None:
            # Other workers judge this trial silent by this worker's heartbeats, not by their own: written now.
            trial.set_user_attr(INTERVAL_ATTR, interval)
            trial.flush()
        if self.budget is not None and _over_budget(trial, self.budget):
            trial.set_user_attr("reason", "over budget: other workers hold the remaining trials")
            trial.set_user_attr(FAILURE_ATTR, FailureKind.OVER_BUDGET.value)
            raise OverBudget(f"trial {trial.number} is over the study's budget of {self.budget}")
        outcome = TrialOutcome(trial.number, "complete", {},
                               metric_name=models.Head(self.dataset.task, self.dataset.n_outputs).metric)
        try:
            space = self.space_for(trial) if self.space_for is not None else self.space
            settings = outcome.settings = space.sample(trial)
            self._emit("on_trial_start", trial, settings)
            if not self._fit_fused(trial, settings, outcome):
                self._fit_one_by_one(trial, settings, outcome)
            for key, value in outcome.metrics().items():
                trial.set_user_attr(key, value)
        except TrialInterrupted as exc:
            outcome.state, outcome.reason = "interrupted", str(exc)
            trial.set_user_attr("reason", redact(outcome.reason))
            trial.set_user_attr(FAILURE_ATTR, FailureKind.INTERRUPTED.value)
            self._emit("on_trial_end", trial, outcome)
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, but leave the trial queued and its run closed
            outcome.state, outcome.reason = "interrupted", "interrupted at once by a second Ctrl-C; queued to run again"
            trial.set_user_attr("reason", redact(outcome.reason))
            trial.set_user_attr(FAILURE_ATTR, FailureKind.INTERRUPTED.value)
            self._emit("on_trial_end", trial, outcome)
            raise
        except optuna.TrialPruned as exc:
            outcome.state, outcome.reason = "pruned", str(exc)
            trial.set_user_attr("reason", redact(outcome.reason))
            for key, value in outcome.metrics().items():  # what the finished splits measured
                trial.set_user_attr(key, value)
            self._emit("on_trial_end", trial, outcome)
            raise
        except Exception as exc:
            if (abandoned := _outage.abandonment(exc, trial.number)) is not None:
                # Listeners hear of it once the run loop has settled it: they read the storage (the tracker ranks
                # the trial), which may be away now.
                outcome.state, outcome.reason = abandoned.state, abandoned.reason
                trial.drop_writes()
                self.untold = (trial, outcome)
                raise abandoned from exc
            outcome.state, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("reason", redact(outcome.reason)[:2000])
            kind = FailureKind.DISK_FULL if isinstance(exc, DiskFull) else FailureKind.BAD_SETTINGS
            trial.set_user_attr(FAILURE_ATTR, kind.value)
            self._emit("on_trial_end", trial, outcome)
            raise
        # Outside the try: a Ctrl-C while listeners hear of a finished trial must not fail it too.
        self._emit("on_trial_end", trial, outcome)
        return self._values(outcome)

    def end_untold(self) -> None:
        """Tell the listeners how a trial that ended untold (search/runner/_outage.py) ended."""
        if self.untold is not None:
            (trial, outcome), self.untold = self.untold, None
            self._emit("on_trial_end", trial, outcome)

    def _fit_one_by_one(self, trial: Any, settings: dict[str, dict[str, Any]], outcome: TrialOutcome) -> None:
        """The sequential path: split after split, each judged by both pruning levels as it goes."""
        for split in self.splits:
            self._emit("on_split_start", trial, split.index, len(self.splits))
            result = self._fit(trial, settings, split)
            self._split_done(trial, outcome, result)
            self._check(result, trial, last=split.index == self.splits[-1].index)
            self._judge_split(trial, result, len(outcome.splits))

    def _fit_fused(self, trial: Any, settings: dict[str, dict[str, Any]], outcome: TrialOutcome) -> bool:
        """The fused path (search/runner/fused.py): all splits at once; False where it cannot be taken.

        Within-split pruning judges, each epoch, the curve of the highest split still training (the
        first split for resource-based pruners); the across-split rule has nothing left to save when
        all splits finish together, so their scores are only reported.
        """

        import optuna

        from search.runner import fused, training

        if not training.fuses(settings):
            return False
        seeds = [self._seed(trial, split) for split in self.splits]
        for split in self.splits:
            self._emit("on_split_start", trial, split.index, len(self.splits))
        multi_objective = self.space.study.multi_objective

        last = int(settings["train"]["epochs"])

        def on_epoch(epoch: int, logs_by_split: dict[int, dict[str, float]]) -> bool:
            return self._watch_epoch(trial, epoch, logs_by_split, final=epoch >= last)

        on_batch = self.stop.raise_if_urgent if self.stop is not None else None
        try:
            pairs = fused.train(self.space, settings, self.dataset, self.splits, seeds, on_epoch, on_batch)
        except fused.NotFusable as exc:
            training.say_not_fused(settings, str(exc))
            return False
        # Checkpoints only where retention keeps them: a trial that ends here (pruned, diverged, stopped), or
        # one outside the best keep_checkpoints, would have its files deleted as soon as it is told.
        ending = any(r.diverged or r.stop_reason == "stopped" for _, r in pairs)
        save = not ending and self._ranks_among_kept(trial, [r for _, r in pairs], outcome)
        results = [self._keep(trial, model, result, split, save=save)
                   for (model, result), split in zip(pairs, self.splits)]
        del pairs
        for result in results:
            self._split_done(trial, outcome, result)
        # A split that diverged stopped the others: its reason comes first, then a stop request, then pruning.
        for result in sorted(results, key=lambda r: not r.diverged):
            if result.stop_reason == "stopped" and not (self.stop and self.stop.requested):
                judged = getattr(trial.study.pruner, "verdict", "")
                raise optuna.TrialPruned(f"pruned at epoch {result.epochs_run} (all {len(results)} splits, "
                                         f"trained together): the split curve study.pruner "
                                         f"{self.space.study.pruner} judges was worse than it lets through"
                                         + (f" ({judged})" if judged else ""))
            self._check(result, trial, last=True)  # trained together: each split is at its end
        if not multi_objective:
            for result in results:
                trial.report(result.best_val_loss, pruning.split_step(result.split))
        return True

    def _ranks_among_kept(self, trial: Any, results: Sequence[SplitResult], outcome: TrialOutcome) -> bool:
        """Whether a trial with these split results ranks among the best ``study.keep_checkpoints``.

        The same rule as the retention listener (search/runner/session.py), read a moment earlier: a
        trial another worker finishes in between is settled by retention's sweep, as before.
        """
        from search.studies import lifecycle as studies

        losses = [r.best_val_loss for r in results]
        if not all(math.isfinite(v) for v in losses):
            return True  # not a score: _keep decides per split, as on the sequential path
        kept = studies.top_trials(outcome.stored_trials(trial.study), self.space.study.keep_checkpoints,
                                  (trial.number, float(np.mean(losses))))
        return trial.number in kept

    def _split_done(self, trial: Any, outcome: TrialOutcome, result: SplitResult) -> None:
        outcome.splits.append(result)
        trial.set_user_attr("splits", [s.summary() for s in outcome.splits])
        self._emit("on_split_end", trial, result)

    def _check(self, result: SplitResult, trial: Any, last: bool = False) -> None:
        """End the trial after a split that diverged, was stopped by a request, or was pruned. ``last``: no
        split is left to train after this one, so a stop request that let it finish cuts nothing."""
        import optuna

        if result.diverged:
            raise optuna.TrialPruned(f"non-finite loss in split {result.split} at epoch {result.epochs_run}: "
                                     f"these settings diverge")
        if self.stop is not None and self.stop.requested and not (last and result.stop_reason != "stopped"):
            self.stop.raise_if_urgent()
            raise TrialInterrupted(f"stopped by {self.stop.reason} in split {result.split} at epoch "
                                   f"{result.epochs_run}; queued to run again")
        if result.stop_reason == "stopped":
            judged = getattr(trial.study.pruner, "verdict", "")
            raise optuna.TrialPruned(f"pruned in split {result.split} at epoch {result.epochs_run}"
                                     + (f": {judged}" if judged else ""))

    def _judge_split(self, trial: Any, result: SplitResult, n_done: int) -> None:
        """Report a finished split's score; before the last split, let the across-split rule stop the trial."""
        import optuna

        if self.space.study.multi_objective:  # Optuna has no intermediate values for several objectives
            return
        trial.report(result.best_val_loss, pruning.split_step(result.split))
        if n_done < len(self.splits) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after {n_done} of {len(self.splits)} splits: worse than the best "
                                     f"trial on every finished split")

    def _values(self, outcome: TrialOutcome) -> float | tuple[float, float]:
        objectives = self.space.study.objectives
        if len(objectives) == 1:
            return outcome.value
        return outcome.value, float(outcome.n_params if objectives[1] == "params" else outcome.latency_ms)

    def _seed(self, trial: Any, split: Split) -> int:
        from search.runner import training

        study = self.space.study
        return training.derive_seed(study.seed, study.seeds_of(trial.number, trial.user_attrs), split.index)

    def _fit(self, trial: Any, settings: dict[str, dict[str, Any]], split: Split) -> SplitResult:
        from search.runner import training

        last = int(settings["train"]["epochs"])
        last_split = split.index == self.splits[-1].index

        def on_epoch(epoch: int, logs: dict[str, float]) -> bool:
            return self._watch_epoch(trial, epoch, {split.index: logs}, final=last_split and epoch >= last)

        on_batch = self.stop.raise_if_urgent if self.stop is not None else None
        model, result = training.train_on_split(self.space, settings, self.dataset, split, self._seed(trial, split),
                                                on_epoch, on_batch)
        return self._keep(trial, model, result, split)

    def _watch_epoch(self, trial: Any, epoch: int, logs_by_split: dict[int, dict[str, float]],
                     final: bool = False) -> bool:
        """After an epoch of one split or of all (fused): tell listeners, report, and say whether to stop.

        Stop on a stop request, or when the pruner says so once the first epochs are past. Each split's
        value is reported at its own step; the pruner judges the highest split reported. The trial's
        ``final`` epoch is reported but not judged: pruning there saves no training and throws away a
        finished result, which the sampler learns more from as a complete trial.
        """
        for k, logs in logs_by_split.items():
            self._emit("on_epoch", trial, k, epoch, logs)
        if self.stop is not None and self.stop.requested:
            self.stop.raise_if_urgent()
            # The trial's last epoch is trained: stopping here would throw a finished trial away and run it
            # again from the start. It ends complete, and the run stops before the next one.
            return not final
        if self.space.study.multi_objective:  # Optuna has no intermediate values for several objectives
            return False
        reported = False
        for k, logs in sorted(logs_by_split.items()):
            val_loss = float(logs.get("val_loss", math.nan))
            if math.isfinite(val_loss):
                trial.report(val_loss, pruning.epoch_step(k, epoch))
                reported = True
        return reported and not final and epoch >= PRUNE_WARMUP_EPOCHS and trial.should_prune()

    def _keep(self, trial: Any, model: Any, result: SplitResult, split: Split, save: bool = True) -> SplitResult:
        """Measure a trained split model (size, latency) and write its checkpoint."""
        result.n_params = int(model.count_params())
        if "latency" in self.space.study.objectives and math.isfinite(result.best_val_loss):
            # Forward-pass time does not depend on the values, so unscaled rows measure it as well.
            result.latency_ms = _latency_ms(model, self.dataset.X[split.val])
        if save and math.isfinite(result.best_val_loss):
            path = checkpoints.split_path(self.home, trial.study.study_name, trial.number, split.index)
            try:
                result.checkpoint = checkpoints.save_atomic(model, path)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise DiskFull(f"no space left (disk full or over quota) under {path.parent} while saving split "
                               f"{split.index}'s checkpoint") from None
        return result

    def _emit(self, event: str, *args: Any) -> None:
        """Tell every listener; one that fails (MLflow unreachable, disk full) is warned about, not fatal.

        Listeners are side channels: the trial's result lives in Optuna's storage, so a tracking error
        must neither fail the trial nor count toward the consecutive-failure stop. A call to a dead
        server can take minutes (MLflow retries with backoff), so a listener that failed is not called
        again in that trial except to close it, and one that failed in ``LISTENER_STRIKES`` trials in a
        row is off for the rest of the run.
        """
        if event == "on_trial_start":
            self._muted.clear()
        for listener in self.listeners:
            key = id(listener)
            if key in self._off or (key in self._muted and event != "on_trial_end"):
                continue
            try:
                getattr(listener, event)(*args)
            except Exception as exc:
                self._muted.add(key)
                self._warn_once(listener, event, exc)
            if event == "on_trial_end":
                self._count_strike(listener, failed=key in self._muted)

    def _count_strike(self, listener: Any, failed: bool) -> None:
        key = id(listener)
        self._failing[key] = self._failing.get(key, 0) + 1 if failed else 0
        if self._failing[key] >= LISTENER_STRIKES:
            self._off.add(key)
            print(f"warning: {type(listener).__name__} failed in {LISTENER_STRIKES} trials in a row and is off "
                  f"for the rest of this run; the trials go on and are kept in the Optuna storage",
                  file=sys.stderr)

    def _warn_once(self, listener: Any, event: str, exc: Exception) -> None:
        from search._redact import redact

        key = (type(listener).__name__, getattr(exc, "event", event))  # a deferred write names its own event
        if key in self._warned:  # a dead server fails every call after the first
            return
        self._warned.add(key)
        shown = getattr(exc, "error", exc)
        print(f"warning: {key[0]}.{key[1]} failed ({type(shown).__name__}: {redact(str(shown))[:300]}); the trial "
              f"goes on and its result is kept in the Optuna storage (further failures of this kind are not "
              f"shown)", file=sys.stderr)


def _latency_ms(model: Any, X: np.ndarray, rows: int = 256, repeats: int = 7) -> float:
    """Median wall time of one forward pass over a batch of validation rows, in milliseconds.

    A batch, not one row: a single row measures Python call overhead, not the model.
    """
    batch = X[:rows]
    model(batch, training=False)  # the first call traces the graph
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(batch, training=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def _over_budget(trial: Any, budget: int) -> bool:
    """Finished trials plus running ones that started earlier already fill the budget.

    Workers cannot take a budget slot atomically from Optuna, so at most (workers - 1) trials can be
    created past the budget; this check closes them before they train, lowest trial number first.
    """
    from optuna.trial import TrialState

    trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                            TrialState.RUNNING))
    taken = sum(1 for t in trials if t.state != TrialState.RUNNING or t.number < trial.number)
    return taken >= budget
