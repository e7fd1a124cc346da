"""The Python API: run a study, get its picked trial and models, reproduce, ablate, report.

The ``search`` command is a thin layer over these functions; a notebook calls them directly::

    import search

    result = search.run("spaces/digits_mlp.yaml", n_trials=5)
    best = search.best("digits-mlp")
    models = best.split_models()
    report = search.reproduce("digits-mlp")

Every function takes the same store arguments as the command (``home``, ``storage``, ``tracking_uri``)
and raises a :class:`search.UserError` subclass for a user's mistake, before anything is stored.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO

import numpy as np

from search.api._arrays import _save_arrays
from search.api._split_models import taking_raw_rows
from search.api._errors import (_arguments, _builder_not_here, _folder, _hides_credentials, _named_by_arguments,
                               _space_argument, as_command as as_command)
from search.errors import ContinuationRefused, SpaceError, StudyError, UserError
from search.space import Space

if TYPE_CHECKING:
    import keras
    import optuna

    from search.runner import session

    from search.reproduction.ablation import AblationRow
    from search.reproduction.final import Report

__all__ = ["RunResult", "TrialResult", "ablate", "ablate_when_done", "announce", "best", "reproduce", "report",
           "run", "run_prepared"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class TrialResult:
    """A completed trial: its score, its config with every value fixed, and where its models are."""

    study: "optuna.Study"
    number: int
    value: float                 # mean over splits of the best validation (data) loss
    value_std: float
    params: dict[str, Any]
    config: Space                # the trial's config, every value fixed, as `search best --export` writes
    home: Path

    @property
    def metrics(self) -> dict[str, float]:
        """Its summary over the splits, by name: ``val_loss_mean``/``_std``, the task metric's
        (``val_accuracy_mean`` or ``val_mae_mean``, and ``_std``), ``best_epoch_mean``, ``penalty_mean``,
        ``splits_done``, and ``n_params``/``latency_ms`` where measured."""
        from search.runner.results import is_summary_metric

        attrs = self.study.trials[self.number].user_attrs
        return {key: float(value) for key, value in attrs.items() if isinstance(value, (int, float))
                and not isinstance(value, bool) and is_summary_metric(key)}

    def split_models(self, scaled_input: bool = False) -> list["keras.Model"]:
        """The trial's split models (best-epoch weights), loaded from their checkpoints, in split order.

        Each takes raw rows, as the data holds them: its own split's scaler (fitted on that split's
        training rows, as in the search) and any fill of missing values are layers in front of it, as
        in the final model. ``scaled_input=True``: the checkpoints as trained, which take rows already
        scaled by their split's scaler.

        Raises:
            StudyError: a checkpoint was removed (only the best ``keep_checkpoints`` trials keep theirs).
            DataError: the data is no longer what the study ran on (the scalers would be other ones).
        """
        from search.runner import checkpoints

        records = self.study.trials[self.number].user_attrs.get("splits", [])
        paths = []
        for record in records:
            path = checkpoints.split_path(self.home, self.study.study_name, self.number, int(record["split"]))
            if not path.is_file():
                raise StudyError(f"the checkpoint of trial {self.number}'s split {record['split']} is not on this "
                                 f"disk ({path}: only the best study.keep_checkpoints trials keep theirs); "
                                 f"search.reproduce({self.study.study_name!r}, trial={self.number}) retrains them")
            paths.append(path)
        models = [checkpoints.load_model(path) for path in paths]
        if scaled_input or not models:
            return models
        return taking_raw_rows(self.study, self.config, [int(r["split"]) for r in records], models)


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` leaves: the Optuna study, its picked trial, and the ablation table when it ran."""

    study: "optuna.Study"
    best: TrialResult | None
    ablation: list["AblationRow"] = field(default_factory=list)


