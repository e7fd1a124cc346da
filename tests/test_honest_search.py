"""The search finds regularization instead of punishing it: data-loss scores, fair pruning, ablation, guard rails."""
from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from conftest import run_cli
from search import preprocess, space as spaces
from search.runner import checkpoints
from search.reproduction import overfit
from search.studies import pruning
from search import scoring
from search.runner import session


def _study(home, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


# -- 1. one honest score: the data loss ---------------------------------------------------------------
def test_an_l2_heavy_trial_is_scored_by_its_data_loss_not_its_penalty(write_space, home):
    """The stored validation loss of a heavily L2-penalized model equals the loss of its predictions."""
    path = write_space({"study": {"name": "l2", "n_trials": 1, "baseline": False},
                        "validation": {"scheme": "kfold", "k": 2},
                        "model": {"units": 16, "dropout": 0.0, "l2": 0.05}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    trial = _study(home, "l2").trials[0]
    prepared = session.prepare(spaces.load(path))
    for record in trial.user_attrs["splits"]:
        k = record["split"]
        model = checkpoints.load_model(checkpoints.split_path(home, "l2", trial.number, k))
        split = prepared.splits[k]
        scaler = preprocess.fit("standardize", prepared.dataset.X[split.train])
        pred = np.asarray(model(preprocess.apply(scaler, prepared.dataset.X[split.val]), training=False))
        data_loss = float(np.mean(scoring.row_losses("multiclass", prepared.dataset.y[split.val], pred)))
        assert record["best_val_loss"] == pytest.approx(data_loss, rel=1e-4, abs=1e-5)
        assert record["penalty"] > 0.05 * record["best_val_loss"], "the penalty is recorded beside the score"
    assert trial.value == pytest.approx(np.mean([s["best_val_loss"] for s in trial.user_attrs["splits"]]))
    assert trial.user_attrs["penalty_mean"] > 0


def test_a_model_with_no_penalty_says_none_on_a_target_in_the_hundreds_of_thousands():
    """A stranger's house prices: the regression loss is weighted by one over the target's variance (1e-10),
    and the float32 rounding of Keras' total, divided by that weight, read as a penalty of -115."""
    import keras

    from search import models
    from search.runner import training

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype("float32")
    y = (120_000 + 60_000 * X[:, 0] + 20_000 * rng.normal(size=200)).astype("float32")
    head = models.Head.for_rows("regression", 1, y)
    for l2, penalized in ((0.0, False), (1e-3, True)):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(8, activation="relu",
                                    kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(inputs)
        model = keras.Model(inputs, head.layer(hidden))
        train = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32}
        training.compile_model(model, train, head)
        history = training.fit_epochs(model, X, y, train, 3, head)
        if penalized:
            assert all(p > 0 for p in history["penalty"]), history["penalty"]
        else:
            assert history["penalty"] == [0.0, 0.0, 0.0], history["penalty"]


# -- 2. pruning that is fair to slow starters ------------------------------------------------------------
def _frozen(number, curve, state=optuna.trial.TrialState.COMPLETE, baseline=False, best_epoch=None):
    attrs = {"baseline": True} if baseline else {}
    if best_epoch is not None:
        attrs["best_epoch_mean"] = best_epoch
    return optuna.trial.create_trial(state=state, value=min(curve.values()) if state.name == "COMPLETE" else None,
                                     intermediate_values=curve, user_attrs=attrs,
                                     params={}, distributions={})


def test_the_median_rule_waits_for_non_baseline_trials_and_for_the_epoch_complete_trials_peaked():
    study = optuna.create_study()
    fast = {pruning.epoch_step(0, e): 1.0 / e for e in range(1, 21)}
    study.add_trial(_frozen(0, fast, baseline=True, best_epoch=20))
    rule = pruning.LateMedianRule(startup=2, warmup_fraction=0.5)
    slow = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                     intermediate_values={pruning.epoch_step(0, e): 2.0 for e in range(1, 12)})
    assert not rule.prune(study, slow), "the baseline alone does not start the rule"
    for n in (1, 2):
        study.add_trial(_frozen(n, fast, best_epoch=20))
    # Complete trials peaked at epoch 20, so nothing is judged before epoch 10; at epoch 11 it is.
    early = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                      intermediate_values={pruning.epoch_step(0, e): 2.0 for e in range(1, 10)})
    assert not rule.prune(study, early)
    assert rule.prune(study, slow)
    assert rule.warmup(study.trials[1:]) == 10


def test_a_regularized_curve_is_judged_only_against_alike_regularized_trials():
    from search import space as spaces

    space = spaces.validate({"study": {"name": "alike"}, "data": {"source": "sklearn:iris"},
                             "model": {"family": "mlp", "dropout": {"float": [0.0, 0.6]},
                                       "l2": {"float": [1e-5, 1e-2], "log": True, "or_off": True},
                                       "units": {"int": [8, 64]}}})
    profile = pruning.RegularizationProfile.of_space(space)
    assert set(profile.searched) == {"model.dropout", "model.l2"}, "capacity is not a regularizer"
    light = {"model.dropout": 0.05, "model.l2.on": False, "model.units": 64}
    heavy = {"model.dropout": 0.5, "model.l2.on": True, "model.l2": 1e-2, "model.units": 8}
    assert profile.alike(light, {**light, "model.units": 8}) and not profile.alike(light, heavy)
    assert not profile.alike(heavy, {**heavy, "model.l2.on": False}), "on and off are never alike"
    assert profile.alike(heavy, {**heavy, "model.l2": 5e-3}), "a quarter of the log range apart at most"

    def trial(params, curve, state=optuna.trial.TrialState.COMPLETE):
        dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
        return optuna.trial.create_trial(state=state, params=params, distributions=dists,
                                         value=min(curve.values()) if state.name == "COMPLETE" else None,
                                         intermediate_values=curve, user_attrs={"best_epoch_mean": 10})

    fast = {pruning.epoch_step(0, e): 1.0 / e for e in range(1, 11)}
    study = optuna.create_study()
    for _ in range(3):
        study.add_trial(trial(light, fast))
    slow_heavy = trial(heavy, {pruning.epoch_step(0, e): 2.0 / e for e in range(1, 8)},
                       optuna.trial.TrialState.RUNNING)
    alike, everyone = pruning.LateMedianRule(startup=2, profile=profile), pruning.LateMedianRule(startup=2)
    assert everyone.prune(study, slow_heavy), "the median of all complete trials cuts the slow starter"
    assert not alike.prune(study, slow_heavy), "no heavily regularized trial is complete: nothing to judge by"
    for _ in range(2):
        study.add_trial(trial(heavy, {pruning.epoch_step(0, e): 1.0 / e for e in range(1, 11)}))
    assert alike.prune(study, slow_heavy), "worse than the alike trials' median: cut"


# -- 4. what the search bought -------------------------------------------------------------------------------
def test_ablation_of_the_best_trial_is_stored_resumable_and_in_the_report(write_space, home, tmp_path, capsys):
    path = write_space({"study": {"name": "abl", "n_trials": 2, "ablation": True},
                        "model": {"dropout": 0.2, "l2": {"float": [1e-3, 1e-2], "or_off": True},
                                  "batchnorm": True}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "what regularization bought" in out
    study = _study(home, "abl")
    stored = study.user_attrs["ablation"]
    assert stored["trial"] == study.best_trial.number
    # One ablation study per ablated trial: a later pick (a continued study) gets its own, never this one's rows.
    ablation = _study(home, f"abl.ablation.t{study.best_trial.number:05d}")
    used = 2 + (1 if study.best_trial.params.get("model.l2.on") else 0)  # dropout and batchnorm fixed on
    assert len(ablation.trials) <= used + 1, "at most (regularizers + 1) trials"
    capsys.readouterr()
    assert run_cli("best", "ab", "--home", home) == 2  # the studies named are the user's, not their ablations
    assert "expected one of abl." in capsys.readouterr().err.replace("abl.ablation", "ABL")
    labels = {row["label"] for row in stored["rows"]}
    assert "all regularizers" in labels and {"dropout", "batchnorm"} <= labels
    for row in stored["rows"]:
        trial = ablation.trials[row["trial"]]
        assert trial.state.name == "COMPLETE"
        # Same seeds as the picked trial: its splits are paired with the picked trial's.
        assert [s["seed"] for s in trial.user_attrs["splits"]] == \
            [s["seed"] for s in study.best_trial.user_attrs["splits"]]
        assert np.isfinite(row["bought"]) and np.isfinite(row["bought_se"])
    all_off = next(t for t in ablation.trials if t.user_attrs["ablation"] == "all regularizers")
    assert all_off.params["model.dropout"] == 0.0 and all_off.params["model.batchnorm"] is False
    # In MLflow each variant's run says what it switched off, and none takes the ★ of a best trial.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(ablation.study_name).experiment_id],
                              "tags.`search.kind` = 'trial'")
    assert sorted(r.data.tags["search.ablation"] for r in runs) == sorted(t.user_attrs["ablation"]
                                                                         for t in ablation.trials)
    for run in runs:
        # Named by the trial it ablates (t003 [dropout off] ...), not by its own number in the ablation's study.
        assert run.info.run_name.startswith(f"t{study.best_trial.number:03d} [{run.data.tags['search.ablation']} off]")
        assert "★" not in run.info.run_name and run.data.tags["best"] == "false"
    # The ablation's own parent run holds its table, not a study review of the variants ranked as trials
    # (top_trials.md named them t003, beside runs named t004 [l2 off]; a "best trial" and importances over them).
    from search import tracking

    variants_run = ablation.user_attrs[tracking.PARENT_RUN_ATTR]
    shown = sorted(Path(a.path).name for a in client.list_artifacts(variants_run, "study"))
    assert "ablation.txt" in shown and not {"top_trials.md", "top_trials.csv", "before_after.png",
                                            "param_importances.png"} & set(shown), shown
    assert "review.best_trial" not in client.get_run(variants_run).data.tags
    # The study's run names the ablation's experiment.
    assert client.get_run(study.user_attrs[tracking.PARENT_RUN_ATTR]).data.tags["search.ablation_study"] == \
        ablation.study_name
    # Resumable: asked again, nothing is trained twice.
    n = len(ablation.trials)
    assert run_cli("ablate", "abl", "--home", home, "--threads", "1") == 0
    assert len(_study(home, ablation.study_name).trials) == n
    report = tmp_path / "r.html"
    assert run_cli("report", "abl", "--home", home, "--out", report) == 0
    assert "What regularization bought" in report.read_text() and "all regularizers" in report.read_text()
    # Another trial's ablation is kept beside the study's and logged to that trial's run: it replaced the
    # best trial's table, figure and metrics on the parent run, which then mixed the two trials.
    other = next(t for t in study.trials if t.number != study.best_trial.number and t.state.name == "COMPLETE")
    assert run_cli("ablate", "abl", "--home", home, "--trial", str(other.number), "--threads", "1") == 0
    study = _study(home, "abl")
    assert study.user_attrs["ablation"]["trial"] == study.best_trial.number
    assert study.user_attrs[f"ablation.t{other.number:05d}"]["trial"] == other.number
    parent = study.user_attrs[tracking.PARENT_RUN_ATTR]
    text = Path(client.download_artifacts(parent, "study/ablation.txt", str(tmp_path / "p"))).read_text()
    assert f"trial {study.best_trial.number}" in text and f"trial {other.number}" not in text
    own = other.user_attrs[tracking.RUN_ID_ATTR]
    assert "ablation.txt" in [Path(a.path).name for a in client.list_artifacts(own, "ablation")]
    # The study run's description is written again once its best trial's ablation is stored: it is the verdict of
    # the study as it now stands, and said the ablation note of an earlier best (a continued study) until then.
    from search.review import verdicts

    assert client.get_run(parent).data.tags["mlflow.note.content"] == tracking.verdict_note(study)
    assert verdicts.verdict(study) and all(line.strip() in tracking.verdict_note(study)
                                           for line in verdicts.verdict(study))


# -- 5. ensembles, and 7. test looks and new configs -------------------------------------------------------------
@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ens")
    home, path = tmp / "mlruns", tmp / "iris.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": "ens", "seed": 1, "n_trials": 3, "ablation": False},
        "data": {"source": "sklearn:iris", "test_size": 0.2},
        "validation": {"scheme": "kfold", "k": 2},
        "model": {"family": "mlp", "layers": 1, "units": 8, "dropout": {"float": [0.0, 0.3]}},
        "train": {"epochs": 3, "batch_size": 16, "early_stopping": 0, "learning_rate": 0.02},
    }))
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    return {"home": home, "path": path, "tmp": tmp}


