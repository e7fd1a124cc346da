"""The Optuna side: storage, sampler, pruner, the study's budget and its provenance attributes."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.space import Space

FINISHED_STATES = ("COMPLETE", "PRUNED")


def default_storage(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'optuna.db').resolve()}"


def make_storage(url: str) -> Any:
    """An RDB storage with heartbeats, so a killed worker's trial is marked failed and retried once."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    except (ImportError, ModuleNotFoundError) as exc:
        raise StudyError(f"the storage needs a database driver that is not installed ({exc})",
                         field="--storage") from None
    except Exception as exc:  # SQLAlchemy: unreachable server, bad URL
        raise StudyError(f"cannot open the Optuna storage ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]})", field="--storage") from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _where(space: Space) -> str | None:
    return str(space.path) if space.path else None


def make_sampler(space: Space, n_existing: int = 0) -> Any:
    """The study's sampler, seeded from the study seed and the number of trials already stored.

    A continued study must not replay the suggestions it made the first time, and the same stored
    state must always give the same suggestions. The grid is the exception: its order is fixed by the
    study seed alone, because every worker must agree on it (search/_grid.py).
    """
    import numpy as np
    import optuna.samplers as s

    name = space.study.sampler
    seed = space.study.seed if not n_existing else int(
        np.random.SeedSequence([space.study.seed, n_existing]).generate_state(1)[0] % (2**31 - 1))
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "grid":
        from search._grid import BaselineFirstGrid

        return BaselineFirstGrid(space.grid(), seed=space.study.seed,
                                 first=space.baseline_params() if space.study.baseline else None)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise StudyError("the gp sampler needs PyTorch, which is not installed: pip install torch, or "
                         "choose tpe", source=_where(space), field="study.sampler", found="gp") from None
    return s.GPSampler(seed=seed)


def make_pruner(space: Space, n_splits: int | None = None) -> Any:
    """The study's pruner: the file's ``pruner`` inside a split, ``split_pruner`` across splits.

    Steps are ``split * 10000 + epoch`` for epochs and ``split * 10000`` for finished splits
    (search/pruning.py). Median and percentile compare the same epoch of the same split in every split.
    Successive halving and Hyperband count epochs as their resource, so they judge the first split only
    (rungs at 5, 15, 45 ... epochs); Hyperband's ``max_resource`` is the largest epoch count, which its
    "auto" setting would misread from the step numbers.
    """
    import optuna.pruners as p

    from search import pruning

    if space.study.multi_objective:
        return p.NopPruner()  # Optuna cannot report or prune in a multi-objective study
    name, warmup = space.study.pruner, pruning.PRUNE_WARMUP_EPOCHS
    within: Any = None
    if name == "median":
        within = p.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=0)
    elif name == "percentile":
        within = p.PercentilePruner(25.0, n_startup_trials=PRUNE_STARTUP_TRIALS)
    elif name == "hyperband":
        within = p.HyperbandPruner(min_resource=warmup, max_resource=max(_max_epochs(space), warmup),
                                   reduction_factor=3)
    elif name == "successive_halving":
        within = p.SuccessiveHalvingPruner(min_resource=warmup, reduction_factor=3)
    across: Any = None
    if space.study.split_pruner == "paired":
        across = pruning.PairedSplitRule(min_splits=2)
    elif space.study.split_pruner == "wilcoxon":
        across = pruning.WilcoxonSplitRule(p_threshold=0.1, min_splits=2)
    return pruning.SplitPruner(within, across, first_split_only=name in ("hyperband", "successive_halving"),
                               n_splits=n_splits)


# Complete trials a median/percentile pruner waits for before it judges a curve (the baseline counts).
PRUNE_STARTUP_TRIALS = 3


def _max_epochs(space: Space) -> int:
    from search.space import is_distribution

    epochs = space.train.get("epochs", 50)
    if is_distribution(epochs):
        return int(max(epochs.get("choice") or epochs.get("int") or [50]))
    return int(epochs)


def open_study(space: Space, storage: Any, attrs: dict[str, Any]) -> Any:
    """Create or load the study named in the space; refuse to continue it on different data.

    ``attrs`` (data fingerprint, test rows, split plan) are stored on a new study and compared on a
    continued one: a study's trials are only comparable if they saw the same rows.
    """
    import optuna

    directions = ["minimize"] * len(space.study.objectives)
    study = optuna.create_study(study_name=space.study.name, storage=storage, load_if_exists=True,
                                sampler=make_sampler(space), pruner=make_pruner(space, attrs.get("n_splits")),
                                directions=directions)
    stored_objectives = study.user_attrs.get("objectives", ["val_loss"])
    if len(study.directions) != len(directions) or (study.trials and stored_objectives != space.study.objectives):
        raise StudyError(f"study '{space.study.name}' was started with objectives {stored_objectives}; start "
                         f"a new study with --study-name to change them", source=_where(space),
                         field="study.objectives", found=space.study.objectives)
    if study.trials:
        study.sampler = make_sampler(space, len(study.trials))
    attrs = {**attrs, "objectives": list(space.study.objectives)}
    stored = study.user_attrs
    for key, value in attrs.items():
        if key in stored and stored[key] != value and key.endswith("fingerprint"):
            raise StudyError(f"study '{space.study.name}' was started with different data or splits "
                             f"({key} is {stored[key]}, now {value}); start a new study with --study-name, "
                             f"or restore the original data", source=_where(space), field="data.source")
    for key, value in attrs.items():
        if key not in stored:
            study.set_user_attr(key, value)
    if space.study.baseline and not study.trials:
        study.enqueue_trial(space.baseline_params(), user_attrs={"baseline": True})
    return study


def finished_count(study: Any) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED_STATES)


def trials_by_state(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


class Budget:
    """Optuna callback: stop when the study has ``total`` finished trials, or after a run of failures."""

    def __init__(self, total: int, max_consecutive_failures: int) -> None:
        self.total, self.max_failures = total, max_consecutive_failures
        self.consecutive_failures = 0
        self.gave_up = False

    def __call__(self, study: Any, trial: Any) -> None:
        if trial.state.name == "FAIL":
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.max_failures:
                self.gave_up = True
                study.stop()
                return
        else:
            self.consecutive_failures = 0
        if finished_count(study) >= self.total:
            study.stop()


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


# ---------------------------------------------------------------------------------------------
# Picking one trial


PICK_RULES = ("auto", "best", "one_se")


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
        raise StudyError(f"study '{study.study_name}' has no complete trial yet", field="trial")
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
