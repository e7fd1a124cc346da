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


def test_artifacts_read_only_mid_run_costs_neither_the_ablation_nor_the_record(tmp_path, monkeypatch, capsys):
    """The reporter's night: the artifacts folder went read-only after trial 0. The trials went on, but the
    ablation then failed the command (rc 1) and left its MLflow parent run RUNNING, the trials after the
    failure lost their diagnosis (it was made by the tracker), and MLflow kept the ★ on an older trial."""
    from search.cli import _commands

    home = mlflow_store_in(tmp_path / "home")
    aside = tmp_path / "artifacts-aside"
    space = _space(tmp_path, "night", 5, ablation=True)
    made = _commands._run_options

    def with_the_remount(args: Any) -> Any:
        options = made(args)
        options.extra_listeners.append(_ArtifactsGoReadOnly(home, aside))
        return options

    monkeypatch.setattr(_commands, "_run_options", with_the_remount)
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    err = capsys.readouterr().err
    assert "unexpected failure" not in err
    assert "MlflowTracker failed in 3 trials in a row and is off" in err
    assert "the ablation is not logged to MLflow" in err and str(home / "artifacts") in err

    study = _study(home, "night")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    for trial in study.trials:  # the diagnosis is the run's, not MLflow's
        assert all(key in trial.user_attrs for key in DIAGNOSIS), (trial.number, sorted(trial.user_attrs))
    picked, rows = study.user_attrs["ablation"]["trial"], study.user_attrs["ablation"]["rows"]
    assert picked == study.best_trial.number and rows, "the ablation's table is in Optuna's storage"

    # Nothing is left RUNNING; no half-made parent run of the ablation, whose store could not take its files.
    every = [r for exp in MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").search_experiments()
             for r in _runs(home, exp.name)]
    assert every and all(r.info.status != "RUNNING" for r in every), [(r.info.run_name, r.info.status) for r in every]
    # The run's end made what the store's database could hold: a run for every trial, the ★ on Optuna's best.
    best = study.best_trial.number
    assert sorted(_trial_runs(home, "night")) == [0, 1, 2, 3, 4]
    assert _starred(home, "night") == [best]
    parent = _parent(home, "night")
    assert parent.data.tags["best_trial"] == str(best)
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)

    # Writable again, and run again with the budget spent: the best trial's model, which could not be written
    # when it took the ★, is written now.
    _writable_again(home / "artifacts", aside)
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert client.list_artifacts(_trial_runs(home, "night")[best].info.run_id, "best_model")
    assert "search.best_model_missing" not in _parent(home, "night").data.tags


def test_a_stale_mlflow_view_is_brought_in_line_with_optuna_by_the_next_run(tmp_path, capsys):
    """After an outage: the ★, best_trial and best_value on a trial Optuna no longer ranks first, and a complete
    trial with no run. A run with the budget spent repairs both, from Optuna's record."""
    home = mlflow_store_in(tmp_path / "home")
    space = _space(tmp_path, "stale", 4)
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    study = _study(home, "stale")
    ranked = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.values[0])
    best, other = ranked[0], ranked[-1]
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    runs = _trial_runs(home, "stale")
    # What the outage left, written with MLflow's own client: the ★ on the worst trial, the best trial's run gone.
    client.set_tag(runs[other.number].info.run_id, "best", "true")
    client.update_run(runs[other.number].info.run_id, name=f"t{other.number:03d} ★ stale")
    parent = _parent(home, "stale").info.run_id
    client.set_tag(parent, "best_trial", str(other.number))
    client.log_metric(parent, "best_value", other.values[0], step=other.number)
    client.delete_run(runs[best.number].info.run_id)
    missing = best.number

    assert run_cli("run", space, "--home", home, "--quiet") == 0
    capsys.readouterr()
    runs = _trial_runs(home, "stale")
    assert sorted(runs) == [t.number for t in study.trials]
    rebuilt = runs[missing]
    assert rebuilt.data.tags["search.rebuilt"] == "optuna" and rebuilt.info.status == "FINISHED"
    assert rebuilt.data.tags["optuna.state"] == "COMPLETE" and rebuilt.data.tags["fit"] == best.user_attrs["fit"]
    assert rebuilt.data.metrics["val_loss_mean"] == pytest.approx(best.values[0])
    assert rebuilt.data.metrics["gap_mean"] == pytest.approx(best.user_attrs["gap_mean"])
    assert any(key.startswith("split_0/") for key in rebuilt.data.metrics)
    assert rebuilt.data.params["model.dropout"] is not None and "train.epochs" in rebuilt.data.params
    assert _starred(home, "stale") == [best.number]
    assert "★" in rebuilt.info.run_name and "★" not in runs[other.number].info.run_name
    parent_run = _parent(home, "stale")
    assert parent_run.data.tags["best_trial"] == str(best.number)
    assert parent_run.data.metrics["best_value"] == pytest.approx(best.values[0])
    assert parent_run.info.status == "FINISHED"


