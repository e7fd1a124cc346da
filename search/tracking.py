"""Everything MLflow: one experiment and one parent run per study, one nested run per trial.

A side channel: it listens to the objective's events and never steers training. Uses
``MlflowClient`` rather than the fluent API, so no global "active run" state leaks between trials or
into a user's own code.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

from search.results import SplitResult, TrialListener, TrialOutcome
from search.space import Space, flatten

PARENT_RUN_ATTR = "mlflow_parent_run_id"
RUN_ID_ATTR = "mlflow_run_id"
_MLFLOW_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


def default_tracking_uri(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'mlflow.db').resolve()}"


def redact(text: str) -> str:
    """Hide the password in ``scheme://user:password@host`` URLs."""
    return re.sub(r"(//[^/:@\s]+):([^@/\s]+)@", r"\1:***@", str(text))


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


class MlflowTracker(TrialListener):
    def __init__(self, tracking_uri: str, home: Path, space: Space, space_text: str,
                 study_tags: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()
        self.uri, self.home, self.space = tracking_uri, Path(home), space
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.space_text, self.study_tags = space_text, study_tags
        self.experiment_id = ""
        self.parent_run_id = ""
        self._runs: dict[int, str] = {}

    # -- study level -----------------------------------------------------------------------
    def start(self, study: Any) -> str:
        self.experiment_id = self._experiment(study.study_name)
        parent = study.user_attrs.get(PARENT_RUN_ATTR)
        if parent and self._exists(parent):
            self.client.update_run(parent, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=study.study_name,
                                         tags={"search.kind": "study", "optuna.study_name": study.study_name})
            parent = run.info.run_id
            study.set_user_attr(PARENT_RUN_ATTR, parent)
            self._log_study(parent)
        self.parent_run_id = parent
        return parent

    def finish(self, status: str = "FINISHED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        location = None
        if not self.uri.startswith(("http://", "https://", "databricks")):
            location = (self.home / "artifacts").resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=location)

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
        params.update({f"validation.{k}": v for k, v in space.validation.model_dump().items()})
        params.update(space.leaves())
        self.client.log_batch(run_id, params=[Param(k, _param_text(v)) for k, v in params.items()],
                              tags=[RunTag(k, redact(str(v))[:5000]) for k, v in self.study_tags.items()])
        self.client.log_text(run_id, redact(self.space_text), "space.yaml")

    # -- trial level -----------------------------------------------------------------------
    def on_trial_start(self, trial: Any, settings: dict[str, dict[str, Any]]) -> None:
        from mlflow.entities import Param

        is_baseline = bool(trial.user_attrs.get("baseline"))
        run = self.client.create_run(
            self.experiment_id, run_name=f"t{trial.number:03d}" + (" baseline" if is_baseline else ""),
            tags={"mlflow.parentRunId": self.parent_run_id, "search.kind": "trial",
                  "optuna.trial_number": str(trial.number), "optuna.study_name": trial.study.study_name,
                  "search.baseline": str(is_baseline).lower()})
        run_id = run.info.run_id
        self._runs[trial.number] = run_id
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.client.log_batch(run_id, params=[Param(k, _param_text(v)) for k, v in flatten(settings).items()])
        resolved = self.space.resolve(settings, name=f"{self.space.study.name}-t{trial.number:03d}",
                                      n_trials=1, baseline=False, seed_trial=trial.number)
        self.client.log_text(run_id, resolved.to_yaml(), "config/resolved.yaml")

    def on_split_end(self, trial: Any, result: SplitResult) -> None:
        from mlflow.entities import Metric

        run_id, now, k = self._runs[trial.number], int(time.time() * 1000), result.split
        metrics = [Metric(f"split_{k}/{name}", value, now, epoch)
                   for name, values in result.history.items()
                   for epoch, value in enumerate(values, start=1) if math.isfinite(value)]
        for name, value in (("best_val_loss", result.best_val_loss), ("best_epoch", result.best_epoch),
                            ("best_val_metric", result.best_val_metric)):
            if math.isfinite(value):
                metrics.append(Metric(f"split_{k}/{name}", float(value), now, 0))
        for start in range(0, len(metrics), 900):  # MLflow's batch limit is 1000 metrics
            self.client.log_batch(run_id, metrics=metrics[start:start + 900])

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self._runs.pop(trial.number, None)
        if run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in outcome.metrics().items() if math.isfinite(v)]
        tags = [RunTag("optuna.state", outcome.state.upper())]
        if outcome.reason:
            tags.append(RunTag("reason", redact(outcome.reason)[:5000]))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if outcome.state == "complete" and self._is_new_best(trial, outcome.value):
            self._log_best_model(trial, run_id, outcome)
        self.client.set_terminated(run_id, status=_MLFLOW_STATUS[outcome.state])

    def _is_new_best(self, trial: Any, value: float) -> bool:
        """Lowest validation loss so far (the first objective, also in a multi-objective study)."""
        from optuna.trial import TrialState

        losses = [t.values[0] for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.values]
        return not losses or value < min(losses)

    def _log_best_model(self, trial: Any, run_id: str, outcome: TrialOutcome) -> None:
        from mlflow.entities import Metric, RunTag

        best = min(outcome.splits, key=lambda s: s.best_val_loss)
        if best.checkpoint is not None and Path(best.checkpoint).exists():
            self.client.log_artifact(run_id, str(best.checkpoint), "best_model")
        self.client.log_batch(self.parent_run_id, metrics=[
            Metric("best_value", outcome.value, int(time.time() * 1000), trial.number)], tags=[
            RunTag("best_trial", str(trial.number)), RunTag("best_run_id", run_id)])


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return redact(text)[:6000]