def test_reproduce_with_an_ensemble_of_the_top_trials_in_the_same_look(small_study, capsys):
    home = small_study["home"]
    capsys.readouterr()
    assert run_cli("reproduce", "ens", "--home", home, "--ensemble", "2", "--epochs", "2", "--register", "ens") == 0
    out = capsys.readouterr().out
    assert "ensemble of the final models of trials" in out
    # Right below the split models' ensemble: an epoch note or recall line above moved it before them.
    printed = out.splitlines()
    at = next(i for i, line in enumerate(printed) if "ensemble of the split models" in line)
    assert "ensemble of the final models of trials" in printed[at + 1], printed
    assert "registered as ens version 1" in out and "alone, not the ensemble of 2 (a version is one model)" in out
    looks = _study(home, "ens").user_attrs["test_looks"]
    assert looks[-1]["ensemble"] == 2 and looks[-1]["config"]
    # The other member was judged on the test rows too: counted among the configs judged there.
    assert len(looks[-1]["members"]) == 1 and looks[-1]["members"][0] != looks[-1]["config"]
    # The morning review shows the test score and the looks taken (status and report said nothing of them).
    assert run_cli("status", "ens", "--home", home) == 0
    said = capsys.readouterr().out
    assert f"test rows: looked at {len(looks)} time(s); the last, {looks[-1]['time']}, of trial " \
           f"{looks[-1]['trial']} (an ensemble of 2): test loss {looks[-1]['test_loss']:.4g}" in said, said
    report = small_study["tmp"] / "ens.html"
    assert run_cli("report", "ens", "--home", home, "--out", report) == 0
    assert "<h2>The test rows</h2><p>test rows: looked at" in report.read_text()
    # With the scores the terminal printed beside the loss (the report showed the loss alone).
    assert f"accuracy {looks[-1]['scores']['test_accuracy']:.4g}, balanced accuracy " in report.read_text()
    assert "loss / chance " in report.read_text()


