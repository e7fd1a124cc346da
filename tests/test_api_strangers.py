"""The Python API as users of scikit-learn, KerasTuner and Optuna call it: dicts, factories of builders,
a new process, shapes of arrays, and the words of every refusal."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

import search
from search import models

X, Y = load_iris(return_X_y=True)


def _space(name, **study):
    return {"study": {"name": name, "n_trials": 1, "baseline": False, "ablation": False, **study},
            "data": {"source": "arrays", "test_size": 0.2},
            "validation": {"scheme": "holdout", "fraction": 0.3},
            "model": {"units": {"int": [4, 8]}}, "train": {"epochs": 1, "batch_size": 32}}


def _frame():
    import pandas as pd

    names = np.array(["setosa", "versicolor", "virginica"])
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": names[Y].astype(object),
                         "label2": names[Y].astype(object)})


def _named(columns):
    import pandas as pd

    return pd.DataFrame(X, columns=columns)


def _dates():
    import pandas as pd

    return pd.date_range("2024-01-01", periods=len(X), freq="D")


def _objects(values, where, value):
    """``values`` as an object array (labels as text), with ``value`` put at ``where``."""
    names = np.array(["setosa", "versicolor", "virginica"])
    out = (names[values] if values.ndim == 1 else values).astype(object)
    out[where] = value
    return out


def _factory(hidden):
    import keras

    def build(settings, input_shape, n_outputs):
        x = inputs = keras.Input(input_shape)
        for _ in range(hidden):
            x = keras.layers.Dense(int(settings["units"]), activation="relu")(x)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))

    return build


def test_builders_made_by_one_factory_keep_families_of_their_own():
    deep, flat = models.register_builder(_factory(3)), models.register_builder(_factory(0))
    assert deep != flat and flat.startswith(deep + "~")
    assert models.load_custom_builder(deep).__closure__[0].cell_contents == 3
    assert models.load_custom_builder(flat).__closure__[0].cell_contents == 0
    assert models.register_builder(_factory(3)) == deep  # the same code and captured values: the same family
    assert models.named_only_there(deep) and models.named_only_there(flat)


def test_a_logits_builder_is_refused_and_a_sequential_without_input_trains(tmp_path, capsys):
    import keras

    def logits(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(n_outputs)(inputs))

    with pytest.raises(search.SpaceError, match=r"does not output probabilities.*end the model with a softmax"):
        search.run(_space("logits"), x=X, y=Y, builder=logits, home=tmp_path / "h")
    assert not (tmp_path / "h" / "optuna.db").exists()  # refused before anything was stored

    def sequential(settings, input_shape, n_outputs):  # KerasTuner's usual shape: no keras.Input
        return keras.Sequential([keras.layers.Dense(int(settings["units"]), activation="relu"),
                                 keras.layers.Dense(n_outputs, activation="softmax")])

    # A space that names data of its own, run on x and y: said (the named data set was silently not read).
    space = _space("seq")
    space["data"]["source"] = "sklearn:wine"
    space["model"]["family"] = "mlp"  # and a family of its own, which builder= replaced without a word
    capsys.readouterr()
    result = search.run(space, x=X, y=Y, builder=sequential, home=tmp_path / "h", out=io.StringIO())
    err = capsys.readouterr().err
    assert "the space's data.source 'sklearn:wine' is not read: x and y are the data" in err
    assert "the space's model.family 'mlp' is not used: builder= builds the model (python:" in err
    assert result.best is not None and np.isfinite(result.best.value)
    metrics = result.best.metrics  # the table's columns, as numbers
    assert metrics["val_loss_mean"] == pytest.approx(result.best.value) and 0 <= metrics["val_accuracy_mean"] <= 1


def test_a_notebook_study_is_read_and_reproduced_in_a_new_process_and_not_continued_with_another_model(tmp_path):
    home = tmp_path / "h"
    build = _factory(1)
    search.run(_space("nb"), x=X, y=Y, builder=build, home=home, out=io.StringIO())
    with pytest.raises(search.StudyError, match=r"was run with model\.family python:.*this run's is mlp.*"
                                                r"pass the same builder again"):
        search.run(_space("nb", n_trials=2), x=X, y=Y, home=home)  # the builder forgotten: not a silent MLP
    saved = sorted((home / "data").iterdir())
    with pytest.raises(search.StudyError, match="was started with different data"):
        search.run(_space("nb", n_trials=2), x=X + 1, y=Y, builder=build, home=home, out=io.StringIO())
    assert sorted((home / "data").iterdir()) == saved  # the refused rows' array file is not left behind

    script = textwrap.dedent(f"""
        import io, keras, numpy as np, search
        def build(settings, input_shape, n_outputs):
            x = inputs = keras.Input(input_shape)
            x = keras.layers.Dense(int(settings["units"]), activation="relu")(x)
            return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
        picked = search.best("nb", home={str(home)!r})             # no builder needed to read it
        assert len(picked.split_models()) == 1
        try:
            search.reproduce("nb", home={str(home)!r}, out=io.StringIO())
        except search.SpaceError as exc:
            assert "search.reproduce(..., builder=build)" in str(exc), exc
        else:
            raise AssertionError("reproduced without the builder")
        report = search.reproduce("nb", home={str(home)!r}, builder=build, epochs=1, out=io.StringIO())
        print("test loss", np.isfinite(report.test_loss))
        probabilities = report.model.predict(np.zeros((2, 4)), verbose=0)   # the final model, in hand
        assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test loss True" in done.stdout