@_hides_credentials
def run(space: Space | PathLike, *, x: np.ndarray | None = None, y: np.ndarray | None = None,
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
        builder: Callable[..., "keras.Model"] | None = None, study_name: str | None = None,
        home: PathLike = "mlruns", storage: str | None = None, tracking_uri: str | None = None,
        n_trials: int | None = None, timeout: float | None = None, threads: int | None = None,
        quiet: bool = True, out: TextIO | None = None) -> RunResult:
    """Start or continue the study a space describes, and ablate its picked trial when the budget is spent.

    Args:
        space: a space file's path, a dict of its sections (as the file would read), or a :class:`Space`
            (``search.load_space``).
        x, y: in-memory rows and targets instead of ``data.source``; they are saved under
            ``<home>/data/`` so the study can be continued and reproduced later, also from the command.
        x_test, y_test: provided test rows (needs both; ``data.test_size`` is then not used); otherwise the
            test rows are drawn as ``data.test_size`` says.
        builder: a function ``builder(settings, input_shape, n_outputs) -> keras.Model`` used as the
            model family (``model.family`` is set to it); its settings are the file's other model keys.
        study_name: overrides ``study.name``.
        home, storage, tracking_uri: the stores, as the command's ``--home``, ``--storage``,
            ``--tracking-uri``.
        n_trials: run at most this many trials now (``study.n_trials`` stays the study's budget).
        timeout: stop starting trials after this many seconds.
        threads: TensorFlow threads.
        quiet: no per-trial progress lines and no data summary; the final table and the next steps still go
            to ``out``.
        out: where the summary goes (default: standard output; ``io.StringIO()`` keeps it out of sight).

    Returns:
        A :class:`RunResult`.

    Raises:
        SpaceError, DataError, ValidationSchemeError: a mistake in the space or the data, before anything
            is stored.
        StudyError: the study cannot be continued as asked (other data, other objectives).
    """
    from search import models, space as spaces
    from search.reproduction import ablation
    from search.runner import session

    n_trials, threads = _arguments(n_trials=(n_trials, 1), threads=(threads, 1))
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise UserError("timeout is a number of seconds above 0", field="timeout", found=timeout)
    home = _folder(home)
    loaded = _space_argument(space, study_name)
    raw = loaded.model_dump(mode="json")
    if study_name:
        raw["study"]["name"] = study_name
    if (x is None) != (y is None):
        raise SpaceError("in-memory data needs both x and y", field="x, y")
    if (x_test is None) != (y_test is None):
        raise SpaceError("provided test rows need both x_test and y_test", field="x_test, y_test")
    made: list[Path] = []  # array files this call wrote: removed again if the data is refused
    named: dict[str, tuple[str, str]] = {}  # the files the arrays went to, by the arguments they came from
    fresh_home = not home.exists()
    fills = loaded.data.missing != "refuse"  # missing features are then the data checks' to count
    try:
        row_shape = None
        roles = {f"data.{key}": raw["data"][key] for key in ("group", "order") if raw["data"].get(key)}
        ignored = raw["data"].get("source") if x is not None else None  # a space file's own data, set aside
        if x is not None and y is not None:
            source, row_shape = _save_arrays(home, raw["study"]["name"], x, y, ("x", "y"), made, fills, roles=roles)
            raw["data"]["source"], raw["data"]["target"] = f"npz:{source}", None
            named[str(source)] = ("x", "y")
        if x_test is not None and y_test is not None:
            test, _ = _save_arrays(home, raw["study"]["name"] + "-test", x_test, y_test, ("x_test", "y_test"), made,
                                   fills, row_shape, roles=roles)
            raw["data"]["test"] = f"npz:{test}"
            named[str(test)] = ("x_test", "y_test")
            raw["data"]["test_size"] = None  # the rows given are the test rows: nothing is drawn
        if builder is not None:
            raw["model"]["family"] = models.register_builder(builder)
        resolved = spaces.validate(raw, source=str(loaded.path) if loaded.path else "<space>", path=loaded.path)
        prepared = session.prepare(resolved, threads=threads)
        if ignored and ignored != "arrays" and not str(ignored).startswith("npz:"):
            prepared.dataset.warnings.append(f"the space's data.source {ignored!r} is not read: x and y are the data "
                                             f"(data.source: arrays says so)")
    except UserError as exc:
        _named_by_arguments(exc, named)
        _remove_saved(made, home if fresh_home else None)
        raise
    options = session.RunOptions(home=home, storage=storage, tracking_uri=tracking_uri, n_trials=n_trials,
                                 timeout=timeout, threads=threads, quiet=quiet)
    if builder is not None and (name := models.only_in_this_process(resolved.model["family"])):
        # The command cannot import a notebook's function: the study continues from Python.
        where = repr(str(loaded.path)) if loaded.path else "space"
        options.continue_command = f"search.run({where}, builder={name}, home={str(home)!r}, ...) in Python"
    sink = out or sys.stdout
    announce(prepared, quiet, out=sink)
    try:
        outcome = run_prepared(prepared, options, resolved.to_yaml(), out=sink)
    except ContinuationRefused:  # no trial ran on the arrays saved for it
        _remove_saved(made, None)
        raise
    try:
        rows = None if outcome.stopped_by else ablate_when_done(resolved, options, out=sink)
    except ablation.AblationStopped:  # said on the output; the next run continues it
        rows = None
    study = outcome.study
    return RunResult(study, _best_or_none(study, options), rows or (ablation.stored_rows(study)[1]))


