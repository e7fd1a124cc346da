"""The Python API as one long notebook session uses it: what a call leaves behind in the process, what it
hands back to load, and frames that still hold their target."""
from __future__ import annotations

import collections.abc
import io
import random
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import search


def _frame(n: int = 240) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.sample(n, random_state=0).reset_index(drop=True)
    return frame[["mean radius", "mean texture", "mean smoothness", "worst area", "target"]]


def build(settings, input_shape, n_outputs):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(int(settings["units"]), activation="relu")(inputs)
    x = keras.layers.Dropout(settings.get("dropout", 0.0))(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def _space(name: str, **data):
    return {"study": {"name": name, "seed": 0, "n_trials": 1, "baseline": False, "ablation": False},
            "data": {"test_size": 0.2, **data}, "validation": {"scheme": "holdout", "fraction": 0.3},
            "model": {"units": {"int": [4, 8]}}, "train": {"epochs": 2, "batch_size": 64, "early_stopping": 0}}


def test_a_run_gives_back_the_random_states_the_log_level_and_the_warnings_filters(tmp_path):
    import optuna

    frame = _frame()
    random.seed(7)
    np.random.seed(7)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    filters = list(warnings.filters)
    expected = (random.Random(), np.random.RandomState())
    expected[0].seed(7)
    expected[1].seed(7)
    search.run(_space("kept"), x=frame.drop(columns="target"), y=frame["target"], builder=build, home=tmp_path,
               out=io.StringIO())
    assert random.random() == expected[0].random()
    assert np.random.random() == expected[1].random_sample()
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
    assert warnings.filters == filters


def test_the_state_is_given_back_when_the_call_is_interrupted():
    import optuna

    from search.api._state import process_state_kept

    random.seed(3)
    before = random.getstate(), optuna.logging.get_verbosity(), list(warnings.filters)
    with pytest.raises(KeyboardInterrupt), process_state_kept():
        random.seed(99)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        raise KeyboardInterrupt
    assert (random.getstate(), optuna.logging.get_verbosity(), list(warnings.filters)) == before


def test_threads_that_tensorflow_cannot_take_any_more_are_warned_about(tmp_path):
    from search._tensorflow import import_quietly

    tf = import_quietly()
    _ = (tf.constant([1.0]) * 2).numpy()  # TensorFlow started, as by a notebook's own model
    frame = _frame()
    with pytest.warns(RuntimeWarning, match=r"threads=3 cannot be applied: TensorFlow has already started.*"
                                            r"fresh process.*TF_NUM_INTRAOP_THREADS"):
        search.run(_space("threads"), x=frame.drop(columns="target"), y=frame["target"], builder=build,
                   home=tmp_path, threads=3, out=io.StringIO())


def test_the_final_model_loads_from_the_studys_own_store_and_the_report_prints_short(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    frame = _frame(300)
    new = frame.iloc[240:].drop(columns="target")
    frame = frame.iloc[:240]
    search.run(_space("served"), x=frame.drop(columns="target"), y=frame["target"], builder=build, home=tmp_path,
               out=io.StringIO())
    uri_before = mlflow.get_tracking_uri()
    rep = search.reproduce("served", home=tmp_path, builder=build, verify=True, register="served-model",
                           out=io.StringIO())
    assert rep.tracking_uri.startswith("sqlite:///") and rep.tracking_uri.endswith(f"{tmp_path.name}/mlflow.db")
    assert rep.model_uri == f"runs:/{rep.run_id}/model" and rep.registered_uri == "models:/served-model/1"
    assert MlflowClient(rep.tracking_uri).get_model_version("served-model", "1").run_id == rep.run_id
    predicted = np.asarray(rep.load_model().predict(new)).ravel()
    assert predicted.shape == (len(new),) and np.all((predicted >= 0) & (predicted <= 1))
    np.testing.assert_allclose(predicted, rep.model.predict(new.to_numpy(), verbose=0).ravel(), rtol=1e-5)
    assert mlflow.get_tracking_uri() == uri_before
    shown = repr(rep)
    assert len(shown) < 300 and "np.float64" not in shown and f"run_id={rep.run_id!r}" in shown, shown
    assert rep.checks and all(type(c.loss) is float and type(c.stored_loss) is float for c in rep.checks)
    assert type(rep.test_loss) is float and type(rep.alarm.z) is float
    assert all(type(v) is float for v in [*rep.test_scores.values(), *rep.ensemble_scores.values()])


def test_the_api_annotations_say_what_it_takes_and_its_dataclasses_describe_their_fields():
    import typing

    import keras

    from search.reproduction.overfit import OverfitCheck

    hints = typing.get_type_hints(search.run)
    assert pd.DataFrame in typing.get_args(hints["x"]) and pd.Series in typing.get_args(hints["y"])
    assert str in typing.get_args(hints["y"])  # the name of a column of x
    assert any(typing.get_origin(a) is collections.abc.Mapping for a in typing.get_args(hints["space"]))
    report = typing.get_type_hints(search.Report)
    assert report["alarm"] is OverfitCheck and typing.get_args(report["model"])[0] is keras.Model
    for cls, fields in ((search.Report, ("test_loss", "alarm", "tracking_uri", "model_uri", "registered")),
                        (search.AblationRow, ("label", "val_loss", "bought", "bought_se")),
                        (search.RunResult, ("best", "ablation", "stopped_by")),
                        (search.TrialResult, ("value", "params", "config"))):
        assert all(f"{name}" in (cls.__doc__ or "") for name in fields), cls


def test_a_frame_that_still_holds_its_target_gives_it_by_data_target_or_by_y_naming_the_column(tmp_path):
    frame = _frame()
    result = search.run(_space("by-target", target="target"), x=frame, builder=build, home=tmp_path,
                        out=io.StringIO())
    assert result.best is not None and result.study.user_attrs["data_summary"]["features"] == 4
    result = search.run(_space("by-y"), x=frame, y="target", builder=build, home=tmp_path, out=io.StringIO())
    assert result.best is not None and result.study.user_attrs["data_summary"]["features"] == 4
    with pytest.raises(search.SpaceError, match=r"field 'data.target': data.target names a column that x does not "
                                                r"have; expected one of 'mean radius'.*found 'no_such_column'"):
        search.run(_space("nope", target="no_such_column"), x=frame, builder=build, home=tmp_path)
    with pytest.raises(search.SpaceError, match=r"field 'y': y names a column that x does not have"):
        search.run(_space("nope"), x=frame, y="label", builder=build, home=tmp_path)
    with pytest.raises(search.SpaceError, match=r"field 'data.target'.*x has no named columns"):
        search.run(_space("nope", target="target"), x=frame.to_numpy(), builder=build, home=tmp_path)
    assert not (tmp_path / "data" / "nope").exists() and not list((tmp_path / "data").glob("nope*"))


def test_data_drop_leaves_out_columns_of_a_numeric_frame_and_an_unread_target_is_warned_about(tmp_path, capsys):
    frame = _frame()
    space = _space("dropped", target="no_such_column", drop=["mean radius"])
    result = search.run(space, x=frame.drop(columns="target"), y=frame["target"].rename("label"), builder=build,
                        home=tmp_path, out=io.StringIO())
    assert result.study.user_attrs["data_summary"]["features"] == 3
    assert "data.target 'no_such_column' is not read: y is the target" in capsys.readouterr().err
    space["data"]["drop"] = ["mean radius", "no such"]
    with pytest.raises(search.DataError, match=r"field 'data.drop': data.drop names a column that x does not have; "
                                               r"expected one of 'mean radius'.*found 'no such'"):
        search.run(space, x=frame.drop(columns="target"), y=frame["target"], builder=build, home=tmp_path)


def test_a_notebooks_space_without_a_data_source_is_checked_before_it_runs():
    space = _space("checked")
    space["model"]["regularizers"] = ["dropout"]
    space["model"]["dropout"] = {"float": [0.0, 0.5]}
    loaded = search.load_space(space, builder=build)
    assert loaded.data.source == "arrays" and "source" not in space["data"]
    assert search.load_space(_space("plain")).data.source == "arrays"


@pytest.mark.parametrize("setting, value, words", [
    ("dropout", {"float": [0.0, 1.5]}, "a float in [0, 1)"),
    ("dropout", "0.0-0.5", "a number (float)"),
    ("l2", -0.01, "a float in [0, inf]"),
    ("learning_rate", {"float": [0.0, 0.1]}, "a float in [1e-07, 10]"),
])
def test_a_builders_settings_named_as_the_families_are_checked_against_their_ranges(tmp_path, setting, value, words):
    space = _space("ranges")
    space["model"][setting] = value
    if setting != "learning_rate":
        space["model"]["regularizers"] = [setting]
    frame = _frame()
    with pytest.raises(search.SpaceError, match=rf"field 'model.{setting}'.*{re.escape(words)}"):
        search.run(space, x=frame.drop(columns="target"), y=frame["target"], builder=build, home=tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_wrong_argument_is_an_argument_error_and_a_timeout_as_text_is_read_as_seconds(tmp_path):
    with pytest.raises(search.ArgumentError, match=r"n_trial.*n_trials"):
        search.run(_space("args"), n_trial=1)
    with pytest.raises(search.ArgumentError, match=r"only space is given by position"):
        search.run(_space("args"), _frame())
    with pytest.raises(search.ArgumentError, match=r"field 'timeout': timeout is a number of seconds above 0.*'1h'"):
        search.run(_space("args"), timeout="1h", home=tmp_path)
    with pytest.raises(search.ArgumentError, match=r"field 'threads'"):
        search.run(_space("args"), threads="two", home=tmp_path)
    assert issubclass(search.ArgumentError, search.UserError)
    frame = _frame()
    result = search.run(_space("timed"), x=frame, y="target", builder=build, home=tmp_path, timeout="600",
                        out=io.StringIO())
    assert result.best is not None
