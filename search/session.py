"""One ``search run``: load data once, hold out the test rows, plan splits, open the study, optimize.

Every user mistake surfaces from :func:`prepare`, before TensorFlow loads and before any store is
written, so a bad space file never costs a stored study anything.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from search import data, splits
from search.data import Dataset
from search.results import TrialListener
from search.space import Space
from search.splits import Split


@dataclass
class Prepared:
    space: Space
    dataset: Dataset
    dev_idx: np.ndarray
    test_idx: np.ndarray
    splits: list[Split]

    def attrs(self) -> dict[str, Any]:
        """Stored with the study; the fingerprints guard continuation and reproduction."""
        ds = self.dataset
        return {"data_fingerprint": ds.fingerprint, "test_fingerprint": data.fingerprint_indices(self.test_idx),
                "splits_fingerprint": splits.fingerprint(self.splits), "task": ds.task,
                "rows": int(len(ds.X)), "test_rows": int(len(self.test_idx)), "n_splits": len(self.splits),
                "duplicates_dropped": ds.duplicates_dropped, "seed": self.space.study.seed,
                "metric": "mae" if ds.task == "regression" else "accuracy",
                **({"images_skipped": len(ds.images_skipped)} if ds.images_skipped else {})}


@dataclass
class RunOptions:
    home: Path = Path("mlruns")
    storage: str | None = None
    tracking_uri: str | None = None
    n_trials: int | None = None      # at most this many trials in this invocation
    timeout: float | None = None     # seconds
    threads: int | None = None
    quiet: bool = False
    worker_index: int = 0
    heartbeat: int = 30              # seconds between a running trial's heartbeats
    continue_command: str = "search run <space file>"
    run_started: float = field(default_factory=time.time)  # workers get their parent's, so recycling keeps it
    extra_listeners: list[Any] = field(default_factory=list)
    # Trials queued when the study is created: (params, user attributes), e.g. the ablation's variants.
    queue: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    summary: bool = True             # print the counts and the top-trials table at the end
    stopped_by: str | None = None    # set by run(): the signal that stopped it gracefully, if any


def prepare(space: Space, threads: int | None = None) -> Prepared:
    where = str(space.path) if space.path else "<space>"
    dataset = data.load(space.data, space.path)
    from search import models

    if getattr(models.FAMILIES.get(space.family), "USES_FILES", False):
        # Its preflight builds the backbone, so TensorFlow starts here and must get its thread settings now.
        from search import _runtime

        _runtime.configure(threads)
    models.preflight(space.model, dataset.input_shape, space.data.preprocess,
                     space.path.parent if space.path else None, where)
    time_ordered = space.validation.scheme == "time_series" or dataset.has_order
    dev_idx, test_idx = data.split_test(dataset, space.data.test_size, space.study.seed, time_ordered, where)
    plan = splits.plan(space.validation, dataset, dev_idx, space.study.seed, where)
    return Prepared(space, dataset, dev_idx, test_idx, plan)


def run(prepared: Prepared, options: RunOptions, space_text: str, out: TextIO | None = None) -> Any:
    """Optimize until the study's budget, ``options.n_trials``, ``options.timeout`` or a stop signal."""
    out = out or sys.stdout  # looked up per call: a default bound at import misses redirected output
    from search import _runtime, recovery, study as studies
    from search.display import Progress, format_counts, pruned_summary, summary_table
    from search.objective import Objective
    from search.stopping import StopRequest

    space = prepared.space
    home = Path(options.home)
    home.mkdir(parents=True, exist_ok=True)
    storage_url = options.storage or studies.default_storage(home)
    tracker = make_tracker(prepared, options, space_text, storage_url)
    # The process that creates the study also creates the MLflow experiment and parent run, before
    # workers on other hosts are let in: otherwise two of them could each make one.
    def on_create(study: Any) -> None:
        for params, user_attrs in options.queue:
            study.enqueue_trial(params, user_attrs=user_attrs)
        tracker.start(study)

    study = studies.open_study(space, studies.make_storage(storage_url, options.heartbeat), prepared.attrs(),
                               on_create=on_create)
    budget = studies.budget_of(space)
    recovered = recovery.recover_orphans(study)
    if recovered:
        print(f"trial(s) {', '.join(map(str, recovered))} lost their process; marked failed and queued "
              f"to run again.", file=out)
    # What `search best --export` and `search reproduce` rebuild a trial's config from, without MLflow.
    study.set_user_attr("space_yaml", space.to_yaml())
    study.set_user_attr("space_path", str(space.path.resolve()) if space.path else "")
    if studies.finished_count(study) >= budget:
        print(f"study '{space.study.name}' already has its {budget} finished trials; raise study.n_trials "
              f"to continue it.", file=out)
        print(summary_table(study), file=out)
        return study
    _runtime.configure(options.threads)
    tracker.start(study)
    progress = Progress(budget, quiet=options.quiet)
    if options.worker_index == 0 and not options.quiet:
        progress.header(header_lines(prepared, options, storage_url, tracker.uri, studies.finished_count(study),
                                     budget))
    progress.seed_from(study)
    stop = StopRequest(announce=options.worker_index == 0).install()
    retention = CheckpointRetention(home, space.study.keep_checkpoints)
    objective = Objective(space, prepared.dataset, prepared.splits, home,
                          [tracker, progress, retention, *options.extra_listeners], stop=stop, budget=budget)
    loop = _Loop(study, objective, budget, space.study.max_consecutive_failures, options, stop)
    status = "FINISHED"
    try:
        loop.run()
    except KeyboardInterrupt:
        status = "KILLED"
        if options.worker_index == 0:
            queued = "; the running trial is queued again" if loop.requeued else ""
            print(f"\ninterrupted{queued}. Continue the study with:\n  {options.continue_command}", file=out)
        raise
    finally:
        stop.uninstall()
        _run_end(objective.listeners, study)
        if stop.requested:
            status = "KILLED"
        elif loop.gave_up or loop.disk_full:
            status = "FAILED"
        if options.worker_index == 0:  # the process that started the workers closes the parent run
            tolerate(tracker.finish, status)
    if options.worker_index == 0 and options.summary:  # workers leave the summary to their parent
        print("\n" + format_counts(studies.trials_by_state(study), budget), file=out)
        if pruned := pruned_summary(study):
            print(pruned, file=out)
        print(summary_table(study), file=out)
    if stop.requested:
        options.stopped_by = stop.reason
    if stop.requested and options.worker_index == 0:
        print(f"\nstopped by {stop.reason}; the interrupted trial is queued again. Continue the study with:\n"
              f"  {options.continue_command}", file=out)
    elif options.worker_index == 0 and options.summary and not (loop.gave_up or loop.disk_full):
        print("\n" + next_steps(space.study.name, options), file=out)
    from search.errors import StudyError

    if loop.disk_full:
        raise StudyError(f"stopped: {loop.disk_full}. The trial is queued again. Free some space (or lower "
                         f"study.keep_checkpoints, or point --home at a larger disk), then continue the study "
                         f"with: {options.continue_command}", source=str(space.path) if space.path else None)
    if loop.gave_up:
        raise StudyError(f"stopped after {loop.consecutive_failures} consecutive failed trials; this is a "
                         f"configuration problem, not bad luck. Last failure: {loop.last_failure}",
                         source=str(space.path) if space.path else None)
    return study