def _remove_saved(made: list[Path], fresh_home: Path | None) -> None:
    """The array files this call wrote for data that was refused, and the folders that held only them."""
    for path in made:
        path.unlink(missing_ok=True)
    for folder in [p.parent for p in made[:1]] + ([fresh_home] if fresh_home else []):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def announce(prepared: "session.Prepared", quiet: bool = False, out: TextIO | None = None) -> None:
    """What the data checks found, as `search run` and `search check` say it: the warnings (each one
    paragraph) on stderr, the data summary on ``out`` unless ``quiet``."""
    if skipped := prepared.dataset.images_skipped:
        more = f", and {len(skipped) - 5} more (a new study's MLflow run lists them all in skipped_images.txt)" \
            if len(skipped) > 5 else ""
        print(f"note: skipped {len(skipped)} unreadable image(s) (data.skip_bad_images): {', '.join(skipped[:5])}"
              f"{more}", file=sys.stderr)
    summary = prepared.summary
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not quiet:
        print(summary.text(), file=out or sys.stdout, flush=True)


def run_prepared(prepared: "session.Prepared", options: "session.RunOptions", space_text: str, *,
                 workers: int = 1, worker_argv: list[str] | None = None, recycle_after: int = 0,
                 out: TextIO | None = None) -> "session.RunOutcome":
    """The one start-up path of a run, in one process or with worker processes: its listeners (MLflow and
    the terminal), the run, then the summary, the stop message and any error the run ended with.

    Raises:
        StudyError: the run stopped on a full disk or on consecutive failures (after the summary).
    """
    from search import models, tracking
    from search.review.display import Progress, format_counts, header_lines, next_steps, summary_table, why_ended
    from search.runner import session, workers as processes
    from search.studies.lifecycle import budget_of, default_storage, finished_count, trials_by_state

    from search import stores

    out = out or sys.stdout
    storage_url = options.storage or default_storage(Path(options.home))
    # Both stores are checked before anything is created; a fresh home's schemas are made under one lock.
    stores.check_url(options.tracking_uri or tracking.default_tracking_uri(Path(options.home)), "--tracking-uri",
                     stores.TRACKING)
    storage, tracker = session.open_storage(options, also=lambda: tracking.make_tracker(prepared, options, space_text))
    budget = budget_of(prepared.space)
    plan = None
    if options.worker_index == 0 and not options.quiet:
        def plan(study: Any) -> list[str]:
            return header_lines(prepared, options, storage_url, tracker.uri, finished_count(study), budget)
    listeners: list[Any] = [tracker, Progress(budget, quiet=options.quiet, header=plan)]
    phased = None
    if prepared.space.study.workflow == "phased":  # phase 0 once, then each trial's phase as it starts
        from search.workflow.phases import Phased

        phased = Phased(prepared, out, announce=options.worker_index == 0)
        listeners.append(phased)
    if workers > 1 or recycle_after:
        outcome = processes.run_workers(prepared, options, workers, worker_argv or [], listeners,
                                        recycle_after=recycle_after, storage=storage)
    else:
        outcome = session.run(prepared, options, listeners, out=out, storage=storage,
                              space_for=phased.space_for if phased is not None else None)
    if options.worker_index == 0:  # workers leave the summary to the process that started them
        if not outcome.already_done:
            print("\n" + format_counts(trials_by_state(outcome.study), budget), file=out)
            for line in why_ended(outcome.study):
                print(line, file=out)
        print(summary_table(outcome.study), file=out)
        complete = any(t.state.name == "COMPLETE" for t in outcome.study.get_trials(deepcopy=False))
        if outcome.stopped_by:
            print(f"\nstopped by {outcome.stopped_by}; interrupted trials are queued again. Continue the study "
                  f"with:\n  {options.continue_command}", file=out)
        elif outcome.error is None and outcome.exit_code == 0 and not complete:
            print("\nno trial completed, so there is nothing to reproduce: the lines above say why. Change the "
                  "settings that fail (or a range that diverges) and run a new study (--study-name), or raise "
                  "study.n_trials to try more of this one", file=out)
        elif outcome.error is None and outcome.exit_code == 0:
            here = models.only_in_this_process(str(prepared.space.model.get("family", "")))
            print("\n" + next_steps(prepared.space.study.name, options, builder_here=here), file=out)
    if outcome.error is not None:
        raise outcome.error
    return outcome


