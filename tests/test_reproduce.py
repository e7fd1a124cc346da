"""`search best` and `search reproduce` on real stores: export, final retrain, test look, ensemble, alarm, verify."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import merge, run_cli
from search import space as spaces
from search.runner import checkpoints
from search.reproduction import overfit
from search.runner import session
from search.runner import training
from search.reproduction.final import score_split
from search.space import nest

NAME = "iris-rep"


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """A 2-trial study (baseline + one sampled trial) on iris, 3 folds, 4 epochs."""
    tmp = tmp_path_factory.mktemp("rep")
    home, path = tmp / "mlruns", tmp / "iris.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": NAME, "seed": 3, "n_trials": 2},
        "data": {"source": "sklearn:iris", "test_size": 0.2},
        "validation": {"scheme": "kfold", "k": 3},
        "model": {"family": "mlp", "layers": 1, "units": 8, "dropout": {"float": [0.0, 0.3]}},
        "train": {"epochs": 4, "batch_size": 16, "early_stopping": 0,
                  "learning_rate": {"float": [1e-2, 3e-2], "log": True}},
    }))
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return {"home": home, "path": path, "uri": uri, "client": MlflowClient(tracking_uri=uri),
            "study": optuna.load_study(study_name=NAME, storage=f"sqlite:///{home / 'optuna.db'}")}


def _reproduce_runs(client, name=NAME):
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], "tags.`search.kind` = 'reproduce'",
                              order_by=["attributes.start_time ASC"])
    return runs


def _export(study_run, path):
    assert run_cli("best", NAME, "--home", study_run["home"], "--export", path) == 0
    return path


def test_best_exports_a_fixed_config_that_repeats_the_trial(study_run, tmp_path, capsys):
    best = study_run["study"].best_trial
    path = _export(study_run, tmp_path / "best.yaml")
    assert "val_loss" in capsys.readouterr().out
    exported = spaces.load(path)
    assert exported.distributions() == {}
    assert exported.study.seed_trial == best.number
    assert exported.train["learning_rate"] == pytest.approx(best.params["train.learning_rate"])
    replay_home = tmp_path / "replay"
    assert run_cli("run", path, "--home", replay_home, "--quiet", "--threads", "1") == 0
    assert "study.split_pruner" not in capsys.readouterr().err  # the export writes the defaults it ran with
    replay = optuna.load_study(study_name=exported.study.name, storage=f"sqlite:///{replay_home / 'optuna.db'}")
    assert replay.trials[0].value == pytest.approx(best.value, rel=1e-5)


def test_export_without_mlflow_rebuilds_the_same_config(study_run, tmp_path):
    """With another tracking store the config comes from the study's stored space and the trial's params."""
    with_mlflow = _export(study_run, tmp_path / "a.yaml")
    assert run_cli("best", NAME, "--home", study_run["home"], "--export", tmp_path / "b.yaml",
                   "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}") == 0
    assert spaces.load(with_mlflow).model_dump() == spaces.load(tmp_path / "b.yaml").model_dump()


def test_reproduce_by_trial_run_id_and_file_agree_and_the_model_loads(study_run, tmp_path, capsys):
    import keras
    import mlflow

    client, best = study_run["client"], study_run["study"].best_trial
    path = _export(study_run, tmp_path / "best.yaml")
    home = study_run["home"]
    before = len(_reproduce_runs(client))
    capsys.readouterr()
    assert run_cli("reproduce", NAME, "--trial", best.number, "--home", home, "--threads", "1", "--verify") == 0
    out = capsys.readouterr().out
    assert "verify: every split matches" in out and re.search(r"test set \((one look|look \d+)\)", out)
    # The test loss against what predicting the development rows' class shares scores on the test rows.
    chance = re.search(r"test set \([^)]*\): loss ([\d.]+) \((\d+)% of the chance-level ([\d.]+), always "
                       r"predicting the development rows' class shares\)", out)
    assert chance and round(100 * float(chance[1]) / float(chance[3])) == pytest.approx(int(chance[2]), abs=1), out
    assert "the model takes 4 feature columns (raw) and gives 3 probabilities, one per class" in out
    # Four epochs of iris: splits that peaked at their last epoch make the rule's count a lower bound.
    at_end = sum(s["best_epoch"] == s["epochs_run"] for s in best.user_attrs["splits"])
    assert (f"note: {at_end} of 3 split(s) peaked at the last epoch they trained" in out) == (at_end >= 2), out
    assert run_cli("reproduce", NAME, "--run-id", best.user_attrs["mlflow_run_id"], "--home", home) == 0
    assert run_cli("reproduce", NAME, "--config", path, "--home", home, "--register", "iris-final") == 0
    assert "registered as iris-final version 1 in MLflow's model registry (models:/iris-final/1)" in \
        capsys.readouterr().out
    runs = _reproduce_runs(client)[before:]
    assert len(runs) == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["search.source_run_id"] == best.user_attrs["mlflow_run_id"]
        assert run.data.tags["mlflow.parentRunId"] == study_run["study"].user_attrs["mlflow_parent_run_id"]
        assert run.data.tags["data_fingerprint"] == study_run["study"].user_attrs["data_fingerprint"]
        assert "version.keras" in run.data.tags and "python" in run.data.tags and "platform" in run.data.tags
        assert run.data.tags["split_models"] == ("retrained by --verify" if run is runs[0] else "checkpoints")
        assert run.data.tags["overfit_alarm"] == "false", "a healthy study raised the validation-overfit alarm"
    # Same config, same seeds: the same numbers whichever way the trial was named.
    for key in ("test_loss", "test_accuracy", "ensemble_test_loss", "split_models_test_loss_mean"):
        values = [r.data.metrics[key] for r in runs]
        assert values == pytest.approx([values[0]] * 3, rel=1e-5), key
    assert runs[0].data.tags["verify"] == "passed"
    # The study's own run says its test rows were looked at, and by which reproduce run last.
    parent = client.get_run(study_run["study"].user_attrs["mlflow_parent_run_id"]).data.tags
    assert parent["search.latest_reproduce_run"] == runs[-1].info.run_id
    assert parent["test_looks"] == runs[-1].data.tags["test_looks"] != "0"
    # Each final model is an MLflow 3 LoggedModel of the experiment too (its Models tab), with the run's test
    # metrics on it and the same files as the run's model/ (which runs:/<id>/model keeps loading).
    exp = client.get_experiment_by_name(NAME).experiment_id
    logged = {m.source_run_id: m for m in client.search_logged_models([exp])}
    for run in runs:
        model = logged[run.info.run_id]
        assert str(model.status) == "READY" and model.name == "final_model"
        assert {m.key: m.value for m in model.metrics}["test_loss"] == pytest.approx(run.data.metrics["test_loss"])
        assert model.params == run.data.params

    # The logged model is the evaluated one: it takes raw feature rows (the scaler is inside).
    run = runs[-1]
    prepared = session.prepare(spaces.load(path))
    X_test, y_test = prepared.dataset.X[prepared.test_idx], prepared.dataset.y[prepared.test_idx]
    shares = np.bincount(prepared.dataset.y[prepared.dev_idx]) / len(prepared.dev_idx)
    assert run.data.metrics["test_chance_loss"] == pytest.approx(-np.mean(np.log(shares[y_test])), rel=1e-9)
    assert float(chance[3]) == pytest.approx(run.data.metrics["test_chance_loss"], rel=1e-3)
    mlflow.set_tracking_uri(study_run["uri"])
    try:
        model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
        served = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")  # as `mlflow models serve` does
    finally:
        mlflow.set_tracking_uri(None)
    accuracy = float(np.mean(np.argmax(model.predict(X_test, verbose=0), axis=1) == y_test))
    # rows.csv: which rows were tested and where each split put each row, by the source's row numbers, and
    # the test rows' predictions, which give the reported accuracy.
    local = MlflowClient(tracking_uri=study_run["uri"]).download_artifacts(run.info.run_id, "rows.csv",
                                                                            str(tmp_path))
    rows = pd.read_csv(local, keep_default_na=False)
    ds = prepared.dataset
    assert len(rows) == len(ds.X) == 149 and list(rows["row"]) == list(ds.rows)  # iris's one duplicate is out
    assert rows["row"].max() == 149 and set(rows["source"]) == {"sklearn:iris"}  # as the space names it
    tested = rows[rows["role"] == "test"]
    assert list(tested.index) == sorted(prepared.test_idx)
    for split in prepared.splits:
        column = rows[f"split_{split.index}"]
        assert sorted(column.index[column == "validation"]) == sorted(split.val)
        assert set(column[rows["role"] == "development"]) == {"train", "validation"}
        assert set(column[rows["role"] == "test"]) == {""}
    probabilities = tested[[f"p({c})" for c in ds.classes]].to_numpy(dtype=float)
    # In the float32 the model predicts in, written in the fewest digits that read back as it (not 0.1 as
    # 0.10000000149011612): the cells are the model's own numbers, exactly.
    order = np.argsort(prepared.test_idx)
    assert np.array_equal(probabilities.astype(np.float32), model.predict(X_test, verbose=0)[order]), probabilities
    assert max(len(str(c)) for c in tested[f"p({ds.classes[0]})"]) <= 12
    # `search predict` with the latest final model gives the test rows the probabilities rows.csv has, digit for
    # digit; the caller's other columns stay beside them.
    new = pd.DataFrame(ds.X[tested.index], columns=ds.feature_names).assign(note="kept")
    new.to_csv(tmp_path / "new.csv", index=False)
    capsys.readouterr()
    assert run_cli("predict", NAME, tmp_path / "new.csv", "--home", home) == 0
    # Which model predicted is said: the best trial's latest final model (not merely the latest run).
    assert f"predicted by the final model of trial {best.number}, reproduce run {run.info.run_id} (the best " \
           f"trial's latest)" in capsys.readouterr().out
    predicted = pd.read_csv(tmp_path / "new-predictions.csv", keep_default_na=False)
    names = [f"p({c})" for c in ds.classes]
    assert predicted[names].astype(str).to_numpy().tolist() == tested[names].astype(str).to_numpy().tolist()
    assert list(predicted["predicted"].astype(str)) == list(tested["predicted"].astype(str))
    assert set(predicted["note"]) == {"kept"}
    assert run_cli("predict", NAME, tmp_path / "new.csv", "--home", home, "--out", tmp_path / "new.csv") == 2
    new.drop(columns=[ds.feature_names[0]]).to_csv(tmp_path / "short.csv", index=False)
    assert run_cli("predict", NAME, tmp_path / "short.csv", "--home", home) == 2
    assert f"lack column(s) the final model of study '{NAME}' takes; expected '{ds.feature_names[0]}'" in \
        capsys.readouterr().err
    # A value the model refuses is the input's mistake (exit 2), not "an unexpected failure" (exit 1).
    new.assign(**{ds.feature_names[1]: [np.nan] + [1.0] * (len(new) - 1)}).to_csv(tmp_path / "gap.csv", index=False)
    assert run_cli("predict", NAME, tmp_path / "gap.csv", "--home", home) == 2
    err = capsys.readouterr().err
    assert f"gap.csv: field 'rows': missing values in '{ds.feature_names[1]}'" in err and "unexpected" not in err, err
    # Read as the training file is: Excel's "CSV UTF-8" of a decimal-comma locale (BOM, semicolons, CRLF) gives
    # the same predictions; it was refused ('\ufeffsepal length (cm)'). A line of one field more than the header
    # shifted every value under the next column's name, silently; an empty file was "an unexpected failure".
    excel = new.to_csv(sep=";", decimal=",", index=False, lineterminator="\r\n")
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + excel.encode())
    assert run_cli("predict", NAME, tmp_path / "excel.csv", "--home", home, "--out", tmp_path / "excel-out.csv") == 0
    assert pd.read_csv(tmp_path / "excel-out.csv")[names].equals(pd.read_csv(tmp_path / "new-predictions.csv")[names])
    lines = (tmp_path / "new.csv").read_text().splitlines()
    (tmp_path / "shifted.csv").write_text("\n".join([lines[0], "9," + lines[1], *lines[2:]]) + "\n")
    (tmp_path / "empty.csv").write_text("")
    # A spreadsheet's Total row below the rows: refused as training refuses it (it was predicted and scored).
    pd.concat([new, new[ds.feature_names].sum().to_frame().T.assign(note="Total")]).to_csv(tmp_path / "total.csv",
                                                                                         index=False)
    capsys.readouterr()
    assert run_cli("predict", NAME, tmp_path / "shifted.csv", "--home", home) == 2
    assert run_cli("predict", NAME, tmp_path / "empty.csv", "--home", home) == 2
    assert run_cli("predict", NAME, tmp_path / "total.csv", "--home", home) == 2
    err = capsys.readouterr().err
    assert "shifted.csv" in err and "empty.csv" in err and "unexpected" not in err and \
        not (tmp_path / "shifted-predictions.csv").exists(), err
    assert f"the last row of {tmp_path / 'total.csv'} (row {len(new)}, counting data rows from 0) holds the sums" \
        in err and not (tmp_path / "total-predictions.csv").exists(), err
    # A runner-up reproduced to look at it does not become the model that predicts (it did, without a word).
    other = next(t for t in study_run["study"].trials if t.state.name == "COMPLETE" and t.number != best.number)
    assert run_cli("reproduce", NAME, "--trial", other.number, "--home", home, "--threads", "1") == 0
    capsys.readouterr()
    assert run_cli("predict", NAME, tmp_path / "new.csv", "--home", home, "--out", tmp_path / "again.csv") == 0
    assert f"predicted by the final model of trial {best.number}, " in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "again.csv").equals(pd.read_csv(tmp_path / "new-predictions.csv"))
    assert list(tested["predicted"]) == [str(ds.classes[k]) for k in probabilities.argmax(axis=1)]
    assert float(np.mean(tested["predicted"] == tested["target"].astype(str))) == \
        pytest.approx(run.data.metrics["test_accuracy"])
    # Recall by class, in reproduce.json and printed: from the same predictions.
    summary = json.loads(Path(MlflowClient(tracking_uri=study_run["uri"]).download_artifacts(
        run.info.run_id, "reproduce.json", str(tmp_path / "json"))).read_text())
    recalls = summary["recall_by_class"]
    assert sorted(recalls) == sorted(str(c) for c in ds.classes)
    for name, (recall, n) in recalls.items():
        mine = tested[tested["target"].astype(str) == name]
        assert n == len(mine) and recall == pytest.approx(float(np.mean(mine["predicted"] == name)))
    assert "recall by class (test rows of each class predicted as it), lowest first: " in out
    # Precision, recall and F1 by class and the confusion matrix, as scikit-learn gives them from rows.csv.
    from sklearn.metrics import classification_report, confusion_matrix

    client = MlflowClient(tracking_uri=study_run["uri"])
    names = [str(c) for c in ds.classes]
    truth, guess = tested["target"].astype(str), tested["predicted"].astype(str)
    report = Path(client.download_artifacts(run.info.run_id, "classification_report.txt", str(tmp_path / "r")))
    assert report.read_text() == classification_report(truth, guess, labels=names, digits=4, zero_division=0)
    matrix = pd.read_csv(client.download_artifacts(run.info.run_id, "confusion_matrix.csv", str(tmp_path / "m")),
                         index_col=0)
    assert list(matrix.columns) == names and matrix.to_numpy().tolist() == \
        confusion_matrix(truth, guess, labels=names).tolist()
    assert "precision and F1 by class in the run's classification_report.txt" in out
    # A frame of raw rows as pandas reads them (float64) is what the generic flavour takes.
    frame = pd.DataFrame(X_test.astype(np.float64), columns=prepared.dataset.feature_names)
    np.testing.assert_allclose(np.asarray(served.predict(frame)), model.predict(X_test, verbose=0), rtol=1e-5)
    # Its columns are the classes, in the model's order (they were 0..n-1, the names only in reproduce.json).
    assert list(served.predict(frame).columns) == [str(c) for c in prepared.dataset.classes]
    # No rows give no rows (Keras failed on them); a true/false column is numbers (Keras refused it as object);
    # a text column is named; and no progress bar reaches standard output.
    assert served.predict(frame.iloc[:0]).shape == (0, 3)
    flags = frame.assign(**{frame.columns[0]: frame[frame.columns[0]] > 5})
    capsys.readouterr()
    np.testing.assert_allclose(np.asarray(served.predict(flags)),
                               model.predict(flags.to_numpy(np.float64), verbose=0), rtol=1e-5)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match=re.escape(f"column(s) '{frame.columns[1]}' are not numbers (row 0 of")):
        served.predict(frame.assign(**{frame.columns[1]: "a"}))
    # Trained with data.missing: refuse, it has no fill: a missing value is named, not predicted as NaN; an
    # empty text is a missing value, as an empty cell of a CSV is (it was "not numbers").
    holes = frame.copy()
    holes.iloc[2, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape(f"missing values in '{frame.columns[1]}' (first in row 2")):
        served.predict(holes)
    blank = frame.astype(object)
    blank.iloc[2, 1] = " "
    with pytest.raises(ValueError, match=re.escape(f"missing values in '{frame.columns[1]}' (first in row 2")):
        served.predict(blank)
    # As pandas 3 reads a CSV's text column (its own str dtype, not objects): a cell of spaces is missing there
    # too, as training read it (a stranger's model refused its own training file for its " " cells).
    as_read = frame.astype(str)
    as_read.iloc[2, 1] = " "
    assert str(as_read.dtypes.iloc[1]) != "object"
    with pytest.raises(ValueError, match=re.escape(f"missing values in '{frame.columns[1]}' (first in row 2")):
        served.predict(as_read)
    # Columns are taken by name: a frame in another order scores the same, one missing a column is refused.
    np.testing.assert_allclose(np.asarray(served.predict(frame[frame.columns[::-1]])),
                               model.predict(X_test, verbose=0), rtol=1e-5)
    with pytest.raises(mlflow.exceptions.MlflowException, match=re.escape(f"missing inputs ['{frame.columns[0]}']")):
        served.predict(frame[frame.columns[1:]])
    # Whole-number and float32 columns, as pandas reads a CSV of counts, are numbers as well.
    whole = frame.round().astype({frame.columns[0]: np.int64, frame.columns[1]: np.float32})
    np.testing.assert_allclose(np.asarray(served.predict(whole)),
                               model.predict(whole.to_numpy(np.float64), verbose=0), rtol=1e-5)
    assert accuracy == pytest.approx(run.data.metrics["test_accuracy"])
    from sklearn.metrics import balanced_accuracy_score  # beside the accuracy, as scikit-learn computes it

    assert run.data.metrics["test_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y_test, np.argmax(model.predict(X_test, verbose=0), axis=1)))
    # Registered with --register: the same model, by its registry name.
    version = client.get_model_version("iris-final", "1")
    assert version.run_id == run.info.run_id and version.source.endswith("/model")
    mlflow.set_tracking_uri(study_run["uri"])
    try:
        registered = mlflow.keras.load_model("models:/iris-final/1")
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(registered.predict(X_test, verbose=0), model.predict(X_test, verbose=0), rtol=1e-6)
    local = client.download_artifacts(run.info.run_id, "final_model.keras", str(tmp_path))
    plain = keras.models.load_model(local)
    np.testing.assert_allclose(plain.predict(X_test, verbose=0), model.predict(X_test, verbose=0), rtol=1e-6)


def test_removed_checkpoints_are_retrained_to_the_same_models(study_run, capsys):
    client, best, home = study_run["client"], study_run["study"].best_trial, study_run["home"]
    # The test above leaves runs from checkpoints (default epochs); make one only when run alone.
    from_checkpoints = [r for r in _reproduce_runs(client) if r.data.tags["split_models"] == "checkpoints"
                        and r.data.tags["optuna.trial_number"] == str(best.number)]  # not a runner-up's
    if not from_checkpoints:
        assert run_cli("reproduce", NAME, "--trial", best.number, "--home", home) == 0
        from_checkpoints = _reproduce_runs(client)[-1:]
    folder = checkpoints.trial_dir(home, NAME, best.number)
    backup = folder.with_name("moved-away")
    shutil.move(folder, backup)
    try:
        capsys.readouterr()
        assert run_cli("reproduce", NAME, "--trial", best.number, "--home", home) == 0
        said = capsys.readouterr().out
        assert "no checkpoint of split(s) 0, 1" in said and "is on disk (study.keep_checkpoints keeps" in said
    finally:
        shutil.move(backup, folder)
    with_ckpt, retrained = from_checkpoints[-1], _reproduce_runs(client)[-1]
    assert retrained.data.tags["split_models"] == "retrained"
    for key in ("ensemble_test_loss", "split_models_test_loss_mean", "test_loss"):
        assert retrained.data.metrics[key] == pytest.approx(with_ckpt.data.metrics[key], rel=1e-4), key


def test_verify_reports_a_mismatch_when_a_setting_changed(study_run, tmp_path, capsys):
    # A config that is not there is named by the option (it read as a missing space file).
    assert run_cli("reproduce", NAME, "--config", tmp_path / "nope.yaml", "--home", study_run["home"]) == 2
    assert "field '--config': the config file does not exist" in capsys.readouterr().err
    path = _export(study_run, tmp_path / "best.yaml")
    config = yaml.safe_load(path.read_text())
    config["train"]["learning_rate"] *= 3
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    runs = len(_reproduce_runs(study_run["client"]))
    storage = f"sqlite:///{study_run['home'] / 'optuna.db'}"
    looks = optuna.load_study(study_name=NAME, storage=storage).user_attrs.get("test_looks", [])
    assert run_cli("reproduce", NAME, "--config", path, "--home", study_run["home"], "--verify",
                   "--epochs", "1") == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out and "MISMATCH" in captured.err and "were not looked at" in captured.err
    assert "test set" not in captured.out and "ensemble" not in captured.out
    # A failed check stops before the test rows: no look recorded, no run logged.
    assert len(_reproduce_runs(study_run["client"])) == runs
    assert optuna.load_study(study_name=NAME, storage=storage).user_attrs.get("test_looks", []) == looks


def test_changed_data_is_refused_unless_allowed(write_space, home, tmp_path, capsys):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    csv = tmp_path / "iris.csv"
    frame.to_csv(csv, index=False)
    path = write_space({"study": {"name": "csv-iris", "n_trials": 1},
                        "data": {"source": f"csv:{csv}", "target": "target"},
                        "validation": {"k": 2}, "train": {"epochs": 2}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    frame = pd.concat([frame.iloc[:10].assign(**{frame.columns[0]: frame.iloc[:10, 0] + 0.05}), frame])
    frame.to_csv(csv, index=False)  # ten rows more, at the top: the same seed draws other test rows
    capsys.readouterr()
    assert run_cli("reproduce", "csv-iris", "--home", home) == 2
    err = capsys.readouterr().err
    assert "data fingerprint" in err and "--allow-data-change" in err and "Traceback" not in err
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert _reproduce_runs(client, "csv-iris") == [], "a refused reproduce must not log a run"
    assert run_cli("reproduce", "csv-iris", "--home", home, "--allow-data-change", "--epochs", "1") == 0
    run = _reproduce_runs(client, "csv-iris")[-1]
    assert run.data.tags["data_changed"] == "true"
    # The checkpoints were trained on the old data's splits, whose rows the new test rows may be: they are
    # trained again, and the look is recorded at the rows it looked at (the old ones were counted).
    assert "the data changed: trained the 2 split model(s) again on the new data's splits" in capsys.readouterr().out
    assert run.data.tags["split_models"] == "retrained"
    study = optuna.load_study(study_name="csv-iris", storage=f"sqlite:///{home / 'optuna.db'}")
    assert study.user_attrs["test_looks"][-1]["rows"] != study.user_attrs["test_fingerprint"]


def test_a_search_continued_after_a_look_at_the_test_rows_says_so(write_space, home, capsys):
    """Raising study.n_trials after `search reproduce` went on without a word: what is searched then is chosen
    by someone who has seen the test score."""
    fast = {"study": {"name": "looked", "n_trials": 1, "baseline": False, "ablation": False},
            "validation": {"k": 2}, "train": {"epochs": 1}}
    assert run_cli("run", write_space(fast), "--home", home, "--quiet", "--threads", "1") == 0
    assert run_cli("reproduce", "looked", "--home", home, "--epochs", "1") == 0
    capsys.readouterr()
    more = write_space(merge(fast, {"study": {"n_trials": 2}}))
    assert run_cli("run", more, "--home", home, "--quiet", "--threads", "1") == 0
    assert "warning: study 'looked' continues after `search reproduce` looked at its test rows 1 time(s)" in \
        capsys.readouterr().err


def test_alarm_fires_on_a_constructed_validation_overfit(tmp_path):
    """Pure-noise labels, 4 validation rows, 8 candidate configs, keep the one with the lowest validation loss.

    Built from the same pieces a study and `reproduce` use (training.train_on_split for every candidate,
    with its best epoch chosen on the validation rows; reproduce.score_split and overfit.check for the
    winner), with a loop choosing the lowest validation loss where a study would use Optuna: for the rule,
    a study is exactly that choice, so this is the case the issue names at a fraction of the cost. Nothing
    can be learnt from random labels, so any validation advantage is selection on the validation rows.
    (The healthy case is the iris study above, whose reproduce runs must carry overfit_alarm=false.)
    """
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noise.npz", X=rng.normal(size=(400, 5)), y=rng.integers(0, 2, 400))
    space = spaces.validate({
        "study": {"name": "noise", "seed": 0},
        "data": {"source": "npz:noise.npz", "test_size": 0.5},
        "validation": {"scheme": "holdout", "fraction": 0.02},
        "model": {"family": "mlp", "layers": 1, "units": 32},
        "train": {"epochs": 4, "batch_size": 32, "early_stopping": 0, "learning_rate": 0.03},
    }, path=tmp_path / "space.yaml")
    prepared = session.prepare(space)
    assert len(prepared.splits[0].val) == 4
    candidates = []
    for seed, lr in enumerate(np.geomspace(0.01, 0.1, 8)):
        settings = nest(space.leaves())
        settings["train"]["learning_rate"] = float(lr)
        model, result = training.train_on_split(space, settings, prepared.dataset, prepared.splits[0], seed)
        candidates.append((result.best_val_loss, score_split(model, prepared, 0)))
    best_loss, scored = min(candidates, key=lambda c: c[0])
    check = overfit.check([best_loss], [scored.val_rows], [scored.test_loss], [scored.test_rows])
    assert check.fired, check.summary()
    assert check.test_loss > 0.69 > check.cv_mean  # worse than guessing on the test rows, better on validation
    assert "nested cross-validation" in check.warning()


def test_alarm_arithmetic():
    """Two splits at 0.5 and 0.7 (std 0.141, error 0.1), test rows with no spread: z = (0.9 - 0.6) / 0.1."""
    rows = [np.array([0.5, 0.5]), np.array([0.7, 0.7])]
    check = overfit.check([0.5, 0.7], rows, [0.9, 0.9], [np.full(100, 0.9), np.full(100, 0.9)])
    assert check.z == pytest.approx(3.0) and check.fired
    assert not overfit.check([0.5, 0.7], rows, [0.75, 0.75], [np.full(100, 0.75)] * 2).fired
    # One trial chose nothing, and later test rows may have drifted: the alarm blamed the search for both.
    check.trials, check.time_ordered = 1, True
    assert "no selection to overfit" in check.warning() and "drift or trend over time" in check.warning()
    assert "nested cross-validation" not in check.warning()
    check.trials = 30  # and with a search behind it, the drift comes first, not after "validation overfit"
    assert check.warning().startswith("test rows later than the validation rows score worse: ")
    assert "nested cross-validation" in check.warning() and "which no selection explains" in check.warning()
    check.time_ordered = False
    assert "drift" not in check.warning()


def test_a_penalized_model_loads_with_plain_keras_where_this_package_is_not_imported(tmp_path):
    """The data-loss metric that splits a penalized loss in the logs must not be what a saved file compiles
    with: MLflow's loaders and `keras.models.load_model` compile, and could not find its class."""
    import subprocess
    import sys

    import keras

    from search.models import Head

    head = Head.for_rows("multiclass", 3, np.array([0, 1, 2]))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax",
                                                   kernel_regularizer=keras.regularizers.L2(0.01))(inputs))
    training.compile_model(model, {"optimizer": "adam", "learning_rate": 0.01}, head)
    assert training.is_penalized(model)
    history = model.fit(np.random.default_rng(0).random((12, 4)), np.arange(12) % 3, epochs=1, verbose=0)
    assert "data_loss" in history.history  # the logs still split the penalty off
    path = checkpoints.save_atomic(model, tmp_path / "split_00.keras")
    script = ("import sys, keras, numpy as np\n"
              f"m = keras.models.load_model({str(path)!r})\n"
              "assert not any(name.startswith('search') for name in sys.modules), 'search was imported'\n"
              "print(m.predict(np.zeros((2, 4)), verbose=0).shape)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "(2, 3)" in done.stdout


def test_verify_matches_a_long_trial_exactly(tmp_path, capsys):
    """Over a hundred epochs the last bits of another kernel grow into a visible loss: verify must train as
    the search did (op determinism on had given |diff| 0.001 on this trial's first split)."""
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": "long", "seed": 0, "n_trials": 1, "ablation": False, "baseline": False},
        "data": {"source": "sklearn:digits", "test_size": 0.2, "preprocess": "standardize"},
        "validation": {"scheme": "kfold", "k": 2},
        "model": {"family": "mlp", "layers": 2, "units": 200, "dropout": 0.3, "l2": 1e-4, "batchnorm": True},
        "train": {"epochs": 120, "batch_size": 64, "early_stopping": 0, "learning_rate": 1e-3}}))
    home = tmp_path / "mlruns"
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    capsys.readouterr()
    assert run_cli("reproduce", "long", "--home", home, "--threads", "1", "--verify", "--epochs", "1") == 0
    out = capsys.readouterr().out
    assert out.count("|diff| 0 (") == 2, out


