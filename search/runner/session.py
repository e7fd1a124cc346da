"""One ``search run``: load data once, hold out the test rows, plan splits, open the study, optimize.

Every user mistake surfaces from :func:`prepare`, before TensorFlow loads and before any store is
written, so a bad space file never costs a stored study anything.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

from search import data, splits
from search.data import Dataset
from search.data._summary import DataSummary
from search.runner.results import TrialListener
from search.runner import _preflight, checkpoints
from search.runner._loop import TrialLoop
from search.studies import space_versions
from search.studies.space_versions import BUILDER_CODE_ATTR
from search.runner._space_warnings import plan_warnings, space_warnings, test_class_shift
from search.space import Space
from search.splits import Split


@dataclass
class Prepared:
    space: Space
    dataset: Dataset
    dev_idx: np.ndarray
    test_idx: np.ndarray
    splits: list[Split]

    @property
    def summary(self) -> DataSummary:
        return DataSummary.of(self)

    def attrs(self) -> dict[str, Any]:
        """Stored with the study; the fingerprints guard continuation and reproduction."""
        ds = self.dataset
        return {"data_fingerprint": ds.fingerprint, "test_fingerprint": data.fingerprint_indices(self.test_idx),
                "splits_fingerprint": splits.fingerprint(self.splits), "task": ds.task,
                "rows": int(len(ds.X)), "test_rows": int(len(self.test_idx)), "dev_rows": int(len(self.dev_idx)),
                "n_splits": len(self.splits),
                "duplicates_dropped": ds.duplicates_dropped, "seed": self.space.study.seed,
                "metric": "mae" if ds.task == "regression" else "accuracy",
                **({"images_skipped": len(ds.images_skipped)} if ds.images_skipped else {}),
                **({"test_source": ds.test_source} if ds.test_source else {}),
                **({"data_files": ds.files} if ds.files else {}),
                **({"weights_fingerprint": weights} if (weights := _preflight.weights_fingerprint(self.space)) else {}),
                **({data.ONE_HOT_AS_IS: True} if ds.one_hot and not ds.one_hot_scaled else {}),
                **({"duplicates_kept_by_auto": True} if ds.duplicates_kept and self.space.data.duplicates == "auto"
                   else {}),
                **({BUILDER_CODE_ATTR: code} if (code := _preflight.builder_code(self.space)) else {}),
                "data_summary": self.summary.to_dict()}


def say_budget_cap(study: Any, budget: int, n_trials: int | None) -> None:
    """Where the trials asked for now are more than the study's budget leaves: the budget wins, and says so
    (the user would otherwise wonder where the rest went)."""
    from search.studies.lifecycle import finished_count

    left = budget - finished_count(study)
    if n_trials is not None and 0 < left < n_trials:  # a finished study says so itself
        print(f"note: {n_trials} trials asked for now, but study.n_trials ({budget}) leaves {left} to run, so at "
              f"most {left} run; raise study.n_trials in the space to run more", file=sys.stderr)


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
    local_workers: int = 1           # worker processes of this run on this machine (they share its cores)
    heartbeat: int = 30              # seconds between a running trial's heartbeats
    storage_patience: float = 600.0  # seconds a worker waits for a storage that stopped answering, then exits 1
    figures: bool | None = None      # PNG figures in MLflow (trials' learning curves, the study's figures);
    # None: $SEARCH_FIGURES, else on (search/tracking/tracker.py)
    continue_command: str = "search run <space file>"
    new_study: str = "--study-name"  # how the caller starts a separate study (the API: study_name=)
    run_started: float = field(default_factory=time.time)  # workers get their parent's, so recycling keeps it
    extra_listeners: list[Any] = field(default_factory=list)
    # Say when a continued study's model/train settings changed (off where the caller changes them on purpose,
    # as an ablation of another picked trial does).
    warn_changed_settings: bool = True
    # Trials queued when the study is created: (params, user attributes), e.g. the ablation's variants.
    queue: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    # A listener that fails as the study opens is warned about and left out of the run, rather than ending it:
    # for a run whose results need no side channel at all (the ablation's variants, kept in Optuna's storage).
    # Off for `search run`, whose creator must not let workers in on a half-made experiment.
    listeners_optional: bool = False
    # Called after each trial this process runs is told, as Optuna's optimize(callbacks=) calls them.
    callbacks: list[Callable[[Any, Any], None]] = field(default_factory=list)

    def deadline(self) -> float | None:
        """``timeout`` as a ``time.monotonic()`` instant, counted from the command's start (``run_started``),
        not from when this process got to its first trial: a worker spends seconds importing TensorFlow and
        reading the data, and a recycled one starts long after the run did."""
        if not self.timeout:
            return None
        return time.monotonic() + self.timeout - max(0.0, time.time() - self.run_started)


def prepare(space: Space, threads: int | None = None) -> Prepared:
    where = str(space.path) if space.path else "<space>"
    dataset = data.load(space.data, space.path)
    _preflight.class_weights_need_classes(space, dataset, where)
    from search import models

    if getattr(models.FAMILIES.get(space.family), "USES_FILES", False):
        # Its preflight builds the backbone, so TensorFlow starts here and must get its thread settings now.
        from search.runner import _runtime

        _runtime.configure(threads)
    if space.is_custom:
        _preflight.check_builder(space, dataset, threads, where)
    prepared = _planned(space, dataset, where)
    # After the plan, so that the few images a family's checks look at are development rows.
    dataset.warnings += models.preflight(space.model, dataset.input_shape, space.data.preprocess,
                                         space.path.parent if space.path else None, where,
                                         sample=dataset.X[np.sort(prepared.dev_idx)[:32]], images=space.data.is_images)
    dataset.warnings += space_warnings(space, dataset)
    dataset.warnings += plan_warnings(space, prepared.splits, _preflight.gpus(space, threads), dataset)
    if dataset.test_mask is not None or dataset.groups is not None or dataset.has_order:  # else drawn stratified
        how = ("provided" if dataset.test_mask is not None else "whole groups" if dataset.groups is not None
               and not dataset.has_order else "the latest in time")
        dataset.warnings += test_class_shift(dataset, prepared.dev_idx, prepared.test_idx, how)
    dataset.warnings += data.giveaways(dataset, prepared.dev_idx)
    if space.data.is_images:  # an absolute gap of 2 grey levels means nothing for other arrays
        dataset.warnings += data.near_copies(dataset, prepared.dev_idx, prepared.test_idx)
    return prepared


def prepare_rows(space: Space) -> Prepared:
    """The data, its test rows and the split plan alone, the model left unchecked (a builder defined in a
    notebook need not be at hand): what a split's scaler is fitted from."""
    where = str(space.path) if space.path else "<space>"
    return _planned(space, data.load(space.data, space.path), where)