def test_a_split_model_of_a_layer_class_this_process_lacks_is_said_to_need_it(tmp_path) -> None:
    """A notebook's registered layer, loaded in a restarted kernel: Keras' TypeError dumped the model's config."""
    import keras

    from search.runner import checkpoints

    @keras.saving.register_keras_serializable(package="nb")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((3,))
    path = tmp_path / "split_00.keras"
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(Twice()(inputs))).save(path)
    assert checkpoints.load_model(path) is not None
    keras.saving.get_custom_objects().pop("nb>Twice")  # as in a new process that never ran the cell
    with pytest.raises(search.StudyError) as refused:
        checkpoints.load_model(path)
    said = str(refused.value)
    assert "holds the class 'Twice' (registered as 'nb>Twice'), which is not defined in this process" in said, said
    assert "register_keras_serializable" in said and "config" not in said and len(said) < 500


def test_whole_numbers_given_as_digit_text_or_whole_floats_are_taken_as_numbers() -> None:
    """n_trials="2" passed the check and then met a number further in: a raw TypeError after the study was stored
    (ensemble="2", top="5" the same; epochs="2" reached the report as text)."""
    from search.api._errors import _arguments

    assert _arguments(n_trials=("2", 1), threads=(None, 1), top=(np.int64(3), 1), epochs=(" 4 ", 1)) == [2, None, 3, 4]
    with pytest.raises(search.UserError, match="ensemble is a whole number, at least 1"):
        _arguments(ensemble=("2.5", 1))
    # A thousand as a notebook writes it, and a float that holds a whole number.
    assert _arguments(n_trials=(1e3, 1), epochs=(np.float64(5.0), 1)) == [1000, 5]
    for value in (2.5, float("nan"), 0.0):
        with pytest.raises(search.UserError, match="n_trials is a whole number, at least 1"):
            _arguments(n_trials=(value, 1))