def test_best_writes_every_trial_as_a_csv_table_and_exports_a_chosen_trial(study_run, tmp_path, capsys):
    import csv

    home, study = study_run["home"], study_run["study"]
    table = tmp_path / "trials.csv"
    assert run_cli("best", NAME, "--home", home, "--csv", table) == 0
    rows = list(csv.DictReader(table.open()))
    assert [int(r["trial"]) for r in rows] == [t.number for t in study.trials]
    first = study.trials[1]
    assert float(rows[1]["val_loss_mean"]) == pytest.approx(first.user_attrs["val_loss_mean"])
    assert float(rows[1]["split_2_val_loss"]) == pytest.approx(first.user_attrs["splits"][2]["best_val_loss"])
    assert float(rows[1]["split_2_val_accuracy"]) == first.user_attrs["splits"][2]["best_val_metric"]
    complete = sorted((t.value, t.number) for t in study.trials if t.state.name == "COMPLETE")
    assert [r["rank"] for r in rows if r["state"] == "COMPLETE"] == \
        [str(1 + [n for _, n in complete].index(int(r["trial"]))) for r in rows if r["state"] == "COMPLETE"]
    assert all(r["rank"] == "" for r in rows if r["state"] != "COMPLETE")
    assert float(rows[1]["train.learning_rate"]) == pytest.approx(first.params["train.learning_rate"])
    assert rows[1]["space_digest"] == first.user_attrs["space_digest"] and len(rows[1]["space_digest"]) == 12
    assert run_cli("best", NAME, "--home", home, "--csv", study_run["path"]) == 2  # never the user's file
    assert "dropout" in study_run["path"].read_text()
    exported = tmp_path / "t0.yaml"
    assert run_cli("best", NAME, "--home", home, "--trial", "0", "--export", exported) == 0
    assert exported.read_text().startswith("# Trial 0 ")