def _planned(space: Space, dataset: Any, where: str) -> Prepared:
    time_ordered = space.validation.scheme == "time_series" or dataset.has_order
    dev_idx, test_idx = data.split_test(dataset, space.data.test_fraction, space.study.seed, time_ordered, where)
    data.development_vocabulary(dataset, dev_idx)
    dev_idx, purged = splits.purge_before_test(space.validation, dataset, dev_idx, test_idx)
    plan = splits.plan(space.validation, dataset, dev_idx, space.study.seed, where, purged)
    if dataset.duplicates_kept and not time_ordered:
        _say_kept_repeats(dataset, dev_idx, test_idx, plan, auto=space.data.duplicates == "auto")
    return Prepared(space, dataset, dev_idx, test_idx, plan)


def _say_kept_repeats(dataset: Any, dev_idx: np.ndarray, test_idx: np.ndarray, plan: list[Any],
                      auto: bool = False) -> None:
    """data.duplicates: keep: copies of a row (an oversampled class) land on both sides of the drawn test rows,
    so training sees test rows, and on both sides of the splits, so a validation score is partly a training
    score and picks the settings that memorize best. Provided test rows are checked as they are read.

    ``auto`` (every row kept, since copies are the data's nature) said nothing: 32 of 56 test rows had an
    exact copy in training, most of them copies with the same label, which no coarse feature explains."""
    from search.data._checks import repeats_of

    if auto:
        # Copies with the label too: a copy with another label teaches the test row nothing it should not know.
        n_rows = len(dataset.X)
        rows = np.column_stack([dataset.X.reshape(n_rows, -1), np.asarray(dataset.y).reshape(n_rows, -1)])
        same = set()
        for split in plan:
            same.update(np.asarray(split.val)[repeats_of(rows[split.val], rows[split.train])].tolist())
        tested = int(repeats_of(rows[test_idx], rows[dev_idx]).sum()) if dataset.test_mask is None else 0
        if tested or same:
            dataset.warnings.append(
                f"{tested} of the {len(test_idx)} test rows have an exact copy, label and all, among the development "
                f"rows, and {len(same)} validation row(s) one among their split's training rows: data.duplicates: "
                f"auto kept every row, as copies of coarse features are, so those scores include rows seen in "
                f"training; where the copies are records entered twice (or an oversampled class), set "
                f"data.duplicates: drop")
        return
    validated = set()
    for split in plan:
        validated.update(np.asarray(split.val)[repeats_of(dataset.X[split.val], dataset.X[split.train])].tolist())
    if validated:
        dataset.warnings.append(f"{len(validated)} validation row(s) of the splits have the same features as a "
                                f"training row of their split (data.duplicates: keep): those validation losses "
                                f"are partly training losses, which favours the settings that memorize most; "
                                f"drop the copies (data.duplicates: drop)")
    n = int(repeats_of(dataset.X[dev_idx], dataset.X[test_idx]).sum()) if dataset.test_mask is None else 0
    if n:
        dataset.warnings.append(f"{n} development row(s) have the same features as a held-out test row "
                                f"(data.duplicates: keep, so copies of a row, such as an oversampled class, land "
                                f"on both sides): training sees those test rows and the test score may be "
                                f"optimistic; drop the copies (data.duplicates: drop), and "
                                f"oversample, if at all, inside training rather than in the file")