@pytest.mark.parametrize(("call", "field", "words"), [
    (lambda h: search.run(None, x=X, y=Y, home=h), "space", "a dict of its sections"),
    (lambda h: search.run(_space("a"), x=X, y=Y, home=123), "home", "folder of the stores"),
    (lambda h: search.run(_space("a"), x=X, y=Y, home=h, study_name=5), "study_name", "a study name is text"),
    (lambda h: search.run(_space("a"), x="rows.csv", y=Y, home=h), "x", "data.source: csv:rows.csv"),
    (lambda h: search.run(_space("a"), x=X[:, 0], y=Y, home=h), "x", "reshape(-1, 1)"),
    # No data section at all: x and y are the data, so data.source is not asked for (it was).
    (lambda h: search.run({k: v for k, v in _space("a").items() if k != "data"}, x=X[:, 0], y=Y, home=h), "x",
     "reshape(-1, 1)"),
    (lambda h: search.run(_space("a"), x=X[:0], y=Y[:0], home=h), "x", "has no rows"),
    (lambda h: search.run(_space("a"), x=X, y=np.c_[Y, Y], home=h), "y", "not one-hot"),
    (lambda h: search.load_space({"study": {"name": "a", "n_trial": 3}, "data": {"source": "sklearn:iris"}}),
     "study.n_trial", "did you mean 'n_trials'"),
    (lambda h: search.report("a", home=h, top=0), "top", "at least 1"),
    # Group ids with gaps in a text column: the gaps became one group, 'nan' (a CSV's were refused).
    (lambda h: search.run({**_space("a"), "data": {"group": "g", "test_size": 0.2},
                           "validation": {"scheme": "group_kfold", "k": 2}},
                          x=_frame()[["a", "b"]].assign(g=[f"p{i % 9}" if i % 11 else None for i in range(len(Y))]),
                          y=Y, home=h), "data.group", "has 14 missing group id(s), at position(s) 0, 11, 22"),
    # A NaT among a frame's timestamps: "mixes '2024-01-01 00:00:00' with values in another form", found 'NaT'.
    (lambda h: search.run({**_space("a"), "data": {"order": "t", "test_size": 0.2},
                           "validation": {"scheme": "time_series", "k": 3}},
                          x=_frame()[["a", "b"]].assign(t=pd.Series(pd.date_range("2024-01-01", periods=len(Y)))
                                                        .where(lambda t: t.index != 5).astype(object)),
                          y=Y, home=h), "data.order", "has 1 missing value(s), in row(s) 5 (counting from 0)"),
    # Python's own TypeError named no near miss, nor that the arguments after the first go by name.
    (lambda h: search.run(_space("a"), x=X, y=Y, home=h, n_trial=2), "n_trial", "(did you mean 'n_trials'?)"),
    (lambda h: search.run(_space("a"), X, Y, home=h), None, "only space is given by position, the rest by name"),
    (lambda h: search.report("a", home=h, top="x"), "top", "at least 1"),
    # pandas as notebooks hold it: text labels with gaps, two label columns, numbers with None for a gap.
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]], y=_frame().label.where(_frame().a > 4.5), home=h), "y",
     "y has 5 missing label(s) (NaN or None), at position(s) 8, 13, 38"),
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]], y=_frame()[["label", "label2"]], home=h), "y",
     "y has 2 columns ('label', 'label2')"),
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]].astype(object).where(_frame().a > 4.5, None),
                          y=Y, home=h), "x", "missing (NaN) or infinite value(s)"),
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]].assign(z=np.inf), y=Y, home=h), "x",
     "the first at index (0, 2) (row 0, column 'z')"),
    # pandas and object arrays as strangers hand them over (each once a traceback or a silent wrong pairing).
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]], y=_frame().label.sample(frac=1, random_state=1),
                          home=h), "y", "indexes differ (the same labels in another order"),
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]].drop(index=[3]).reset_index(drop=True),
                          y=_frame().label.drop(index=[3]), home=h), "y",
     "indexes differ (other labels: at position 3, x has label 3 and y 4)"),
    (lambda h: search.run(_space("a"), x=_frame()[["a", "b"]].iloc[30:], y=_frame().label.iloc[30:],
                          x_test=_frame()[["a"]].iloc[:30], y_test=_frame().label.iloc[:30], home=h), "x_test, y_test",
     "differ from those of the arrays x and y: missing ['b']"),
    (lambda h: search.run(_space("a"), x=_named(["a", "a", "b", "c"]), y=Y, home=h), "x",
     "duplicated column name(s) 'a'"),
    (lambda h: search.run(_space("a"), x=_frame()[["a"]].assign(when=_dates()), y=Y, home=h), "x",
     "column 'when' holds dates or durations"),
    (lambda h: search.run(_space("a"), x=X, y=_objects(Y, 3, None), home=h), "y",
     "1 missing label(s) (NaN or None), at position(s) 3"),
    (lambda h: search.run(_space("a"), x=_objects(X, (5, 2), "abc"), y=Y, home=h), "x",
     "holds str 'abc' at row 5, column 2"),
    (lambda h: search.run(_space("a"), x=X, y=_objects(Y, 7, 1), home=h), "y",
     "mixes text ('setosa' at position 0) and other values (1 at position 7)"),
    (lambda h: search.run(_space("a"), x=X, y=np.zeros(len(X)), home=h), "y", "at least two classes"),
    (lambda h: search.run(_space("a"), x=X[::16], y=Y[::16], home=h), "data.test_size",
     "test_size 0.2 of 10 rows leaves 2 test rows for 3 classes; expected between 0.3 and 0.7"),
    (lambda h: search.best(None, home=h), "study_name", "a study is named by its name as text"),
    # What to reproduce named twice (the trial had been ignored).
    (lambda h: search.reproduce("a", trial=3, config="best.yaml", home=h), "trial, config", "pass one of them"),
])
def test_a_wrong_argument_is_named_as_the_call_spelled_it(tmp_path, call, field, words):
    with pytest.raises(search.UserError) as err:
        call(tmp_path / "h")
    assert err.value.field == field and words in str(err.value)
    assert ".npz" not in str(err.value)
    assert not (tmp_path / "h").exists()


def test_data_errors_name_the_arrays_and_test_rows_replace_test_size(tmp_path):
    with pytest.raises(search.DataError) as err:
        search.run(_space("t"), x=X[:100], y=Y[:100], x_test=X[100:], y_test=Y[100:], home=tmp_path / "h")
    assert "of the arrays x_test and y_test never occur in the arrays x and y" in str(err.value)
    assert ".npz" not in str(err.value)
    # data.test_size in the space (0.2) is not a contradiction once the test rows are handed over.
    result = search.run(_space("t"), x=X[::2], y=Y[::2], x_test=X[1::2], y_test=Y[1::2], home=tmp_path / "h",
                        out=io.StringIO())
    assert result.study.user_attrs["test_rows"] == 75


def test_pandas_labels_keep_their_type_and_many_whole_numbers_are_said_to_be_a_quantity(tmp_path, capsys):
    import pandas as pd

    from search.api import _arrays

    assert _arrays._plain(pd.Series([True, False, True]), "y", labels=True).dtype == bool
    assert _arrays._plain(pd.Series([3, 1, 2]), "y", labels=True).dtype == np.int64
    assert _arrays._plain(pd.Series([3, None, 2], dtype="Int64"), "y", labels=True).dtype == np.float64

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), np.arange(300) % 30  # 30 class labels, 10 rows each
    search.run(_space("many", n_trials=1), x=x, y=y, home=tmp_path / "h", out=io.StringIO())
    said = capsys.readouterr().err
    assert "30 different whole numbers" in said and "set data.task: classification" in said
    stored = search.best("many", home=tmp_path / "h").study.user_attrs["data_summary"]["warnings"]
    assert any("30 different whole numbers" in w for w in stored)


