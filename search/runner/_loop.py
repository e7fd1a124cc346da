"""The trial loop of one process: one trial at a time, so that every limit (the study's budget, the run's
own, a stop request, the failures in a row) is checked between trials."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from search.errors import FailureKind

if TYPE_CHECKING:
    from search.runner.session import RunOptions

# How often a worker with nothing to start looks again at the trials other processes hold.
HELD_POLL_SECONDS = 2.0


class TrialLoop:
    """Runs trials one at a time, so every limit is checked between trials.

    Each ``study.optimize(n_trials=1)`` call keeps what Optuna does per trial (heartbeats, failing
    stale trials, catching exceptions); the loop adds the study-wide budget, the run's limits, the stop
    request and the consecutive-failure rule.
    """

    def __init__(self, study: Any, objective: Any, budget: int, max_failures: int, options: "RunOptions",
                 stop: Any) -> None:
        self.study, self.objective, self.budget, self.max_failures = study, objective, budget, max_failures
        self.options, self.stop = options, stop
        self.consecutive_failures, self.gave_up, self.last_failure = 0, False, ""
        self.disk_full, self.requeued = "", False
        self.started = 0  # trials this run asked for
        # The caller's own callbacks (search.run(callbacks=)): an exception one raised, to be raised once the run
        # has closed its stores, and whether one called study.stop().
        self.callback_error: Exception | None = None
        self.stopped_by_callback = False

    def run(self) -> None:
        from search._stack import call_with_room

        try:
            # Optuna's and MLflow's calls between trials run deep too (search/_stack.py).
            call_with_room(self._run)
            self.stop.raise_if_urgent()
        except KeyboardInterrupt:  # a second Ctrl-C, wherever in the loop it lands
            self.requeued = self._requeue_interrupted()
            raise

    def _wait_for_held_trials(self, deadline: float | None) -> bool:
        """Wait while the rest of the budget is held by trials running in other processes. True: one of them
        ended without finishing (failed by its heartbeats or its process gone) and another trial may start;
        False: they finished the budget, or the run must stop."""
        import optuna

        from search.runner import recovery
        from search.studies import lifecycle as studies

        said = False
        while not self.stop.requested and (deadline is None or time.monotonic() < deadline):
            trials = self.study.get_trials(deepcopy=False)
            if studies.count_finished(trials) >= self.budget:
                return False
            if studies.count_taken(trials) < self.budget:
                return True
            if not said and self.options.worker_index == 0:
                running = [t.number for t in trials if t.state.name == "RUNNING"]
                # The gRPC proxy carries no heartbeats: promising a recovery there left the run waiting all night.
                silent = ("a trial whose worker died on another host stays RUNNING behind the gRPC storage proxy, "
                          "which carries no heartbeats; --timeout bounds this wait" if str(self.options.storage or "")
                          .startswith("grpc://") else "a silent one is queued again here once its heartbeats stop")
                print(f"waiting for trial(s) {', '.join(map(str, running))}, running in other processes, which "
                      f"hold the rest of the budget ({silent})", file=sys.stderr, flush=True)
                said = True
            time.sleep(HELD_POLL_SECONDS)
            optuna.storages.fail_stale_trials(self.study)  # with heartbeats on: fails and queues the silent
            recovery.recover_orphans(self.study)
        return False

    def _requeue_interrupted(self) -> bool:
        """Queue this process's last trial again if the interrupt cut it short, unless that is done."""
        from search.runner import recovery

        last = _own_last_trial(self.study)
        if last is None or last.state.name != "FAIL":
            return False
        # SILENT (no reason recorded): the interrupt landed before the trial could record one.
        if FailureKind.of(last) not in (FailureKind.INTERRUPTED, FailureKind.DISK_FULL, FailureKind.SILENT):
            return False
        recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
        return True

    def _run(self) -> None:
        from search.runner import _outage

        deadline = self.options.deadline()
        self.started = 0
        grid = self.objective.space.study.sampler == "grid"
        while not self.stop.requested:
            self.objective.running = None
            try:
                if not self._next(deadline, grid):
                    return
            except _outage.TrialAbandoned as exc:
                self._settle(exc, exc.__cause__ or exc)
                self.objective.end_untold()
            except Exception as exc:
                if _outage.storage_error(exc) is None and not self._taken_over():
                    raise
                self._settle(None, exc)

    def _settle(self, abandoned: Any, exc: BaseException) -> None:
        """After a trial this worker could not tell, or a storage that did not answer: wait for the storage,
        fail and queue again a trial of ours it left running, and say so; the loop then goes on."""
        from search.errors import FailureKind
        from search.runner import _outage, recovery

        trial = self.objective.running
        if abandoned is None or abandoned.state != "failed":  # not taken over: the storage went away
            doing = f"running trial {trial.number}" if trial is not None else "asking for the next trial"
            error = _outage.storage_error(exc)
            if error is not None and not _outage.wait_for_storage(
                    lambda: _outage.probe(self.study._storage), error, doing,
                    stopped=lambda: self.stop.requested, patience=self.options.storage_patience):
                return
            if error is not None:
                print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} the storage answers again", file=sys.stderr, flush=True)
        if trial is None:
            return
        try:
            stored = self.study._storage.get_trial(trial._trial_id)
            if stored.state.name == "RUNNING":
                why = abandoned.reason if abandoned is not None else (
                    f"the Optuna storage became unreachable as it was told ({_outage.describe(exc)}); queued to run "
                    f"again")
                if recovery.fail_and_requeue(self.study, stored, why, FailureKind.LOST_STORAGE):
                    print(f"trial {trial.number} was cut short by the storage outage: marked failed and queued again",
                          file=sys.stderr, flush=True)
        except Exception as again:  # the storage went away once more before the trial was settled
            if _outage.storage_error(again) is None:
                raise
            self._settle(abandoned, again)
            return
        if stored.state.name == "FAIL" and FailureKind.of(stored) is FailureKind.SILENT:
            reason = str(stored.user_attrs.get("reason", "its heartbeats went silent")).removesuffix("; queued again")
            print(f"trial {trial.number} was taken over by another worker ({reason}; queued again there): this "
                  f"worker's result for it is discarded, and it goes on with the next trial",
                  file=sys.stderr, flush=True)

    def _taken_over(self) -> bool:
        """Whether the trial this worker just ran was failed as silent by another (Optuna refuses the tell)."""
        from search.errors import FailureKind

        trial = self.objective.running
        if trial is None:
            return False
        stored = self.study._storage.get_trial(trial._trial_id)
        return bool(stored.state.name == "FAIL" and FailureKind.of(stored) is FailureKind.SILENT)

    def _next(self, deadline: float | None, grid: bool) -> bool:
        """Run the next trial, or wait for those held elsewhere; False: the run is over."""
        from search.runner import recovery
        from search.studies import lifecycle as studies

        # The run's own limits first: they need no read of the study.
        if self.options.n_trials is not None and self.started >= self.options.n_trials:
            return False
        trials = None
        if deadline is not None and time.monotonic() >= deadline:
            # As Optuna's timeout, the command trains at least one trial: a --timeout shorter than the
            # start-up (imports, the data, the study) ended the run with none, and exit 0.
            trials = self.study.get_trials(deepcopy=False)
            if self.started or any(t.datetime_start is not None and t.datetime_start.timestamp()
                                   >= self.options.run_started for t in trials):
                return False
        trials = trials if trials is not None else self.study.get_trials(deepcopy=False)
        if recovery.recover_orphans(self.study, trials):
            trials = self.study.get_trials(deepcopy=False)  # they were failed and queued again
        if studies.count_finished(trials) >= self.budget:
            return False
        # Other workers' running trials fill what is left: a trial asked for now would only be closed
        # over budget (a failed trial in the run's table). Wait for them instead: one whose worker died
        # on another host is found by its heartbeats and queued again, to be run here.
        if studies.count_taken(trials) >= self.budget:
            return self._wait_for_held_trials(deadline)
        if grid and not any(t.state.name == "WAITING" for t in trials):
            return False  # every grid point is taken; the workers running the last ones finish them
        # No collection after the trial: the next model's reset_keras makes one, and each costs.
        # Optuna hands the finished trial to a callback from its cache: no read of the whole study.
        finished: list[Any] = []
        self.started += 1  # before: a trial that ends untold (search/runner/_outage.py) was started all the same
        self.study.optimize(self.objective, n_trials=1, catch=(Exception,),
                            callbacks=[lambda _study, trial: finished.append(trial), *self._callbacks()])
        if self.callback_error is not None:
            return False
        if getattr(self.study, "_stop_flag", False):  # study.stop() in a callback: Optuna keeps the flag set
            self.stopped_by_callback = True
            return False
        last = finished[-1] if finished else None  # none: no trial ran
        if last is None or last.state.name != "FAIL":
            self.consecutive_failures = 0
            return True
        reason, kind = last.user_attrs.get("reason", ""), FailureKind.of(last)
        if kind is FailureKind.OVER_BUDGET:
            return False
        if kind is FailureKind.DISK_FULL:  # not these settings' fault: they run again once there is room
            recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
            self.disk_full = reason.partition(": ")[2] or reason
            return False
        if self.stop.requested or kind is FailureKind.INTERRUPTED:
            recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
            return False
        self.consecutive_failures = max(self.consecutive_failures + 1,
                                        recovery.failure_streak(self.study, self.options.run_started))
        self.last_failure = reason or "unknown"
        if self.consecutive_failures >= self.max_failures:
            self.gave_up = True
            return False
        return True


    def _callbacks(self) -> list[Any]:
        """The caller's callbacks, each called as Optuna calls them, (study, frozen trial) once the trial is told;
        the first exception one raises ends the run after this trial, as it ends Optuna's optimize."""
        def guarded(callback: Any) -> Any:
            def call(study: Any, trial: Any) -> None:
                if self.callback_error is not None:
                    return
                try:
                    callback(study, trial)
                except Exception as exc:
                    self.callback_error = exc
            return call

        return [guarded(c) for c in self.options.callbacks]


def _own_last_trial(study: Any) -> Any:
    """The most recent trial this process ran (other workers may have added trials since)."""
    from search.studies._identity import worker_identity

    me = worker_identity()
    for t in reversed(study.get_trials(deepcopy=False)):
        if t.user_attrs.get("worker") == me:
            return t
    return None