def changed_settings(before: str | None, space: Space) -> list[str]:
    """The model and train settings (fixed values and ranges), the rows' scaling and filling, and the sampler and
    pruners, where they differ from the study's stored space."""
    from search import space as spaces

    if not before:
        return []
    try:
        old_space = spaces.validate(spaces.parse_yaml(before), path=space.path)  # its builder found as before
    except Exception:  # a space stored by an older version that no longer validates: nothing to compare
        return []
    old, new = old_space.leaves(), space.leaves()
    # How the rows are scaled and filled changes what every later trial trains on, as a train setting does.
    for key in ("preprocess", "missing"):
        old[f"data.{key}"], new[f"data.{key}"] = getattr(old_space.data, key), getattr(space.data, key)
    # Which settings later trials are drawn by and cut by: the earlier ones were chosen and judged otherwise.
    for key in ("sampler", "pruner", "split_pruner"):
        old[f"study.{key}"], new[f"study.{key}"] = getattr(old_space.study, key), getattr(space.study, key)
    keys = sorted(k for k in set(old) | set(new)
                  if k.split(".")[0] in ("model", "train", "data", "study") and old.get(k) != new.get(k))
    return [f"{k}: {_shown(old.get(k))} -> {_shown(new.get(k))}" for k in keys]


def note_space(study: Any, space: Space, options: RunOptions) -> None:
    """Say what an edit of the space file changed, and that the test rows were looked at, then store this
    version of the file with the study. With ``--workers N`` the parent does it before the workers start:
    worker 1 said it, unless another worker had stored the new file first, and then no one did."""
    from search._redact import redact
    from search.studies import lifecycle as studies

    budget, finished = studies.budget_of(space), studies.finished_count(study)
    # Compared with any stored file, trials or none: two workers started together with two files said nothing.
    stored = study.user_attrs.get("space_yaml")
    changed = changed_settings(stored, space) if options.warn_changed_settings and stored else []
    # The process the user started compares and stores it, so the one that says it is the one that saw it change.
    code = _preflight.builder_code(space) if options.worker_index == 0 else None
    before = study.user_attrs.get(BUILDER_CODE_ATTR)
    if code and before != code:  # said once, then the new code is the study's
        if before and options.warn_changed_settings and studies.finished_count(study):
            changed.insert(0, "model.family's code: the builder function does something else now")
        study.set_user_attr(BUILDER_CODE_ATTR, code)
    # Said only by a run that trains: the edit is said where it takes effect.
    if changed and options.worker_index == 0 and not finished:
        print(f"warning: study '{space.study.name}' was opened with other settings, by a worker started with "
              f"another space file or by an earlier run ({'; '.join(changed[:6])}"
              f"{'; ...' if len(changed) > 6 else ''}); the trials of both go into this one study and are ranked "
              f"together: give each file its own study.name ({options.new_study} starts a separate study)",
              file=sys.stderr)
    elif changed and options.worker_index == 0 and finished < budget:
        before_path = str(study.user_attrs.get("space_started_by") or study.user_attrs.get("space_path") or "")
        # Another file of the same study name joined it with the same words as an edit of the file.
        other = (f", and from another space file than {before_path}, which started it"
                 if space.path and before_path and before_path != str(space.path.resolve()) else "")
        print(f"warning: study '{space.study.name}' continues with settings changed since its "
              f"earlier trials{other} ({'; '.join(changed[:6])}{'; ...' if len(changed) > 6 else ''}); those "
              f"trials keep their old settings and are ranked with the new ones ({options.new_study} starts a "
              f"separate study)", file=sys.stderr)
    elif changed and options.worker_index == 0:
        # Nothing trains: a notebook cell run again after an edit printed the old table, and no word that the
        # edit did nothing. Said, not stored: the run that trains with it says it again.
        print(f"note: this file differs from the settings study '{space.study.name}' ran with "
              f"({'; '.join(changed[:6])}{'; ...' if len(changed) > 6 else ''}), and its budget is spent, so "
              f"nothing trains with them: raise study.n_trials to continue it with them ({options.new_study} "
              f"starts a separate study)", file=sys.stderr)
    # An ablation's variants are the parent's trial again: its run said the looks already.
    if options.worker_index == 0 and studies.finished_count(study) < budget and ".ablation." not in study.study_name:
        _say_earlier_looks(study, space)
    # What `search best --export` and `search reproduce` rebuild a trial's config from, without MLflow. Stored
    # only by a run that trains: one that found the budget spent took the warning of the edit with it, and the
    # run that then trained the edited trials said nothing.
    stored_space = redact(space.to_yaml())
    if studies.finished_count(study) < budget:
        study.set_user_attr("space_yaml", stored_space)
    # Each version of the space under its own key, which each trial names (SPACE_DIGEST_ATTR): a trial's
    # config is rebuilt from the space it ran with, not from a later edit, where its MLflow record is gone.
    if study.user_attrs.get(space_versions.key(stored_space)) is None:
        study.set_user_attr(space_versions.key(stored_space), stored_space)
    if "space_started_by" not in study.user_attrs:  # "which started it": the first file, kept
        study.set_user_attr("space_started_by", str(study.user_attrs.get("space_path") or
                                                    (space.path.resolve() if space.path else "")))
    study.set_user_attr("space_path", str(space.path.resolve()) if space.path else "")


