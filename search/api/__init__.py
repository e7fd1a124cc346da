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

import contextlib
import os
import sys
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO, Union

import numpy as np

from search.api import _arrays, _frames
from search.api._arrays import _save_arrays
from search.api._errors import (_arguments, _builder_not_here, _callables, _folder, _hides_credentials,
                               _named_by_arguments, _on_off, _on_or_off, _output, _space_argument,
                               as_command as as_command)
from search.api._results import RunResult, TrialResult, best_or_none, trial_result
from search.api._start import ablate_when_done, announce, run_prepared, workflow_answer
from search.errors import ArgumentError, ContinuationRefused, SpaceError, StudyError, UserError
from search.space import Space

from search._deferred import DeferredModule

if TYPE_CHECKING:
    import keras
    import optuna
    import pandas as pd

    from search.reproduction import ablation as _ablation, final as _final
else:  # what the annotations name, imported when typing.get_type_hints evaluates them
    keras, optuna, pd = DeferredModule("keras"), DeferredModule("optuna"), DeferredModule("pandas")
    _ablation, _final = DeferredModule("search.reproduction.ablation"), DeferredModule("search.reproduction.final")

__all__ = ["RunResult", "TrialResult", "ablate", "ablate_when_done", "announce", "best", "load_space", "predict",
           "reproduce", "report", "run", "run_prepared", "workflow_answer"]

PathLike = str | os.PathLike
# What x and x_test may be: rows of features as a notebook holds them (a list of rows is made an array).
Rows = Union[np.ndarray, "pd.DataFrame", Sequence[Any]]
# What y and y_test may be: one label or value per row, or the name of a column of x that holds them.
Targets = Union[np.ndarray, "pd.Series", "pd.DataFrame", Sequence[Any], str]