def test_split_models_take_raw_rows_and_a_one_column_frame_of_labels_is_a_label_column(tmp_path):
    """split_models() had handed back the checkpoints as trained, which take rows scaled by their split's
    scaler: raw rows scored at chance, without a word."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from search.runner import session

    frame = pd.DataFrame(X * [1, 10, 100, 1000], columns=list("abcd"))  # far from scaled
    space = {**_space("raw"), "train": {"epochs": 3, "batch_size": 16}}
    search.run(space, x=frame, y=_frame()[["label"]], home=tmp_path / "h", out=io.StringIO())
    picked = search.best("raw", home=tmp_path / "h")
    raw, scaled = picked.split_models(), picked.split_models(scaled_input=True)
    prepared = session.prepare(picked.config)
    assert list(prepared.dataset.classes) == ["setosa", "versicolor", "virginica"]
    rows = prepared.dataset.X[:20]
    scaler = StandardScaler().fit(prepared.dataset.X[prepared.splits[0].train])
    np.testing.assert_allclose(raw[0].predict(rows, verbose=0), scaled[0].predict(scaler.transform(rows), verbose=0),
                               rtol=1e-4, atol=1e-6)
    assert not np.allclose(raw[0].predict(rows, verbose=0), scaled[0].predict(rows, verbose=0), atol=1e-3)


def test_group_and_order_columns_of_a_frame_are_taken_out_of_the_features(tmp_path):
    """data.group and data.order could not name a column of x: the arrays were looked up in the npz written
    for x and y, under names that were never saved."""
    import pandas as pd

    from search.runner import session

    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(
        patient=[f"p{i % 30:02d}" for i in range(len(X))], when=_dates())
    grouped = _space("grouped") | {"data": {"source": "arrays", "test_size": 0.2, "group": "patient"},
                                   "validation": {"scheme": "group_kfold", "k": 3}}
    result = search.run(grouped, x=frame.drop(columns=["when"]), y=Y, home=tmp_path / "h", out=io.StringIO())
    assert result.study.user_attrs["data_summary"]["features"] == 4  # the ids are no feature
    prepared = session.prepare_rows(result.best.config)
    groups = prepared.dataset.groups
    for split in prepared.splits:
        assert not set(groups[split.train]) & set(groups[split.val])
    assert not set(groups[prepared.dev_idx]) & set(groups[prepared.test_idx])
    timed = _space("timed") | {"data": {"source": "arrays", "test_size": 0.2, "order": "when"},
                               "validation": {"scheme": "time_series", "k": 3}}
    shuffled = frame.drop(columns=["patient"]).sample(frac=1, random_state=0)
    result = search.run(timed, x=shuffled, y=Y[shuffled.index], home=tmp_path / "h", out=io.StringIO())
    assert result.study.user_attrs["data_summary"]["features"] == 4
    # The labels as the data holds them, as the final model's model_io keeps them: 2, not '2'.
    assert result.best is not None and result.best.classes == [0, 1, 2]
    assert all(type(c) is int for c in result.best.classes)
    with pytest.raises(search.SpaceError, match="x has no named columns; pass x as a pandas DataFrame"):
        search.run(grouped, x=X, y=Y, home=tmp_path / "h2")


def test_more_trials_asked_for_than_the_budget_leaves_is_said_and_the_classes_are_named(tmp_path, capsys):
    """n_trials=3 against study.n_trials: 1 ran one trial without a word; the labels were not on the result."""
    names = np.array(["setosa", "versicolor", "virginica"])
    result = search.run(_space("cap"), x=X, y=names[Y], n_trials=3, home=tmp_path / "h", out=io.StringIO())
    said = capsys.readouterr().err
    assert "3 trials asked for now, but study.n_trials (1) leaves 1 to run" in said
    assert len(result.study.trials) == 1
    assert result.best is not None and result.best.classes == ["setosa", "versicolor", "virginica"]
    # Optuna's optimize(n_trials=2) runs two more; here the budget is spent, which is said where it is seen.
    again = search.run(_space("cap"), x=X, y=names[Y], n_trials=2, home=tmp_path / "h", out=io.StringIO())
    assert len(again.study.trials) == 1
    assert "2 trials asked for now, but study.n_trials (1) is the study's whole budget, and it is spent: none " \
           "run; for 2 more, set study.n_trials to 3 in the space" in capsys.readouterr().err


CELL = '''
import keras

def build(settings, input_shape, n_outputs):{comment}
    x = inputs = keras.Input(input_shape)
    x = keras.layers.Dense(int(settings["units"]), activation="{activation}")(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
'''


def _cell(comment="", activation="relu"):
    """A notebook cell's builder, run (again) as the kernel runs a cell: a new function from its text."""
    namespace = {"__name__": "__main__"}
    exec(compile(CELL.format(comment=comment, activation=activation), "<cell>", "exec"), namespace)
    return namespace["build"]


