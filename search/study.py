"""The Optuna side: storage, sampler, pruner, the study's budget and its provenance attributes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.space import Space

FINISHED_STATES = ("COMPLETE", "PRUNED")


def default_storage(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'optuna.db').resolve()}"


def make_storage(url: str, heartbeat: int = 30) -> Any:
    """An RDB storage with heartbeats, so a killed worker's trial is marked failed and retried once."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    from search import _sqlite

    if url.startswith("grpc://"):  # Optuna's storage proxy, for hundreds of workers
        from urllib.parse import urlsplit

        from optuna.storages import GrpcStorageProxy

        parts = urlsplit(url)
        return GrpcStorageProxy(host=parts.hostname or "localhost", port=parts.port or 13000)
    _sqlite.prepare(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        for attempt in range(3):
            try:
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                  grace_period=3 * heartbeat,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
            except Exception as exc:  # two workers creating the schema at once: the loser retries
                if attempt == 2 or "UNIQUE constraint" not in str(exc) and "already exists" not in str(exc):
                    raise
        raise AssertionError("unreachable")
    except (ImportError, ModuleNotFoundError) as exc:
        raise StudyError(f"the storage needs a database driver that is not installed ({exc})",
                         field="--storage") from None
    except Exception as exc:  # SQLAlchemy: unreachable server, bad URL
        raise StudyError(f"cannot open the Optuna storage ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]})", field="--storage") from None
    finally:
        # Failed trials are reported by our progress lines, in one line, not as Optuna's tracebacks.
        optuna.logging.set_verbosity(optuna.logging.ERROR)


def _where(space: Space) -> str | None:
    return str(space.path) if space.path else None


def make_sampler(space: Space, n_existing: int = 0, worker: int = 0) -> Any:
    """The study's sampler, seeded from the study seed, the trials already stored and the worker.

    A continued study must not replay the suggestions it made the first time, parallel workers must not
    make the same suggestions, and the same stored state must always give the same suggestions.
    """
    import numpy as np
    import optuna.samplers as s

    name = space.study.sampler
    seed = space.study.seed if not (n_existing or worker) else int(
        np.random.SeedSequence([space.study.seed, n_existing, worker]).generate_state(1)[0] % (2**31 - 1))
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "grid":
        return s.GridSampler(space.grid(), seed=seed)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise StudyError("the gp sampler needs PyTorch, which is not installed: pip install torch, or "
                         "choose tpe", source=_where(space), field="study.sampler", found="gp") from None
    return s.GPSampler(seed=seed)


def make_pruner(space: Space) -> Any:
    import optuna.pruners as p

    name = space.study.pruner
    if name == "median":
        return p.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "percentile":
        return p.PercentilePruner(25.0, n_startup_trials=5)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=5, reduction_factor=3)
    if name == "successive_halving":
        return p.SuccessiveHalvingPruner(min_resource=5, reduction_factor=3)
    return p.NopPruner()