def test_every_look_at_the_test_rows_is_recorded_and_a_repeat_is_counted(small_study, capsys):
    home = small_study["home"]
    study = _study(home, "ens")
    before = len(study.user_attrs.get("test_looks", []))
    trial = study.best_trial.number
    for _ in range(2):
        assert run_cli("reproduce", "ens", "--home", home, "--trial", trial, "--epochs", "2") == 0
    out = capsys.readouterr().out
    looks = _study(home, "ens").user_attrs["test_looks"]
    assert len(looks) == before + 2
    assert looks[-1]["trial"] == trial and looks[-1]["epochs"] == 2
    assert "has now been judged on the test rows" in out and "only the first look is an unbiased test" in out
    assert f"test set (look {before + 2})" in out


def test_a_config_with_edited_values_is_reported_as_a_new_configuration(small_study, capsys):
    home, tmp = small_study["home"], small_study["tmp"]
    exported = tmp / "best.yaml"
    assert run_cli("best", "ens", "--home", home, "--export", exported) == 0
    config = yaml.safe_load(exported.read_text())
    config["model"]["units"] = 12
    exported.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    began = time.time()
    assert run_cli("reproduce", "ens", "--home", home, "--config", exported, "--epochs", "2") == 0
    ended = time.time()
    out = capsys.readouterr().out
    assert "NEW configuration" in out and "model.units" in out
    assert out.startswith(f"reproducing an edited config of trial {_study(home, 'ens').best_trial.number} of study")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ens").experiment_id],
                                "tags.`search.edited` = 'model.units'")
    assert run.info.run_name.endswith(" (edited config)")
    # Its duration is the command's: made once there is something to hold, it said the last second's logging.
    assert began - 1 <= run.info.start_time / 1000 <= began + 0.25 * (ended - began), (began, ended, run.info)
    assert re.match(r"reproduce t\d{3} test [0-9.e+-]+ \(look \d+\) \(edited config\)$", run.info.run_name), \
        run.info.run_name  # its test score leads, as a trial's outcome leads its name
    assert "trained its 2 split model(s)" in out
    # Another study's config (another seed: other test rows and splits) is named as such, not as changed data.
    config["study"]["seed"] = 7
    other = tmp / "other.yaml"
    other.write_text("# Trial 0 of study 'elsewhere' with every value fixed\n" + yaml.safe_dump(config))
    looks = len(_study(home, "ens").user_attrs.get("test_looks", []))
    assert run_cli("reproduce", "ens", "--home", home, "--config", other) == 2
    err = capsys.readouterr().err
    assert "field 'study.seed': the config is not one of study 'ens' (it was exported from study 'elsewhere')" in err
    assert len(_study(home, "ens").user_attrs.get("test_looks", [])) == looks