@_hides_credentials
def run(space: Space | PathLike | Mapping[str, Any], *, x: Rows | None = None, y: Targets | None = None,
        x_test: Rows | None = None, y_test: Targets | None = None,
        builder: Callable[..., "keras.Model"] | None = None, study_name: str | None = None,
        home: PathLike = "mlruns", storage: str | None = None, tracking_uri: str | None = None,
        n_trials: int | None = None, timeout: float | None = None, threads: int | None = None,
        quiet: bool = True, figures: bool | None = None, out: TextIO | None = None,
        callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = ()) -> RunResult:
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
        threads: TensorFlow threads; applied only before TensorFlow has started in this process (a warning says
            so where it has).
        quiet: no per-trial progress lines and no data summary; the final table and the next steps still go
            to ``out``.
        figures: False draws no PNG figures into MLflow (the command's ``--figures off``); tables, notes and
            metrics are written all the same. None: ``$SEARCH_FIGURES`` (on or off), else on.
        out: where the summary, the final table and, unless ``quiet``, the plan and the trial lines go
            (default: standard output, and the plan and trial lines on standard error, as the command
            prints them; ``io.StringIO()`` keeps it all out of sight). Warnings go to standard error.
        callbacks: functions called ``callback(study, trial)`` after each trial of this call is told, with the
            Optuna study and the trial's ``FrozenTrial`` (its state, value and user attributes: ``splits``,
            ``fit``, ...), as Optuna's ``optimize(callbacks=)`` calls them. ``study.stop()`` in one ends the run
            after that trial, as a stop (the study can be continued); an exception one raises ends the run after
            that trial and is raised by ``search.run`` once the stores are closed.

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
    _on_or_off(figures)
    _on_off(quiet, "quiet")
    _output(out)
    callbacks = _callables(callbacks)
    if isinstance(timeout, str):  # as threads= and n_trials= take digit text (a widget's value)
        with contextlib.suppress(ValueError):
            timeout = float(timeout.strip())
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ArgumentError("timeout is a number of seconds above 0 (an hour is 3600)", field="timeout",
                            found=timeout)
    home = _folder(home)
    if home.exists() and not home.is_dir():  # before the arrays are saved under it
        raise StudyError(f"{home} is a file, not a folder; search.run stores its study, runs, checkpoints and "
                         f"in-memory data in a folder. Nothing was created; choose another home=", field="home")
    if x is None and y is not None:  # before the space: its missing data section is not the mistake here
        raise SpaceError("in-memory data needs both x and y; y was given without x", field="x, y")
    loaded = _space_argument(space, study_name, in_memory=x is not None)
    raw = _as_given(loaded)
    if study_name is not None:
        raw["study"]["name"] = study_name
    from search import stores  # a URL that cannot work, refused before the arrays are saved under home

    for url, flag, what in ((storage, "--storage", stores.STORAGE), (tracking_uri, "--tracking-uri", stores.TRACKING)):
        if url:
            stores.check_url(url, flag, what)
    if x_test is None and y_test is not None:
        raise SpaceError("provided test rows need both x_test and y_test", field="x_test, y_test")
    # A frame that still holds its target: y="<column>", or data.target naming the column where y is left out.
    x, y, unread_target = _frames.take_target(x, y, loaded.data.target if x is not None else None, ("x", "y"))
    x_test, y_test, _ = _frames.take_target(x_test, y_test, None if y_test is not None else
                                            (getattr(y, "name", None) or loaded.data.target), ("x_test", "y_test"))
    made: list[Path] = []  # array files this call wrote: removed again if the data is refused
    named: dict[str, tuple[str, str]] = {}  # the files the arrays went to, by the arguments they came from
    fresh_home = not home.exists()
    fills = loaded.data.missing != "refuse"  # missing features are then the data checks' to count
    try:
        row_shape = None
        roles = {f"data.{key}": raw["data"][key] for key in ("group", "order") if raw["data"].get(key)}
        if x is not None and raw["data"].get("drop"):  # a frame's columns, whatever their types: left out here
            x, x_test = _frames.drop_columns(x, x_test, list(raw["data"]["drop"]), roles)
            raw["data"]["drop"] = []
        ignored = raw["data"].get("source") if x is not None else None  # a space file's own data, set aside
        # Text columns to encode: the frames go to a CSV, read as a CSV source is (categories, drop, roles).
        as_csv = loaded.data.categorical == "one_hot" and x is not None and _arrays.has_text_columns(x)
        target = str(getattr(y, "name", None) or "y")
        if x is not None and y is not None:
            if as_csv:
                source = _arrays.save_frame(home, raw["study"]["name"], x, y, ("x", "y"), made, target,
                                            loaded.data.task)
                raw["data"]["source"], raw["data"]["target"] = f"csv:{source}", target
            else:
                source, row_shape = _save_arrays(home, raw["study"]["name"], x, y, ("x", "y"), made, fills,
                                                 roles=roles, task=loaded.data.task)
                raw["data"]["source"], raw["data"]["target"] = f"npz:{source}", None
            named[str(source)] = ("x", "y")
        if x_test is not None and y_test is not None:
            if as_csv:
                test = _arrays.save_frame(home, raw["study"]["name"] + "-test", x_test, y_test,
                                          ("x_test", "y_test"), made, target, loaded.data.task)
            else:
                # Two frames are matched by column name when read, which names a missing column; a shape does not.
                by_name = hasattr(x, "columns") and hasattr(x_test, "columns")
                test, _ = _save_arrays(home, raw["study"]["name"] + "-test", x_test, y_test, ("x_test", "y_test"),
                                       made, fills, None if by_name else row_shape, roles=roles,
                                       task=loaded.data.task)
            raw["data"]["test"] = f"{'csv' if as_csv else 'npz'}:{test}"
            named[str(test)] = ("x_test", "y_test")
            raw["data"]["test_size"] = None  # the rows given are the test rows: nothing is drawn
        replaced = None
        if builder is not None:
            written, raw["model"]["family"] = raw["model"].get("family"), models.register_builder(builder)
            replaced = written if written and written != raw["model"]["family"] else None
        resolved = spaces.validate(raw, source=str(loaded.path) if loaded.path else "<space>", path=loaded.path)
        prepared = session.prepare(resolved, threads=threads)
        if x is not None and x_test is not None and hasattr(x, "columns") != hasattr(x_test, "columns"):
            named_one, other = ("x", "x_test") if hasattr(x, "columns") else ("x_test", "x")
            prepared.dataset.warnings.append(
                f"{named_one} is a frame with column names and {other} an array without: their columns are paired "
                f"by position, not by name, so the test rows must hold the features in the order x has them; pass "
                f"both as frames to have them matched by name")
        if replaced is not None:
            prepared.dataset.warnings.append(
                f"the space's model.family {replaced!r} is not used: builder= builds the model "
                f"({raw['model']['family']}), and the model section's other settings are handed to it")
        if unread_target:
            prepared.dataset.warnings.append(unread_target)
        if ignored and ignored != "arrays" and not str(ignored).startswith("npz:"):
            prepared.dataset.warnings.append(f"the space's data.source {ignored!r} is not read: x and y are the data "
                                             f"(data.source: arrays says so)")
    except UserError as exc:
        _named_by_arguments(exc, named)
        _remove_saved(made, home if fresh_home else None)
        raise
    options = session.RunOptions(home=home, storage=storage, tracking_uri=tracking_uri, n_trials=n_trials,
                                 timeout=timeout, threads=threads, quiet=quiet, new_study="study_name=",
                                 figures=figures, callbacks=callbacks)
    local = models.only_in_this_process(resolved.model["family"]) if builder is not None else None
    if local or not loaded.path:
        # The command cannot import a notebook's function, nor read a space given as a dict: the study
        # continues from Python.
        where = repr(str(loaded.path)) if loaded.path else "space"
        with_builder = f", builder={local or getattr(builder, '__name__', 'build')}" if builder is not None else ""
        options.continue_command = f"search.run({where}{with_builder}, home={str(home)!r}, ...) in Python"
    sink = out or sys.stdout
    announce(prepared, quiet, out=sink)
    from search.runner.stopping import StopRequest

    held = StopRequest(announce=True).install()  # a stop between the trials and the ablation skips the ablation
    try:
        try:
            outcome = run_prepared(prepared, options, resolved.to_yaml(), out=sink, progress=out)
        except ContinuationRefused:  # no trial ran on the arrays saved for it
            _remove_saved(made, None)
            raise
        try:
            rows = None if outcome.stopped_by or held.requested else ablate_when_done(resolved, options, out=sink)
        except ablation.AblationStopped:  # said on the output; the next run continues it
            rows = None
    finally:
        held.uninstall()
    study = outcome.study
    stopped = outcome.stopped_by or (held.reason or "" if held.requested else "")
    if stopped == "SIGINT":
        # Ctrl-C (a notebook's "interrupt the kernel") ends the caller's cell too, as it does around Optuna's
        # optimize: returned as a result, a loop of searches went on to its next one.
        raise KeyboardInterrupt(f"study '{study.study_name}' stopped by Ctrl-C at the end of an epoch; what "
                                f"finished is stored, and {options.continue_command} continues it")
    return RunResult(study, best_or_none(study, options), rows or (ablation.stored_rows(study)[1]),
                     stopped_by=stopped)