def ablate_when_done(space: Space, options: Any, out: TextIO | None = None) -> list["AblationRow"] | None:
    """After a finished budget, the picked trial's ablation (``study.ablation``); None when it does not run."""
    from search.reproduction import ablation
    from search.studies import lifecycle as studies
    from search.reproduction import targets
    from search.tracking import default_tracking_uri

    if not space.study.ablation:
        return None
    study = targets.load_study(options.storage or studies.default_storage(Path(options.home)), space.study.name)
    if studies.finished_count(study) < studies.budget_of(space):
        return None  # stopped early: the ablation waits for the finished search
    try:
        picked = studies.pick_trial(study, "auto")  # a two-objective study's one_se pick, as reproduce takes
    except StudyError:
        return None
    done, rows = ablation.stored_rows(study)
    if done == picked.number:
        return rows
    uri = options.tracking_uri or default_tracking_uri(Path(options.home))
    resolved, _ = targets.trial_config(study, picked, uri)
    return ablation.run(study, picked, resolved, options, out=out)


def workflow_answer(space: Space, options: Any) -> None:
    """The phased workflow's answer in its own words (search/reproduction/workflow_answer.py), after a run."""
    from search.reproduction import targets, workflow_answer as answer
    from search.studies import lifecycle as studies

    if space.study.workflow == "phased":
        study = targets.load_study(options.storage or studies.default_storage(Path(options.home)), space.study.name)
        answer.report_run(study, options)


@_hides_credentials
def best(study_name: str, *, trial: int | None = None, home: PathLike = "mlruns", storage: str | None = None,
         tracking_uri: str | None = None, builder: Callable[..., "keras.Model"] | None = None) -> TrialResult:
    """The study's picked trial (or trial ``trial``) with its fixed config.

    A study whose builder was a notebook's function is read without it (its split models are files);
    ``builder`` is needed only to train that config again from the returned ``config``.

    Raises:
        StudyError: no such study, or no such completed trial.
    """
    from search import models
    from search.reproduction import targets

    (trial,) = _arguments(trial=(trial, 0))
    home = _folder(home)
    storage_url, uri = _stores(home, storage, tracking_uri)
    study = targets.load_study(storage_url, study_name)
    with models.handed_over(builder or _builder_not_here):
        target = targets.locate(study, uri, trial=trial)
    return _trial_result(study, target.trial, target.space, home)