def test_a_study_run_from_an_exported_config_counts_the_looks_at_the_same_test_rows(small_study, capsys):
    """The export's own study holds out the rows its parent does: its first reproduce is not a first look."""
    home, tmp = small_study["home"], small_study["tmp"]
    exported = tmp / "again.yaml"
    assert run_cli("best", "ens", "--home", home, "--export", exported) == 0
    name = yaml.safe_load(exported.read_text())["study"]["name"]
    assert run_cli("run", exported, "--home", home, "--quiet", "--threads", "1") == 0
    assert run_cli("reproduce", "ens", "--home", home, "--epochs", "2") == 0  # at least one look from the parent
    parent = len(_study(home, "ens").user_attrs["test_looks"])
    capsys.readouterr()
    assert run_cli("reproduce", name, "--home", home, "--epochs", "2") == 0
    out = capsys.readouterr().out
    assert f"test set (look {parent + 1})" in out
    assert f"{parent} of the looks by study 'ens', which holds out the same rows" in out
    assert len(_study(home, name).user_attrs["test_looks"]) == 1  # each study keeps its own record
    # status counts them as reproduce did: "looked at 1 time(s)" read as a test set still fresh.
    assert run_cli("status", name, "--home", home) == 0
    assert f"test rows: looked at {parent + 1} time(s) ({parent} of them by study 'ens', which holds out the same " \
           f"rows)" in capsys.readouterr().out
    # A trial that cannot be exported is said at once, without the table before it.
    capsys.readouterr()
    assert run_cli("best", name, "--home", home, "--export", tmp / "none.yaml", "--trial", "99") == 2
    out, err = capsys.readouterr()
    assert out == "" and "trial 99 of study" in err and not (tmp / "none.yaml").exists()
    # A registry name MLflow would refuse after training is refused before: no look is spent on it.
    assert run_cli("reproduce", name, "--home", home, "--register", "team/model") == 2
    assert "field '--register'" in capsys.readouterr().err
    assert len(_study(home, name).user_attrs["test_looks"]) == 1


# -- 6. honest alarm ---------------------------------------------------------------------------------------
def test_iterated_kfold_row_error_counts_each_row_once_and_optimism_is_shown():
    rng = np.random.default_rng(0)
    n, k, repeats = 60, 3, 4
    row_loss = rng.gamma(2.0, 0.3, size=n)
    index, losses, vals = [], [], []
    for r in range(repeats):
        perm = rng.permutation(n)
        for fold in np.array_split(perm, k):
            index.append(fold)
            losses.append(row_loss[fold])
            vals.append(float(row_loss[fold].mean()))
    test = [np.full(50, row_loss.mean())] * len(vals)
    honest = overfit.check(vals, losses, [row_loss.mean()] * len(vals), test, val_row_index=index, repeats=repeats)
    naive = overfit.check(vals, losses, [row_loss.mean()] * len(vals), test)
    assert honest.cv_error == pytest.approx(np.std(row_loss, ddof=1) / np.sqrt(n), rel=0.05)
    assert honest.cv_error > 1.5 * naive.cv_error, "k x R splits are not k x R times the data"
    shifted = overfit.check(vals, losses, [row_loss.mean() + 0.05] * len(vals), test, val_row_index=index,
                            repeats=repeats, optimism=0.05)
    assert shifted.z == pytest.approx(0.0, abs=1e-6) and "epoch-selection optimism" in shifted.summary()
    assert "nested cross-validation" in shifted.warning() and "fresh hold-out" in shifted.warning()
    assert overfit.epoch_selection_optimism({0: [1.0, 0.5, 0.7], 1: [1.0, 0.6, 0.6]}, {0: 3, 1: 3}) == \
        pytest.approx(((0.7 - 0.5) + (0.6 - 0.6)) / 2)
    # A split stopped before the median best epoch has no loss there: its climb through the patience window
    # (a stranger's fold holding the outliers, 1.05e9 to 3.9e9) was most of the "optimism".
    curves = {0: [1.6, 1.05, 1.62, 2.87, 3.9], 1: [1.3, 0.8, 0.5, 0.45, 0.40, 0.42, 0.38],
              2: [2.4, 2.1, 2.0, 1.96, 1.94, 1.94]}
    assert overfit.epoch_selection_optimism(curves, {0: 2, 1: 7, 2: 6}) == pytest.approx(((0.42 - 0.38) + 0) / 2)
    assert overfit.epoch_selection_optimism({0: [1.0, 0.5, 0.9]}, {0: 5}) == 0.0  # none reached it: nothing known


