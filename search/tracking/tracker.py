"""The run's MLflow listener: it opens the study's experiment and parent run, one nested run per trial,
and hands its writes to a side thread (``_later``); its review side (the study's description, each
trial's diagnosis and figures, the study figures) is mixed in from ``_review``."""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from search import review
from search._redact import redact
from search.errors import ArgumentError
from search.review.trial_fit import trial_fit
from search.stores import sqlite_path
from search.runner.results import SplitResult, TrialListener, TrialOutcome
from search.space import Space, flatten
from search.studies.space_versions import DIGEST_ATTR
from search.tracking import _repair, _space_versions
from search.tracking._later import DeferredFailure, Later
from search.tracking._review import ReviewLogging, _log
from search.tracking._records import (best_model_note, mean_curve_metrics, param_text, validation_settings,
                                      with_outcome)
from search.tracking._store import (CHECKPOINT_ARTIFACTS, PARENT_RUN_ATTR,
                                    RUN_ID_ATTR, VIEW_TAG, default_tracking_uri, end_run, experiment_id,
                                    forget_artifact_repo, is_server, new_local_store, quiet_mlflow, review_view)

# A pruned trial did what the pruner asked: it ends FINISHED (with a `pruned` tag), not with the red
# cross MLflow draws for KILLED and FAILED, which is kept for crashes and stops.
_MLFLOW_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
# The optuna.state tag holds Optuna's own name of the trial's state, as `search best --csv` and Optuna show it:
# a trial stopped by a signal is a FAIL there (queued again), told apart by its `failure` tag.
_OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "interrupted": "FAIL"}
BEST_TAG = "best"
# Runs left open by a worker that died are closed at a run's start and end, and in between at most this
# often: a search of the store after every trial cost more than the trial's own writes.
ORPHAN_SWEEP_SECONDS = 60.0
# Metrics per `log_batch`: MLflow refuses more than 1000 in one call.
BATCH_METRICS = 900
# Whether a run draws its figures where --figures (figures=) is not given: on or off.
FIGURES_ENV = "SEARCH_FIGURES"


def figures_wanted(given: bool | None) -> bool:
    """``--figures`` / ``figures=`` where given, else ``$SEARCH_FIGURES`` (on or off), else on."""
    if given is not None:
        return given
    value = os.environ.get(FIGURES_ENV, "on")
    if value.strip().lower() not in ("on", "off"):
        raise ArgumentError(f"${FIGURES_ENV} says whether a run draws its figures (where --figures or figures= is "
                            f"not given)", field=FIGURES_ENV, expected="on or off", found=value)
    return value.strip().lower() == "on"


def make_tracker(prepared: Any, options: Any, space_text: str) -> "MlflowTracker":
    """The study's tracker, for a ``search.runner.session.Prepared`` and its ``RunOptions``."""
    from search._redact import redact as hide
    from search.review.diagnostics import chance_loss, split_chance_losses
    from search.runner import provenance
    from search.studies.lifecycle import default_storage

    space = prepared.space
    storage_url = options.storage or default_storage(Path(options.home))
    attrs = prepared.attrs()
    summary = attrs.pop("data_summary", None)  # logged as a file of its own, not squeezed into a tag
    tags = {"storage": hide(storage_url), **provenance.record(space.path.parent if space.path else None), **attrs}
    texts = {} if summary is None else {"data_summary.json": json.dumps(summary, indent=2),
                                        "data_summary.txt": prepared.summary.text()}
    ds = prepared.dataset
    if ds.images_skipped:  # the terminal names a few; the study's run keeps them all
        texts["skipped_images.txt"] = "\n".join(ds.images_skipped) + "\n"
    tracker = MlflowTracker(options.tracking_uri or default_tracking_uri(Path(options.home)), Path(options.home),
                            space, space_text, tags, keep_checkpoints=space.study.keep_checkpoints,
                            reference_loss=chance_loss(ds.y[prepared.dev_idx], ds.task), texts=texts,
                            split_references=split_chance_losses(ds.y, ds.task, prepared.splits))
    # Workers on one machine share its cores, and each redraws the same study figures: together they
    # spend the review's share of the machine, not each of them.
    tracker.review_share /= max(1, options.local_workers)
    tracker.figures = figures_wanted(options.figures)
    tracker.check_artifacts(space.study.name, "--tracking-uri" if options.tracking_uri else "--home")
    return tracker


