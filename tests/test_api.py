"""The Python API: the documented notebook session runs as written; typed results; errors before storing."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import search

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_the_documented_notebook_session_runs_as_written(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:  # as written, but with the stores under the test's folder
        block = block.replace('home = Path("mlruns")', f'home = Path({str(tmp_path / "mlruns")!r})')
        exec(compile(block, str(DOC), "exec"), namespace)
    result, final = namespace["result"], namespace["final"]
    said = capsys.readouterr()
    # The API's copy of the space, and the trials' resolved configs, hold no setting the example did not give.
    assert "is not used by scheme" not in said.out + said.err
    assert "repeats" not in result.best.config.to_yaml()
    # The settings as the builder got them, by section, beside Optuna's dotted names.
    assert result.best.settings["model"]["units"] == result.best.params["model.units"]
    assert set(result.best.settings) == {"model", "train"} and "learning_rate" in result.best.settings["train"]
    assert isinstance(result, search.RunResult) and isinstance(result.best, search.TrialResult)
    assert result.study.study_name == "notebook" and len(result.study.trials) == 3
    assert result.best.config.study.seed_trial == result.best.number
    # Dropout is the one declared regularizer: the picked trial is ablated by switching it off, unless it is
    # already off (the baseline won), when there is nothing to switch off.
    dropout_on = result.best.config.model["dropout"] > 0
    assert [row.label for row in result.ablation] == (["all regularizers"] if dropout_on else [])
    assert isinstance(final, search.Report) and np.isfinite(final.test_loss)
    # The arrays were saved under home, so the command can continue from the same store.
    saved = list((tmp_path / "mlruns" / "data").glob("notebook-*.npz"))
    assert len(saved) == 1
    # The API names its own argument where the command names its flag.
    with pytest.raises(search.StudyError, match="field 'out': cannot write the report .*another place with out"):
        search.report("notebook", tmp_path, home=tmp_path / "mlruns")
    # The logged model's generic form takes rows of numbers of any type: the arrays have no column names to
    # check, and a float64 tensor signature had refused int and float32 rows.
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    try:
        served = mlflow.pyfunc.load_model(f"runs:/{final.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    rows = np.round(namespace["X"][:5])
    expected = final.model.predict(rows, verbose=0)
    for dtype in (np.int64, np.float32, np.float64):
        np.testing.assert_allclose(np.asarray(served.predict(rows.astype(dtype))), expected, rtol=1e-5)
    rows[1, 2] = np.nan  # no data.missing fill in the model: named, not predicted as NaN
    with pytest.raises(ValueError, match=re.escape("missing values in 'column 2' (first in row 1, counting from 0)")):
        served.predict(rows)


def test_public_names_and_a_cheap_import():
    code = ("import sys, search; assert 'tensorflow' not in sys.modules and 'optuna' not in sys.modules; "
            "print(sorted(search.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("run", "best", "reproduce", "ablate", "report", "Space", "load_space", "RunResult",
                 "TrialResult", "UserError", "__version__"):
        assert name in out
    for name in search.__all__:
        assert getattr(search, name) is not None


def test_api_errors_are_user_errors_and_store_nothing(tmp_path, capsys):
    space = search.load_space(Path(__file__).resolve().parents[1] / "spaces" / "digits_mlp.yaml")
    with pytest.raises(search.SpaceError, match="x and y"):
        search.run(space, x=np.zeros((10, 2)), home=tmp_path / "h")
    with pytest.raises(search.StudyError, match="no study store") as caught:
        search.best("nope", home=tmp_path / "h2")
    # Named as the call's keyword arguments, not as the command's options: the home given, not storage=.
    assert "argument 'home'" in str(caught.value) and "check home= (or storage=)" in str(caught.value)
    assert "--" not in str(caught.value) and caught.value.field == "home"
    # Raised from the call: a notebook showed 4 to 10 of this package's frames above the message.
    assert [Path(str(entry.path)).name for entry in caught.traceback] == ["test_api.py", "_errors.py"]
    with pytest.raises(search.SpaceError, match=r"field 'data.source': unknown scikit-learn data set; expected "
                                                r"sklearn:digits \| .*found 'sklearn:irs'"):
        search.load_space({**space.as_data(), "data": {"source": "sklearn:irs"}})  # said before any run
    # The command keeps its own words for the same mistake, also where it goes through this API (ablate).
    from conftest import run_cli

    capsys.readouterr()
    assert run_cli("ablate", "nope", "--home", tmp_path / "h2") == 2
    assert "check --home (or --storage)" in capsys.readouterr().err
    # Arguments the command's parser would refuse are refused before a test-set look is spent.
    for kwargs in ({"epochs": 0}, {"ensemble": 0}, {"trial": -1}, {"threads": 0}):
        with pytest.raises(search.UserError, match=f"field '{next(iter(kwargs))}'"):
            search.reproduce("nope", home=tmp_path / "h2", **kwargs)
    with pytest.raises(search.UserError, match="field 'timeout'"):
        search.run(space, timeout=-5, home=tmp_path / "h")
    with pytest.raises(search.StudyError, match=f"no study store at {Path.home()}/search-nowhere-"):
        search.best("nope", home="~/search-nowhere-4711")  # a notebook's "~" is the home folder, as in a shell
    assert not (tmp_path / "h").exists()
    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    x[5, 1] = np.nan
    with pytest.raises(search.DataError, match=r"x has 1 missing \(NaN\) or infinite value\(s\), the first at index "
                                               r"\(5, 1\)") as caught:
        search.run(space, x=x, y=y, home=tmp_path / "h3")
    assert "field 'x'" in str(caught.value) and ".npz" not in str(caught.value)
    assert "or set data.missing: median" in str(caught.value)
    from search import api  # where data.missing fills them, missing features are the data checks' to count
    made: list[Path] = []
    assert api._save_arrays(tmp_path / "h4", "filled", x, y, ("x", "y"), made, fills=True)[0].is_file()
    x_inf = np.nan_to_num(x)
    x_inf[2, 0] = np.inf
    with pytest.raises(search.DataError, match=r"x has 1 missing \(NaN\) or infinite value\(s\), the first at index "
                                               r"\(2, 0\)"):
        api._save_arrays(tmp_path / "h4", "inf", x_inf, y, ("x", "y"), made, fills=True)
    with pytest.raises(search.DataError, match="field 'y'"):
        search.run(space, x=np.nan_to_num(x), y=np.where(np.arange(40) == 3, np.nan, y), home=tmp_path / "h3")
    # Rows that do not match are named by the arguments, not by the files they would have gone to.
    with pytest.raises(search.DataError, match="x has 40 rows but y has 39") as caught:
        search.run(space, x=np.nan_to_num(x), y=y[:-1], home=tmp_path / "h3")
    assert "field 'y'" in str(caught.value) and ".npz" not in str(caught.value)
    with pytest.raises(search.DataError, match=r"the rows of x_test have shape \[2\] but those of x have \[3\]") \
            as caught:
        search.run(space, x=np.nan_to_num(x), y=y, x_test=x[:5, :2], y_test=y[:5], home=tmp_path / "h3")
    assert "field 'x_test'" in str(caught.value) and ".npz" not in str(caught.value)
    # Refused after the arrays were written (too few rows for the folds): they are taken back.
    with pytest.raises(search.UserError):
        search.run(space, x=np.nan_to_num(x)[:4], y=y[:4], home=tmp_path / "h3")
    assert not (tmp_path / "h3").exists()


def test_a_builder_handed_over_in_a_notebook_runs_and_reproduces_from_python(tmp_path):
    """A function defined in the session: the command cannot import it, so the next step named is Python's."""
    import io

    import keras

    from search import models

    def build(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        hidden = keras.layers.Dense(int(settings["width"]), activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(hidden))

    space = search.load_space(Path(__file__).resolve().parents[1] / "spaces" / "digits_mlp.yaml")
    raw = space.model_dump(mode="json")
    raw["data"] = {"source": "sklearn:iris", "test_size": 0.2}
    raw["study"].update(name="own", n_trials=1, baseline=False, ablation=False)
    raw["validation"] = {"scheme": "holdout", "fraction": 0.3}
    raw["model"] = {"family": "mlp", "width": {"int": [4, 8]}}
    raw["train"] = {"epochs": 2, "batch_size": 32}
    out = io.StringIO()
    result = search.run(search.Space.model_validate(raw), builder=build, home=tmp_path / "h", out=out)
    assert result.best is not None and result.best.config.model["width"] in range(4, 9)
    assert models.only_in_this_process(result.best.config.model["family"])
    assert not models.only_in_this_process(models.register_builder(np.mean))  # importable by its name
    steps = out.getvalue().split("next steps:")[1]
    call = f"search.reproduce('own', home='{tmp_path / 'h'}', builder=build)"
    assert f"{call}   in Python where build is defined" in steps
    assert "search reproduce" not in steps
    report = search.reproduce("own", home=tmp_path / "h", out=io.StringIO())
    assert np.isfinite(report.test_loss)


def test_pandas_frames_and_series_are_taken_as_a_notebook_holds_them(tmp_path):
    """get_dummies' bool columns, nullable integers, category and string labels: numbers and labels, as in a CSV."""
    import pandas as pd

    from search import api
    from search.runner import session

    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"size": pd.array(rng.integers(0, 9, 60), dtype="Int64"),
                        "colour": rng.choice(["red", "green", "blue"], 60),
                        "label": pd.Series(rng.choice(["yes", "no"], 60)).astype("category")})
    x = pd.get_dummies(raw[["size", "colour"]])
    path, _ = api._save_arrays(tmp_path, "frame", x, raw["label"], ("x", "y"), [])
    with np.load(path) as saved:
        assert saved["X"].dtype == np.float64 and saved["X"].shape == (60, 4)
        assert saved["y"].tolist() == raw["label"].astype(str).tolist()
    space = search.load_space(Path(__file__).resolve().parents[1] / "spaces" / "digits_mlp.yaml").model_dump()
    space["data"] = {"source": f"npz:{path}", "test_size": 0.2}
    prepared = session.prepare(search.Space.model_validate(space))
    assert prepared.dataset.task == "binary" and prepared.dataset.input_shape == (4,)
    # The frame's column names travel with the rows: the final model's reproduce.json names its inputs.
    assert prepared.dataset.feature_names == list(x.columns)
    with pytest.raises(search.SpaceError, match=r"x's column\(s\) 'colour' are not numeric.*get_dummies"):
        api._save_arrays(tmp_path, "text", raw[["size", "colour"]], raw["label"], ("x", "y"), [])