def header_lines(prepared: Prepared, options: RunOptions, storage_url: str, tracking_uri: str, finished: int,
                 budget: int) -> list[str]:
    """What a run is about to do, and where its results go (passwords redacted)."""
    from search import review
    from search._redact import redact
    from search.display import _duration

    space, attrs = prepared.space, prepared.attrs()
    validation = dict(review.describe(space, attrs))["Validation"]
    limits = [f"{budget} trials in all, {finished} finished"]
    if options.n_trials:
        limits.append(f"at most {options.n_trials} now")
    if options.timeout:
        limits.append(f"no new trial after {_duration(options.timeout)}")
    return [f"study       {space.study.name}  (sampler {space.study.sampler}, pruner {space.study.pruner}, "
            f"seed {space.study.seed})",
            f"data        {space.data.source}: {attrs['rows']} rows, task {attrs['task']}, {attrs['test_rows']} "
            f"held out for the final test",
            f"validation  {validation}",
            f"budget      {', '.join(limits)}",
            f"storage     {redact(storage_url)}",
            f"results     {Path(options.home).resolve()}  (MLflow: {redact(tracking_uri)})",
            f"watch       {_command('ui', space.study.name, options)}"]


def next_steps(study: str, options: RunOptions) -> str:
    return ("next steps:\n"
            f"  {_command('ui', study, options)}          the MLflow UI on the study's runs\n"
            f"  {_command('report', study, options)}      the review as one HTML file\n"
            f"  {_command('reproduce', study, options)}   retrain the best config, test it once")


def _command(verb: str, study: str, options: RunOptions) -> str:
    from search._redact import redact

    parts = ["search", verb, study]
    if str(options.home) != "mlruns":
        parts += ["--home", str(options.home)]
    if options.storage and verb != "ui":
        parts += ["--storage", redact(options.storage)]
    if options.tracking_uri:
        parts += ["--tracking-uri", redact(options.tracking_uri)]
    return " ".join(parts)


def make_tracker(prepared: Prepared, options: RunOptions, space_text: str, storage_url: str) -> Any:
    from search import provenance, tracking
    from search._redact import redact

    space = prepared.space
    tags = {"storage": redact(storage_url), **provenance.record(space.path.parent if space.path else None),
            **prepared.attrs()}
    from search.diagnostics import chance_loss

    ds = prepared.dataset
    return tracking.MlflowTracker(options.tracking_uri or tracking.default_tracking_uri(options.home),
                                  Path(options.home), space, space_text, tags,
                                  keep_checkpoints=space.study.keep_checkpoints,
                                  reference_loss=chance_loss(ds.y[prepared.dev_idx], ds.task))