def _say_earlier_looks(study: Any, space: Space) -> None:
    """Counted as reproduce counts them, with other studies' looks at the same test rows (a replay of an
    exported config): "the next look is look 5" was followed by "test set (look 6)". A new study of the same
    rows, or of the same data with another draw of its test rows (a new seed), was told nothing."""
    from search.studies.looks import looks_at_other_draws, looks_from_other_studies

    own = [look for look in study.user_attrs.get("test_looks", []) if isinstance(look, dict) and not look.get("rows")]
    looked = own + looks_from_other_studies(study)
    if looked:
        whose = (f"study '{space.study.name}' continues after `search reproduce` looked at its test rows" if own else
                 f"the test rows of study '{space.study.name}' were looked at by `search reproduce` of other "
                 f"studies of the same data and test rows")
        print(f"warning: {whose} {len(looked)} time(s): what is searched from here on is chosen by someone who "
              f"has seen the test score, so the next look is look {len(looked) + 1} and no longer an unbiased test",
              file=sys.stderr)
    elsewhere = looks_at_other_draws(study)
    if elsewhere:
        names = ", ".join(sorted({f"'{look['study']}'" for look in elsewhere}))
        print(f"warning: the same data was looked at {len(elsewhere)} time(s) by `search reproduce` of study "
              f"{names}, with other test rows (another study.seed, test_size or split_column): rows seen at those "
              f"looks may be among this study's development rows, and a choice made after seeing those scores "
              f"is no first look at unseen rows; drawing the test rows anew does not make the test set new",
              file=sys.stderr)