def test_the_public_functions_annotations_resolve():
    """typing.get_type_hints (IDEs, sphinx, pydantic's validate_call) raised NameError: keras, AblationRow and
    Report were imported for the type checker only."""
    import typing

    import keras
    import optuna

    from search.reproduction.ablation import AblationRow
    from search.reproduction.final import Report

    hints = {f.__name__: typing.get_type_hints(f) for f in (search.run, search.best, search.reproduce, search.ablate,
                                                             search.report, search.load_space)}
    assert hints["reproduce"]["return"] is Report and hints["ablate"]["return"] == list[AblationRow]
    assert typing.get_args(hints["run"]["builder"])[0] == typing.Callable[..., keras.Model]
    assert typing.get_type_hints(search.TrialResult.split_models)["return"] == list[keras.Model]
    assert typing.get_type_hints(search.RunResult)["study"] is optuna.Study


def test_callbacks_hear_each_trial_as_optunas_do_and_can_stop_the_run(tmp_path):
    """search.run took no callbacks=: a notebook could not watch trials end, stop on a good enough score, or send
    a message, as Optuna's optimize(callbacks=) lets it."""
    import sqlite3

    import optuna

    from conftest import TINY, merge

    raw = merge(TINY, {"study": {"name": "heard", "n_trials": 3, "baseline": False}, "train": {"epochs": 2}})
    with pytest.raises(search.UserError, match=r"field 'callbacks\[1\]'.*found 3"):
        search.run(raw, home=tmp_path, callbacks=[print, 3])
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before anything was stored

    heard: list[tuple[str, int, str, float]] = []

    def note(study, trial):
        heard.append((study.study_name, trial.number, trial.state.name, trial.value))

    def enough(study, trial):
        if trial.number == 1:
            study.stop()

    result = search.run(raw, home=tmp_path, callbacks=[note, enough])
    assert [(n, s) for _, n, s, _ in heard] == [(0, "COMPLETE"), (1, "COMPLETE")]
    stored = optuna.load_study(study_name="heard", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.value for t in stored.trials] == [v for *_, v in heard]  # told before the callback heard it
    assert result.stopped_by == "study.stop() in a callback" and not result.budget_spent
    assert not result.ablation  # a stop leaves the ablation for the run that spends the budget

    class Broken(RuntimeError):
        pass

    def broken(study, trial):
        raise Broken(f"a message service is down (trial {trial.number})")

    with pytest.raises(Broken, match=r"trial 2\)"):  # as Optuna's optimize raises it, after the trial is told
        search.run(raw, home=tmp_path, callbacks=broken)
    stored = optuna.load_study(study_name="heard", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state.name for t in stored.trials] == ["COMPLETE"] * 3
    with sqlite3.connect(tmp_path / "mlflow.db") as con:  # the stores were closed all the same
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone() == (0,)