# -- 7. guard rails --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("column, scheme, expected", [("group", "kfold", "group_kfold"),
                                                      ("group", "holdout", "group_kfold"),
                                                      ("order", "kfold", "time_series"),
                                                      ("order", "iterated_kfold", "time_series")])
def test_a_column_the_scheme_cannot_honour_is_refused(write_space, home, tmp_path, capsys, column, scheme, expected):
    rng = np.random.default_rng(0)
    frame = "a,b,g,t,label\n" + "\n".join(f"{rng.normal():.3f},{rng.normal():.3f},{i % 8},{i},{i % 2}"
                                        for i in range(80))
    (tmp_path / "d.csv").write_text(frame)
    data = {"source": f"csv:{tmp_path / 'd.csv'}", "target": "label", column: "g" if column == "group" else "t"}
    path = write_space({"study": {"name": "guard"}, "data": data,
                        "validation": {"scheme": scheme, "k": 3}})
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "validation.scheme" in err and expected in err and "Traceback" not in err
    assert not (home / "optuna.db").exists(), "refused before anything is stored"


_BUILDER = textwrap.dedent("""
    import keras

    SEEN = []

    def build(settings, input_shape, n_outputs):
        SEEN.append(dict(settings))
        inputs = keras.Input(input_shape)
        penalty = keras.regularizers.L2(settings["l2"]) if settings["l2"] else None
        x = keras.layers.Dense(8, activation="relu", kernel_regularizer=penalty)(inputs)
        x = keras.layers.Dropout(settings["drop"])(x)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
""")


