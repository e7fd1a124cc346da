"""The Optuna side: storage, the study's life cycle, queue and budget, and queries over its trials."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from search.errors import StoreTrouble, StudyError
from search.space import Space
from search.studies._continuing import check_continuable as check_continuable
from search.studies.pruners import make_pruner
from search.studies.samplers import make_sampler

FINISHED_STATES = ("COMPLETE", "PRUNED")


def default_storage(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'optuna.db').resolve()}"


def make_storage(url: str, heartbeat: int = 30, on_stale: Callable[[Any, Any], Any] | None = None) -> Any:
    """An RDB storage with heartbeats, so a killed worker's trial is marked failed and retried once (judged by
    the heartbeat interval of the worker that runs it: search/studies/_heartbeats.py); ``on_stale(study, trial)``
    queues it again (Optuna's callback where not given, whose retry keeps none of
    the seeds the trial trained with)."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    from search.studies import _sqlite
    from search.studies._heartbeats import OwnerJudgedStorage

    if url.startswith("grpc://"):  # Optuna's storage proxy, for hundreds of workers
        from urllib.parse import urlsplit

        from optuna.storages import GrpcStorageProxy

        parts = urlsplit(url)
        return GrpcStorageProxy(host=parts.hostname or "localhost", port=parts.port or 13000)
    from search import stores

    _sqlite.prepare(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    # BEGIN IMMEDIATE takes the write lock, which a read-only file refuses even to a reader.
    serialize = url.startswith("sqlite") and not stores.is_read_only(url)
    try:
        for attempt in range(3):
            try:
                options: dict[str, Any] = dict(
                    engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                    heartbeat_stale_trial_callback=on_stale or RetryHeartbeatStaleTrialCallback(max_retry=1))
                storage = OwnerJudgedStorage(url, skip_compatibility_check=True, **options)
                if not _schema_is_current(storage):  # Optuna's own check, which says what to do
                    storage = OwnerJudgedStorage(url, **options)
                if serialize:
                    _sqlite.serialize_transactions(storage.engine)
                return storage
            except Exception as exc:  # two workers creating the schema at once: the loser retries
                if attempt == 2 or "UNIQUE constraint" not in str(exc) and "already exists" not in str(exc):
                    raise
        raise AssertionError("unreachable")
    except (ImportError, ModuleNotFoundError) as exc:
        raise StudyError(f"the storage needs a database driver that is not installed ({exc}); for "
                         f"PostgreSQL: pip install '.[postgres]'", field="--storage") from None
    except Exception as exc:  # SQLAlchemy: unreachable server, bad URL, refused login
        from search._redact import redact

        if (trouble := stores.trouble_of(exc)) is not None:
            raise StoreTrouble(f"cannot open the Optuna storage {redact(url)}: {trouble}", field="--storage") from None

        raise StudyError(f"cannot open the Optuna storage {redact(url)} ({type(exc).__name__}: "
                         f"{redact(str(exc).splitlines()[0] if str(exc) else '')})", field="--storage") from None
    finally:
        # Failed trials are reported by our progress lines, in one line, not as Optuna's tracebacks.
        optuna.logging.set_verbosity(optuna.logging.ERROR)



_SCHEMA_HEAD: list[str] = []


def _schema_is_current(storage: Any) -> bool:
    """Optuna's check that the tables are of this Optuna's schema, with the schema's latest revision read once
    per process: Optuna reads it again at each opening by loading all its migration scripts (0.1 s a time,
    most of opening a study for ``search status``). False where they are not, or cannot be told apart here."""
    try:
        manager = storage._version_manager
        if not _SCHEMA_HEAD:
            _SCHEMA_HEAD.append(manager.get_head_version())
        return bool(manager.get_current_version() == _SCHEMA_HEAD[0])
    except AttributeError:  # an Optuna whose storage is made otherwise
        return False


def open_study(space: Space, storage: Any, attrs: dict[str, Any],
               on_create: Callable[[Any], None] | None = None) -> Any:
    """Create or load the study named in the space; refuse to continue it on different data.

    ``attrs`` (data fingerprint, test rows, split plan) are stored on a new study and compared on a
    continued one: a study's trials are only comparable if they saw the same rows. Of several workers
    starting at once, exactly one creates the study and fills its queue (the baseline, or the whole
    grid); the others wait until it says the study is ready. ``on_create`` runs in that one process
    before the others go on, for what must exist exactly once (the MLflow experiment and parent run).
    """
    import optuna

    directions = [optuna.study.StudyDirection.MINIMIZE] * len(space.study.objectives)
    try:
        study = optuna.create_study(study_name=space.study.name, storage=storage, load_if_exists=False,
                                    sampler=make_sampler(space), pruner=make_pruner(space, attrs.get("n_splits")),
                                    directions=directions)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=space.study.name, storage=storage, sampler=make_sampler(space),
                                  pruner=make_pruner(space, attrs.get("n_splits")))
        created = False
    attrs = {**attrs, "objectives": list(space.study.objectives)}
    if created:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        study.set_user_attr("budget", budget_of(space))
        _fill_queue(study, space)
        try:
            if on_create is not None:
                on_create(study)
        finally:  # a failed hook ends this process; the others must not wait for it
            study.set_user_attr("ready", True)
    else:
        _wait_until_ready(study)
    check_continuable(study, space, attrs)
    if not created:
        _queue_user_points(study, space)  # entries added to study.enqueue since the study started
    if study.user_attrs.get("budget") != budget_of(space):
        study.set_user_attr("budget", budget_of(space))  # a raised n_trials continues the study
    return study