def test_a_strangers_wrong_calls_are_refused_before_anything_is_stored(tmp_path):
    """A stranger's notebook: each of these trained a trial (or wrote the arrays) before failing with a raw
    AttributeError, TypeError or IndexError, or failed with words about something else."""
    import scipy.sparse

    from conftest import TINY, merge

    raw = merge(TINY, {"study": {"name": "wrong", "n_trials": 1}, "data": None})
    x, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    home = tmp_path / "h"
    refused = [
        ({"out": "log.txt"}, search.ArgumentError, r"field 'out': .*out=open\('log.txt', 'w'\)"),
        ({"quiet": "False"}, search.ArgumentError, r"field 'quiet': quiet is True or False, found 'False'"),
        ({"callbacks": [lambda trial: None]}, search.ArgumentError,
         r"field 'callbacks\[0\]': each callback is called as callback\(study, trial\)"),
        ({"storage": "notaurl://x"}, search.StudyError, r"argument 'storage'.*'notaurl'"),
        ({"x": scipy.sparse.csr_matrix(x)}, search.DataError, r"x is a scipy sparse matrix .*pass x.toarray\(\)"),
    ]
    for kwargs, kind, words in refused:
        with pytest.raises(kind, match=words):
            search.run(raw, **{"x": x, "y": y, **kwargs}, home=home)
        assert not home.exists(), kwargs  # not the arrays, not a study
    with pytest.raises(search.SpaceError, match=r"field 'x, y': in-memory data needs both x and y; y was given"):
        search.run(raw, y=y, home=home)
    with pytest.raises(search.SpaceError, match=r"field 'data': the space has no data section, and no rows were "
                                                r"passed: .*or pass the rows as x= and y="):
        search.run(raw, home=home)
    import pandas as pd

    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(c=lambda f: f["c"].map(lambda v: f"{v:.3f}"))
    with pytest.raises(search.SpaceError, match=r"column\(s\) 'c' hold numbers written as text \(such as '0\.\d+'\); "
                                                r"make them numbers first: .*pd.to_numeric"):
        search.run(raw, x=frame, y=y, home=home)
    assert not home.exists()