def test_a_cell_run_again_with_a_comment_is_the_same_builder_and_changed_code_is_warned_about(tmp_path, capsys):
    """Python compares code with its line numbers: a cell run again with a comment added was a new builder
    (~2), and its study was refused as another model. An edited cell run again in the same process was
    refused too, with advice to pass builder=build, which had been done; in a new process the same edit was
    warned about. And search.reproduce(..., builder=edited) judged the edited model as the trial's, silently."""
    home = tmp_path / "h"
    search.run(_space("cell"), x=X, y=Y, builder=_cell(), home=home, out=io.StringIO())
    assert models.register_builder(_cell("\n    # wider later")) == models.register_builder(_cell())
    search.run(_space("cell", n_trials=2), x=X, y=Y, builder=_cell("\n    # wider later"), home=home,
               out=io.StringIO())
    assert "does something else" not in capsys.readouterr().err
    edited = _cell(activation="tanh")  # the cell edited and run again: the name goes to the new function
    assert models.register_builder(edited) == models.register_builder(_cell())
    search.run(_space("cell", n_trials=3), x=X, y=Y, builder=edited, home=home, out=io.StringIO())
    err = capsys.readouterr().err
    assert "model.family's code: the builder function does something else now" in err
    assert "(study_name= starts a separate study)" in err  # the call's words, not the command's
    # Not passed: the session's function of that name is found, and it is not trial 0's: no test look with it.
    with pytest.raises(search.StudyError, match=r"the function build this session holds is not the code trial 0 ran "
                                                r"with .*, and no builder= names it"):
        search.reproduce("cell", trial=0, home=home, out=io.StringIO())
    out = io.StringIO()
    search.reproduce("cell", trial=0, home=home, builder=edited, out=out)
    err = capsys.readouterr().err
    assert "does something else now than when trial 0 ran" in err and "judges another model than trial 0's" in err
    report = search.reproduce("cell", trial=2, home=home, builder=edited, out=io.StringIO())
    assert "does something else now" not in capsys.readouterr().err and not report.builder_changed


def test_a_builders_digest_is_the_same_in_every_process():
    """A set among the defaults or constants is ordered by string hashing, which differs between processes:
    the digest differed, and every new process warned that the builder had changed."""
    code = ("from search import models\n"
            "def build(s, shape, n, opts={'a', 'b', 'c', 'd'}):\n"
            "    return s in {'p', 'q', 'r', 's'}\n"
            "print(models.builder_fingerprint(build))")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
               for seed in ("1", "2", "3")}
    assert len(digests) == 1 and len(next(iter(digests))) == 16, digests


def test_a_y_of_numbers_with_a_few_text_cells_is_refused_by_its_cells(tmp_path):
    """Stay lengths read from a CSV whose cells say "3 days" and ">30" came in as text: each length became a
    class, and the run failed on "classes seen only in the test rows", never naming the cells."""
    import pandas as pd

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    for y in (pd.Series([f"{v:.1f}" for v in rng.exponential(3, 60)], name="stay_days"),
              pd.Series(list(rng.exponential(3, 60)), name="stay_days", dtype=object)):
        y[7], y[20] = "3 days", ">30"
        with pytest.raises(search.DataError, match=r"target 'stay_days' of the y passed holds numbers, but it is "
                                                   r"read as text for its cells such as '3 days', '>30' \(2 in all, "
                                                   r"first at row 7"):
            search.run({"study": {"name": "stays"}, "data": {"source": "arrays"}}, x=x, y=y, home=tmp_path / "h")
    assert not (tmp_path / "h").exists()
    # Labels that are words stay labels, and data.task: classification keeps number-like texts as classes.
    from search.api._arrays import _numbers_held_as_text

    _numbers_held_as_text(pd.Series(rng.choice(["short", "long"], 60)), "y", "auto")
    _numbers_held_as_text(y, "y", "classification")
    _numbers_held_as_text(np.asarray(["1.5", "2.5"] * 30), "y", "auto")  # every cell a number: not refused here


def test_a_frame_with_text_categories_is_one_hot_encoded_as_a_csv_is(tmp_path):
    """A notebook frame with text columns was refused ("encode them first") while the docs said text columns
    were taken and data.categorical: one_hot was not even read: a CSV's categories were encoded, a frame's
    could not be. The frame now goes in as a CSV would, group column and test rows included."""
    import io

    import optuna
    import pandas as pd

    from search.studies import lifecycle as studies

    rng = np.random.default_rng(0)

    def frame(n):
        x = pd.DataFrame({"age": rng.normal(50, 10, n), "sex": rng.choice(["M", "F"], n),
                          "ward": pd.Categorical(rng.choice(["icu", "gen"], n)), "pid": rng.integers(0, 40, n)})
        return x, pd.Series(x["age"] / 10 + (x["ward"] == "icu") * 3 + rng.normal(size=n), name="stay")

    (x, y), (x_test, y_test) = frame(120), frame(30)
    x.loc[3, "age"] = np.nan
    space = {"study": {"name": "wards", "n_trials": 1, "ablation": False},
             "data": {"source": "arrays", "categorical": "one_hot", "missing": "median", "group": "pid"},
             "validation": {"scheme": "group_kfold", "k": 2}, "train": {"epochs": 2}}
    with pytest.raises(search.SpaceError, match=r"x's column\(s\) 'sex', 'ward' are not numeric; set "
                                                r"data.categorical: one_hot"):
        search.run({**space, "data": {"source": "arrays"}}, x=x, y=y, home=tmp_path / "refused")
    search.run(space, x=x, y=y, x_test=x_test, y_test=y_test, home=tmp_path / "h", out=io.StringIO())
    study = optuna.load_study(study_name="wards",
                              storage=studies.make_storage(studies.default_storage(tmp_path / "h")))
    summary = study.user_attrs["data_summary"]
    assert summary["feature_names"] == ["age", "sex=F", "sex=M", "ward=gen", "ward=icu"], summary
    assert summary["test_rows"] == 30 and study.trials[0].state.name == "COMPLETE"
    assert sorted(p.suffix for p in (tmp_path / "h" / "data").iterdir()) == [".csv", ".csv"]