def load_space(space: PathLike | Mapping[str, Any], study_name: str | None = None, *,
               builder: Callable[..., "keras.Model"] | None = None) -> Space:
    """A space file's path (or a dict of its sections) read and checked as :func:`run` checks it.

    Args:
        space: the file's path, or a dict of its sections as the file would read; a dict whose ``data`` has no
            ``source`` is taken as ``source: arrays`` (the rows are :func:`run`'s ``x`` and ``y``), so a notebook's
            space is checked before it runs.
        study_name: overrides ``study.name``.
        builder: the function :func:`run` is handed, for a space whose model settings are the builder's own;
            without it, the model settings are checked as the built-in family's.

    Raises:
        SpaceError: a mistake in the space, naming the file and the field.
    """
    from search import models, space as spaces

    if isinstance(space, Mapping) and isinstance(space.get("data", {}), Mapping):
        # A notebook's space for run(x=, y=) has no file to name: its rows are the call's, as run takes it.
        space = {**space, "data": {"source": "arrays", **(space.get("data") or {})}}
    if builder is None:
        return spaces.load(space, study_name)
    loaded = _space_argument(space, study_name)
    raw = _as_given(loaded)
    raw["model"]["family"] = models.register_builder(builder)
    return spaces.validate(raw, source=str(loaded.path) if loaded.path else "<space>", path=loaded.path)