def test_predict_takes_the_rows_a_model_trained_on_arrays_or_unnamed_frame_columns_takes(tmp_path):
    """search.predict refused every study trained on arrays ("takes images, not a table's rows"), and the very
    frame a study was trained on where its column names were numbers ("lack column(s) '0', ..., found 0, ...")."""
    import pandas as pd

    from conftest import TINY, merge

    raw = merge(TINY, {"study": {"n_trials": 1, "baseline": False}, "data": None, "train": {"epochs": 1},
                       "validation": {"k": 2}})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    for name, given in (("arrays", x), ("numbered", pd.DataFrame(x))):
        search.run(merge(raw, {"study": {"name": name}}), x=given, y=y, home=tmp_path)
        report = search.reproduce(name, home=tmp_path, epochs=1, out=__import__("io").StringIO())
        # MLflow's pyfunc form takes names as text: pd.DataFrame(x)'s 0, 1, 2 it refuses (its own schema check)
        named = pd.DataFrame(x[:5], columns=["0", "1", "2"])
        expected = np.asarray(report.load_model().predict(named), dtype=float).reshape(-1)
        framed = search.predict(name, pd.DataFrame(x[:5]), home=tmp_path)
        np.testing.assert_allclose(framed["p(1)"], expected, rtol=1e-5)
        assert framed.attrs["predicted"] == ["p(0)", "p(1)", "predicted"]
        with pytest.raises(search.ArgumentError, match=r"argument .rows.: .*one row of a Series is rows.to_frame"):
            search.predict(name, pd.Series(x[0]), home=tmp_path)
        if name == "arrays":  # columns by position: an array, a frame, a CSV file of that many columns
            np.testing.assert_allclose(search.predict(name, x[:5], home=tmp_path)["p(1)"], expected, rtol=1e-5)
            pd.DataFrame(x[:5], columns=["u", "v", "w"]).to_csv(tmp_path / "rows.csv", index=False)
            np.testing.assert_allclose(search.predict(name, tmp_path / "rows.csv", home=tmp_path)["p(1)"], expected,
                                       rtol=1e-4)
            with pytest.raises(search.DataError, match=r"argument 'rows': .*trained on arrays of 3 columns, taken "
                                                       r"by position .*and the rows have 2"):
                search.predict(name, x[:5, :2], home=tmp_path)
        else:  # columns by name: an array has none
            with pytest.raises(search.DataError, match=r"argument 'rows': the rows are an array, whose columns have "
                                                       r"no names.*pd.DataFrame\(rows, columns=\[...\]\)"):
                search.predict(name, x[:5], home=tmp_path)
    with pytest.raises(search.StudyError, match=r"argument 'run_id': cannot read a final model from run abc"):
        search.predict("arrays", x[:5], home=tmp_path, run_id="abc")