def test_keras_objects_and_a_model_or_a_keras_tuner_build_are_refused_with_what_to_write(tmp_path):
    """A KerasTuner user's habits: an optimizer or callback object in the space, a compiled model or build(hp)
    as the builder. Each was a pydantic serialization traceback, or Keras' words about positional tensors."""
    import keras

    for key, value, words in [("optimizer", keras.optimizers.Adam(1e-3), "train.optimizer: adam"),
                              ("early_stopping", keras.callbacks.EarlyStopping(patience=2),
                               "train.early_stopping: <patience"),
                              ("callbacks", [keras.callbacks.ReduceLROnPlateau()], "Keras callbacks are not taken")]:
        space = _space("objects")
        space["train"][key] = value
        with pytest.raises(search.SpaceError) as caught:
            search.run(space, x=X, y=Y, home=tmp_path / "h")
        assert caught.value.field.startswith(f"train.{key}") and words in str(caught.value)
        assert f"{type(value if key != 'callbacks' else value[0]).__qualname__} object" in str(caught.value)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(search.SpaceError, match="builder is a model, not a function that builds one"):
        search.run(_space("model"), x=X, y=Y, builder=model, home=tmp_path / "h")

    def build(hp):
        return model

    with pytest.raises(search.SpaceError, match=r"takes \(hp\), .*KerasTuner's build\(hp\)"):
        search.run(_space("hp"), x=X, y=Y, builder=build, home=tmp_path / "h")
    assert not (tmp_path / "h").exists(), "nothing is stored for a refused call"
    # A path and NumPy numbers are what a file would hold: taken as its text and numbers.
    space = search.load_space({**_space("plain"), "study": {"name": "plain", "n_trials": np.int64(2)},
                               "data": {"source": "csv:" + str(tmp_path / "rows.csv")}})
    assert space.study.n_trials == 2 and type(space.study.n_trials) is int


def test_a_list_for_a_custom_builder_is_said_to_be_one_value_not_a_search(tmp_path, capsys):
    from search.runner._space_warnings import space_warnings

    def build(settings, input_shape, n_outputs):
        raise AssertionError("not built")

    space = search.load_space({**_space("grid"), "model": {"family": models.register_builder(build),
                                                           "units_0": [16, 32, 64], "sizes": [[1, 2]]}})
    warnings = space_warnings(space, None)
    assert any("model.units_0 = [16, 32, 64] is a list, handed to the builder as one value, not searched; to try "
               "each value write {choice: [16, 32, 64]}" in w for w in warnings), warnings
    assert not any("sizes" in w for w in warnings)


def test_a_space_declaring_regularizers_without_its_builder_names_the_builder_as_missing(tmp_path):
    """The documented notebook space declares model.regularizers; without builder= it was refused for
    declaring regularizers of a built-in family, which the user never chose."""
    space = {**_space("undeclared"), "model": {"units": {"int": [4, 8]}, "dropout": {"float": [0.0, 0.5]},
                                               "regularizers": ["dropout"]}}
    with pytest.raises(search.SpaceError, match=r"no builder is named \(model.family\) or handed over \(builder=\)"):
        search.run(space, x=X, y=Y, home=tmp_path / "h")
    with pytest.raises(search.SpaceError, match="a built-in family knows its own"):
        search.run({**space, "model": {**space["model"], "family": "mlp"}}, x=X, y=Y, home=tmp_path / "h")


def test_the_plan_says_how_many_trials_run_now_where_the_budget_leaves_fewer(write_space, home, capsys):
    from conftest import run_cli

    path = write_space({"study": {"name": "header", "n_trials": 2, "baseline": False}, "train": {"epochs": 1}})
    assert run_cli("run", path, "--home", home, "--n-trials", "5") == 0
    said = capsys.readouterr()
    assert "budget      2 trials in all, 0 finished, 2 now (of the 5 asked for: the budget leaves 2)" in \
        said.out + said.err


