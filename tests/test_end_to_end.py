"""A real study end to end: Optuna SQLite storage, MLflow SQLite store, Keras training on iris."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import run_cli
from search import data, preprocess, scoring, space as spaces, splits
from search.runner import session

EPOCHS = 4


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """Run a 3-trial study once; the tests below read what it left behind."""
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "mlruns"
    path = tmp / "iris.yaml"
    path.write_text(yaml.safe_dump({
        # Across-split pruning off: every trial here must complete (tests/test_pruning.py covers pruning).
        "study": {"name": "iris-e2e", "seed": 3, "n_trials": 3, "split_pruner": "none"},
        "data": {"source": "sklearn:iris", "test_size": 0.2},
        "validation": {"scheme": "kfold", "k": 3},
        "model": {"family": "mlp", "layers": 1, "units": {"int": [4, 16]}, "dropout": {"float": [0.0, 0.5]},
                  "l2": {"float": [1e-4, 1e-2], "log": True, "or_off": True}},
        "train": {"epochs": EPOCHS, "batch_size": 16, "early_stopping": 0,
                  "learning_rate": {"float": [1e-3, 3e-2], "log": True}},
    }))
    assert run_cli("run", path, "--home", home) == 0
    storage = f"sqlite:///{home / 'optuna.db'}"
    return {"home": home, "path": path, "storage": storage,
            "study": optuna.load_study(study_name="iris-e2e", storage=storage),
            "client": MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")}


def _trial_runs(client, study_name):
    exp = client.get_experiment_by_name(study_name)
    runs = client.search_runs([exp.experiment_id], "tags.`search.kind` = 'trial'")
    return {int(r.data.tags["optuna.trial_number"]): r for r in runs}


def test_trials_splits_and_checkpoints_agree(study_run):
    study, home = study_run["study"], study_run["home"]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert trials[0].user_attrs.get("baseline") is True
    for t in trials:
        recorded = t.user_attrs["splits"]
        assert len(recorded) == 3
        assert math.isclose(t.value, np.mean([s["best_val_loss"] for s in recorded]), rel_tol=1e-9)
        assert math.isclose(t.user_attrs["val_loss_std"], np.std([s["best_val_loss"] for s in recorded], ddof=1),
                            rel_tol=1e-6)
        # The task metric's spread the same way (it was divided by n where the loss's was by n - 1).
        assert math.isclose(t.user_attrs["val_accuracy_std"],
                            np.std([s["best_val_metric"] for s in recorded], ddof=1), rel_tol=1e-6, abs_tol=1e-12)
        for s in recorded:
            assert 1 <= s["best_epoch"] <= EPOCHS
            ckpt = home / "checkpoints" / "iris-e2e" / f"trial_{t.number:05d}" / f"split_{s['split']:02d}.keras"
            assert ckpt.is_file()
    assert not list((home / "checkpoints").rglob(".*tmp*")), "a temporary checkpoint was left behind"


def test_checkpoint_holds_the_best_epoch_weights(study_run):
    """Evaluating a saved split model on its validation rows gives the stored best validation loss (the data
    loss of its predictions, without the penalty Keras adds to a penalized model's `loss`)."""
    import keras

    study, home = study_run["study"], study_run["home"]
    space = spaces.load(study_run["path"])
    prepared = session.prepare(space)
    trial = study.best_trial
    for s in trial.user_attrs["splits"]:
        split = prepared.splits[s["split"]]
        ds = prepared.dataset
        _, X_val = preprocess.fit_transform("standardize", ds.X[split.train], ds.X[split.val])
        model = keras.models.load_model(home / "checkpoints" / "iris-e2e" / f"trial_{trial.number:05d}" /
                                        f"split_{s['split']:02d}.keras")
        # The data loss of its predictions: a saved file compiles with Keras' own metric only, so a penalized
        # model's `loss` would hold its penalty.
        loss = float(np.mean(scoring.row_losses(ds.task, ds.y[split.val], model.predict(X_val, verbose=0))))
        assert loss == pytest.approx(s["best_val_loss"], rel=1e-4, abs=1e-5)


def test_mlflow_runs_match_trials(study_run):
    client, study = study_run["client"], study_run["study"]
    exp = client.get_experiment_by_name("iris-e2e")
    parents = client.search_runs([exp.experiment_id], "tags.`search.kind` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_id == study.user_attrs["mlflow_parent_run_id"]
    assert parent.data.tags["data_fingerprint"] == study.user_attrs["data_fingerprint"]
    assert "version.optuna" in parent.data.tags and "python" in parent.data.tags
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == [
        "data_summary.json", "data_summary.txt", "space.yaml", "space_versions", "study"]

    runs = _trial_runs(client, "iris-e2e")
    assert sorted(runs) == [t.number for t in study.trials]
    for t in study.trials:
        run = runs[t.number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert t.user_attrs["mlflow_run_id"] == run.info.run_id
        # Every setting, sampled or fixed, is a param under its dotted name.
        assert run.data.params["model.layers"] == "1"
        assert float(run.data.params["model.dropout"]) == pytest.approx(t.params["model.dropout"])
        assert run.data.metrics["val_loss_mean"] == pytest.approx(t.value)
        for s in t.user_attrs["splits"]:
            history = client.get_metric_history(run.info.run_id, f"split_{s['split']}/val_loss")
            assert [m.step for m in history] == list(range(1, s["epochs_run"] + 1))
            assert min(m.value for m in history) == pytest.approx(s["best_val_loss"], rel=1e-6)
            assert client.get_metric_history(run.info.run_id, f"split_{s['split']}/accuracy")
        # One curve a trial for MLflow's chart view: the mean over splits, whose lowest point is not below the
        # trial's score (each split counts with its best epoch once it stopped; mean of minima <= min of mean).
        if t.state.name == "COMPLETE":
            mean = client.get_metric_history(run.info.run_id, "mean_over_splits/val_loss")
            assert [m.step for m in mean] == list(range(1, max(s["epochs_run"] for s in t.user_attrs["splits"]) + 1))
            assert min(m.value for m in mean) >= t.value - 1e-6
    best_run = runs[study.best_trial.number]
    assert [a.path for a in client.list_artifacts(best_run.info.run_id, "best_model")]
    # Said beside it: a Keras file of scaled rows, not an MLflow model; where the raw-row models are.
    note = Path(client.download_artifacts(best_run.info.run_id, "best_model/README.md",
                                          str(study_run["home"].parent))).read_text()
    assert "not an MLflow model" in note and "already scaled" in note and "split_models()" in note
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)


def test_resolved_config_is_runnable_and_fixed(study_run, tmp_path):
    client, study = study_run["client"], study_run["study"]
    run = _trial_runs(client, "iris-e2e")[study.best_trial.number]
    local = client.download_artifacts(run.info.run_id, "config/resolved.yaml", str(tmp_path))
    resolved = spaces.load(local)
    assert resolved.distributions() == {}
    assert resolved.model["dropout"] == pytest.approx(study.best_trial.params["model.dropout"])
    assert resolved.study.seed_trial == study.best_trial.number
    home = tmp_path / "replay"
    assert run_cli("run", local, "--home", home) == 0
    replay = optuna.load_study(study_name=resolved.study.name, storage=f"sqlite:///{home / 'optuna.db'}")
    # Same settings, same seeds, same rows: the same validation losses.
    assert replay.trials[0].value == pytest.approx(study.best_trial.value, rel=1e-5)
    # Its record says so, and what starts from it (reproduce, ablation) trains with the same seeds.
    from search.reproduction import ablation, targets
    from search.tracking import default_tracking_uri

    again, _ = targets.trial_config(replay, replay.trials[0], default_tracking_uri(home))
    assert again.study.seed_trial == study.best_trial.number
    assert targets.locate(replay, default_tracking_uri(home)).seed_trial == study.best_trial.number
    assert ablation.plan(again, 0, "replay")[0].study.seed_trial == study.best_trial.number
    # Its own export names those seeds, and reproduce --config finds the replay's trial by them.
    exported = tmp_path / "again.yaml"
    targets.export(targets.locate(replay, default_tracking_uri(home)), exported)
    assert yaml.safe_load(exported.read_text())["study"]["seed_trial"] == study.best_trial.number
    by_file = targets.locate(replay, default_tracking_uri(home), config=exported)
    assert (by_file.trial.number, by_file.seed_trial, by_file.changed) == (0, study.best_trial.number, [])


def test_continuing_reuses_the_study_and_parent_run(study_run, tmp_path):
    path, home, client = study_run["path"], study_run["home"], study_run["client"]
    raised = yaml.safe_load(path.read_text())
    raised["study"]["n_trials"] = 4
    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump(raised))
    parent_before = study_run["study"].user_attrs["mlflow_parent_run_id"]
    assert run_cli("run", more, "--home", home, "--quiet") == 0
    study = optuna.load_study(study_name="iris-e2e", storage=study_run["storage"])
    assert len(study.trials) == 4
    assert study.user_attrs["mlflow_parent_run_id"] == parent_before
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 4, "a continued study repeated an earlier suggestion"
    assert sorted(_trial_runs(client, "iris-e2e")) == [0, 1, 2, 3]
    # Running again with the budget reached starts nothing.
    assert run_cli("run", more, "--home", home, "--quiet") == 0
    assert len(optuna.load_study(study_name="iris-e2e", storage=study_run["storage"]).trials) == 4


def test_status_prints_the_table(study_run, capsys):
    assert run_cli("status", "iris-e2e", "--home", study_run["home"]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "(baseline)" in out and "val_loss" in out


def test_fixed_splits_are_the_planned_ones(study_run):
    """The study stores the fingerprint of the very splits a fresh plan gives: trials compare like with like."""
    space = spaces.load(study_run["path"])
    prepared = session.prepare(space)
    assert study_run["study"].user_attrs["splits_fingerprint"] == splits.fingerprint(prepared.splits)
    assert study_run["study"].user_attrs["test_fingerprint"] == data.fingerprint_indices(prepared.test_idx)