class _Loop:
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

    def run(self) -> None:
        try:
            self._run()
            self.stop.raise_if_urgent()
        except KeyboardInterrupt:  # a second Ctrl-C, wherever in the loop it lands
            self.requeued = self._requeue_interrupted()
            raise

    def _requeue_interrupted(self) -> bool:
        """Queue this process's last trial again if the interrupt cut it short, unless that is done."""
        from search import recovery

        last = _own_last_trial(self.study)
        if last is None or last.state.name != "FAIL":
            return False
        reason = last.user_attrs.get("reason", "")
        # No reason: the interrupt landed before the trial could record one.
        if reason and "queued to run again" not in reason and not reason.startswith("DiskFull"):
            return False
        recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
        return True

    def _run(self) -> None:
        from search import recovery, study as studies

        deadline = time.monotonic() + self.options.timeout if self.options.timeout else None
        started = 0
        grid = self.objective.space.study.sampler == "grid"
        while not self.stop.requested:
            recovery.recover_orphans(self.study)
            if studies.finished_count(self.study) >= self.budget:
                return
            if grid and studies.waiting_count(self.study) == 0:
                return  # every grid point is taken; the workers running the last ones finish them
            if self.options.n_trials is not None and started >= self.options.n_trials:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            self.study.optimize(self.objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            started += 1
            last = _own_last_trial(self.study)
            if last is None or last.state.name != "FAIL":
                self.consecutive_failures = 0
                continue
            reason = last.user_attrs.get("reason", "")
            if reason.startswith("over budget"):
                return
            if reason.startswith("DiskFull"):  # not these settings' fault: they run again once there is room
                recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
                self.disk_full = reason.removeprefix("DiskFull: ")
                return
            if self.stop.requested or "queued to run again" in reason:
                recovery.requeue(self.study, last, max_retries=None, counts_as_retry=False)
                return
            self.consecutive_failures = max(self.consecutive_failures + 1,
                                            recovery.failure_streak(self.study, self.options.run_started))
            self.last_failure = reason or "unknown"
            if self.consecutive_failures >= self.max_failures:
                self.gave_up = True
                return


def _own_last_trial(study: Any) -> Any:
    """The most recent trial this process ran (other workers may have added trials since)."""
    from search._identity import worker_identity

    me = worker_identity()
    for t in reversed(study.get_trials(deepcopy=False)):
        if t.user_attrs.get("worker") == me:
            return t
    return None


def _run_end(listeners: Any, study: Any) -> None:
    """Tell listeners the run is over; a failure here must not hide why the run ended."""
    for listener in listeners:
        hook = getattr(listener, "on_run_end", None)
        if hook is not None:
            tolerate(hook, study)


def tolerate(action: Any, *args: Any) -> None:
    """Call a side-channel action (MLflow, checkpoint sweeps) that must not hide how the run ended.

    The trials are safe in the Optuna storage, so when the tracking server went away the summary and
    the continue command still matter more than a traceback.
    """
    from search._redact import redact

    try:
        action(*args)
    except Exception as exc:
        owner = getattr(action, "__self__", None)
        name = f"{type(owner).__name__}.{action.__name__}" if owner is not None else getattr(action, "__name__", "?")
        print(f"warning: {name} failed ({type(exc).__name__}: {redact(str(exc))[:300]})", file=sys.stderr)


class CheckpointRetention(TrialListener):
    """Keeps the split checkpoints of the best ``keep`` finished trials only; others go as they fall out.

    The current best trial's model is also in MLflow, so disk holds at most ``keep`` trials' splits.
    """

    def __init__(self, home: Path, keep: int) -> None:
        self.home, self.keep = Path(home), keep

    def on_trial_end(self, trial: Any, outcome: Any) -> None:
        pending = (trial.number, outcome.value) if outcome.state == "complete" else None
        self._sweep(trial.study, pending, also=trial.number)

    def on_run_end(self, study: Any) -> None:
        # Two workers finishing together each see the other's trial as running and keep it: K + 1.
        # Once told, every trial is finished, so a sweep now settles on exactly K.
        self._sweep(study, None)

    def _sweep(self, study: Any, pending: tuple[int, float] | None, also: int | None = None) -> None:
        from search import checkpoints, study as studies

        trials = study.get_trials(deepcopy=False)
        keep = studies.top_trials(trials, self.keep, pending)
        removable = {t.number for t in trials
                     if t.state.name in ("COMPLETE", "PRUNED", "FAIL")} | ({also} if also is not None else set())
        checkpoints.keep_only(self.home, study.study_name, keep, removable)