def _as_given(space: Space) -> dict[str, Any]:
    """The space as a mapping to validate again, its study settings left to their defaults unset, as in a
    file: warnings about a pruner that cannot act are for one the user asked for."""
    raw = space.as_data()
    raw["study"] = {k: v for k, v in raw["study"].items() if k in space.study.model_fields_set}
    return raw


def _remove_saved(made: list[Path], fresh_home: Path | None) -> None:
    """The array files this call wrote for data that was refused, and the folders that held only them."""
    for path in made:
        path.unlink(missing_ok=True)
    for folder in [p.parent for p in made[:1]] + ([fresh_home] if fresh_home else []):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


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
    study = targets.load_study(storage_url, study_name, flag=_flag(storage))
    with models.handed_over(builder or _builder_not_here):
        target = targets.locate(study, uri, trial=trial)
    return trial_result(study, target.trial, target.space, home)


@_hides_credentials
def reproduce(study_name: str, *, trial: int | None = None, config: PathLike | None = None,
              home: PathLike = "mlruns", storage: str | None = None, tracking_uri: str | None = None,
              epochs: int | None = None, ensemble: int = 1, verify: bool = False, threads: int | None = None,
              allow_data_change: bool = False, register: str | None = None, out: TextIO | None = None,
              builder: Callable[..., "keras.Model"] | None = None) -> "_final.Report":
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
            cannot be imported in another process). Without it, a function of that name in this session
            whose code is not the code the trial ran with is refused, before the test rows are looked at.

    Returns:
        The :class:`search.Report` (test loss and metric, the alarm, the ensembles, the MLflow run).
    """
    from search import models
    from search.reproduction import final as reproducing
    from search.reproduction import targets

    trial, epochs, ensemble, threads = _arguments(trial=(trial, 0), epochs=(epochs, 1), ensemble=(ensemble, 1),
                                                threads=(threads, 1))
    _on_off(verify, "verify")
    _on_off(allow_data_change, "allow_data_change")
    _output(out)
    if trial is not None and config is not None:  # the command's --trial and --config exclude each other too
        raise ArgumentError("trial and config both name what to reproduce; pass one of them (the config file names "
                        "its trial in study.seed_trial)", field="trial, config", found=f"trial={trial!r}, "
                        f"config={str(config)!r}")
    home = _folder(home)
    storage_url, uri = _stores(home, storage, tracking_uri)
    study = targets.load_study(storage_url, study_name, flag=_flag(storage),
                               writes="records its look at the test set in the study")
    with models.handed_over(builder):
        target = targets.locate(study, uri, trial=trial, config=Path(config) if config is not None else None)
        _same_builder_unless_given(target, builder)
        options = reproducing.Options(home=home, tracking_uri=uri, verify=verify, allow_data_change=allow_data_change,
                                      epochs=epochs, threads=threads, ensemble=ensemble, register=register)
        return reproducing.reproduce(target, options, out=out)


def _same_builder_unless_given(target: Any, builder: Callable[..., Any] | None) -> None:
    """A trial's builder found by its name in this session (``__main__``), as no ``builder=`` was passed, whose
    code is not the code the trial ran with: ``build`` is every notebook's name, and a look at the test rows
    would judge another function's model."""
    from search.models import named_only_there
    from search.reproduction.changes import builder_codes

    family = target.space.family
    if builder is not None or not named_only_there(family) or (codes := builder_codes(target)) is None:
        return
    name, number = family.rpartition(":")[2], target.trial.number
    raise StudyError(f"the function {name} this session holds is not the code trial {number} ran with (code "
                     f"{codes[0]} then, {codes[1]} now), and no builder= names it: the test rows would be looked at "
                     f"with another function's model. Pass the function trial {number} ran with as builder=, or pass "
                     f"builder={name} to judge this code's model knowingly", field="builder",
                     expected=f"the builder trial {number} ran with", found=f"{name} (code {codes[1]})")


