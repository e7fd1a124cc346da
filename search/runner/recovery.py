"""Trials that lost their process, retries, and the run of failures that means a broken space.

Optuna's heartbeat fails a silent worker's trial on any host after its grace period; a run restarted
on the same machine knows at once, from the host and process id each trial records.
"""
from __future__ import annotations

from typing import Any, Sequence

from search.errors import FAILURE_ATTR, FailureKind
from search.space import SEED_TRIAL_ATTR
from search.studies._identity import orphans


# User attributes given when a trial was queued, which a retry of it must carry too.
QUEUED_ATTRS = ("baseline", "unregularized", "kept_on", "ablation", "enqueued")


def requeue(study: Any, trial: Any, max_retries: int | None = 1, *, counts_as_retry: bool = True) -> bool:
    """Queue a failed trial's settings to run again (at most ``max_retries`` times along its chain).

    A trial the user stopped (``counts_as_retry=False``) keeps its retry count: being stopped is not a
    crash, and must not use up the one retry a later crash is owed.
    """
    retries = int(trial.user_attrs.get("retry_count", 0))
    if max_retries is not None and retries >= max_retries:
        return False
    if any(t.user_attrs.get("retry_of") == trial.number for t in study.get_trials(deepcopy=False)):
        return False  # queued already (an interrupt can land between two places that requeue)
    # The same seeds as the trial it repeats: a study stopped and continued trains what it would have.
    attrs = {"retry_of": trial.number, "retry_count": retries + int(counts_as_retry),
             SEED_TRIAL_ATTR: trial.user_attrs.get(SEED_TRIAL_ATTR, trial.number)}
    # What the queue said about the trial (the baseline, an ablation variant) goes with its retry.
    attrs.update({key: trial.user_attrs[key] for key in QUEUED_ATTRS if key in trial.user_attrs})
    study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
    return True


def failure_streak(study: Any, since: float | None = None) -> int:
    """Failed trials in a row at the end of the study, across every worker and process, by finish time.

    Only trials started at or after ``since`` (a Unix time: when this run began) count, so a run that
    follows a fix is not stopped by the failures of the run before it. Failures that are no fault of
    the settings (stopped, over budget, a dead or silent process, a full disk) neither count nor break
    the streak. A per-process count alone would restart at zero in every recycled worker, and a broken
    space would then fail trials all night.
    """
    from datetime import datetime

    start = datetime.fromtimestamp(since) if since is not None else None  # Optuna stores naive local times
    finished = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and t.datetime_complete
                       and (start is None or (t.datetime_start and t.datetime_start >= start))),
                      key=lambda t: t.datetime_complete)
    streak = 0
    for t in reversed(finished):
        if t.state.name != "FAIL":
            break
        if FailureKind.of(t).counts:
            streak += 1
    return streak


def recover_orphans(study: Any, trials: Sequence[Any] | None = None) -> list[int]:
    """Fail and requeue RUNNING trials whose process on this host is gone (killed, crashed).

    Heartbeats catch a dead worker on any host, but only after their grace period; a run restarted on
    the same machine knows at once, from the process id each trial records. ``trials``: the study's
    trials as the caller just read them (read here when not given).
    """
    recovered = []
    for t in orphans(study, trials):
        worker = t.user_attrs.get("worker") or {}
        if fail_and_requeue(study, t, f"its process {worker.get('pid')} died", FailureKind.LOST_PROCESS):
            recovered.append(t.number)
    return recovered


def fail_and_requeue(study: Any, trial: Any, reason: str, kind: FailureKind) -> bool:
    """Fail a RUNNING trial (this process's or another's) with ``reason`` and queue its settings again.

    False where it was finished already: its worker told it, or another worker (or Optuna's heartbeat
    check) failed it first and queued the retry.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage  # Optuna has no public call to fail another process's trial
    try:
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, kind.value)
        changed = storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if changed:
        requeue(study, trial)
    return bool(changed)


def requeue_silent(study: Any, trial: Any) -> None:
    """Optuna's call for a trial it just failed for want of heartbeats: queue it again, and say so here.

    Without the line, the worker that took the trial over was silent, and only the owner's crash told
    anyone a trial had changed hands.
    """
    import sys

    requeue(study, trial)
    reason = trial.user_attrs.get("reason") or "went silent: no heartbeat within its grace period"
    host = (trial.user_attrs.get("worker") or {}).get("host")
    print(f"trial {trial.number}{f' (of host {host})' if host else ''} {reason.removesuffix('; queued again')}; "
          f"marked failed and queued again here", file=sys.stderr, flush=True)