def _client_once_its_schema_is_made(uri: str) -> Any:
    """An MLflow client; a new database store's schema is made by MLflow's migrations as the client is: two
    hosts starting on one at once both ran them, and the loser ended with "duplicate key value violates
    unique constraint" (the home folder's lock holds on one machine only). The loser waits and uses the
    winner's schema."""
    from mlflow.tracking import MlflowClient

    if "://" not in uri or uri.split(":", 1)[0].split("+")[0] not in ("postgresql", "mysql", "mssql"):
        return MlflowClient(tracking_uri=uri)
    for attempt in range(5):
        try:
            return MlflowClient(tracking_uri=uri)
        except Exception as exc:
            text = f"{type(exc).__name__} {exc}"
            if attempt == 4 or not any(w in text for w in ("already exists", "duplicate key", "UniqueViolation",
                                                          "Duplicate entry")):
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


class MlflowTracker(ReviewLogging, TrialListener):
    def __init__(self, tracking_uri: str, home: Path, space: Space, space_text: str,
                 study_tags: dict[str, Any], keep_checkpoints: int = 5,
                 reference_loss: float | None = None, texts: dict[str, str] | None = None,
                 split_references: dict[int, tuple[float, float]] | None = None) -> None:
        from search.studies import _sqlite

        quiet_mlflow()
        fresh = (path := sqlite_path(tracking_uri)) is not None and not path.exists()
        _sqlite.prepare(tracking_uri)
        if fresh:
            new_local_store(tracking_uri, Path(home))
        self.uri, self.home, self.space = tracking_uri, Path(home), space
        self.client = _client_once_its_schema_is_made(tracking_uri)
        self.space_text, self.study_tags = space_text, study_tags
        self.texts = dict(texts or {})  # more files for the parent run (the data summary)
        self.experiment_id = ""
        self.parent_run_id = ""
        # With a tracking server, split checkpoints live in its artifact store, so any machine can use them.
        self.remote = is_server(tracking_uri)
        self.keep_checkpoints = keep_checkpoints
        self._runs: dict[int, str] = {}  # trial number -> its MLflow run, once the side thread made it
        self._started: dict[int, int] = {}  # trial number -> the ticket after its run's creation
        # trial number -> its finished splits' curves not yet handed to the side thread
        self._split_metrics: dict[int, list[Any]] = {}
        self._orphans_swept = time.monotonic()
        self.reference_loss = reference_loss  # chance-level loss, for the underfit rule
        self.split_references = split_references or {}  # each split's, which the rule uses where known
        self._study: Any = None
        self._later = Later()  # MLflow writes, off the training thread
        self._start_review()
        self._closing: set[int] = set()  # trials whose run the side thread has yet to close

    # -- study level -----------------------------------------------------------------------
    def start(self, study: Any) -> str:
        """Open (or create) the study's experiment and parent run; again for the same study: no-op."""
        if self.parent_run_id and self._study is not None and self._study.study_name == study.study_name:
            return self.parent_run_id
        self.experiment_id = self._experiment(study.study_name)
        self.client.set_experiment_tag(self.experiment_id, VIEW_TAG,
                                       review_view(str(self.study_tags.get("metric", "accuracy")),
                                                   str(self.study_tags.get("task", ""))))
        parent = study.user_attrs.get(PARENT_RUN_ATTR)
        if parent and self._exists(parent):
            self.client.update_run(parent, status="RUNNING")
            _space_versions.record(self.client, parent, self.space, self.space_text, created=False)
        else:
            self._warn_of_earlier_runs(study)
            if parent:
                self._warn_of_a_lost_store(study, parent)
            run = self.client.create_run(self.experiment_id, run_name=study.study_name,
                                         tags={"search.kind": "study", "optuna.study_name": study.study_name})
            parent = run.info.run_id
            try:
                self._log_study(parent)
            except Exception:
                # A parent left without its files stayed RUNNING for good, and the next run took it up as made.
                try:
                    self.client.delete_run(parent)
                except Exception:  # the store is failing as a whole: its first error is the one to say
                    pass
                raise
            study.set_user_attr(PARENT_RUN_ATTR, parent)
        self.parent_run_id = parent
        self._study = study
        self._describe(study)
        self.close_orphans(study)
        return parent

    def check_artifacts(self, study_name: str, flag: str) -> None:
        """Before anything trains, that the folder the study's runs keep their files in can be written: with it
        read-only, the run failed at its first file with an 'unexpected failure'.

        Raises:
            StudyError: the folder cannot be written (exit status 2, as for an unwritable --home).
        """
        import tempfile

        from search.errors import StudyError

        folder = self._artifact_folder(study_name)
        if folder is None:  # a server's or a cloud store's: reached through MLflow, not a folder of ours
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".search-write-check-"):
                pass
        except OSError as exc:
            found = "a file, not a folder, is there" if folder.exists() and not folder.is_dir() else \
                (exc.strerror or type(exc).__name__)
            store = "the tracking store given by --tracking-uri" if flag == "--tracking-uri" else \
                f"the MLflow store of --home {self.home}"
            raise StudyError(f"cannot write the MLflow run files of study '{study_name}' (its space.yaml, figures "
                             f"and best models) to {folder} ({found}), where {store} keeps them; expected a "
                             f"writable folder. Make {folder} writable (remount it read-write, or replace the file "
                             f"by a folder), or choose another {flag}", field=flag) from None

    def _artifact_folder(self, study_name: str) -> Path | None:
        """The local folder of the study's experiment (``<home>/artifacts`` for a new one), or None where its
        runs' files are kept by a server or a cloud store."""
        from urllib.parse import unquote, urlparse

        if self.remote or self.uri.startswith("databricks"):
            return None
        exp = self.client.get_experiment_by_name(study_name)
        location = exp.artifact_location if exp is not None else (self.home / "artifacts").resolve().as_uri()
        parsed = urlparse(location)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        return Path(location) if not parsed.scheme else None

    def _warn_of_earlier_runs(self, study: Any) -> None:
        """A study this Optuna store has no parent run for, in an experiment that holds one: the store was
        deleted or replaced (or another one is used), so the two records of the study now disagree."""
        import sys

        earlier = self.client.search_runs([self.experiment_id], "tags.`search.kind` = 'study'", max_results=1)
        if earlier:
            print(f"warning: the MLflow store already holds runs of a study named '{study.study_name}' that this "
                  f"Optuna store does not know (its database was deleted or replaced, or another one is used): the "
                  f"new runs are added beside them, and test-set looks recorded there are not counted. Use "
                  f"--study-name for a separate study", file=sys.stderr)

    def _warn_of_a_lost_store(self, study: Any, parent: str) -> None:
        """The study had a parent run, which this tracking store does not hold: the store was deleted or
        replaced, or another one is given. A new parent run was made without a word, and the UI then showed
        one trial of eleven."""
        import sys

        done = sum(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in study.get_trials(deepcopy=False))
        print(f"warning: study '{study.study_name}' recorded its MLflow runs under parent run {parent}, which "
              f"the tracking store {redact(self.uri)} does not hold (deleted or replaced, or another "
              f"--tracking-uri): a new parent run is made there, and the {done} earlier trial(s) are not in it "
              f"(the Optuna store still holds them all; `search best` and `search status` read it)", file=sys.stderr)

    def close_orphans(self, study: Any) -> list[int]:
        """End the runs of trials that Optuna no longer counts as running (their process died), from
        Optuna's record of them; where one was the best, move the ★ to it."""
        trials = study.get_trials(deepcopy=False)
        closed = _repair.close_orphan_runs(self, trials)
        if closed:
            _repair.rerank(self, trials)
        return closed

    def on_study_repair(self, study: Any) -> None:
        """A run that has nothing to train: bring MLflow in line with Optuna after a process that died
        between the two (the last trial's run and the parent left RUNNING, the ★ on an older trial) or a
        store that failed for a while (trials with no run at all)."""
        parent = study.user_attrs.get(PARENT_RUN_ATTR)
        if not parent or not self._exists(parent):
            return
        self.experiment_id = self._experiment(study.study_name)
        self.parent_run_id, self._study = parent, study
        trials = study.get_trials(deepcopy=False)
        closed = _repair.close_orphan_runs(self, trials)
        made = _repair.add_missing_runs(self, trials)
        moved = _repair.rerank(self, trials)
        if any(t.state.name == "RUNNING" for t in trials):
            return  # another worker still runs: it closes the parent run
        if closed or made or moved is not None or self.client.get_run(parent).info.status == "RUNNING":
            self.finish("FINISHED")
        elif any(t.state.name == "COMPLETE" for t in trials) and \
                "study/top_trials.csv" not in {a.path for a in self.client.list_artifacts(parent, "study")}:
            # The study's figures and tables, which the last refresh failed to draw (its drawing process died):
            # redrawn by the next run, as every run's end redraws them.
            self.refresh_study(trials)

    def on_study_open(self, study: Any) -> None:
        self.start(study)

    def on_run_finish(self, study: Any, status: str) -> None:
        """Close the run; first bring MLflow in line with Optuna where the store failed during it (runs left
        open, trials with no run, the ★ on a trial that is no longer the best)."""
        try:
            trials = study.get_trials(deepcopy=False)
            _repair.close_orphan_runs(self, trials)
            _repair.add_missing_runs(self, trials)
            _repair.rerank(self, trials)
        finally:
            self.finish(status)

    def flush(self) -> None:
        """Wait until every MLflow write and figure handed to the side threads so far is made (a reader needs them)."""
        self._later.drain()
        self._drawing.drain()

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        if self.parent_run_id:  # the drawing helper stays for the process's next run (_drawing.shared)
            if self._study is not None:
                self.refresh_study(self._study.get_trials(deepcopy=False))
                try:
                    self.note_verdict(self._study)
                except Exception as exc:  # the run's end is not held up by its description
                    _log.warning("could not write the study's verdict to MLflow: %s: %s", type(exc).__name__,
                                 redact(exc))
            self.client.set_terminated(self.parent_run_id, status=status)

    def _experiment(self, name: str) -> str:
        return experiment_id(self.client, self.uri, self.home, name)

    def _exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:  # MlflowException: not in this tracking store
            return False

    def _log_study(self, run_id: str) -> None:
        from mlflow.entities import Param, RunTag

        space = self.space
        params = {f"study.{k}": v for k, v in space.study.model_dump().items()}
        params.update({f"data.{k}": v for k, v in space.data.model_dump().items()})
        params.update({f"validation.{k}": v for k, v in validation_settings(space, self.study_tags).items()})
        params.update(space.leaves())
        # An unset optional setting is absent, not the string "None".
        self.client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in params.items() if v is not None],
                              tags=[RunTag(k, redact(str(v))[:5000]) for k, v in self.study_tags.items()])
        self.client.log_text(run_id, redact(self.space_text), "space.yaml")
        _space_versions.record(self.client, run_id, self.space, self.space_text, created=True)
        for name, text in self.texts.items():
            self.client.log_text(run_id, redact(text), name)

    # -- trial level -----------------------------------------------------------------------
    def on_trial_start(self, trial: Any, settings: dict[str, dict[str, Any]]) -> None:
        from mlflow.entities import Param

        is_baseline = bool(trial.user_attrs.get("baseline"))
        name = _with_variant(review.trial_label(trial.number, trial.params, is_baseline), trial)
        tags = {"mlflow.parentRunId": self.parent_run_id, "search.kind": "trial",
                **({"search.ablation": str(variant)} if (variant := trial.user_attrs.get("ablation")) else {}),
                "optuna.trial_number": str(trial.number), "optuna.study_name": trial.study.study_name,
                "search.baseline": str(is_baseline).lower(),
                **({_space_versions.DIGEST_TAG: str(digest)} if (digest := trial.user_attrs.get(DIGEST_ATTR)) else {}),
                **({"search.phase": str(phase)} if (phase := trial.user_attrs.get("phase")) else {})}
        params = [Param(k, param_text(v)) for k, v in flatten(settings).items()]
        # Creating the run is a round trip to the store (10 ms on SQLite, more to a server): the side
        # thread makes it while the trial trains, and the trial's end waits for it (long done by then).
        self._started[trial.number] = self._later.ticket() + 1
        seeds = self.space.study.seeds_of(trial.number, trial.user_attrs)
        self._later.submit(self._open_run, trial.number, name, tags, params, settings, seeds, event="on_trial_start")

    def _open_run(self, number: int, name: str, tags: dict[str, str], params: list[Any],
                  settings: dict[str, dict[str, Any]], seeds: int) -> None:
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        self._runs[number] = run_id
        resolved = self.space.resolve(settings, name=f"{self.space.study.name}-t{number:03d}",
                                      n_trials=1, baseline=False,
                                      seed_trial=seeds)
        self.client.log_batch(run_id, params=params)
        self.client.log_text(run_id, redact(resolved.to_yaml()), "config/resolved.yaml")

    def on_split_start(self, trial: Any, split: int, n_splits: int) -> None:
        # One split after another: the finished split's curves go out now, so a long trial shows them.
        # Trained together, every split starts before any ends and their curves go with the trial's end.
        pending = self._split_metrics.pop(trial.number, None)
        if pending:
            self._later.submit(self._log_metrics, trial.number, pending, event="on_split_end")

    def on_split_end(self, trial: Any, result: SplitResult) -> None:
        from mlflow.entities import Metric

        now, k = int(time.time() * 1000), result.split
        metrics = [Metric(f"split_{k}/{name}", value, now, epoch)
                   for name, values in result.history.items()
                   for epoch, value in enumerate(values, start=1) if math.isfinite(value)]
        scored = math.isfinite(result.best_val_loss)  # a split that diverged has no best epoch (0 in its record)
        for name, value in (("best_val_loss", result.best_val_loss), ("best_epoch", result.best_epoch),
                            ("best_val_metric", result.best_val_metric),
                            *((f"best_val_{name}", value) for name, value in result.scores.items())):
            if math.isfinite(value) and scored:
                metrics.append(Metric(f"split_{k}/{name}", float(value), now, 0))
        self._split_metrics.setdefault(trial.number, []).extend(metrics)

    def _log_metrics(self, number: int, metrics: list[Any]) -> None:
        run_id = self._runs.get(number)
        if run_id is None:  # its run could not be made: that failure is the one reported
            return
        self._log_batches(run_id, metrics)

    def _log_batches(self, run_id: str, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics[start:start + BATCH_METRICS])

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None:
        from mlflow.entities import Metric, RunTag

        started = self._started.pop(trial.number, None)
        curves = self._split_metrics.pop(trial.number, [])
        if started is None:
            return
        # The previous trial's writes and this trial's run had this whole trial's training to finish; one
        # that failed is raised here, so a failing store is counted trial by trial (a write one trial late).
        self._later.wait(started)
        run_id = self._runs.get(trial.number)  # the side thread forgets it once the run is closed
        try:
            self._later.raise_failure(started)
        except DeferredFailure:
            self._runs.pop(trial.number, None)  # left open: closed as an orphan later
            if run_id is not None and curves:  # the failure was an earlier write's: these still have a run
                self._later.submit(self._log_batches, run_id, curves)
            raise
        if run_id is None:
            return
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        now = int(time.time() * 1000)
        summary = outcome.metrics()
        stored = outcome.stored_trials(trial.study)  # one read, shared with the other listeners
        # An ablation's variants are the picked trial with regularizers off, measured, not candidates: no ★.
        new_best = outcome.state == "complete" and not trial.user_attrs.get("ablation") \
            and self._is_new_best(stored, trial.number, outcome.value)
        tags = [RunTag("optuna.state", _OPTUNA_STATE.get(outcome.state, outcome.state.upper())),
                *([RunTag("failure", outcome.state)] if outcome.state == "interrupted" else []),
                RunTag("pruned", str(outcome.state == "pruned").lower()), RunTag(BEST_TAG, str(new_best).lower())]
        diagnosis = self._diagnose(trial, outcome)  # Optuna attributes: before the trial is finished
        if diagnosis is not None and outcome.state != "pruned":
            # A pruned trial is not judged (its fit is n/a): a gap_mean and overfit_splits of 0 beside that read as
            # a judgement the review does not make.
            summary.update(diagnosis.metrics())
        if diagnosis is not None or outcome.state == "pruned":
            tags.append(RunTag("fit", trial_fit(outcome, diagnosis)))
        if outcome.state == "complete" and outcome.splits:
            # Beside `fit`, which calls a trial still improving `good`: a reviewer comparing the ranks was not
            # told that one of them was cut off by train.epochs (its best epoch was its last in most splits).
            from search.review.verdicts import peaked_at_end

            tags.append(RunTag("still_improving", str(bool(peaked_at_end(
                [{"stop_reason": s.stop_reason, "best_epoch": s.best_epoch, "epochs_run": s.epochs_run}
                 for s in outcome.splits]))).lower()))
        metrics = [Metric(k, v, now, 0) for k, v in summary.items() if math.isfinite(v)]
        curves = curves + mean_curve_metrics(outcome, now)
        if outcome.reason:
            tags.append(RunTag("reason", redact(outcome.reason)[:5000]))
        if diagnosis is not None and self.figures:
            self._log_trial_figure(trial, run_id, outcome, diagnosis)
        if self.remote:  # before the retention listener may delete the files
            self._store_checkpoints(trial, run_id, outcome)
        name = _with_variant(review.outcome_label(trial.number, trial.params, bool(trial.user_attrs.get("baseline")),
                                                  outcome.state, outcome.value, outcome.reason, best=new_best), trial)
        best_path = self._best_checkpoint(outcome) if new_best else None
        trials = with_outcome(trial, outcome, stored) if outcome.state in ("complete", "pruned") else None
        # MLflow's writes go to the side thread: the next trial starts while they are made.
        self._closing.add(trial.number)
        self._later.submit(self._finish_trial, trial.study, trial.number, run_id, metrics, curves, tags, name,
                           new_best, outcome.value, outcome.state, best_path, trials, event="on_trial_end")

    def _finish_trial(self, study: Any, number: int, run_id: str, metrics: list[Any], curves: list[Any],
                      tags: list[Any], name: str, new_best: bool, value: float, state: str, best_path: Path | None,
                      trials: Any) -> None:
        try:
            self._close_trial_run(study, number, run_id, metrics, curves, tags, name, new_best, value, state,
                                  best_path)
        finally:
            self._runs.pop(number, None)
            self._closing.discard(number)
        if trials is not None:
            self._ask_refresh(trials, new_best)

    def _close_trial_run(self, study: Any, number: int, run_id: str, metrics: list[Any], curves: list[Any],
                         tags: list[Any], name: str, new_best: bool, value: float, state: str,
                         best_path: Path | None) -> None:
        # The summary with the tags, in one batch: another worker deciding who holds the ★ reads a run's
        # `best` tag and its `val_loss_mean` together.
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        try:
            # Every split's curves in as few batches as MLflow takes (one per split before).
            self._log_batches(run_id, curves)
        finally:  # curves the store refused do not keep the run open
            if new_best:
                self._log_best_model(number, run_id, value, best_path)
            end_run(self.client, run_id, _MLFLOW_STATUS[state], name)
            if new_best:  # after its name is written: a worker's better trial may take the ★ from it
                self._move_best(run_id, value)
            forget_artifact_repo(run_id)
        if time.monotonic() - self._orphans_swept >= ORPHAN_SWEEP_SECONDS:
            self._orphans_swept = time.monotonic()
            self.close_orphans(study)

    def _store_checkpoints(self, trial: Any, run_id: str, outcome: TrialOutcome) -> None:
        """Upload a top-K trial's split models; delete those of trials that fell out of the top K."""
        from search.studies import lifecycle as studies

        pending = (trial.number, outcome.value) if outcome.state == "complete" else None
        trials = outcome.stored_trials(trial.study)
        keep = studies.top_trials(trials, self.keep_checkpoints, pending)
        paths = [s.checkpoint for s in outcome.splits if s.checkpoint is not None and Path(s.checkpoint).exists()]
        if trial.number in keep and paths:
            for path in paths:
                self.client.log_artifact(run_id, str(path), CHECKPOINT_ARTIFACTS)
            self.client.set_tag(run_id, "search.checkpoints", "stored")
        self._drop_checkpoints(trials, keep)

    def on_run_end(self, study: Any) -> None:
        self.flush()
        if self.remote:  # see checkpoints.CheckpointRetention.on_run_end: concurrent finishes can leave K + 1
            from search.studies import lifecycle as studies

            trials = study.get_trials(deepcopy=False)
            self._drop_checkpoints(trials, studies.top_trials(trials, self.keep_checkpoints))

    def _drop_checkpoints(self, trials: list[Any], keep: set[int]) -> None:
        """Delete the uploaded split models of finished ``trials`` outside ``keep`` (from the same read)."""
        stored = self.client.search_runs([self.experiment_id], "tags.`search.checkpoints` = 'stored'",
                                         max_results=1000)
        finished = {t.number for t in trials if t.state.is_finished()}
        for run in stored:
            number = int(run.data.tags.get("optuna.trial_number", -1))
            if number in keep or number not in finished:  # a running trial is still competing
                continue
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            try:
                # The tracking URI too: an mlflow-artifacts:/ location is resolved through the server,
                # and this process never sets MLflow's global tracking URI.
                get_artifact_repository(run.info.artifact_uri, tracking_uri=self.uri).delete_artifacts(
                    CHECKPOINT_ARTIFACTS)
            except Exception as exc:  # a store without deletion: keep going, say so on the run
                self.client.set_tag(run.info.run_id, "search.checkpoints_note", redact(f"not deleted: {exc}")[:500])
            self.client.set_tag(run.info.run_id, "search.checkpoints", "removed")

    @staticmethod
    def _is_new_best(trials: list[Any], number: int, value: float) -> bool:
        """Lowest validation loss so far (the first objective, also in a multi-objective study)."""
        losses = [t.values[0] for t in trials if t.state.name == "COMPLETE" and t.values and t.number != number]
        return not losses or value < min(losses)

    def _move_best(self, run_id: str, value: float) -> None:
        """Take the ★ and the ``best`` tag from the runs this one beats.

        Two workers can each think their trial is the new best; the lower loss keeps the mark.
        """
        marked = self.client.search_runs([self.experiment_id], f"tags.`{BEST_TAG}` = 'true' and "
                                         "tags.`search.kind` = 'trial'", max_results=1000)
        for run in marked:
            if run.info.run_id == run_id:
                continue
            other = run.data.metrics.get("val_loss_mean", math.inf)
            loser = run.info.run_id if other >= value else run_id
            name = run.info.run_name if loser != run_id else self.client.get_run(run_id).info.run_name
            self.client.set_tag(loser, BEST_TAG, "false")
            self.client.update_run(loser, name=name.replace(" ★ ", " ", 1))

    @staticmethod
    def _best_checkpoint(outcome: TrialOutcome) -> Path | None:
        best = min(outcome.splits, key=lambda s: s.best_val_loss)
        return Path(best.checkpoint) if best.checkpoint is not None and Path(best.checkpoint).exists() else None

    def _log_best_model(self, number: int, run_id: str, value: float, path: Path | None,
                        noted: bool = False) -> None:
        """The best trial's split model on its run, then (unless ``noted``) its number and loss on the parent."""
        if path is not None and path.exists():
            self.client.log_artifact(run_id, str(path), "best_model")
            self.client.log_text(run_id, best_model_note(self.space.study.name, number, path.name,
                                                         self.space.data.preprocess), "best_model/README.md")
        if not noted:
            self._note_best(number, run_id, value)

    def _note_best(self, number: int, run_id: str, value: float) -> None:
        """The parent run's ``best_value``, ``best_trial`` and ``best_run_id``."""
        from mlflow.entities import Metric, RunTag

        self.client.log_batch(self.parent_run_id, metrics=[
            Metric("best_value", value, int(time.time() * 1000), number)], tags=[
            RunTag("best_trial", str(number)), RunTag("best_run_id", run_id)])


def _with_variant(name: str, trial: Any) -> str:
    """An ablation variant's run name says which trial it ablates and what it switched off:
    ``t012 [dropout off] 0.1127 dropout=0 l2=0.0022`` (trial 12's config with dropout off). Its own number in
    the ablation's study (t000, t001) read as the main study's trials of those numbers."""
    variant = trial.user_attrs.get("ablation")
    if not variant:
        return name
    head, _, rest = name.partition(" ")
    ablated = re.search(r"\.ablation\.t(\d+)$", getattr(getattr(trial, "study", None), "study_name", "") or "")
    head = f"t{int(ablated.group(1)):03d}" if ablated else head
    return " ".join(x for x in (head, f"[{variant} off]", rest) if x)