def budget_of(space: Space) -> int:
    """Finished trials the study aims for: ``n_trials``, or fewer when a grid has fewer points."""
    if space.study.sampler == "grid":
        return min(space.study.n_trials, len(_grid_points(space)))
    return space.study.n_trials


def _grid_points(space: Space) -> list[dict[str, Any]]:
    import itertools

    grid = space.grid()
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def _fill_queue(study: Any, space: Space) -> None:
    """Queue the baseline first, then the `study.enqueue` entries; for a grid, every other point once, in a
    seeded order.

    Queued trials are handed to exactly one worker each by the storage, so a grid shared by many
    workers is covered once, which Optuna's GridSampler alone does not promise under concurrency.
    """
    import numpy as np

    baseline = space.baseline_params() if space.study.baseline else None
    if baseline is not None:
        # A custom builder that names no regularizers has a baseline at its settings' middles, not an
        # unregularized one, and nothing may call it that.
        kept = space.fixed_regularizers()  # the file fixes them on: the baseline keeps them
        study.enqueue_trial(baseline, user_attrs={"baseline": True,
                                                  "unregularized": space.declares_regularizers and not kept,
                                                  **({"kept_on": {k: v for k, v in kept.items()}} if kept else {})})
    _queue_user_points(study, space)
    if space.study.sampler != "grid":
        return
    points = _grid_points(space)
    order = [points[i] for i in np.random.default_rng(space.study.seed).permutation(len(points))]
    if baseline is not None:  # the baseline is its own grid point when it lies on the grid
        order = [p for p in order if p != {k: baseline.get(k) for k in p}]
    for point in order[: budget_of(space) - (1 if baseline is not None else 0)]:
        study.enqueue_trial(point)


def _queue_user_points(study: Any, space: Space) -> None:
    """Queue the ``study.enqueue`` entries not queued before (the study remembers them, so a continued run
    queues only what the file added)."""
    from search.space import enqueued_params

    points = enqueued_params(space)
    queued = list(study.user_attrs.get("enqueued", []))
    new = [(i, p) for i, p in enumerate(points) if p not in queued]
    for index, params in new:
        study.enqueue_trial(params, user_attrs={"enqueued": index}, skip_if_exists=False)
    if new:
        study.set_user_attr("enqueued", queued + [p for _, p in new])