def test_closing_a_run_left_open_adds_no_second_copy_of_its_curves(tmp_path, capsys):
    """A run left RUNNING after an outage, whose split curves MLflow already holds at full precision (logged
    before the outage, or by the catch-up after it): its repair closes it from Optuna's record without the
    rounded copies Optuna keeps beside them."""
    home = mlflow_store_in(tmp_path / "home")
    space = _space(tmp_path, "open", 2)
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    run_id = _trial_runs(home, "open")[1].info.run_id
    client.update_run(run_id, status="RUNNING")
    before = {key: len(client.get_metric_history(run_id, key)) for key in client.get_run(run_id).data.metrics}

    assert run_cli("run", space, "--home", home, "--quiet") == 0
    capsys.readouterr()
    assert client.get_run(run_id).info.status == "FINISHED"
    after = {key: len(client.get_metric_history(run_id, key)) for key in client.get_run(run_id).data.metrics}
    assert after == before
    assert before["split_0/val_loss"] == 2, "one point per epoch"


@pytest.mark.parametrize("how", ["home", "tracking-uri"])
def test_an_unwritable_artifacts_folder_from_the_start_is_a_clear_error_before_training(tmp_path, capsys, how):
    home = mlflow_store_in(tmp_path / "home")
    _unwritable(home / "artifacts", tmp_path / "aside")
    space = _space(tmp_path, "nowhere", 2)
    extra = ["--tracking-uri", f"sqlite:///{home / 'mlflow.db'}"] if how == "tracking-uri" else []
    assert run_cli("run", space, "--home", home, "--quiet", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    assert "unexpected failure" not in err and "Traceback" not in err
    assert str(home / "artifacts") in err and f"--{how}" in err and "a file, not a folder" in err
    assert "writable" in err
    with sqlite3.connect(home / "optuna.db") as con:  # nothing trained, and no study was made
        assert con.execute("SELECT count(*) FROM trials").fetchone() == (0,)


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


def test_a_new_store_made_from_the_first_ones_schema_is_mlflows_own_with_its_home(tmp_path):
    """MLflow makes a store by running every schema migration (about 1.3 s of CPU each); a process's later stores
    are written from the first one's schema. Each must be the store MLflow itself makes, its Default
    experiment's artifacts in its own home, and one another process made first is left as it is."""
    import sqlite3
    from contextlib import closing

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    from search.studies import _sqlite
    from search.tracking import _store

    def schema(path):
        with closing(sqlite3.connect(path)) as conn:
            return sorted(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))

    (tmp_path / "mlflows").mkdir()
    SqlAlchemyStore(f"sqlite:///{tmp_path / 'mlflows' / 'mlflow.db'}", (tmp_path / "mlflows").as_uri())
    for name in ("a", "b"):
        uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
        _sqlite.prepare(uri)  # as the tracker does: the folder, and an empty file in WAL mode
        if name == "a":
            _store.new_local_store(uri, tmp_path / name)
            assert _store._TEMPLATE, "the schema was not kept for the next store"
        else:  # the template's own path, not MLflow's migrations behind a fallback
            assert _store._from_template(tmp_path / name / "mlflow.db", (tmp_path / name / "artifacts").as_uri())
        assert schema(tmp_path / name / "mlflow.db") == schema(tmp_path / "mlflows" / "mlflow.db")
        client = MlflowClient(tracking_uri=uri)
        assert client.get_experiment("0").artifact_location == f"{(tmp_path / name / 'artifacts').as_uri()}/0"
        run = client.create_run(client.create_experiment("study"))
        client.log_metric(run.info.run_id, "val_loss", 0.5)
        assert client.get_run(run.info.run_id).data.metrics == {"val_loss": 0.5}
    # A store another process made first (a second worker on a fresh home) keeps its experiments.
    assert _store._from_template(tmp_path / "b" / "mlflow.db", "file:///elsewhere") is True
    assert MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}").get_experiment_by_name("study")