def test_a_custom_family_baseline_switches_its_declared_regularizers_off(write_space, home, tmp_path, capsys):
    (tmp_path / "reg_builder.py").write_text(_BUILDER)
    path = write_space({"study": {"name": "custom-reg", "n_trials": 2},
                        "model": {"family": "python:reg_builder:build", "layers": None, "units": None,
                                  "dropout": None, "drop": {"float": [0.0, 0.5]},
                                  "l2": {"float": [1e-4, 1e-2], "log": True, "or_off": True},
                                  "regularizers": ["drop", "l2"]}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    baseline = _study(home, "custom-reg").trials[0]
    assert baseline.params["model.drop"] == 0.0 and baseline.params["model.l2.on"] is False
    assert baseline.user_attrs["unregularized"] is True
    assert run_cli("report", "custom-reg", "--home", home, "--out", tmp_path / "r.html") == 0
    assert "trial 0 is the unregularized baseline" in (tmp_path / "r.html").read_text()


def test_a_custom_family_without_declared_regularizers_is_not_called_unregularized(write_space, home, tmp_path,
                                                                                   capsys):
    (tmp_path / "reg_builder2.py").write_text(_BUILDER)
    path = write_space({"study": {"name": "custom-undeclared", "n_trials": 2},
                        "model": {"family": "python:reg_builder2:build", "layers": None, "units": None,
                                  "dropout": None, "drop": {"float": [0.1, 0.5]},
                                  "l2": {"float": [1e-4, 1e-2], "log": True, "or_off": True}}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    study = _study(home, "custom-undeclared")
    assert study.trials[0].user_attrs["unregularized"] is False
    assert run_cli("report", "custom-undeclared", "--home", home, "--out", tmp_path / "r.html") == 0
    text = (tmp_path / "r.html").read_text()
    assert "unregularized baseline" not in text and "declares no regularizers" in text
    from search.review.display import format_table, trial_rows

    rows = trial_rows(study)
    base = next(r for r in rows if r["baseline"])
    rows = [dict(base, baseline=False, trial=99, value=base["value"] / 2)] + rows  # a best that is not the baseline
    table = format_table(rows)
    assert "unregularized baseline" not in table and "declares no regularizers" in table


def test_a_builder_module_can_declare_its_regularizers(write_space, home, tmp_path):
    (tmp_path / "reg_builder4.py").write_text(_BUILDER + "\nREGULARIZERS = ['drop', 'l2']\n")
    path = write_space({"study": {"name": "module-reg", "n_trials": 1},
                        "model": {"family": "python:reg_builder4:build", "layers": None, "units": None,
                                  "dropout": None, "drop": {"float": [0.1, 0.5], "or_off": True},
                                  "l2": {"float": [1e-4, 1e-2], "log": True, "or_off": True}}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    baseline = _study(home, "module-reg").trials[0]
    assert baseline.params["model.drop.on"] is False and baseline.params["model.l2.on"] is False
    assert baseline.user_attrs["unregularized"] is True


def test_declared_regularizers_must_be_settings_of_the_file(write_space, home, tmp_path, capsys):
    (tmp_path / "reg_builder3.py").write_text(_BUILDER)
    path = write_space({"model": {"family": "python:reg_builder3:build", "layers": None, "units": None,
                                  "dropout": None, "drop": 0.1, "l2": 0.0, "regularizers": ["drop", "dropuot"]}})
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "model.regularizers" in err and "dropuot" in err and "Traceback" not in err


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_data_loss_of_a_penalized_binary_or_regression_model_is_its_predictions_loss(task):
    """A (n,) target against an (n, 1) output: the metric must neither refuse the ranks nor broadcast."""
    import keras
    from sklearn.datasets import load_breast_cancer, load_diabetes

    from search.models import Head
    from search.runner import training

    X, y = (load_breast_cancer if task == "binary" else load_diabetes)(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype("float32")
    y = y.astype("int32" if task == "binary" else "float32")
    head = Head.for_rows(task, 1, y[:300])
    keras.utils.set_random_seed(0)
    inputs = keras.Input((X.shape[1],))
    hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05))(inputs)
    model = keras.Model(inputs, head.layer(hidden))
    train = {"optimizer": "adam", "learning_rate": 1e-2, "batch_size": 32, "epochs": 2, "early_stopping": 0}
    training.compile_model(model, train, head)
    result = training.fit_split(model, X[:300], y[:300], X[300:], y[300:], train, head)
    pred = np.asarray(model(X[300:], training=False))
    assert result.best_val_loss == pytest.approx(float(np.mean(scoring.row_losses(task, y[300:], pred))), rel=1e-4)
    assert result.best_penalty > 0


def test_a_picked_trial_that_does_better_with_its_regularizers_off_is_said():
    """The run said "33.6 % lower than the unregularized baseline" while the ablation just below it found the
    same config better with every regularizer off: the gain came from the learning rate, and the headline
    is what a reader quotes. A note now says so, after the ablation's table and in status and best."""
    import math

    import optuna

    from search.reproduction.ablation import AblationRow, format_table
    from search.review.verdicts import ablation_note, why_ended

    picked = optuna.create_study()
    picked.enqueue_trial({})
    picked.optimize(lambda t: 0.1673, n_trials=1)
    hurt = [AblationRow("all regularizers", 0.1027, -0.06457, 0.0044, 2, 0),
            AblationRow("dropout", 0.15, -0.017, 0.01, 2, 1)]
    table = format_table(picked.best_trial, hurt)
    assert table.endswith("note: the regularizers did not help trial 0: with all of them off its config scores "
                          "val_loss 0.1027, 0.06457 lower than with them on (the ablation's table); what it gains "
                          "over other trials comes from its other settings (learning rate, capacity, epochs), not "
                          "from regularization"), table
    # Within twice its paired standard error, either way, it is said to be no measurable change; bought, nothing.
    assert ablation_note(0, [AblationRow("all regularizers", 0.16, -0.007, 0.005, 3, 0)]) == (
        "note: with all its regularizers off, trial 0's config scores val_loss 0.16, -0.007 against it with them "
        "on: within two standard errors (0.01) of no change, so over these splits the regularizers bought nothing "
        "measurable, neither gain nor harm")
    assert "nothing measurable" in ablation_note(0, [AblationRow("all regularizers", 0.2, 0.015, 0.01, 3, 0)])
    # Together within the noise, one at a time beyond it (a stranger's dropout +0.0042 ± 0.00065, 6.5 errors):
    # "nothing measurable" alone hid what one regularizer bought and another cost.
    apart = ablation_note(0, [AblationRow("all regularizers", 0.2, 0.002, 0.003, 3, 0),
                              AblationRow("dropout", 0.21, 0.004225, 0.00065, 3, 1),
                              AblationRow("batchnorm", 0.19, -0.0069, 0.0019, 3, 2),
                              AblationRow("l2", 0.2, 0.001, 0.001, 3, 3)])
    assert "nothing measurable" not in apart and "within two standard errors (0.006) of no change together" in apart
    assert "dropout bought 0.004225 (± 0.00065), batchnorm cost 0.0069 (± 0.0019)" in apart and "l2" not in apart
    # All off bought clearly, one alone cost clearly: said too (a dropout-off variant at 0.1066 beat 0.1153, unsaid).
    alone = ablation_note(1, [AblationRow("all regularizers", 0.13, 0.02, 0.004, 3, 0),
                              AblationRow("dropout", 0.1066, -0.0087, 0.002, 3, 1),
                              AblationRow("l2", 0.12, 0.005, 0.001, 3, 2)])
    assert alone == ("note: switched off alone, dropout scores val_loss 0.1066 (0.0087 lower, ± 0.002) against trial 1 "
                     "with it on: beyond two standard errors, so here that regularizer cost more than it bought")
    assert ablation_note(0, [AblationRow("all regularizers", 0.2, 0.03, 0.01, 3, 0)]) == ""
    assert ablation_note(0, [AblationRow("all regularizers", 0.16, -0.007, math.nan, 1, 0)]).startswith("note:")
    # A builder that never reads a declared regularizer: switching it off changed nothing, to the last digit.
    idle = ablation_note(0, [AblationRow("all regularizers", 0.2, 0.03, 0.01, 3, 0),
                             AblationRow("model.dropout", 0.17, 0.0, 0.0, 3, 1)])
    assert idle == ("note: switching model.dropout off left every split's validation loss of trial 0 exactly as it "
                    "was: the model does not use that setting? (A builder of your own must apply each regularizer "
                    "it declares under model.regularizers)"), idle
    # Stored with the study, it is among the lines status and best print.
    picked.set_user_attr("ablation", {"trial": 0, "rows": [vars(r) for r in hurt]})
    assert any(line.startswith("note: the regularizers did not help trial 0") for line in why_ended(picked))
    from search.review.report import _ablation_section  # and in the report's ablation section (it was not)

    assert "<p class='note'>the regularizers did not help trial 0" in _ablation_section(picked)
    picked.set_user_attr("ablation", {"trial": 0, "rows": [vars(AblationRow("all regularizers", 0.2, 0.03, 0.01,
                                                                            3, 0))]})
    assert not any("did not help" in line for line in why_ended(picked))


def test_the_table_shows_balanced_accuracy_where_the_classes_are_imbalanced():
    """A stranger's churn target (70 % stayed) showed accuracy only, which a model that predicts "stayed"
    always scores 0.7 on: beside it, balanced accuracy (each class's recall, averaged), where one class has half
    as many rows again as another; an even target keeps its table as it was."""
    import optuna

    from search.review.display import format_table, imbalanced

    study = optuna.create_study()
    study.set_user_attr("data_summary", {"classes": {"stayed": [140, 35], "left": [60, 15]}})
    assert imbalanced(study)
    study.set_user_attr("data_summary", {"classes": {"a": [40, 10], "b": [40, 10], "c": [35, 9]}})
    assert not imbalanced(study)

    def row(trial, value, baseline, accuracy, balanced):
        return {"rank": 1, "trial": trial, "value": value, "std": 0.01, "metric": "accuracy",
                "metric_value": accuracy, "balanced_accuracy": balanced, "baseline": baseline,
                "params": {"model.dropout": 0.2}, "unregularized": True, "kept_on": None}

    rows = [row(2, 0.41, False, 0.8, 0.7312), row(0, 0.52, True, 0.7, 0.5)]
    header = format_table([{**rows[0], "imbalanced": True}, rows[1]]).splitlines()[0].split()
    assert header[:6] == ["rank", "trial", "val_loss", "±", "std", "accuracy"] and header[6] == "bal_acc", header
    assert "0.7312" in format_table([{**rows[0], "imbalanced": True}, rows[1]])
    assert "bal_acc" not in format_table(rows)
    scored = [{**r, "roc_auc": 0.9, "average_precision": 0.4321} for r in rows]  # a binary task's
    assert format_table([{**scored[0], "imbalanced": True}, scored[1]]).splitlines()[0].split()[6:9] == \
        ["bal_acc", "roc_auc", "pr_auc"] and "0.4321" in format_table([{**scored[0], "imbalanced": True}, scored[1]])
    assert "pr_auc" not in format_table(scored) and "roc_auc" in format_table(scored)


def test_the_headline_against_the_baseline_names_the_other_settings_it_differs_in():
    """'74.5% lower than the unregularized baseline' was read as what regularization bought, where the best
    trial also had other layers, units and learning rate (and its own ablation found the regularizers hurt)."""
    from search.review.display import format_table

    def row(trial, value, baseline, **params):
        return {"rank": 1, "trial": trial, "value": value, "std": 0.01, "metric": "accuracy", "metric_value": 0.9,
                "baseline": baseline, "params": params, "unregularized": True, "kept_on": None}

    base = row(0, 0.04384, True, **{"model.units": 32, "train.learning_rate": 0.003, "model.dropout": 0.0,
                                    "model.l2.on": False})
    best = row(3, 0.01119, False, **{"model.units": 61, "train.learning_rate": 0.02, "model.dropout": 0.3,
                                     "model.l2.on": True, "model.l2": 0.001})
    table = format_table([best, base])
    assert "best trial 3 vs the unregularized baseline (trial 0): val_loss 0.01119 vs 0.04384 (74.5% lower)" in table
    assert "(the two also differ in units, learning_rate: the gap is all of it together; `search ablate` measures " \
           "what the regularizers alone buy)" in table
    # Once the best trial's ablation has run (after `search run`, by default), it is not sent to run it.
    assert "its ablation's table says what the regularizers alone bought trial 3)" in \
        format_table([{**best, "ablated": True}, base])
    same = row(5, 0.02, False, **{"model.units": 32, "train.learning_rate": 0.003, "model.dropout": 0.3,
                                  "model.l2.on": False})
    assert "also differ" not in format_table([same, base])
    # A switch reads off/on in every row: a phase that held batchnorm off showed 'off', a sampled one 'False'.
    held, sampled = row(1, 0.02, False, **{"model.batchnorm": "off"}), row(2, 0.03, False, **{"model.batchnorm": False})
    lines = format_table([held, sampled, row(4, 0.05, False, **{"model.batchnorm": True})]).splitlines()
    assert [line.split()[-1] for line in lines[2:5]] == ["off", "off", "on"], lines


def test_an_ablation_held_by_another_process_is_not_said_to_have_nothing_to_ablate():
    """A second terminal on the same study found the variants taken by the first and printed 'nothing to
    ablate (it uses no regularizer)' for a trial with dropout, storing an empty table."""
    import io

    import optuna

    from search.reproduction import ablation

    study = optuna.create_study(study_name="shared")
    study.add_trial(optuna.trial.create_trial(value=0.3, user_attrs={"splits": [{"split": 0, "best_val_loss": 0.3}]}))
    others = optuna.create_study(study_name="shared-ablation")  # its variants still running elsewhere
    out = io.StringIO()
    assert ablation._stored(study, study.trials[0], others, None, out, expected=2) == []
    assert "its 2 variant(s) are trained by another process" in out.getvalue()
    assert "nothing to ablate" not in out.getvalue() and ablation.ATTR not in study.user_attrs


def test_a_spread_is_written_in_the_notation_of_the_loss_beside_it():
    """A regression table read 'val_loss 3013 ± 2.4e+02': the spread in another notation than its loss."""
    from search._numbers import sig
    from search.review.display import format_table

    row = {"rank": 1, "trial": 0, "value": 3013.4, "std": 243.0, "metric": "mae", "metric_value": 44.1,
           "baseline": False, "params": {}, "unregularized": False, "kept_on": None}
    assert format_table([row]).splitlines()[2].split()[2:4] == ["3013", "240"]
    assert [sig(x) for x in (0.0123, 2.0, 1.5e-5, 0.0, float("nan"))] == ["0.012", "2", "1.5e-05", "0", "nan"]


def test_the_headline_names_fixed_settings_an_edit_of_the_space_changed_between_best_and_baseline():
    """The baseline ran with l2 0.001 and 2 epochs, the best trial after an edit with 0.1 and 3: the headline
    compared them as if only the sampled settings differed."""
    import optuna

    from conftest import TINY, merge
    from search import space as spaces
    from search.review.display import format_table, trial_rows
    from search.studies import space_versions

    study = optuna.create_study()
    texts = [spaces.load(merge(TINY, {"model": {"l2": l2, "dropout": {"float": [0.0, 0.5]}},
                                      "train": {"epochs": epochs}})).to_yaml() for l2, epochs in ((0.001, 2), (0.1, 3))]
    for text in texts:
        study.set_user_attr(space_versions.key(text), text)
    dropout = optuna.distributions.FloatDistribution(0.0, 0.5)
    for number, (value, text, baseline) in enumerate(((0.5, texts[0], True), (0.3, texts[1], False))):
        study.add_trial(optuna.trial.create_trial(
            value=value, params={"model.dropout": 0.0 if baseline else 0.2}, distributions={"model.dropout": dropout},
            user_attrs={"baseline": baseline, space_versions.DIGEST_ATTR: space_versions.digest(text),
                        "val_loss_std": 0.01}))
    table = format_table(trial_rows(study))
    assert "(the space file was edited between them: trial 1 ran with model.l2: 0.001 -> 0.1; train.epochs: 2 -> 3" \
        in table, table


def test_tables_show_each_trial_with_the_values_its_own_version_of_the_space_fixed(tmp_path, capsys):
    """Day two: dropout searched, then fixed at 0.2, and the learning rate moved from 0.01 to 0.003. The table
    showed the later trials' dropout as a blank cell and had no learning-rate column; `search status` took a
    study name only, so the space file the user had run was 'no study named b.yaml'."""
    import optuna

    from conftest import TINY, merge, run_cli
    from search import space as spaces
    from search.review._table import trials_csv
    from search.review.display import format_table, trial_rows
    from search.studies import space_versions

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="edited", storage=storage)
    first = merge(TINY, {"study": {"name": "edited"}})
    second = merge(first, {"model": {"dropout": 0.2}, "train": {"learning_rate": 0.003}})
    texts = [spaces.load(raw).to_yaml() for raw in (first, second)]
    for text in texts:
        study.set_user_attr(space_versions.key(text), text)
    dropout = optuna.distributions.FloatDistribution(0.0, 0.5)
    units = optuna.distributions.IntDistribution(8, 32)
    for number, (value, text, params) in enumerate(((0.5, texts[0], {"model.dropout": 0.0, "model.units": 8}),
                                                    (0.3, texts[1], {"model.units": 16}))):
        study.add_trial(optuna.trial.create_trial(
            value=value, params=params, distributions={"model.dropout": dropout, "model.units": units}
            if "model.dropout" in params else {"model.units": units},
            user_attrs={"baseline": number == 0, space_versions.DIGEST_ATTR: space_versions.digest(text),
                        "val_loss_std": 0.01}))
    table = format_table(trial_rows(study)).splitlines()
    assert table[0].split()[-3:] == ["dropout", "units", "learning_rate"], table
    assert table[2].split()[-3:] == ["0.2", "16", "0.003"] and table[3].split()[-3:] == ["0", "8", "0.01"], table
    # The learning rate is said as the edit it was, not as a setting the search tried.
    assert "also differ in units:" in "\n".join(table) and "model.learning_rate" not in "\n".join(table)
    assert "train.learning_rate: 0.01 -> 0.003" in "\n".join(table), table
    rows = trials_csv(study).splitlines()
    assert rows[0].split(",")[4:7] == ["model.dropout", "model.units", "train.learning_rate"], rows[0]
    assert rows[2].split(",")[4:7] == ["0.2", "16", "0.003"], rows

    space_file = tmp_path / "b.yaml"
    space_file.write_text(spaces.dump_yaml(second))
    assert run_cli("status", space_file, "--storage", storage) == 0
    assert capsys.readouterr().out.startswith("study edited: 2 finished")
    (tmp_path / "c.yaml").write_text("study: {name: other}\n")
    assert run_cli("status", tmp_path / "c.yaml", "--storage", storage) == 2
    assert "no study named 'other' (the name" in capsys.readouterr().err
    assert run_cli("status", tmp_path / "gone.yaml", "--storage", storage) == 2
    assert "is neither a study in this storage nor a space file here" in capsys.readouterr().err


def test_a_headline_gap_inside_the_noise_of_the_splits_is_said_to_be():
    """'17.5% lower than the baseline' where the ablation of the same config found -0.043 ± 0.081: the gap was
    seed and split noise, quoted as a gain."""
    from search.review.display import format_table

    def row(trial, value, std, baseline):
        return {"rank": 1, "trial": trial, "value": value, "std": std, "metric": "accuracy", "metric_value": 0.9,
                "baseline": baseline, "params": {}, "unregularized": True, "kept_on": None, "n_splits": 3}

    noisy = format_table([row(1, 0.59, 0.08, False), row(0, 0.7154, 0.12, True)])
    assert "(within the noise of the splits: the gap 0.125 is less than two standard errors of the two means, " \
           "0.17; not told apart from chance)" in noisy, noisy
    assert "within the noise" not in format_table([row(1, 0.2, 0.02, False), row(0, 0.7154, 0.03, True)])