@_hides_credentials
def reproduce(study_name: str, *, trial: int | None = None, config: PathLike | None = None,
              home: PathLike = "mlruns", storage: str | None = None, tracking_uri: str | None = None,
              epochs: int | None = None, ensemble: int = 1, verify: bool = False, threads: int | None = None,
              allow_data_change: bool = False, register: str | None = None, out: TextIO | None = None,
              builder: Callable[..., "keras.Model"] | None = None) -> "Report":
    """Retrain the picked trial on all development rows and look at the test rows once.

    Args:
        study_name: the study.
        trial: a completed trial's number (default: the picked trial).
        config: a fixed config file (``search best --export``) instead of ``trial``.
        epochs: train the final model this many epochs instead of the epoch rule.
        ensemble: also average the final models of the top ``ensemble`` trials.
        verify: first re-run the trial's validation as the search ran it, and compare every split; a mismatch
            raises :class:`search.VerifyMismatch` before the test rows are looked at.
        register: also register the final model in MLflow's model registry as the next version of this name.
        builder: the builder function of a study that a notebook or script ran with ``builder=`` (its name
            cannot be imported in another process).

    Returns:
        The :class:`search.reproduce.Report` (test loss and metric, the alarm, the ensembles, the MLflow run).
    """
    from search import models
    from search.reproduction import final as reproducing
    from search.reproduction import targets

    trial, epochs, ensemble, threads = _arguments(trial=(trial, 0), epochs=(epochs, 1), ensemble=(ensemble, 1),
                                                threads=(threads, 1))
    if trial is not None and config is not None:  # the command's --trial and --config exclude each other too
        raise UserError("trial and config both name what to reproduce; pass one of them (the config file names "
                        "its trial in study.seed_trial)", field="trial, config", found=f"trial={trial!r}, "
                        f"config={str(config)!r}")
    home = _folder(home)
    storage_url, uri = _stores(home, storage, tracking_uri)
    study = targets.load_study(storage_url, study_name, writes="records its look at the test set in the study")
    with models.handed_over(builder):
        target = targets.locate(study, uri, trial=trial, config=Path(config) if config is not None else None)
        options = reproducing.Options(home=home, tracking_uri=uri, verify=verify, allow_data_change=allow_data_change,
                                      epochs=epochs, threads=threads, ensemble=ensemble, register=register)
        return reproducing.reproduce(target, options, out=out)


@_hides_credentials
def ablate(study_name: str, *, trial: int | None = None, home: PathLike = "mlruns", storage: str | None = None,
           tracking_uri: str | None = None, threads: int | None = None, out: TextIO | None = None,
           builder: Callable[..., "keras.Model"] | None = None) -> list["AblationRow"]:
    """What the regularizers of the picked trial (or ``trial``) bought: its config with them switched off
    (``builder``: as for :func:`reproduce`).

    Returns:
        One :class:`search.ablation.AblationRow` per variant (all off, then each off alone).
    """
    from search import models
    from search.reproduction import ablation
    from search.runner import session
    from search.reproduction import targets

    trial, threads = _arguments(trial=(trial, 0), threads=(threads, 1))
    home = _folder(home)
    storage_url, uri = _stores(home, storage, tracking_uri)
    study = targets.load_study(storage_url, study_name, writes="stores the ablation with the study")
    with models.handed_over(builder):
        target = targets.locate(study, uri, trial=trial)
        options = session.RunOptions(home=home, storage=storage_url, tracking_uri=uri, threads=threads)
        resolved, _ = targets.trial_config(study, target.trial, uri)
        return ablation.run(study, target.trial, resolved, options, out=out)


@_hides_credentials
def report(study_name: str, out: PathLike | None = None, *, home: PathLike = "mlruns", storage: str | None = None,
           tracking_uri: str | None = None, top: int = 10) -> Path:
    """Write the study's review as one self-contained HTML file; returns its path.

    The review is read from the study's storage alone; ``tracking_uri`` is taken, as every function here
    takes the three stores, and not needed.
    """
    from search.reproduction import targets
    from search.reproduction.workflow_answer import html_section
    from search.review import report as reporting

    (top,) = _arguments(top=(top, 1))
    storage_url, _ = _stores(_folder(home), storage, tracking_uri)
    study = targets.load_study(storage_url, study_name)
    return reporting.write(study, Path(out) if out is not None else Path(f"{study_name}-report.html"), top=top,
                           extra=html_section(study), flag="out")


# -- helpers -------------------------------------------------------------------------------------------------
def _stores(home: Path, storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    from search.studies import lifecycle as studies
    from search.tracking import default_tracking_uri

    return storage or studies.default_storage(home), tracking_uri or default_tracking_uri(home)


def _trial_result(study: Any, trial: Any, config: Space, home: Path) -> TrialResult:
    return TrialResult(study, trial.number, float(trial.values[0]), float(trial.user_attrs.get("val_loss_std", 0.0)),
                       dict(trial.params), config, home)


def _best_or_none(study: Any, options: Any) -> TrialResult | None:
    from search.reproduction import targets
    from search.tracking import default_tracking_uri

    from search.studies.lifecycle import pick_trial

    try:
        picked = pick_trial(study, "auto")  # the one_se pick of a two-objective study, as `search best` marks
    except StudyError:
        return None
    uri = options.tracking_uri or default_tracking_uri(Path(options.home))
    config, _ = targets.trial_config(study, picked, uri)
    return _trial_result(study, picked, config, Path(options.home))