def _wait_until_ready(study: Any, timeout: float = 60.0) -> None:
    """Wait for the creator to mark the study ready; a creator killed half-way is waited for ``timeout``.

    Trials do not mean ready: the creator queues the baseline before it makes the parent run, and a
    worker let in on that would make a second one.
    """
    import time

    deadline = time.monotonic() + timeout
    while not study.user_attrs.get("ready") and time.monotonic() < deadline:
        time.sleep(0.5)


def waiting_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def finished_count(study: Any) -> int:
    return count_finished(study.get_trials(deepcopy=False))


def count_finished(trials: Sequence[Any]) -> int:
    return sum(1 for t in trials if t.state.name in FINISHED_STATES)


def count_taken(trials: Sequence[Any]) -> int:
    """Finished trials and running ones: a worker that would start one more past this finds it over budget."""
    return sum(1 for t in trials if t.state.name in FINISHED_STATES or t.state.name == "RUNNING")


def top_trials(trials: Sequence[Any], k: int, pending: tuple[int, float] | None = None) -> set[int]:
    """Numbers of the ``k`` best completed ``trials``, counting ``pending`` (number, value) as completed.

    ``pending`` is the trial whose objective is returning right now: storage does not call it
    complete yet, but it competes for a place already. Callers that then delete the checkpoints of
    finished trials outside the top judge "finished" from the same list: read twice, a trial that
    completes in between would be finished in the second read without having competed in the first.
    """
    scored = [(t.values[0], t.number) for t in trials
              if t.state.name == "COMPLETE" and t.values]  # the loss: the first objective
    if pending is not None:
        scored.append((pending[1], pending[0]))
    return {n for _, n in sorted(scored)[:k]}


def trials_by_state(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def timing_text(study: Any, budget: int | None) -> str:
    """Elapsed time since the first trial started, and the time left at the pace so far.

    While trials run, the clock runs to now; the time left divides the remaining trials among the
    workers running now, since each finishes trials at the mean per-trial pace.
    """
    from datetime import datetime

    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t for t in trials if t.datetime_complete and t.state.name in FINISHED_STATES]
    if not starts:
        return "no trial started yet"
    from search.studies._identity import orphans

    lost = len(orphans(study))
    running = sum(1 for t in trials if t.state.name == "RUNNING") - lost
    # Optuna stores naive local times, from datetime.now().
    # A trial whose process was killed has a start and no end: the last thing known of the study may be it.
    last = datetime.now() if running else max([t.datetime_complete for t in trials if t.datetime_complete] + starts)
    span = (last - min(starts)).total_seconds()
    busy = _busy_seconds([(t.datetime_start, max(t.datetime_start, t.datetime_complete or last)) for t in trials
                          if t.datetime_start])
    text = f"elapsed {_hms(span)}"
    if busy < 0.9 * span - 60:  # a study continued later: the time between its runs is not the search's
        text += f" ({_hms(busy)} of it with trials running, the rest between runs)"
    if running:
        text += f", {running} running"
    if lost:
        text += f", {lost} marked running whose process on this host is gone (the next run retries them)"
    if ends and budget:
        pace = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in ends) / len(ends)
        left = max(0, budget - len(ends) - running)
        workers = max(1, running)
        if budget - len(ends) <= 0:
            text += ", budget reached"
        else:
            # The running trials are about half done on average; the rest are shared among the workers.
            eta = pace * (left + running / 2) / workers
            text += f", about {_hms(eta)} left at {_hms(pace)} per trial" + \
                (f" with {workers} workers" if workers > 1 else "")
    return text