def open_study(space: Space, storage: Any, attrs: dict[str, Any], worker: int = 0) -> Any:
    """Create or load the study named in the space; refuse to continue it on different data.

    ``attrs`` (data fingerprint, test rows, split plan) are stored on a new study and compared on a
    continued one: a study's trials are only comparable if they saw the same rows. Of several workers
    starting at once, exactly one creates the study and fills its queue (the baseline, or the whole
    grid); the others wait until it says the study is ready.
    """
    import optuna

    try:
        study = optuna.create_study(study_name=space.study.name, storage=storage, load_if_exists=False,
                                    sampler=make_sampler(space), pruner=make_pruner(space), direction="minimize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=space.study.name, storage=storage, sampler=make_sampler(space),
                                  pruner=make_pruner(space))
        created = False
    if created:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        study.set_user_attr("budget", budget_of(space))
        _fill_queue(study, space)
        study.set_user_attr("ready", True)
    else:
        _wait_until_ready(study)
    stored = study.user_attrs
    for key, value in attrs.items():
        if key in stored and stored[key] != value and key.endswith("fingerprint"):
            raise StudyError(f"study '{space.study.name}' was started with different data or splits "
                             f"({key} is {stored[key]}, now {value}); start a new study with --study-name, "
                             f"or restore the original data", source=_where(space), field="data.source")
    if stored.get("budget") != budget_of(space):
        study.set_user_attr("budget", budget_of(space))  # a raised n_trials continues the study
    if study.trials or worker:
        study.sampler = make_sampler(space, len(study.trials), worker)
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
    """Queue the baseline first; for a grid, then every other point once, in a seeded order.

    Queued trials are handed to exactly one worker each by the storage, so a grid shared by many
    workers is covered once, which Optuna's GridSampler alone does not promise under concurrency.
    """
    import numpy as np

    baseline = space.baseline_params() if space.study.baseline else None
    if baseline is not None:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    if space.study.sampler != "grid":
        return
    points = _grid_points(space)
    order = np.random.default_rng(space.study.seed).permutation(len(points))
    for i in order[: budget_of(space) - (1 if baseline is not None else 0)]:
        if baseline is None or points[i] != {k: baseline.get(k) for k in points[i]}:
            study.enqueue_trial(points[i])


def _wait_until_ready(study: Any, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not study.user_attrs.get("ready") and not study.trials and time.monotonic() < deadline:
        time.sleep(0.5)


def waiting_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def finished_count(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED_STATES)


def top_trials(study: Any, k: int, pending: tuple[int, float] | None = None) -> set[int]:
    """Numbers of the ``k`` best completed trials, counting ``pending`` (number, value) as completed.

    ``pending`` is the trial whose objective is returning right now: storage does not call it
    complete yet, but it competes for a place already.
    """
    scored = [(t.value, t.number) for t in study.get_trials(deepcopy=False)
              if t.state.name == "COMPLETE" and t.value is not None]
    if pending is not None:
        scored.append((pending[1], pending[0]))
    return {n for _, n in sorted(scored)[:k]}


def trials_by_state(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def requeue(study: Any, trial: Any, max_retries: int | None = 1) -> bool:
    """Queue a failed trial's settings to run again (at most ``max_retries`` times along its chain)."""
    retries = int(trial.user_attrs.get("retry_count", 0))
    if max_retries is not None and retries >= max_retries:
        return False
    attrs = {"retry_of": trial.number, "retry_count": retries + 1}
    if trial.user_attrs.get("baseline"):
        attrs["baseline"] = True
    study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
    return True


def recover_orphans(study: Any) -> list[int]:
    """Fail and requeue RUNNING trials whose process on this host is gone (killed, crashed).

    Heartbeats catch a dead worker on any host, but only after their grace period; a run restarted on
    the same machine knows at once, from the process id each trial records.
    """
    from optuna.trial import TrialState

    from search._identity import worker_identity

    host, recovered = worker_identity()["host"], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != host or _alive(int(worker.get("pid", -1))):
            continue
        storage = study._storage  # Optuna has no public call to fail another process's trial
        storage.set_trial_user_attr(t._trial_id, "reason", f"its process {worker.get('pid')} died")
        if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
            requeue(study, t)
            recovered.append(t.number)
    return recovered


def _alive(pid: int) -> bool:
    import os

    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a killed child not yet reaped) still answers kill(0): read its state where we can.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def timing_text(study: Any, budget: int | None) -> str:
    """Elapsed time since the first trial started, and the time left at the mean pace so far."""
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t for t in trials if t.datetime_complete and t.state.name in FINISHED_STATES]
    if not starts:
        return "no trial started yet"
    last = max([t.datetime_complete for t in ends] or starts)
    elapsed = (last - min(starts)).total_seconds()
    text = f"elapsed {_hms(elapsed)}"
    running = sum(1 for t in trials if t.state.name == "RUNNING")
    if running:
        text += f", {running} running"
    if ends and budget:
        pace = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in ends) / len(ends)
        left = max(0, budget - len(ends))
        text += f", about {_hms(pace * left)} left at {_hms(pace)} per trial" if left else ", budget reached"
    return text


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