def _shown(value: Any) -> str:
    return "(unset)" if value is None else str(value)


@dataclass
class RunOutcome:
    """How a run ended, for the caller to report: the study, the status, and what stopped it."""

    study: Any                          # optuna.Study
    status: str = "FINISHED"            # FINISHED | KILLED | FAILED
    stopped_by: str = ""                # the stop signal's name, when one stopped the run
    error: Exception | None = None      # a StudyError to raise once the summary is out (disk full, failures)
    already_done: bool = False          # the budget was spent before this run started
    exit_code: int = 0                  # of workers, when they ran


def run(prepared: Prepared, options: RunOptions, listeners: Sequence[TrialListener] = (),
        out: TextIO | None = None, storage: Any = None,
        space_for: Callable[[Any], Space] | None = None) -> RunOutcome:
    """Optimize until the study's budget, ``options.n_trials``, ``options.timeout`` or a stop signal.

    ``listeners`` hear of the study opening, every trial's progress, and the end (search.api wires the
    MLflow tracker and the terminal progress; the run knows neither). ``storage``: the Optuna storage
    when the caller opened it (see :func:`open_storage`); ``space_for``: the space each trial samples from,
    when it changes between trials (the phased workflow).
    """
    out = out or sys.stdout  # looked up per call: a default bound at import misses redirected output
    from search.errors import StudyError
    from search.runner import _runtime, recovery
    from search.runner.objective import Objective
    from search.runner.stopping import StopRequest
    from search.studies import lifecycle as studies

    space = prepared.space
    home = Path(options.home)
    if storage is None:
        storage = open_storage(options)

    listeners = list(listeners)

    def open_listeners(study: Any) -> None:
        if not options.listeners_optional:
            emit(listeners, "on_study_open", study, strict=True)
            return
        for listener in list(listeners):
            if (hook := getattr(listener, "on_study_open", None)) is None:
                continue
            try:
                hook(study)
            except Exception as exc:
                from search._redact import redact

                listeners.remove(listener)
                print(f"warning: {type(listener).__name__}.on_study_open failed ({type(exc).__name__}: "
                      f"{redact(str(exc))[:600]}); it is left out of this run, whose trials go on and are kept "
                      f"in the Optuna storage", file=sys.stderr)

    # The process that creates the study also tells the listeners (the MLflow experiment and parent run)
    # before workers on other hosts are let in: otherwise two of them could each make one.
    def on_create(study: Any) -> None:
        for params, user_attrs in options.queue:
            study.enqueue_trial(params, user_attrs=user_attrs)
        open_listeners(study)

    # Heard from before the study opens: a Ctrl-C once the plan is printed stops the run gracefully (exit 3),
    # never halfway through making the study.
    stop = StopRequest(announce=options.worker_index == 0).install()
    try:
        study = studies.open_study(space, storage, prepared.attrs(), on_create=on_create)
        prepared.dataset.follow_study(study.user_attrs)
        budget = studies.budget_of(space)
        recovered = recovery.recover_orphans(study)
        if recovered:
            print(f"trial(s) {', '.join(map(str, recovered))} lost their process; marked failed and queued "
                  f"to run again.", file=out)
        note_space(study, space, options)
        if (done := studies.finished_count(study)) >= budget:
            print(f"study '{space.study.name}' already has its {budget} finished trials; raise study.n_trials "
                  f"to continue it." if done == budget else
                  f"study '{space.study.name}' already has {done} finished trials, more than study.n_trials "
                  f"({budget}) asks for; raise study.n_trials above {done} to continue it.", file=out)
            # Optuna's optimize(n_trials=N) means N more. Said by a run the user started, not by a worker,
            # whose --n-trials is its share or its recycling quota.
            if options.n_trials and options.worker_index == 0:
                print(f"note: {options.n_trials} trials asked for now, but study.n_trials ({budget}) is the study's "
                      f"whole budget, and it is spent: none run; for {options.n_trials} more, set study.n_trials "
                      f"to {budget + options.n_trials} in the space", file=sys.stderr)
            emit(listeners, "on_study_repair", study)  # a process killed after its last trial left MLflow behind
            stop.uninstall()
            if stop.requested:  # heard while the study opened: a stop all the same, and nothing after it runs
                return RunOutcome(study, "KILLED", already_done=True, stopped_by=stop.reason or "a stop signal")
            return RunOutcome(study, already_done=True)
        if options.worker_index == 0:
            say_budget_cap(study, budget, options.n_trials)
        if not stop.requested:  # TensorFlow's import is seconds a run stopped before its first trial never uses
            _runtime.configure(options.threads)
        open_listeners(study)
    except BaseException:
        stop.uninstall()
        raise
    retention = checkpoints.CheckpointRetention(home, space.study.keep_checkpoints)
    objective = Objective(space, prepared.dataset, prepared.splits, home,
                          [*listeners, retention, *options.extra_listeners], stop=stop, budget=budget,
                          space_for=space_for)
    loop = TrialLoop(study, objective, budget, space.study.max_consecutive_failures, options, stop)
    outcome = RunOutcome(study)
    try:
        with _runtime.live_objects_frozen():
            loop.run()
    except KeyboardInterrupt:
        outcome.status = "KILLED"
        if options.worker_index == 0:
            queued = "; the running trial is queued again" if loop.requeued else ""
            print(f"\ninterrupted{queued}. Continue the study with:\n  {options.continue_command}", file=out)
        raise
    finally:
        try:  # still heard while the side threads finish their writes and the MLflow run closes: a stop
            _run_end(objective.listeners, study)
            if stop.requested:
                outcome.status, outcome.stopped_by = "KILLED", stop.reason or "a stop signal"
            elif loop.gave_up or loop.disk_full:
                outcome.status = "FAILED"
            if options.worker_index == 0:  # the process that started the workers closes the run
                emit(listeners, "on_run_finish", study, outcome.status)
        finally:
            stop.uninstall()
    where = str(space.path) if space.path else None
    if loop.disk_full:
        outcome.error = StudyError(f"stopped: {loop.disk_full}. The trial is queued again. Free some space (or "
                                   f"lower study.keep_checkpoints, or point --home at a larger disk), then continue "
                                   f"the study with: {options.continue_command}", source=where)
    elif loop.gave_up:
        outcome.error = StudyError(f"stopped after {loop.consecutive_failures} consecutive failed trials; this is a "
                                   f"configuration problem, not bad luck. Last failure: {loop.last_failure}",
                                   source=where)
    elif loop.callback_error is not None:  # the caller's own exception, raised as Optuna's optimize raises it
        outcome.error = loop.callback_error
    elif loop.stopped_by_callback and not outcome.stopped_by:
        outcome.stopped_by = "study.stop() in a callback"
    return outcome