@_hides_credentials
def ablate(study_name: str, *, trial: int | None = None, home: PathLike = "mlruns", storage: str | None = None,
           tracking_uri: str | None = None, threads: int | None = None, out: TextIO | None = None,
           builder: Callable[..., "keras.Model"] | None = None,
           figures: bool | None = None) -> list["_ablation.AblationRow"]:
    """What the regularizers of the picked trial (or ``trial``) bought: its config with them switched off
    (``builder``: as for :func:`reproduce`; ``figures``: as for :func:`run`).

    Returns:
        One :class:`search.AblationRow` per variant (all off, then each off alone).
    """
    from search import models
    from search.reproduction import ablation
    from search.runner import session
    from search.reproduction import targets

    trial, threads = _arguments(trial=(trial, 0), threads=(threads, 1))
    _on_or_off(figures)
    _output(out)
    home = _folder(home)
    storage_url, uri = _stores(home, storage, tracking_uri)
    study = targets.load_study(storage_url, study_name, flag=_flag(storage),
                               writes="stores the ablation with the study")
    with models.handed_over(builder):
        target = targets.locate(study, uri, trial=trial)
        options = session.RunOptions(home=home, storage=storage_url, tracking_uri=uri, threads=threads,
                                     figures=figures)
        resolved, _ = targets.trial_config(study, target.trial, uri)
        return ablation.run(study, target.trial, resolved, options, out=out)


@_hides_credentials
def predict(study_name: str, rows: "pd.DataFrame | np.ndarray | PathLike", *, run_id: str | None = None,
            home: PathLike = "mlruns", tracking_uri: str | None = None) -> "pd.DataFrame":
    """The study's final model's predictions for new rows, as ``best_estimator_.predict`` gives a search CV's.

    Args:
        study_name: the study (or its space file).
        rows: a DataFrame, or a CSV file's path, with the training file's feature columns (others are kept
            beside the predictions and not used); for a study trained on arrays, a 2-D array too (columns by
            position); for one trained on images, an array of images (n, height, width, channels) prepared
            as the final model's reproduce.json says under ``model``.
        run_id: the reproduce run whose model predicts (default: the latest of the best trial, else the
            latest of any, said in ``attrs["model"]``).

    Returns:
        The rows with ``p(<class>)`` per class and ``predicted`` (the class), or ``predicted`` (the value);
        ``attrs``: ``run_id`` and ``trial`` of the model, ``model`` a line saying which model it is, ``score``
        the scores against the rows' target column where they hold it (else "").

    Raises:
        StudyError: no `search reproduce` has logged a final model yet. DataError: a column is missing, or
        a value the model refuses (a missing value where it was trained with ``data.missing: refuse``).
    """
    from search.api._predict import predict_rows

    home = _folder(home)
    return predict_rows(study_name, rows, _stores(home, None, tracking_uri)[1], run_id=run_id)


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
    study = targets.load_study(storage_url, study_name, flag=_flag(storage))
    return reporting.write(study, Path(out) if out is not None else Path(f"{study.study_name}-report.html"), top=top,
                           extra=html_section(study), flag="out")


# -- helpers -------------------------------------------------------------------------------------------------
def _flag(storage: str | None) -> str:
    """The option a store error names: the home's own store unless a storage URL was given."""
    return "--storage" if storage else "--home"


def _stores(home: Path, storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    from search.studies import lifecycle as studies
    from search.tracking import default_tracking_uri

    return storage or studies.default_storage(home), tracking_uri or default_tracking_uri(home)