def _busy_seconds(intervals: list[tuple[Any, Any]]) -> float:
    """Seconds covered by at least one of the (start, end) intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ---------------------------------------------------------------------------------------------
# Picking one trial


PICK_RULES = ("auto", "best", "one_se")


def picked_number(study: Any) -> int | None:
    """The number of the trial the study's review and its own ablation are about (``pick_trial``'s "auto"),
    None while no trial is complete."""
    try:
        return int(pick_trial(study, "auto").number)
    except StudyError:
        return None


def pick_trial(study: Any, rule: str | int = "auto") -> Any:
    """The one complete trial to report, reproduce or deploy, chosen by a documented rule.

    ``rule``:

    - a trial number (int, or digits): that trial, which must be complete;
    - ``"best"``: the lowest mean validation loss;
    - ``"one_se"``: the one-standard-error rule (Hastie, Tibshirani & Friedman, ESL 7.10). Let ``b`` be the
      trial with the lowest mean validation loss over its ``k`` splits, with split standard deviation
      ``s``; of the trials whose mean loss is at most ``b + s / sqrt(k)``, take the smallest model: the
      lowest second objective (parameter count or latency) in a multi-objective study, else the lowest
      parameter count. Ties go to the lower loss, then the lower trial number. The pick is always on the
      Pareto front: a trial that beats it on both counts would also be within the bound, and smaller;
    - ``"auto"``: ``one_se`` in a multi-objective study, ``best`` otherwise.
    """
    from optuna.trial import TrialState

    complete = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values),
                      key=lambda t: (t.values[0], t.number))
    if not complete:
        from search.errors import FailureKind

        trials = study.get_trials(deepcopy=False)
        ended = Counter(t.state.name.lower() for t in trials)
        counts = ", ".join(f"{n} {state}" for state, n in sorted(ended.items())) or "no trials yet"
        # Stopped or cut short, not failed by their settings: the study goes on where it is run again.
        again = (FailureKind.INTERRUPTED, FailureKind.LOST_PROCESS, FailureKind.SILENT, FailureKind.LOST_STORAGE,
                 FailureKind.DISK_FULL)
        pending = any(t.state.name == "FAIL" for t in trials) and all(
            t.state.name in ("WAITING", "RUNNING") or t.state.name == "FAIL" and FailureKind.of(t) in again
            for t in trials)
        if pending:
            import shlex

            path = str(study.user_attrs.get("space_path") or "")
            how = f"`search run {shlex.quote(path)}` continues it" if path else \
                "`search run` its space file again continues it"
            raise StudyError(f"study '{study.study_name}' has no finished trial yet ({counts}; none failed by its "
                             f"settings: stopped or cut short, and queued again): {how}")
        raise StudyError(f"study '{study.study_name}' has no completed trial ({counts}); `search status "
                         f"{study.study_name}` shows why its trials ended")
    if isinstance(rule, int) or (isinstance(rule, str) and rule.isdigit()):
        chosen = next((t for t in complete if t.number == int(rule)), None)
        if chosen is None:
            states = {t.number: t.state.name.lower() for t in study.get_trials(deepcopy=False)}
            raise StudyError("no such complete trial in the study", field="trial", found=rule,
                             expected=f"a complete trial ({states[int(rule)]} trials have no value)"
                             if int(rule) in states else f"a trial number below {len(states)}")
        return chosen
    if rule not in PICK_RULES:
        raise StudyError("unknown rule for picking a trial", field="rule", found=rule,
                         expected="a trial number or one of " + ", ".join(PICK_RULES))
    multi = len(study.directions) > 1
    if rule == "auto":
        rule = "one_se" if multi else "best"
    best = complete[0]
    if rule == "best":
        return best
    size = (lambda t: t.values[1]) if multi else (lambda t: t.user_attrs.get("n_params", math.inf))
    bound = best.values[0] + standard_error(best)
    within = [t for t in complete if t.values[0] <= bound]
    return min(within, key=lambda t: (size(t), t.values[0], t.number))


def standard_error(trial: Any) -> float:
    """Standard error of a trial's mean validation loss: split std / sqrt(number of splits)."""
    std = trial.user_attrs.get("val_loss_std", 0.0) or 0.0
    n = trial.user_attrs.get("splits_done") or len(trial.user_attrs.get("splits", [])) or 1
    return float(std) / math.sqrt(float(n))