def emit(listeners: Sequence[TrialListener], event: str, *args: Any, strict: bool = False) -> None:
    """Tell every listener of a run-level event. ``strict``: a failure propagates (the study's creator must
    not let workers in on a half-made experiment); otherwise it is a warning."""
    for listener in listeners:
        hook = getattr(listener, event, None)
        if hook is None:
            continue
        if strict:
            hook(*args)
        else:
            tolerate(hook, *args)


def open_storage(options: RunOptions, also: Any = None) -> Any:
    """The run's Optuna storage, its URL checked before anything is created.

    A bad URL or a server that is down leaves no folder, database or study behind; two runs started at
    once on a fresh home take turns creating the schemas (``also``, a callable, runs under the same lock:
    the caller's tracking store). Returns the storage, or ``(storage, also())`` when ``also`` is given.
    """
    from search import stores
    from search.runner.recovery import requeue_silent
    from search.studies import lifecycle as studies

    home = Path(options.home)
    storage_url = options.storage or studies.default_storage(home)
    stores.check_url(storage_url, "--storage", stores.STORAGE)
    fresh = not home.exists()
    stores.prepare_home(home)
    try:
        with stores.home_lock(home):
            storage = studies.make_storage(storage_url, options.heartbeat, on_stale=requeue_silent)
            return storage if also is None else (storage, also())
    except Exception:
        if fresh:  # a database that does not exist on a server: the folder made for the run goes too
            stores.remove_if_only_lock(home)
        raise


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