def _depth_builder(settings, input_shape, n_outputs):
    import keras

    x = inputs = keras.Input(input_shape)
    for _ in range(int(settings["depth"])):
        x = keras.layers.Dense(4, activation="relu")(x)
    x = keras.layers.Dropout(settings["dropout"])(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))


def test_a_space_file_of_a_builders_own_settings_runs_and_loads_with_its_builder(tmp_path, capsys):
    """A space file whose model settings are a notebook builder's (depth, regularizers) was refused by
    search.run(path, builder=build) and search.load_space(path), as if its settings were the mlp family's;
    and every API run warned about the pruners the space never named (the defaults looked asked for)."""
    import yaml

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**_space("mine"), "data": {"source": "sklearn:iris"},
                                    "model": {"depth": {"int": [1, 2]}, "dropout": {"float": [0.0, 0.3]},
                                              "regularizers": ["dropout"]}}))
    with pytest.raises(search.SpaceError, match=r"no builder is named \(model.family\) or handed over \(builder=\)"):
        search.load_space(path)
    loaded = search.load_space(path, builder=_depth_builder)
    assert loaded.model["depth"] == {"int": [1, 2]} and loaded.path == path
    capsys.readouterr()
    result = search.run(path, builder=_depth_builder, home=tmp_path / "h", out=io.StringIO())
    assert result.best is not None and result.best.params.keys() == {"model.depth", "model.dropout"}
    err = capsys.readouterr().err
    assert "study.pruner" not in err and "study.split_pruner" not in err, err
    again = search.run(loaded, home=tmp_path / "h2", out=io.StringIO())  # the loaded Space, builder and all
    assert again.best.value == pytest.approx(result.best.value)
    assert "study.split_pruner" not in capsys.readouterr().err
    asked = {**_space("asked", split_pruner="paired"), "model": {"units": 4}}
    search.run(asked, x=X, y=Y, home=tmp_path / "h3", out=io.StringIO())
    assert "study.split_pruner: paired judges a trial between its splits" in capsys.readouterr().err


def test_a_home_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    """home= naming a file ended in NotADirectoryError from pathlib, as the arrays were saved under it."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    with pytest.raises(search.StudyError, match=r"notes.txt is a file, not a folder; .*choose another home="):
        search.run(_space("onfile"), x=X, y=Y, home=afile)
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_tensorflow_retracing_warnings_about_the_trials_own_functions_are_dropped_even_after_the_users_import():
    """A notebook that imported Keras first kept TensorFlow's logging as it was, and from the third run on
    every trial warned "triggered tf.function retracing" about search's own per-trial functions."""
    import logging

    from search._tensorflow import import_quietly

    import_quietly()  # TensorFlow is imported already here, as in a notebook that imported Keras first
    logger = logging.getLogger("tensorflow")

    def passes(message):
        record = logger.makeRecord("tensorflow", logging.WARNING, __file__, 1, message, (), None)
        return all(f.filter(record) for f in logger.filters)

    ours = ("5 out of the last 9 calls to <function _trace_train.<locals>.run at 0x7f> triggered tf.function "
            "retracing. Tracing is expensive")
    assert not passes(ours) and not passes(ours.replace("_trace_train", "_trace_eval"))
    assert passes(ours.replace("_trace_train.<locals>.run", "my_step"))  # the user's own functions still warn


def test_test_rows_paired_by_position_with_named_columns_on_one_side_only_are_warned(tmp_path, capsys):
    """A numpy x with a frame x_test (columns in another order) was scored on the wrong features without a
    word: only two frames are matched by name."""
    frame = _named(["a", "b", "c", "d"])
    search.run(_space("pos"), x=X[::2], y=Y[::2], x_test=frame.iloc[1::2, ::-1], y_test=Y[1::2],
               home=tmp_path / "h", out=io.StringIO())
    err = capsys.readouterr().err
    assert "x_test is a frame with column names and x an array without: their columns are paired by position" \
        in err, err
    search.run(_space("names"), x=frame.iloc[::2], y=Y[::2], x_test=frame.iloc[1::2, ::-1], y_test=Y[1::2],
               home=tmp_path / "h", out=io.StringIO())
    assert "paired by position" not in capsys.readouterr().err


def test_the_plan_and_the_trial_lines_go_where_out_says(tmp_path, capsys):
    """With quiet=False and out=StringIO(), the plan and every trial line still went to standard error."""
    out = io.StringIO()
    search.run(_space("loud"), x=X, y=Y, home=tmp_path / "h", quiet=False, out=out)
    said, err = out.getvalue(), capsys.readouterr().err
    assert "budget      1 trials" in said and "trial 1/1 (#0) complete" in said and "rows: 150 read" in said, said
    assert "trial 1/1" not in err and "budget" not in err, err


def test_a_frames_free_text_column_is_named_as_a_column_of_x(tmp_path):
    """With data.categorical: one_hot a frame goes to a CSV: a free-text column's refusal named field
    'data.source' and "the arrays x and y", not the argument the column came in."""
    frame = _named(["a", "b", "c", "d"]).assign(note=[f"visit {i}" for i in range(len(X))])
    space = {**_space("notes"), "data": {"source": "arrays", "categorical": "one_hot"}}
    with pytest.raises(search.DataError) as caught:
        search.run(space, x=frame, y=Y, home=tmp_path / "h")
    assert "field 'x'" in str(caught.value) and "column 'note' of x is not numeric" in str(caught.value), caught.value
    assert caught.value.field == "x"


