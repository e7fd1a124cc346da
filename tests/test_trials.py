"""Trials beyond the happy path: other tasks, a user's own builder, divergence, failures."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import TINY, merge, run_cli
from search.cli import parse_duration


def _study(home, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def _runs(home, name):
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    return {int(r.data.tags["optuna.trial_number"]): r
            for r in client.search_runs([exp.experiment_id], "tags.`search.kind` = 'trial'")}


def test_regression_holdout_reports_mae(write_space, home):
    path = write_space({"study": {"name": "reg", "n_trials": 1},
                        "data": {"source": "sklearn:diabetes"},
                        "validation": {"scheme": "holdout", "fraction": 0.25, "k": None}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trial = _study(home, "reg").trials[0]
    assert trial.state.name == "COMPLETE"
    assert len(trial.user_attrs["splits"]) == 1
    # Losses are in the target's own units (MSE of a target around 150), the metric is MAE.
    assert trial.value > 100
    assert 0 < trial.user_attrs["val_mae_mean"] < 200
    assert "split_0/val_mae" in _runs(home, "reg")[0].data.metrics


def test_a_regression_test_look_reports_rmse_and_r2(write_space, home, capsys):
    """A regression's test look gave the MSE and the MAE only: RMSE and R² are what its readers compare."""
    from search import space as spaces
    from search.runner import session

    path = write_space({"study": {"name": "r2", "n_trials": 1, "baseline": False, "ablation": False},
                        "data": {"source": "sklearn:diabetes"},
                        "validation": {"scheme": "holdout", "fraction": 0.25, "k": None}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    capsys.readouterr()
    assert run_cli("reproduce", "r2", "--home", home, "--epochs", "3") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "test set (one look)" in x)
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("r2")
    metrics = client.search_runs([exp.experiment_id], "tags.`search.kind` = 'reproduce'")[0].data.metrics
    prepared = session.prepare(spaces.load(path))
    y_test = prepared.dataset.y[prepared.test_idx].astype(np.float64)
    assert metrics["test_rmse"] == pytest.approx(np.sqrt(metrics["test_loss"]), rel=1e-6)
    assert metrics["test_r2"] == pytest.approx(1 - metrics["test_loss"] / np.var(y_test), rel=1e-6)
    # R² is against the test rows' own mean, said so beside the share of the development rows' mean's loss.
    assert f"RMSE {metrics['test_rmse']:.4g}, R² {metrics['test_r2']:.4g} against the test rows' own mean" in line
    assert "of the chance-level" in line and "recall by class" not in capsys.readouterr().out
    assert metrics["ensemble_test_rmse"] > 0 and "ensemble_test_r2" in metrics  # the split models' average too


def test_binary_task_uses_a_sigmoid_output(write_space, home):
    import keras

    path = write_space({"study": {"name": "bin", "n_trials": 1}, "data": {"source": "sklearn:breast_cancer"}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trial = _study(home, "bin").trials[0]
    assert trial.state.name == "COMPLETE" and "val_accuracy_mean" in trial.user_attrs
    model = keras.models.load_model(home / "checkpoints" / "bin" / "trial_00000" / "split_00.keras")
    assert model.output_shape == (None, 1)
    assert model.layers[-1].get_config()["activation"] == "sigmoid"


def test_custom_builder_receives_settings_shape_and_outputs(write_space, home, tmp_path):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import keras
        SEEN = []

        def build(settings, input_shape, n_outputs):
            SEEN.append((dict(settings), input_shape, n_outputs))
            inputs = keras.Input(input_shape)
            x = keras.layers.Dense(settings["width"], activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
    """))
    path = write_space({"study": {"name": "custom", "n_trials": 2},
                        "model": {"family": "python:my_models:build", "width": {"int": [3, 6]},
                                  "layers": None, "units": None, "dropout": None}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    # The builder's module is loaded from its file under a private name (nothing is put on sys.path);
    # the same module object, run once per process, is what the trials called.
    from search.models import load_custom_builder

    my_models = sys.modules[load_custom_builder("python:my_models:build", path.parent).__module__]
    assert len(my_models.SEEN) == 1 + 2 * 3  # the check before any trial, then two trials of three folds
    settings, shape, n_out = my_models.SEEN[1]
    assert shape == (4,) and n_out == 3 and 3 <= settings["width"] <= 6
    study = _study(home, "custom")
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert _runs(home, "custom")[1].data.params["model.width"] == str(study.trials[1].params["model.width"])


def test_diverging_trial_is_pruned_with_its_reason(write_space, home):
    path = write_space({"study": {"name": "nan", "n_trials": 1, "baseline": False},
                        "data": {"source": "sklearn:diabetes"},
                        "train": {"optimizer": "sgd", "learning_rate": 10.0, "epochs": 5}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trial = _study(home, "nan").trials[0]
    assert trial.state.name == "PRUNED"
    assert "non-finite" in trial.user_attrs["reason"]
    run = _runs(home, "nan")[0]
    # Pruned, not crashed: FINISHED with the pruned tag, and the name says how it ended.
    assert run.info.status == "FINISHED" and run.data.tags["pruned"] == "true"
    assert "non-finite" in run.data.tags["reason"] and run.data.tags["optuna.state"] == "PRUNED"
    assert run.info.run_name.startswith("t000 diverged s0e") and run.data.tags["fit"] == "n/a"


def test_repeated_failures_stop_the_run_with_a_clear_error(write_space, home, tmp_path, capsys):
    (tmp_path / "broken.py").write_text(textwrap.dedent("""
        import keras
        CALLS = []

        def build(settings, input_shape, n_outputs):
            CALLS.append(settings)
            if len(CALLS) > 1:  # the check before the trials builds it once; every trial then fails
                raise RuntimeError('this architecture is broken')
            inputs = keras.Input(input_shape)
            return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(inputs))
    """))
    path = write_space({"study": {"name": "broken", "n_trials": 5, "max_consecutive_failures": 2},
                        "model": {"family": "python:broken:build", "layers": None, "units": None,
                                  "dropout": None}})
    assert run_cli("run", path, "--home", home, "--quiet") == 2
    err = capsys.readouterr().err
    assert "2 consecutive failed trials" in err and "this architecture is broken" in err
    assert "Traceback" not in err
    study = _study(home, "broken")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    runs = _runs(home, "broken")
    assert {r.info.status for r in runs.values()} == {"FAILED"}
    assert "this architecture is broken" in runs[0].data.tags["reason"]


def test_continuing_a_study_with_changed_settings_says_so(write_space, home, tmp_path, capsys):
    """Its earlier trials keep the settings they trained with; the new ones are ranked beside them."""
    fast = {"study": {"name": "moved", "n_trials": 1, "baseline": False}, "validation": {"k": 2},
            "train": {"epochs": 1}}
    from search import space as spaces
    from search.runner.session import changed_settings

    assert run_cli("run", write_space(fast), "--home", home, "--quiet") == 0
    stored = _study(home, "moved").user_attrs["space_yaml"]
    raised = spaces.load(write_space(merge(fast, {"study": {"n_trials": 2}}), name="raised.yaml"))
    assert changed_settings(stored, raised) == []  # a raised budget changes no trial's settings
    pruned = spaces.load(write_space(merge(fast, {"study": {"n_trials": 2, "pruner": "none"}}), name="p.yaml"))
    assert changed_settings(stored, pruned) == ["study.pruner: median -> none"]  # later trials judged otherwise
    capsys.readouterr()
    changed = merge(fast, {"study": {"n_trials": 2}, "model": {"units": 16}, "train": {"batch_size": 8}})
    # `search check` with the run's stores says what the run will do, creating nothing.
    assert run_cli("check", write_space(changed), "--home", home) == 0
    out, err = capsys.readouterr()
    assert f"study 'moved': continues the study in {home / 'optuna.db'}, 1 of 2 trials finished" in out
    assert "would continue with a setting changed since its earlier trials: model.units: 8 -> 16" in err
    assert run_cli("check", write_space(changed), "--home", home / "fresh", "--study-name", "other") == 0
    assert "study 'other': a new study (no store yet at" in capsys.readouterr().out
    assert not (home / "fresh").exists()
    assert run_cli("check", write_space(merge(changed, {"data": {"test_size": 0.3}})), "--home", home) == 2
    assert "field 'data.test_size'" in capsys.readouterr().err
    assert run_cli("check", write_space(fast), "--home", home) == 0  # its budget of 1 is spent
    assert "study 'moved' already has 1 finished trials, of study.n_trials 1: `search run` would train nothing" in \
        capsys.readouterr().out
    assert run_cli("check", write_space(fast), "--storage", "postgresql://u@127.0.0.1:9/x") == 0
    assert "which `search check` does not open" in capsys.readouterr().out
    assert run_cli("run", write_space(changed, name="other.yaml"), "--home", home, "--quiet") == 0
    err = capsys.readouterr().err
    assert "warning: study 'moved' continues with settings changed since its earlier trials, and from another " \
           f"space file than {(tmp_path / 'space.yaml').resolve()}, which started it" in err
    assert "model.units: 8 -> 16; train.batch_size: 32 -> 8" in err
    assert "already holds runs of a study named" not in err
    # The Optuna store lost (deleted) while MLflow's remains: the two records would disagree, so it is said.
    (home / "optuna.db").unlink()
    assert run_cli("run", write_space(fast), "--home", home, "--quiet") == 0
    assert "the MLflow store already holds runs of a study named 'moved' that this Optuna store does not know" in \
        capsys.readouterr().err


def test_an_exported_config_runs_from_any_folder(tmp_path, home, capsys, monkeypatch):
    """Data and builder named relative to the space file are written with their full paths: the files the
    study read, even where the folder the export runs in holds a file of the same name."""
    from search.reproduction import targets
    from search.tracking import default_tracking_uri

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    (project / "nets.py").write_text(textwrap.dedent("""
        import keras

        def build(settings, input_shape, n_outputs):
            inputs = keras.Input(input_shape)
            last = "softmax" if n_outputs > 1 else "sigmoid"  # a softmax over one unit is 1 for every row
            return keras.Model(inputs, keras.layers.Dense(n_outputs, activation=last)(inputs))
    """))
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": np.arange(40) % 2}).to_csv(
        project / "rows.csv", index=False)
    space = project / "space.yaml"
    space.write_text(yaml.safe_dump(merge(TINY, {
        "study": {"name": "portable", "n_trials": 1, "baseline": False}, "validation": {"k": 2},
        "data": {"source": "csv:rows.csv", "target": "label"}, "train": {"epochs": 1},
        "model": {"family": "python:nets:build", "layers": None, "units": None, "dropout": None}})))
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    elsewhere.mkdir()
    (elsewhere / "rows.csv").write_text("other,file\n1,2\n")
    monkeypatch.chdir(elsewhere)
    assert run_cli("best", "portable", "--home", home, "--export", elsewhere / "best.yaml") == 0
    exported = yaml.safe_load((elsewhere / "best.yaml").read_text())
    assert exported["data"]["source"] == f"csv:{(project / 'rows.csv').resolve()}"
    assert exported["model"]["family"] == f"python:{(project / 'nets.py').resolve()}:build"
    capsys.readouterr()
    assert run_cli("check", elsewhere / "best.yaml") == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="portable", storage=f"sqlite:///{home / 'optuna.db'}")
    target = targets.locate(study, default_tracking_uri(home), config=elsewhere / "best.yaml")
    assert target.changed == [], target.origin  # the same files, by another name: the same trial
    # ... and, judged on the test rows, the same config as the trial's own (the record of looks counts them).
    from search.reproduction import final, looks
    from search.space import nest

    own = targets.locate(study, default_tracking_uri(home))
    hashes = {looks.config_hash(final._by_full_paths(t, nest(t.space.leaves()))) for t in (own, target)}
    assert len(hashes) == 1, hashes


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "search", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "run" in out.stdout and "status" in out.stdout


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error(write_space):
    """`search check x.yaml | head -1`: the reader closing the pipe ends the command quietly."""
    proc = subprocess.Popen([sys.executable, "-m", "search", "check", str(write_space({}))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "unexpected failure" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("text,seconds", [("8h", 28800), ("90m", 5400), ("1h30m", 5400), ("45s", 45),
                                          ("3600", 3600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("argv, words", [(["ui", "--port", "99999"], "from 1 to 65535; found '99999'"),
                                         (["reproduce", "s", "--tolerance", "-1"], "above 0; found '-1'")])
def test_out_of_range_command_line_numbers_are_refused_by_name(argv, words, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli(*argv)
    assert stopped.value.code == 2
    assert words in capsys.readouterr().err


def test_bad_duration_is_refused():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("8 hours")


def test_an_edit_is_said_by_the_run_that_trains_with_it(write_space, home, capfd):
    """A run that found the budget spent said the edit and stored the edited space; the run that then trained
    the edited trials, with a raised budget, said nothing. With --workers 2, worker 1 said it, unless worker 2
    had stored the edited file first: then no one did. The parent says it once, before they start."""
    fast = {"study": {"name": "noop", "n_trials": 1, "baseline": False}, "validation": {"k": 2},
            "train": {"epochs": 1}}
    assert run_cli("run", write_space(fast), "--home", home, "--quiet") == 0
    edited = merge(fast, {"model": {"units": 16}})
    capfd.readouterr()
    assert run_cli("run", write_space(edited), "--home", home, "--quiet") == 0
    out, err = capfd.readouterr()
    assert "already has its 1 finished trials" in out and "settings changed" not in err
    assert "note: this file differs from the settings study 'noop' ran with (model.units: 8 -> 16), and its " \
           "budget is spent, so nothing trains with them" in err, err
    assert run_cli("run", write_space(merge(edited, {"study": {"n_trials": 2}})), "--home", home, "--quiet") == 0
    assert "continues with settings changed since its earlier trials" in capfd.readouterr().err
    again = merge(edited, {"model": {"units": 12}, "study": {"n_trials": 4}})
    assert run_cli("run", write_space(again), "--home", home, "--quiet", "--workers", "2") == 0
    out, err = capfd.readouterr()
    assert (out + err).count("continues with settings changed") == 1 and "model.units: 16 -> 12" in err, out + err


def test_a_timeout_shorter_than_the_start_up_still_trains_one_trial(write_space, home, capsys):
    """`--timeout 12s` with 17 s of start-up ended the run with no trial and exit 0; Optuna's timeout runs
    the first trial always. In Python, RunResult.budget_spent tells the timed-out run from a finished one."""
    import optuna

    import search

    space = write_space({"study": {"name": "hasty", "n_trials": 3, "baseline": False, "ablation": False},
                         "validation": {"k": 2}, "train": {"epochs": 1}})
    assert run_cli("run", space, "--home", home, "--quiet", "--timeout", "1s") == 0
    study = optuna.load_study(study_name="hasty", storage=f"sqlite:///{home / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"], capsys.readouterr()
    result = search.run(space, home=home, quiet=True, timeout=0.001)
    assert len(result.study.trials) == 2 and not result.budget_spent and result.stopped_by == ""
    assert search.run(space, home=home, quiet=True).budget_spent


@pytest.mark.parametrize("fuse", [True, False])
def test_each_split_scores_its_best_epoch_by_roc_auc_as_scikit_learn_would(tmp_path, fuse):
    """Trials were ranked and shown by loss and accuracy only: a fraud analyst's ROC AUC (scikit-learn's
    scoring='roc_auc') came at the one test look. Each split now scores its best epoch's predictions on its
    validation rows, the same number scikit-learn gives from the saved split model."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    import search
    from search import space as spaces
    from search.runner import session

    raw = {"study": {"name": "auc", "seed": 1, "n_trials": 1, "baseline": False, "ablation": False},
           "data": {"source": "sklearn:breast_cancer", "test_size": 0.2},
           "validation": {"scheme": "kfold", "k": 2},
           "model": {"family": "mlp", "layers": 1, "units": 8},
           "train": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "fuse_splits": fuse}}
    result = search.run(raw, home=tmp_path, quiet=True)
    trial = result.study.trials[0]
    prepared = session.prepare(spaces.load(raw))
    ds, aucs = prepared.dataset, []
    for model, split, record in zip(result.best.split_models(), prepared.splits, trial.user_attrs["splits"]):
        pred = model.predict(ds.X[split.val], verbose=0).reshape(-1)
        aucs.append(roc_auc_score(ds.y[split.val], pred))
        assert record["scores"]["roc_auc"] == pytest.approx(aucs[-1], abs=1e-6)
        assert record["scores"]["average_precision"] == \
            pytest.approx(average_precision_score(ds.y[split.val], pred), abs=1e-6)
        assert set(record["scores"]) == {"roc_auc", "average_precision", "balanced_accuracy"}
    assert trial.user_attrs["val_roc_auc_mean"] == pytest.approx(sum(aucs) / 2, abs=1e-6)
    assert trial.user_attrs["val_average_precision_mean"] == \
        pytest.approx(sum(r["scores"]["average_precision"] for r in trial.user_attrs["splits"]) / 2, abs=1e-9)
    from search.review.display import summary_table

    assert summary_table(result.study).splitlines()[0].split()[:6] == \
        ["rank", "trial", "val_loss", "±", "std", "accuracy"] and "roc_auc" in summary_table(result.study)
    # breast_cancer's classes are 212 and 357 rows: uneven, so the precision-recall area is shown beside ROC AUC
    assert summary_table(result.study).splitlines()[0].split()[6:9] == ["bal_acc", "roc_auc", "pr_auc"]
    from search.review import summary  # the review stored with the study (its table, its CSV) too

    header = summary.build(result.study.trials, "auc", draw=False).table()[0]
    assert header[6:8] == ["val_roc_auc", "val_average_precision"], header