def test_a_served_model_takes_the_true_and_false_pandas_made_of_a_files_true_and_false() -> None:
    """pandas reads a TRUE/FALSE column as Python's True and False: they were values training never saw, 0 in
    every flag= column, and the predictions were off by up to 0.2, with a warning the user could not act on."""
    import warnings

    from search.tracking._pyfunc_loader import _encode

    encoding = {"one_hot": {"flag": ["", "FALSE", "TRUE"]},
                "features": ["x", "flag=(empty)", "flag=FALSE", "flag=TRUE"]}
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0], "flag": pd.Series([True, False, np.nan], dtype=object)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no value is unseen
        encoded = _encode(rows, encoding)
    assert encoded.to_numpy().tolist() == [[1, 0, 0, 1], [2, 0, 1, 0], [3, 1, 0, 0]]
    as_text = _encode(rows.assign(flag=["TRUE", "FALSE", ""]), encoding)
    assert as_text.to_numpy().tolist() == encoded.to_numpy().tolist()


def test_a_one_hot_model_is_served_rows_as_read_with_their_categories_as_text(write_space, home, tmp_path, capsys):
    """The pyfunc form of a data.categorical: one_hot model took the encoded 0/1 columns only: a user had to
    repeat the encoding (names, order, unseen values) by hand. It now takes the rows as the CSV holds them."""
    import json

    import mlflow.artifacts
    import mlflow.keras
    import mlflow.pyfunc

    rng = np.random.default_rng(0)
    n = 160
    city = rng.choice(["Berlin", "Paris", "Rome", "NA"], n)  # NA is a city code here, as the file writes it
    # A view left empty in some rows: the category '(empty)', whose 0/1 column `search predict` asked the rows for.
    frame = pd.DataFrame({"size": rng.normal(size=n), "city": city, "floor": rng.integers(0, 5, n),
                          "view": rng.choice(["sea", "park", ""], n)})
    frame["label"] = np.where((frame["city"] == "Paris") ^ (frame["size"] > 0), "yes", "no")
    frame.to_csv(tmp_path / "homes.csv", index=False)
    path = write_space({"study": {"name": "homes", "n_trials": 1, "baseline": False},
                        "data": {"source": f"csv:{tmp_path / 'homes.csv'}", "target": "label",
                                 "categorical": "one_hot"},
                        "validation": {"scheme": "holdout", "fraction": 0.25, "k": None}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    capsys.readouterr()
    assert run_cli("reproduce", "homes", "--home", home, "--epochs", "2") == 0
    said = capsys.readouterr().out
    assert "takes 4 raw columns in its pyfunc form (2 of categories, as text), 9 with the categories one-hot" in said
    run_id = re.search(r"MLflow run (\w+): model at", said).group(1)
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    try:
        served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        keras_model = mlflow.keras.load_model(f"runs:/{run_id}/model")
        io = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/reproduce.json"))["model"]
    finally:
        mlflow.set_tracking_uri(None)
    assert io["inputs"]["features"] == ["size", "floor", "city=Berlin", "city=NA", "city=Paris", "city=Rome",
                                        "view=(empty)", "view=park", "view=sea"]
    assert served.metadata.get_output_schema().input_names() == ["yes"]  # the frame's column, not a bare tensor
    # Read with pandas' defaults: the file's NA is NaN here, and stands for the city NA, as training read it.
    rows = pd.read_csv(tmp_path / "homes.csv").drop(columns=["label"]).head(8)
    assert rows["city"].isna().any() and (frame["city"].head(8) == "NA").equals(rows["city"].isna())
    rows.loc[rows.index[5], "city"], rows.loc[rows.index[6], "city"] = "Oslo", " Rome "  # never seen; spaced
    city = rows["city"].fillna("NA").str.strip()
    view = rows["view"].fillna("")
    encoded = np.column_stack([rows["size"], rows["floor"], *[(city == c) for c in ("Berlin", "NA", "Paris", "Rome")],
                               *[(view == v) for v in ("", "park", "sea")]])
    expected = keras_model.predict(encoded.astype(np.float64), verbose=0)
    # By name, in any column order, the category as text; an unseen value is 0 in every column, and said.
    with pytest.warns(UserWarning) as heard:
        np.testing.assert_allclose(np.asarray(served.predict(rows[["city", "floor", "view", "size"]])), expected,
                                   rtol=1e-5)
    said = [str(w.message) for w in heard]
    assert any("column 'city': value(s) 'Oslo' (1 row) never occurred" in w for w in said), said
    # ' Rome ' is Rome, as training read it (a note there); said here too, where it was taken unsaid.
    assert "column 'city': 1 value(s) with spaces around them (such as ' Rome ') were read without them, as " \
           "training read its values" in said, said
    assert list(served.predict(rows.head(5)).columns) == ["yes"]
    with pytest.raises(mlflow.exceptions.MlflowException, match=re.escape("missing inputs ['city']")):
        served.predict(rows.drop(columns=["city"]))
    # An infinite value, or one beyond float32, gave NaN: named instead.
    with pytest.raises(ValueError, match=re.escape("beyond float32's range (3.4e38), in 'size' (first in row 1")):
        served.predict(rows.head(5).assign(size=[0.0, 1e40, 0.0, 0.0, 0.0]))
    # `search predict` on labelled rows scores them, as scikit-learn's score(X, y): on the test rows, the test look.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    listed = pd.read_csv(client.download_artifacts(run_id, "rows.csv", str(tmp_path)), keep_default_na=False)
    tested = frame.iloc[listed.loc[listed["role"] == "test", "row"].to_numpy()]
    rooms = [None] + list(range(2, len(tested) + 1))  # a column of the user's, with a gap: passed through
    tested.assign(label=[None] + list(tested["label"])[1:], rooms=rooms).to_csv(tmp_path / "labelled.csv",
                                                                                index=False)
    tested.to_csv(tmp_path / "all-labelled.csv", index=False)
    capsys.readouterr()
    assert run_cli("predict", "homes", tmp_path / "all-labelled.csv", "--home", home, "--out",
                   tmp_path / "new" / "scored.csv") == 0  # a folder not there yet is made ("unexpected failure")
    assert (tmp_path / "new" / "scored.csv").is_file()
    score = re.search(r"the rows hold the target 'label': scored on (\d+) row\(s\), loss ([\d.]+), accuracy "
                      r"([\d.]+), balanced accuracy [\d.]+, ROC AUC [\d.]+, PR AUC [\d.]+\n", capsys.readouterr().out)
    metrics = client.get_run(run_id).data.metrics
    assert score and int(score[1]) == len(tested), score
    assert float(score[2]) == pytest.approx(metrics["test_loss"], rel=1e-3)
    assert float(score[3]) == pytest.approx(metrics["test_accuracy"], rel=1e-3)
    assert run_cli("predict", "homes", tmp_path / "labelled.csv", "--home", home) == 0
    assert f"scored on {len(tested) - 1} row(s)" in capsys.readouterr().out.replace("\n", " ")
    # The rows' whole numbers with a gap are written back as the file wrote them (2, not 2.0).
    written = (tmp_path / "labelled-predictions.csv").read_text().splitlines()
    assert written[0].startswith("size,city,floor,view,label,rooms,"), written[0]
    assert [line.split(",")[5] for line in written[1:]] == [""] + [str(v) for v in rooms[1:]], written[:3]
    # A label spelt otherwise is named, not only counted ("3 row(s) without a known target left out").
    tested.assign(label=["Yes", "yes "] + list(tested["label"])[2:]).to_csv(tmp_path / "misspelt.csv", index=False)
    assert run_cli("predict", "homes", tmp_path / "misspelt.csv", "--home", home) == 0
    assert "2 row(s) without a known target left out (labels the model has no class of: 'Yes' (1 row), 'yes ' (1 " \
           "row); its classes: 'no', 'yes')" in capsys.readouterr().out.replace("\n", " ")


def test_a_time_series_alarm_judges_the_last_split_which_was_validated_just_before_the_test_rows(write_space, home,
                                                                                                 capsys):
    """Split 0 of a time-series plan trains on the first quarter of the past and is scored on test rows far
    beyond its validation block: averaged in, it fired the alarm on a model that tested as it validated."""
    path = write_space({"study": {"name": "ts-alarm", "n_trials": 1, "baseline": False},
                        "data": {"source": "sklearn:diabetes"}, "validation": {"scheme": "time_series", "k": 3},
                        "model": {"dropout": 0.0}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    capsys.readouterr()
    assert run_cli("reproduce", "ts-alarm", "--home", home, "--epochs", "1") == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="ts-alarm", storage=f"sqlite:///{home / 'optuna.db'}")
    last = max(study.trials[0].user_attrs["splits"], key=lambda s: s["split"])
    assert f"vs cross-validation {last['best_val_loss']:.4g} on 1 split (standard error" in out, out


def test_the_epoch_rule_says_when_its_count_is_a_lower_bound():
    """Every split peaked at the epoch cap, and reproduce trained the final model for half as many epochs
    without a word: a small class was never predicted."""
    from search.reproduction.epochs import censored_epochs

    capped = [{"split": k, "best_epoch": 6, "epochs_run": 6} for k in range(2)]
    assert censored_epochs(capped, 3).startswith("note: 2 of 2 split(s) peaked at the last epoch they trained, "
                                                 "still improving, so the rule's 3 epoch(s) are a lower bound")
    stopped = [{"split": k, "best_epoch": 6, "epochs_run": 6, "stop_reason": "early stopping"} for k in range(2)]
    turned = [{"split": 0, "best_epoch": 4, "epochs_run": 6}, {"split": 1, "best_epoch": 6, "epochs_run": 6}]
    assert censored_epochs(stopped, 3) == censored_epochs(turned, 3) == censored_epochs([], 3) == ""


def test_the_alarm_compares_at_the_test_rows_class_shares_and_not_without_rows_of_a_class():
    """A time-series validation block with no failure (loss near 0) against test rows with 8 failures in 220
    (their losses high): alarmed as a search that overfit, where only the class mix differed."""
    common, rare = 0.01, 2.5  # a classifier's row losses on each class, the same on both sets
    test_labels = np.array(["no"] * 212 + ["yes"] * 8, dtype=object)
    test_rows = np.where(test_labels == "yes", rare, common) + np.linspace(-0.005, 0.005, 220)
    val_none = np.array(["no"] * 40, dtype=object)
    plain = overfit.check([common], [np.full(40, common)], [float(test_rows.mean())], [test_rows])
    assert plain.fired, "without the classes, the class mix reads as overfitting"
    # No class shares (a regression target): no class shift is logged, where 0.0 was.
    assert "cv_val_loss_class_shift" not in plain.metrics() and "class shares" not in plain.summary()
    blind = overfit.check([common], [np.full(40, common)], [float(test_rows.mean())], [test_rows],
                          val_labels=[val_none], test_labels=test_labels)
    assert not blind.fired and "overfit_z" not in blind.metrics()
    assert "0 validation row(s) of class 'yes' against 8 of the 220 test rows" in blind.summary()
    # With rows of each class to judge by, the estimate at the test rows' shares explains the gap ...
    val_labels = np.array(["no"] * 36 + ["yes"] * 4, dtype=object)
    val_rows = np.where(val_labels == "yes", rare, common) + np.linspace(-0.005, 0.005, 40)
    mixed = overfit.check([float(val_rows.mean())], [val_rows], [float(test_rows.mean())], [test_rows],
                          val_labels=[val_labels], test_labels=test_labels)
    assert mixed.class_shift < 0 and abs(mixed.z) < 1 and not mixed.fired
    assert "at the test rows' class shares" in mixed.summary()
    # ... and a model worse on the test rows' own classes is still alarmed.
    worse = overfit.check([float(val_rows.mean())], [val_rows], [float(test_rows.mean()) + 0.5], [test_rows + 0.5],
                          val_labels=[val_labels], test_labels=test_labels)
    assert worse.fired
    # The same shares on both sides move nothing.
    same = overfit.check([0.5, 0.7], [np.array([0.5, 0.5]), np.array([0.7, 0.7])], [0.9, 0.9],
                         [np.full(100, 0.9)] * 2, val_labels=[np.array([0, 1]), np.array([0, 1])],
                         test_labels=np.array([0, 1] * 50))
    assert same.class_shift == pytest.approx(0.0) and same.fired and "cv_val_loss_class_shift" in same.metrics()


def test_the_epoch_rule_counts_the_splits_that_trained_on_most_of_the_rows():
    """Twelve growing time-series windows: the small early ones' few updates gave the final model 1 epoch."""
    from types import SimpleNamespace

    from search.reproduction.epochs import final_epochs

    splits = [SimpleNamespace(train=np.arange(70 * (k + 1))) for k in range(12)]
    stored = [{"split": k, "best_epoch": b} for k, b in enumerate([1, 1, 1, 1, 2, 2, 3, 3, 5, 6, 9, 10])]
    epochs, rule = final_epochs(stored, splits, 880, 64)
    # Splits 5-11 (at least 420 of the largest's 840 rows) count: best epochs 2, 3, 3, 5, 6, 9, 10.
    assert "the 7 of 12 split(s) that trained on at least half the rows of the largest" in rule
    assert "(best epochs 2, 3, 3, 5, 6, 9, 10)" in rule and epochs == 5  # over all twelve: 2.5, then 3
    equal = [SimpleNamespace(train=np.arange(100)) for _ in range(4)]
    # The median split's best epoch, a half rounded up (not to the even one): 3 and 4 give 4, not Python's 4.
    epochs, rule = final_epochs([{"split": k, "best_epoch": b} for k, b in enumerate([2, 3, 4, 8])], equal, 150, 10)
    assert epochs == 4 and "the median best epoch over 4 split(s) (best epochs 2, 3, 4, 8), 15 updates per epoch " \
        "on 150 rows" in rule
    assert final_epochs([{"split": k, "best_epoch": b} for k, b in enumerate([1, 2, 3, 8])], equal, 150, 10)[0] == 3


def test_a_test_loss_no_better_than_chance_is_said():
    """A final model at 113% of the chance-level loss on the test rows (a rare class never predicted) was
    reported with its accuracy of 0.96 and no word."""
    import io

    from search.reproduction.final import Report
    from search.reproduction.printed import print_report

    alarm = overfit.check([0.1, 0.1], [np.full(5, 0.1)] * 2, [0.1, 0.1], [np.full(5, 0.1)] * 2)
    said = {}
    for loss in (0.176, 0.05):
        report = Report(0, 4, "rule", loss, 0.9636, 0.16, 0.96, "accuracy", alarm, "checkpoints",
                        test_chance_loss=0.1562,
                        model_io={"inputs": {"features": ["a"], "as": "raw rows"}, "task": "binary",
                                  "classes": ["no", "yes"], "output": "one value: the probability of class 'yes'"})
        out = io.StringIO()
        print_report(report, [], out)
        said[loss] = out.getvalue()
    assert "loss 0.176 (113% of the chance-level 0.1562, always predicting the development rows' class shares)" \
        in said[0.176]
    assert "warning: the final model's test loss 0.176 is no better than the 0.1562 of always predicting the " \
           "development rows' class shares" in said[0.176]
    assert "(32% of the chance-level" in said[0.05] and "no better than" not in said[0.05]
    # Trained with class_weight: balanced (the rare-class warning's advice), the probabilities leave the class
    # shares on purpose: read against equal shares (log 2 = 0.6931), not called "learned nothing" outright.
    for loss in (0.623, 0.75):
        report = Report(0, 4, "rule", loss, 0.7, 0.62, 0.7, "accuracy", alarm, "checkpoints", test_chance_loss=0.58,
                        class_weighted=True, recalls={"yes": [0.05, 22], "no": [0.99, 378]},
                        model_io={"inputs": {"features": ["a"], "as": "raw rows"}, "task": "binary",
                                  "classes": ["no", "yes"], "output": "one value: the probability of class 'yes'"})
        out = io.StringIO()
        print_report(report, [], out)
        said[loss] = out.getvalue()
    assert "warning: the final model's test loss" not in said[0.623] + said[0.75]
    assert "note: trained with class_weight: balanced" in said[0.623] and "against the 0.6931 of predicting equal " \
        "shares, what such a model predicts when it has learned nothing, it has learned something" in said[0.623]
    assert "it is also no better than the 0.6931 of predicting equal shares: it has learned nothing" in said[0.75]
    # A binary model's recall is at a threshold, which is said (a fraud class's 0.05 read as the model's best).
    assert "recall by class (test rows of each class predicted as it; class 'yes' where its probability is 0.5 or " \
        "more), lowest first: " in said[0.75]


def test_a_missing_category_at_predict_time_is_said_as_missing_not_as_an_empty_string():
    """A stranger's NaN neighbourhood was warned about as the value '' that "never occurred in training"."""
    from search.tracking import _pyfunc_loader

    rows = pd.DataFrame({"city": ["Paris", np.nan, "Oslo"], "size": [1.0, 2.0, 3.0]})
    encoding = {"one_hot": {"city": ["Paris", "Rome"]}, "features": ["size", "city=Paris", "city=Rome"]}
    with pytest.warns(UserWarning) as said:
        encoded = _pyfunc_loader._encode(rows, encoding)
    text = str(said[0].message)
    assert "a missing value (1 row)" in text and "'Oslo' (1 row)" in text and "''" not in text, text
    assert encoded[["city=Paris", "city=Rome"]].to_numpy().tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_configs_that_differ_in_how_rows_become_inputs_are_different_configs_on_the_test_rows():
    """A stranger's two image studies, pixels kept in [0, 1] and standardized, were said to be one config judged
    twice on the same test rows: the hash held the model and training settings only."""
    import hashlib
    import json

    from search import space as spaces
    from search.reproduction import looks

    base = {"study": {"name": "x"}, "data": {"source": "sklearn:digits", "as_images": True},
            "model": {"family": "cnn"}}
    kept = spaces.Space.model_validate(base)
    scaled = spaces.Space.model_validate({**base, "data": {**base["data"], "preprocess": "standardize"}})
    settings = {"model": {"units": 8}, "train": {"epochs": 3}}
    assert looks.inputs_of(kept) == {}  # the defaults: the hash of a space that leaves them be is as before
    assert looks.inputs_of(scaled) == {"inputs": {"preprocess": "standardize"}}
    old = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert looks.config_hash({**settings, **looks.inputs_of(kept)}) == old
    assert looks.config_hash({**settings, **looks.inputs_of(scaled)}) != old


def test_predict_without_a_model_says_what_is_missing_a_study_or_a_finished_trial(tmp_path, capsys):
    """`search predict` advised `search reproduce` for a misspelt study and for one with no finished trial; that
    step then failed in turn ("no study named", "no completed trial")."""
    from mlflow.tracking import MlflowClient

    home = tmp_path / "mlruns"
    home.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    stopped = client.create_experiment("stopped")
    client.set_terminated(client.create_run(stopped, tags={"search.kind": "trial", "optuna.state": "FAIL"}).info.run_id)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    assert run_cli("predict", "stoped", tmp_path / "rows.csv", "--home", home) == 2
    err = capsys.readouterr().err
    assert "field 'STUDY': no study named 'stoped' in this tracking store; expected one of 'stopped'" in err, err
    assert run_cli("predict", "stopped", tmp_path / "rows.csv", "--home", home) == 2
    err = capsys.readouterr().err
    assert "study 'stopped' has no finished trial yet, so no final model: `search run` its space file again" in err
    assert "Traceback" not in err