def test_an_ablation_is_read_through_its_study_and_no_study_may_be_named_like_one(tmp_path):
    """`search.best('digits.ablation.t00003')` ranked the ablation's variants as if they were the search."""
    from search.errors import SpaceError, StudyError
    from search.reproduction import targets
    from search.space import load

    with pytest.raises(StudyError) as err:
        targets.load_study(f"sqlite:///{tmp_path / 'optuna.db'}", "digits.ablation.t00003")
    assert "the ablation of study 'digits'" in str(err.value)
    assert "`search ablate digits --trial 3`" in str(err.value)
    with pytest.raises(SpaceError, match="how a study's ablation is named"):
        load({"study": {"name": "a.ablation.b"}, "data": {"source": "sklearn:iris"}})
    assert not (tmp_path / "optuna.db").exists()


class _CtrlCAfterTheFirstTrial(io.StringIO):
    """The run's output, which sends the process a Ctrl-C (SIGINT) as the first trial is said: a notebook's
    "interrupt the kernel" in the middle of a run, when the run is listening for it."""

    def write(self, text: str) -> int:
        if "(#0)" in text and "sent" not in self.__dict__:
            self.sent = True
            os.kill(os.getpid(), __import__("signal").SIGINT)
        return super().write(text)


def test_ctrl_c_in_a_notebook_stops_the_run_and_then_the_cell(tmp_path):
    """search.run stopped gracefully on Ctrl-C and returned as if done: a loop of searches in a notebook cell
    went on to its next one, and nothing told a stopped result from a finished one."""
    space = {**_space("halted", n_trials=3), "validation": {"scheme": "kfold", "k": 2}}
    out = _CtrlCAfterTheFirstTrial()
    with pytest.raises(KeyboardInterrupt, match="stopped by Ctrl-C at the end of an epoch; what finished is stored, "
                                                "and search.run\\(space, home="):
        search.run(space, x=X, y=Y, home=tmp_path / "h", out=out, quiet=False)
    assert out.sent
    import optuna

    stored = optuna.load_study(study_name="halted", storage=f"sqlite:///{tmp_path / 'h' / 'optuna.db'}")
    assert len([t for t in stored.trials if t.state.name in ("COMPLETE", "PRUNED")]) < 3
    result = search.run(space, x=X, y=Y, home=tmp_path / "h", out=io.StringIO())  # the same call goes on
    assert result.stopped_by == "" and len(result.study.trials) >= 3
    # A notebook shows what it holds in a line, not the whole space and an Optuna object's address.
    assert repr(result).startswith("RunResult(study='halted' (complete ") and len(repr(result)) < 300, repr(result)
    assert repr(result.best).startswith(f"TrialResult(study='halted', number={result.best.number}, value=")


def test_an_empty_study_name_is_refused_not_ignored(tmp_path):
    with pytest.raises(search.SpaceError, match="field 'study.name'.*found ''"):
        search.run(_space("kept"), x=X, y=Y, study_name="", home=tmp_path / "h", out=io.StringIO())


def test_a_numeric_frame_that_still_holds_its_target_is_refused(tmp_path):
    """x=df, y=df['target']: a frame with a text column was refused for it; one of numbers trained on the
    target among its features, with a leak warning among the output."""
    import pandas as pd

    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(target=Y)
    with pytest.raises(search.DataError, match=r"field 'y': x has a column named 'target', the name of y: the "
                                               r"target among the features; pass x=frame.drop\(columns=\['target'\]\)"):
        search.run(_space("inside"), x=frame, y=frame["target"], home=tmp_path / "h", out=io.StringIO())
    assert not (tmp_path / "h" / "optuna.db").exists()


def test_missing_values_a_model_fills_at_predict_time_are_said_by_column() -> None:
    """A model trained with data.missing: median predicted on empty cells without a word (a column left empty gave
    every row the training median's prediction); one trained with refuse refuses them by name instead."""
    from search.api._predict import _said_filled

    rows = pd.DataFrame({"age": [50.0, np.nan, 61.0], "ward": ["icu", " ", "gen"], "bed": [1, 2, 3]})
    filled, refused = io.StringIO(), io.StringIO()
    _said_filled(rows, {"inputs": {"missing": "filled with the training rows' median (inside the model)"}}, filled)
    _said_filled(rows, {"inputs": {"missing": "none: trained with data.missing: refuse"}}, refused)
    _said_filled(rows.fillna(1.0).assign(ward="gen"), {"inputs": {"missing": "filled with the training rows' median "
                                                                              "(inside the model)"}}, refused)
    assert filled.getvalue() == ("note: 1 of the 3 rows have missing values ('age' 1, 'ward' 1), filled with the "
                                 "training rows' median (inside the model), as in training\n"), filled.getvalue()
    assert refused.getvalue() == ""
