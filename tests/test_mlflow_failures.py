"""MLflow failing under a run, for real: the artifacts folder made unwritable (before or during the run) and a
stale MLflow view left behind. MLflow is a listener the run does not need: the trials, their diagnosis and the
ablation live in Optuna's storage, and the next run brings MLflow back in line with it.

The folder is made unwritable by putting a regular file where ``<home>/artifacts`` was: every write below it
then fails (ENOTDIR, EEXIST) even for root, whom neither chmod nor a read-only bit stops, and on every machine
alike, where a read-only remount needs privileges a test does not have.
"""
from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import TINY, merge, mlflow_store_in, run_cli
from search import space as spaces
from search.runner import session
from search.runner.results import TrialListener

FAST = {"validation": {"scheme": "kfold", "k": 2}, "train": {"epochs": 2}}
DIAGNOSIS = ("curves", "fit", "gap_mean", "overfit_onset")


def _space(tmp_path: Path, name: str, n_trials: int, **study: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {**FAST, "study": {"name": name, "n_trials": n_trials,
                                                                   "baseline": False, **study},
                                                "model": {"dropout": {"float": [0.1, 0.5], "or_off": True}}})))
    return path


def _unwritable(folder: Path, aside: Path) -> None:
    """A regular file where the folder was (kept aside, to be put back)."""
    if folder.exists():
        folder.rename(aside)
    folder.write_text("a file where the artifacts folder was: writes below it fail, even as root\n")


def _writable_again(folder: Path, aside: Path) -> None:
    folder.unlink()
    aside.rename(folder)


class _ArtifactsGoReadOnly(TrialListener):
    """Takes the artifacts folder away as trial 1 starts, as the reporter's remount did mid-run."""

    def __init__(self, home: Path, aside: Path) -> None:
        self.home, self.aside = home, aside

    def on_trial_start(self, trial: Any, settings: Any) -> None:
        if trial.number == 1 and (self.home / "artifacts").is_dir():
            _unwritable(self.home / "artifacts", self.aside)


def _runs(home: Path, experiment: str) -> list[Any]:
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else list(client.search_runs([exp.experiment_id], max_results=1000))


def _study(home: Path, name: str) -> Any:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def _trial_runs(home: Path, name: str) -> dict[int, Any]:
    return {int(r.data.tags["optuna.trial_number"]): r for r in _runs(home, name)
            if r.data.tags.get("search.kind") == "trial"}


def _parent(home: Path, name: str) -> Any:
    return next(r for r in _runs(home, name) if r.data.tags.get("search.kind") == "study")


def _starred(home: Path, name: str) -> list[int]:
    return sorted(n for n, r in _trial_runs(home, name).items() if r.data.tags.get("best") == "true")


def test_the_diagnosis_is_stored_without_any_tracker(tmp_path):
    """The trial's fit, curves, gap and overfit onset are the run's own: a run with no MLflow at all has them."""
    from search.review.trial_fit import TrialDiagnosis

    space_file = _space(tmp_path, "bare", 2)
    prepared = session.prepare(spaces.load(space_file))
    options = session.RunOptions(home=tmp_path / "home", quiet=True, threads=1)
    outcome = session.run(prepared, options, [TrialDiagnosis.of(prepared)], out=io.StringIO())
    for trial in outcome.study.trials:
        assert all(key in trial.user_attrs for key in DIAGNOSIS), sorted(trial.user_attrs)
    assert not (tmp_path / "home" / "mlflow.db").exists()
