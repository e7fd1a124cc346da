"""Bad inputs through the real CLI: one clear ``error:`` paragraph, exit code 2, and nothing stored lost.

A module-level fixture runs one real tiny study (1 trial) into a shared ``--home``; every bad input
below then runs against that same home, and each test checks afterwards that the Optuna and MLflow
SQLite files are byte-identical and that no file under home appeared or disappeared.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, merge, run_cli
from search.errors import SpaceError

STUDY = "stored"


def _snapshot(home: Path) -> dict[str, Any]:
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    hashes = {name: hashlib.sha256((home / name).read_bytes()).hexdigest() for name in ("optuna.db", "mlflow.db")}
    return {"files": files, "hashes": hashes}


def _frame(n_per_class: tuple[int, ...] = (20, 20, 20), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return pd.DataFrame({"a": rng.normal(size=len(labels)), "b": rng.normal(size=len(labels)), "label": labels})


def _write_space(folder: Path, overrides: dict[str, Any], name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(merge(TINY, overrides), sort_keys=False))
    return path


@dataclass
class Store:
    folder: Path       # holds the stored study's data and space file
    home: Path
    csv: Path
    space: Path
    before: dict[str, Any]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("stored")
    csv = folder / "data.csv"
    _frame().to_csv(csv, index=False)
    space = _write_space(folder, {"study": {"name": STUDY},
                                  "data": {"source": f"csv:{csv}", "target": "label"},
                                  "train": {"epochs": 1}})
    home = folder / "home"
    assert run_cli("run", space, "--home", home, "--n-trials", "1", "--quiet") == 0
    before = _snapshot(home)
    assert {"optuna.db", "mlflow.db"} <= set(before["files"])
    assert any(f.endswith(".keras") for f in before["files"])  # the trial really trained and stored
    return Store(folder, home, csv, space, before)


# ---------------------------------------------------------------------------------------------
# The cases: each builds a bad space file (and its data) in ``tmp`` and returns its path.

Builder = Callable[[Path, Store], Path]


def _space(overrides: dict[str, Any]) -> Builder:
    return lambda tmp, store: _write_space(tmp, overrides)


def _csv_space(frame: pd.DataFrame, data: dict[str, Any], other: dict[str, Any] | None = None) -> Builder:
    def build(tmp: Path, store: Store) -> Path:
        csv = tmp / "bad.csv"
        frame.to_csv(csv, index=False)
        return _write_space(tmp, merge({"data": {"source": f"csv:{csv}", **data}}, other or {}))

    return build


def _text(text: str) -> Builder:
    def build(tmp: Path, store: Store) -> Path:
        path = tmp / "space.yaml"
        path.write_text(text)
        return path

    return build


def _bytes(tmp: Path, data: bytes) -> Path:
    path = tmp / "space.yaml"
    path.write_bytes(data)
    return path


def _missing_file(tmp: Path, store: Store) -> Path:
    return tmp / "no_such_space.yaml"


def _npz_without_y(tmp: Path, store: Store) -> Path:
    npz = tmp / "bad.npz"
    np.savez(npz, X=np.zeros((10, 3)), answers=np.zeros(10))
    return _write_space(tmp, {"data": {"source": f"npz:{npz}"}})


def _changed_data(tmp: Path, store: Store, change: Any = None) -> Path:
    frame = pd.read_csv(store.csv)
    if change is None:
        frame.loc[0, "a"] += 1.0  # one value in one row: a different data set
    else:
        frame = change(frame)
    csv = tmp / "data.csv"
    frame.to_csv(csv, index=False)
    text = store.space.read_text().replace(str(store.csv), str(csv))
    assert str(csv) in text
    path = tmp / "space.yaml"
    path.write_text(text)
    return path


def _builder(body: str, source: str | None = None) -> Builder:
    """A space whose model is ``python:mynet:build``, the function below (iris: 3 classes, 4 features)."""
    def build(tmp: Path, store: Store) -> Path:
        (tmp / "mynet.py").write_text("import keras\n\n\ndef build(settings, input_shape, n_outputs):\n"
                                      + "".join(f"    {line}\n" for line in body.splitlines()))
        return _write_space(tmp, {"model": {"family": "python:mynet:build", "dropout": None,
                                            "units": {"int": [4, 8]}}, **({"data": {"source": source}}
                                                                           if source else {})})

    return build


def _with_string_column() -> pd.DataFrame:
    frame = _frame()
    frame["colour"] = ["red", "green", "blue"] * 20
    return frame


def _with_missing_value() -> pd.DataFrame:
    frame = _frame()
    frame.loc[7, "b"] = np.nan
    return frame


def _regression_rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.normal(size=n)})


# (id, builder, field or None, substrings the message must hold)
CASES: list[tuple[str, Builder, str | None, list[str]]] = [
    ("missing-space-file", _missing_file, None, ["does not exist"]),
    ("invalid-yaml", _text("study:\n  name: x\n data: [\n"), None, ["not valid YAML", "line"]),
    ("yaml-list", _text("- study\n- data\n"), None, ["must be a mapping", "found 'list'"]),
    ("yaml-key-twice", _text("study:\n  name: x\ntrain:\n  epochs: 1\n  epochs: 500\n"), None,
     ["has a key given twice at line 5", "the key 'epochs' is given twice"]),
    ("missing-study-name", _space({"study": {"name": None}}), "study.name", ["required", "missing"]),
    ("unknown-section", _space({"training": {"epochs": 3}}), "training",
     ["unknown field", "expected one of study, data, validation, model, train"]),
    ("unknown-model-setting", _space({"model": {"dropuot": 0.1}}), "model.dropuot",
     ["unknown setting", "dropout", "found 'dropuot'"]),
    ("fixed-dropout-1.5", _space({"model": {"dropout": 1.5}}), "model.dropout",
     ["expected a float in [0, 1)", "found 1.5"]),
    ("a-list-as-a-search", _space({"model": {"units": [8, 16, 32]}}), "model.units",
     ["a list is not a search", "{choice: [8, 16, 32]}", "{int: [low, high]}"]),
    ("enqueue-outside-the-range", _space({"study": {"enqueue": [{"dropout": 0.9}]}}), "study.enqueue[0].dropout",
     ["outside the searched range", "[0, 0.5]"]),
    ("low-above-high", _space({"model": {"dropout": {"float": [0.5, 0.1]}}}), "model.dropout",
     ["low is above high", "found [0.5, 0.1]"]),
    ("log-range-low-0", _space({"model": {"l1": {"float": [0.0, 0.1], "log": True}}}), "model.l1",
     ["log-scaled range needs low > 0", "found [0.0, 0.1]"]),
    ("regularizer-cannot-switch-off", _space({"model": {"l2": {"float": [1e-5, 1e-1], "log": True}}}),
     "model.l2", ["must be able to switch off", "or_off: true"]),
    ("unknown-family", _space({"model": {"family": "transformer"}}), "model.family",
     ["unknown model family", "expected one of mlp", "found 'transformer'"]),
    ("custom-family-no-module", _space({"model": {"family": "python:nosuchmodule:build"}}), "model.family",
     ["cannot import module 'nosuchmodule'"]),
    ("builder-output-misfits-task",
     _builder("i = keras.Input(input_shape)\nreturn keras.Model(i, keras.layers.Dense(1)(i))"),
     "model.family", ["does not fit this multiclass task", "3 outputs (a softmax", "found 'output shape (1,)'"]),
    ("builder-two-unit-softmax-for-two-classes",
     _builder("i = keras.Input(input_shape)\nreturn keras.Model(i, keras.layers.Dense(2, activation='softmax')(i))",
              "sklearn:breast_cancer"),
     "model.family", ["does not fit this binary task", "a two-unit softmax is the same model",
                      "Dense(n_outputs, activation='sigmoid' if n_outputs == 1 else 'softmax')"]),
    ("builder-reads-a-misspelt-setting", _builder("return settings['unts']"), "model.family",
     ["the builder python:mynet:build failed", "'units': 6", "KeyError: 'unts'"]),
    ("builder-returns-none", _builder("return None"), "model.family", ["returned NoneType, not a keras.Model"]),
    ("group-kfold-on-a-bundled-set", _space({"validation": {"scheme": "group_kfold"}}), "validation.scheme",
     ["the bundled set sklearn:", "has none", "expected kfold or iterated_kfold"]),
    ("test-size-1.5", _space({"data": {"test_size": 1.5}}), "data.test_size",
     ["expected a number below 1", "found 1.5"]),
    ("test-size-0", _space({"data": {"test_size": 0}}), "data.test_size",
     ["every study holds test rows out", "name the test rows' file as data.test", "found 0"]),
    ("holdout-fraction-0", _space({"validation": {"scheme": "holdout", "fraction": 0}}), "validation.fraction",
     ["out of range; expected a number above 0", "found 0"]),
    ("time-series-shuffle", _space({"validation": {"scheme": "time_series", "shuffle": True}}),
     "validation.shuffle", ["keeps time order", "found True"]),
    ("stratified-k-above-smallest-class",
     _csv_space(_frame((20, 20, 2)), {"target": "label"}, {"validation": {"scheme": "kfold", "k": 3}}),
     "validation.k", ["stratified 3-fold", "class 2", "expected stratify: false, or more rows of that", "found 3"]),
    ("two-targets", _csv_space(_regression_rows(30), {"target": ["y", "a"]}), "data.target",
     ["multi-output regression) are not searched", "one study per target", "found ['y', 'a']"]),
    ("fewer-rows-than-folds", _csv_space(_regression_rows(10), {"target": "y"}, {"validation": {"k": 20}}),
     "validation.k", ["20 folds need at least 20 development rows; there are 8", "expected k <= 8", "found 20"]),
    ("time-series-fewer-rows-than-folds",
     _csv_space(_regression_rows(10), {"target": "y"}, {"validation": {"scheme": "time_series", "k": 20}}),
     "validation.k", ["cannot split 8 development rows: 20 folds need at least 21 of them", "expected k <= 7",
                      "found 20"]),
    ("group-kfold-without-group", _csv_space(_frame(), {"target": "label"},
                                             {"validation": {"scheme": "group_kfold", "k": 3}}), "data.group",
     ["group_kfold needs a group column", "expected data.group"]),
    ("csv-without-target", _csv_space(_frame(), {}), "data.target",
     ["needs the name of its target column", "expected one of a, b, label"]),
    ("csv-target-not-a-column", _csv_space(_frame(), {"target": "species"}), "data.target",
     ["no such column", "expected one of a, b, label", "found 'species'"]),
    ("csv-non-numeric-feature", _csv_space(_with_string_column(), {"target": "label"}), "data.source",
     ["column 'colour'", "not numeric", "expected numbers", "found 'red'"]),
    ("csv-missing-values", _csv_space(_with_missing_value(), {"target": "label"}), "data.source",
     ["column 'b'", "1 missing value"]),
    ("order-column-text-not-dates", _csv_space(_frame().assign(when=[f"week {i}" for i in range(60)]),
                                               {"target": "label", "order": "when"}), "data.order",
     ["order column 'when'", "not a date", "found 'week 0'"]),
    ("npz-without-y", _npz_without_y, "data.source", ["arrays named X and y", "found ['X', 'answers']"]),
    ("unknown-sklearn-set", _space({"data": {"source": "sklearn:mnist"}}), "data.source",
     ["unknown scikit-learn data set", "sklearn:iris", "found 'sklearn:mnist'"]),
    ("scikit-learn-splitter-name", _space({"validation": {"scheme": "RepeatedStratifiedKFold"}}), "validation.scheme",
     ["Input should be 'holdout', 'kfold'", "(did you mean 'iterated_kfold'?)"]),
    ("misspelt-field", _space({"data": {"test_sise": 0.3}}), "data.test_sise",
     ["unknown field", "(did you mean 'test_size'?)"]),
    ("misspelt-setting", _space({"model": {"droput": 0.3}}), "model.droput",
     ["unknown setting (did you mean 'dropout'?)"]),
    ("train-setting-under-model", _space({"model": {"learning_rate": 0.01}}), "model.learning_rate",
     ["unknown setting of model; learning_rate is a train setting: move it under train"]),
    ("grid-float-without-step", _space({"study": {"sampler": "grid"}}), "model.dropout",
     ["grid sampler needs a finite grid", "'step'"]),
    # A step was the advice, and Optuna refuses a step with log: the points are listed instead.
    ("grid-log-float", _space({"study": {"sampler": "grid"}, "model": {"dropout": 0.1, "l2": {
        "float": [1e-4, 1e-2], "log": True, "or_off": True}}}), "model.l2",
     ["a log-scaled range takes no 'step'", "{choice: [0.0, 0.0001, 0.00046, 0.0022, 0.01]}"]),
    # Optuna trimmed it to [8, 56] and said so in its own words at every trial; `search check` passed it.
    ("a-step-that-does-not-divide-the-range", _space({"model": {"units": {"int": [8, 60], "step": 8}}}),
     "model.units", ["the step 8 does not divide the range [8, 60]", "56 or 64"]),
    # What a stranger's space file says that would otherwise mean something else once trials run.
    ("or-off-on-a-setting-that-cannot-be-0",
     _space({"train": {"batch_size": {"int": [16, 64], "or_off": True}}}), "train.batch_size.or_off",
     ["switch this setting off, to 0, which it cannot be", "an int in [1, 1e+06]"]),
    ("default-not-among-the-choices",
     _space({"train": {"optimizer": {"choice": ["adam", "sgd"], "default": "rmsprop"}}}),
     "train.optimizer.default", ["not one of the choices", "found 'rmsprop'"]),
    ("default-outside-the-range", _space({"train": {"learning_rate": {"float": [1e-4, 1e-2], "default": 5}}}),
     "train.learning_rate.default", ["outside the range", "found 5"]),
    ("nan-bound", _text("study: {name: x}\ndata: {source: 'sklearn:iris'}\n"
                        "train: {learning_rate: {float: [.nan, 0.1]}}\n"), "train.learning_rate",
     ["two finite numbers"]),
    ("nan-value", _text("study: {name: x}\ndata: {source: 'sklearn:iris'}\ntrain: {learning_rate: .nan}\n"),
     "train.learning_rate", ["a finite number", "found nan"]),
    ("fractional-int-step", _space({"model": {"units": {"int": [4, 8], "step": 0.5}}}), "model.units.step",
     ["whole number", "found 0.5"]),
    ("step-wider-than-range", _space({"model": {"dropout": {"float": [0.0, 0.5], "step": 2}}}), "model.dropout.step",
     ["wider than the range", "at most 0.5"]),
    ("log-as-text", _space({"train": {"learning_rate": {"float": [1e-4, 1e-2], "log": "false"}}}),
     "train.learning_rate.log", ["expected true or false", "found 'false'"]),
    ("negative-seed", _space({"study": {"seed": -1}}), "study.seed", ["expected a number at least 0", "found -1"]),
    ("yes-as-a-count", _text("study: {name: x, n_trials: yes}\ndata: {source: 'sklearn:iris'}\n"),
     "study.n_trials", ["yes, no, on and off", "found True"]),
    ("octal-looking-batch-size-is-decimal-and-base-60-is-text",
     _text("study: {name: x}\ndata: {source: 'sklearn:iris'}\ntrain: {epochs: 010, batch_size: 1:04}\n"),
     "train.batch_size", ["found '1:04'"]),
    ("number-as-study-name", _text("study: {name: 2024}\ndata: {source: 'sklearn:iris'}\n"), "study.name",
     ["quote it (name: '2024')"]),
    # YAML's unquoted no and on where text belongs (a column named no, a pruner switched off), and a column named
    # 1.0: pydantic's "Input should be a valid string, found False" said neither why nor what to write.
    ("no-as-a-column-name", _text("study: {name: x}\ndata: {source: 'sklearn:iris', drop: [no]}\n"), "data.drop.0",
     ["YAML reads an unquoted yes, no, on, off, true or false as false: quote the text", "found False"]),
    ("off-as-a-pruner", _text("study: {name: x, pruner: off}\ndata: {source: 'sklearn:iris'}\n"), "study.pruner",
     ["'successive_halving' or 'none' (YAML reads an unquoted yes, no, on, off"]),
    ("a-number-as-a-column-name", _text("study: {name: x}\ndata: {source: 'sklearn:iris', drop: [1.0]}\n"),
     "data.drop.0", ["YAML read 1.0 as a number: quote it as the file writes it (e.g. '1.0')"]),
    ("study-name-with-a-space", _space({"study": {"name": "my study"}}), "study.name",
     ["ASCII letters (a-z, A-Z), digits", "found 'my study'"]),
    ("empty-file", _text("# nothing here yet\n"), None, ["the space file is empty"]),
    ("null-setting", _text("study: {name: x}\ndata: {source: 'sklearn:iris'}\ntrain: {learning_rate: ~}\n"),
     "train.learning_rate", ["empty (YAML's null)", "default (0.001)"]),
    # A stranger's space files (each once a message that named neither the cause nor the fix).
    ("misspelled-required-section", _text("studdy: {name: x}\ndata: {source: 'sklearn:iris'}\n"), "study",
     ["required field is missing; the file has 'studdy' there instead (a misspelling of 'study'?)"]),
    ("capitalized-family", _space({"model": {"Family": "mlp"}}), "model.Family",
     ["did you mean 'family'?", "expected one of family, layers"]),
    ("test-size-leaves-too-few-rows", _space({"data": {"test_size": 0.95}}), "validation.k",
     ["of the 149 rows are held out for the final test: a smaller data.test_size leaves more"]),
    ("utf16-without-a-mark-is-not-utf8", lambda tmp, store: _bytes(tmp, "study: {name: x}\n".encode("utf-16-le")),
     None, ["is not UTF-8 text", "save it as UTF-8"]),
    ("a-folder-as-the-space-file", lambda tmp, store: tmp, None, ["is a folder, not a space file"]),
    # The study's name where its space file was asked for (`search run churn`): the file beside it is named.
    ("a-study-name-for-its-space-file", lambda tmp, store: _text("study: {name: x}\n")(tmp, store).with_suffix(""),
     None, ["space: the space file does not exist; did you mean", "space.yaml'? (a study is continued by running its "
            "space file again)"]),
    ("indentation-slip",
     _text("study:\n  name: x\ndata:\n  source: 'sklearn:iris'\nmodel:\n  units: 8\n dropout: 0.1\n"), None,
     ["not valid YAML at line 7", "a key indented less or more than the keys beside it"]),
    ("continued-on-changed-data", _changed_data, "data.source",
     [f"study '{STUDY}' was started with different data (the same number of rows and the same columns: some "
      "values differ, or the rows' order", "data_fingerprint"]),
    # What differs, where the stored summary tells: rows appended (an export of a later day), a column more.
    ("continued-on-more-rows-and-a-new-column",
     lambda tmp, store: _changed_data(tmp, store, lambda f: pd.concat([f, f.iloc[:5].assign(a=lambda g: g["a"] + 9)],
                                                                      ignore_index=True).assign(extra=1.5)),
     "data.source", ["was started with different data (", " rows then, ", " now; column(s) 'extra' new; "
                     "data_fingerprint"]),
]


@pytest.mark.parametrize("build, field, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_stores_nothing(build: Builder, field: str | None, needles: list[str],
                                                         store: Store, tmp_path: Path, capsys) -> None:
    space = build(tmp_path, store)
    capsys.readouterr()
    code = run_cli("run", space, "--home", store.home, "--n-trials", "1", "--quiet")
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("error: "), err
    assert str(space) in err, err
    if field is not None:
        assert f"field '{field}'" in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err  # one paragraph, nothing else on stderr
    assert _snapshot(store.home) == store.before


@pytest.mark.parametrize("name", ["../elsewhere", ""])
def test_a_study_name_given_on_the_command_line_is_named_as_the_option(name: str, store: Store, capsys) -> None:
    capsys.readouterr()
    assert run_cli("run", store.space, "--home", store.home, "--study-name", name, "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: field '--study-name': a study name is") and f"found {name!r}" in err, err
    assert _snapshot(store.home) == store.before


def test_numbers_written_without_a_dot_are_numbers(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` as a string; everyone writing a learning rate means the number."""
    from search import space as spaces

    path = tmp_path / "space.yaml"
    path.write_text("study: {name: dotless}\ndata: {source: 'sklearn:iris'}\n"
                    "model: {family: mlp, l1: {float: [1e-5, 1E-2], log: true, or_off: true}}\n"
                    "train: {learning_rate: 1e-3, epochs: 1}\n")
    space = spaces.load(path)
    assert space.train["learning_rate"] == 0.001
    assert space.model["l1"]["float"] == [1e-5, 1e-2]
    # A string that looks like such a number is written quoted, so it reads back as the string it was.
    named = spaces.validate({**spaces.parse_yaml(path.read_text()), "study": {"name": "1e5"}})
    assert spaces.validate(spaces.parse_yaml(named.to_yaml())).study.name == "1e5"
    # YAML 1.2's integers: a leading zero is decimal (YAML 1.1 read 010 as eight).
    assert spaces.parse_yaml("a: 010\nb: 0o17\nc: 0x10\nd: 1_000\n") == {"a": 10, "b": 15, "c": 16, "d": 1000}
    # An empty section is the section's defaults, as if it were left out.
    empty = tmp_path / "empty.yaml"
    empty.write_text("study: {name: bare}\ndata: {source: 'sklearn:iris'}\ntrain:\n#  epochs: 2\nmodel:\n")
    assert spaces.load(empty).train == {} and spaces.load(empty).family == "mlp"
    # Keys a merge brings in may be overridden; a key that is not hashable is YAML's own error.
    assert spaces.parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")["other"] == {"x": 2}
    with pytest.raises(yaml.YAMLError, match="unhashable"):
        spaces.parse_yaml("? [a, b]\n: 1\n")


def test_column_names_written_as_numbers_or_one_name_to_drop_are_taken(tmp_path: Path) -> None:
    """A header of years (2019,2020,2021): `target: 2021` was refused as "Input should be a valid string", and
    `drop: id` as "Input should be a valid list"."""
    from search import space as spaces

    path = tmp_path / "years.yaml"
    path.write_text("study: {name: years}\ndata: {source: 'csv:y.csv', target: 2021, drop: id, group: 7}\n")
    space = spaces.load(path)
    assert (space.data.target, space.data.drop, space.data.group) == ("2021", ["id"], "7")
    assert spaces.load({"study": {"name": "y"}, "data": {"source": "csv:y.csv", "target": "t",
                                                         "drop": [2019, "id"]}}).data.drop == ["2019", "id"]
    with pytest.raises(SpaceError, match="data.target"):
        spaces.load({"study": {"name": "y"}, "data": {"source": "csv:y.csv", "target": True}})


def test_a_builder_whose_one_output_has_no_last_axis_is_accepted() -> None:
    """(batch,) for a regression or two-class model is scored as (batch, 1), as it was trained before."""
    import keras

    from search import models

    def flat(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Reshape(())(keras.layers.Dense(1)(inputs)))

    family = models.register_builder(flat)
    models.check_custom_builder({"family": family}, (4,), models.Head("regression", 1))
    with pytest.raises(SpaceError, match="does not fit this multiclass task"):
        models.check_custom_builder({"family": family}, (4,), models.Head("multiclass", 3))


def test_stored_study_survives_all_bad_inputs(store: Store) -> None:
    """After the bad inputs, the stored study still loads, with its one trial and its fingerprints."""
    import optuna

    from search.studies import lifecycle as studies

    assert _snapshot(store.home) == store.before
    storage = studies.make_storage(studies.default_storage(store.home))
    loaded = optuna.load_study(study_name=STUDY, storage=storage)
    assert [t.state.name for t in loaded.trials] == ["COMPLETE"]
    assert "data_fingerprint" in loaded.user_attrs and "splits_fingerprint" in loaded.user_attrs


def test_cases_cover_at_least_twenty_bad_inputs() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 20


def test_space_files_as_strangers_write_them_are_read_and_moot_settings_are_named(tmp_path: Path) -> None:
    from search import space as spaces
    from search.runner import _space_warnings

    text = "study: {name: x}\ndata: {source: 'sklearn:iris'}\nmodel: {units: {int: [8, 64], log: true, step: 1}}\n"
    path = tmp_path / "notepad.yaml"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))  # Notepad's "Unicode": UTF-16 with its mark
    assert spaces.load(path).model["units"] == {"int": [8, 64], "log": True, "step": 1}  # step 1 is an int's own
    with pytest.raises(spaces.SpaceError, match="'log' and a 'step' other than an int range's 1"):
        spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                         "model": {"units": {"int": [8, 64], "log": True, "step": 2}}})
    said = _space_warnings.unused_train_settings({"optimizer": "adam", "momentum": {"float": [0.0, 0.9]},
                                           "early_stopping": 10, "epochs": 3})
    assert said[0].startswith("train.momentum searched is not used by optimizer adam (only sgd and rmsprop read it)")
    assert said[1].startswith("train.early_stopping = 10 is not below train.epochs = 3")
    assert _space_warnings.unused_train_settings({"optimizer": {"choice": ["adam", "sgd"]}, "momentum": 0.9,
                                           "early_stopping": 5, "epochs": 30}) == []
    said = _space_warnings.unused_head_settings({"family": "cnn", "dense_units": 0,
                                                 "dropconnect": {"float": [0.0, 0.5]}, "dense_l2": 1e-4})
    assert said == ["model.dropconnect, model.dense_l2 apply to the hidden head layer, and model.dense_units: 0 "
                    "leaves none: ignored, and a search dimension that changes nothing; remove it, or give "
                    "dense_units some units"]
    assert _space_warnings.unused_head_settings({"family": "cnn", "dense_units": 8, "dropconnect": 0.2}) == []


def test_status_tells_the_time_between_runs_from_the_time_spent_training() -> None:
    from datetime import datetime, timedelta

    from search.studies import lifecycle

    t0 = datetime(2026, 12, 1, 22, 0)
    runs = [(t0, t0 + timedelta(seconds=5)), (t0 + timedelta(seconds=3), t0 + timedelta(seconds=8)),
            (t0 + timedelta(minutes=19), t0 + timedelta(minutes=19, seconds=4))]
    assert lifecycle._busy_seconds(runs) == 12.0  # overlapping trials count once; the 19 minutes between, never


def test_a_regression_study_is_not_described_as_stratified() -> None:
    """The header had said "stratified" right after the warning that stratify is ignored for a quantity."""
    from search import review, space as spaces

    space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:diabetes"},
                             "validation": {"scheme": "kfold", "k": 3, "stratify": True}})
    described = dict(review.describe(space, {"task": "regression", "rows": 442, "test_rows": 89, "n_splits": 3}))
    assert described["Validation"].startswith("3-fold cross-validation (shuffled) on 353 development rows")
    classified = dict(review.describe(space, {"task": "multiclass", "rows": 150, "test_rows": 30, "n_splits": 3}))
    assert "(stratified, shuffled)" in classified["Validation"]
    # A time-series gap before the test rows leaves development rows out: the count is the splits' (it said
    # 353 where the data summary said 351).
    timed = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:diabetes"},
                             "validation": {"scheme": "time_series", "k": 3, "gap": 2}})
    from search.runner import session

    prepared = session.prepare(timed)
    assert f"after a gap of 2) on {len(prepared.dev_idx)} development rows" in \
        dict(review.describe(timed, prepared.attrs()))["Validation"]
    assert len(prepared.dev_idx) == 442 - len(prepared.test_idx) - 2


def test_a_repeated_choice_a_batch_above_the_rows_and_float16_on_a_cpu_are_warned() -> None:
    """Each trains without an error and quietly wastes the search: said before anything trains."""
    from search import space as spaces
    from search.runner import session

    space = spaces.validate({
        "study": {"name": "x"}, "data": {"source": "sklearn:iris", "test_size": 0.2},
        "validation": {"scheme": "kfold", "k": 3},
        "model": {"units": {"choice": [8, 16, 8]}, "batchnorm": {"choice": [False, True]}},
        "train": {"batch_size": {"choice": [16, 500]}, "epochs": 2, "mixed_precision": True}})
    said = session.prepare(space, threads=1).dataset.warnings
    repeated = [w for w in said if "more than once" in w]
    assert repeated == ["model.units lists 8 more than once in its choices: the sampler draws it as often as it is "
                        "listed; list each value once"]
    # 120 development rows in 3 stratified folds: 79, 79 and 80 training rows.
    assert any(w.startswith("train.batch_size 500 is more than the 79 training rows of the smallest split")
               for w in said)
    gpus = len(__import__("tensorflow").config.list_physical_devices("GPU"))
    assert any("mixed_precision" in w for w in said) == (gpus == 0)
    fine = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                            "model": {"units": {"choice": [8, 16]}}, "train": {"batch_size": 16}})
    assert not [w for w in session.prepare(fine, threads=1).dataset.warnings
                if "more than once" in w or "batch_size" in w or "mixed" in w]


def test_status_counts_a_trial_whose_process_was_killed_and_never_a_negative_time() -> None:
    """A process killed mid-trial leaves it RUNNING with no end; it had made the busy time negative."""
    from datetime import datetime, timedelta

    import optuna

    from search.studies import lifecycle
    from search.studies._identity import worker_identity

    t0 = datetime(2026, 12, 1, 22, 0)
    study = optuna.create_study()
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for start in (t0, t0 + timedelta(seconds=10)):
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=0.5, values=None,
            datetime_start=start, datetime_complete=start + timedelta(seconds=8), params={"x": 0.5},
            distributions=dist, user_attrs={}, system_attrs={}, intermediate_values={}))
    killed = {**worker_identity(), "pid": 2**22 + 7}  # this host, a process that is gone
    study.add_trial(optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=optuna.trial.TrialState.RUNNING, value=None, values=None,
        datetime_start=t0 + timedelta(minutes=3), datetime_complete=None, params={"x": 0.5}, distributions=dist,
        user_attrs={"worker": killed}, system_attrs={}, intermediate_values={}))
    text = lifecycle.timing_text(study, 5)
    assert text.startswith("elapsed 3m00s (0m16s of it with trials running, the rest between runs)"), text
    assert "-" not in text.split(",")[0] and "1 marked running whose process on this host is gone" in text


@pytest.mark.parametrize(("data", "words"), [
    ({"source": "images:pics", "image_size": [True, 16]}, "two whole numbers of at least 1"),
    ({"source": "images:pics", "image_size": 16}, "([16, 16] for a square)"),
    ({"source": "images:pics", "image_size": [16]}, "two whole numbers of at least 1"),
    ({"source": "sklearn:digits", "as_images": True, "image_size": [16, 16]}, "keep their size (it would be ignored)"),
])
def test_an_image_size_is_two_whole_numbers_for_an_image_folder(data, words):
    """A yes/no was taken as 1 pixel, a single number got the schema library's words, and a size given with
    arrays (which it never resizes) was ignored."""
    from search import space as spaces

    with pytest.raises(spaces.SpaceError) as err:
        spaces.validate({"study": {"name": "x"}, "data": data, "model": {"family": "cnn"}})
    assert err.value.field == "data.image_size" and words in str(err.value)
    assert spaces.validate({"study": {"name": "x"}, "data": {"source": "images:pics", "image_size": [16, 12]},
                            "model": {"family": "cnn"}}).data.image_size == (16, 12)



def test_a_model_keras_cannot_load_again_is_refused_before_training(tmp_path: Path, capsys) -> None:
    """An unregistered custom layer and a subclassed keras.Model trained every trial; then reproduce and the
    split models failed to load them. A Lambda layer loads (the checkpoints are the harness's own files)."""
    (tmp_path / "nets.py").write_text(
        "import keras\n"
        "class Scale(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return x * 2.0\n"
        "class Net(keras.Model):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.out = keras.layers.Dense(n, activation='softmax')\n"
        "    def call(self, x):\n"
        "        return self.out(x)\n"
        "def scaled(settings, input_shape, n_outputs):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation='softmax')(Scale()(inputs)))\n"
        "def subclassed(settings, input_shape, n_outputs):\n"
        "    return Net(n_outputs)\n"
        "def lambda_layer(settings, input_shape, n_outputs):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)\n"
        "    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation='softmax')(x))\n")
    for name, words in (("scaled", "Keras cannot find its class 'Scale' when loading: register it with "
                                   "@keras.saving.register_keras_serializable()"),
                        ("subclassed", "a subclassed keras.Model needs get_config and from_config"),
                        ("lambda_layer", None)):
        space = tmp_path / f"{name}.yaml"
        space.write_text(yaml.safe_dump({"study": {"name": name}, "data": {"source": "sklearn:iris"},
                                         "model": {"family": f"python:nets.py:{name}"}}))
        capsys.readouterr()
        assert run_cli("check", space) == (0 if words is None else 2)
        err = capsys.readouterr().err
        assert (words or "") in err and "Traceback" not in err


def test_splits_of_rows_sorted_by_class_are_warned_about_and_not_called_stratified() -> None:
    """iris in file order, unshuffled: every fold validated on a class its training rows never held, and the
    hold-out on one class only, without a word; the hold-out was described as stratified."""
    from search import review, space as spaces
    from search.runner import session

    def said(validation: dict) -> list[str]:
        space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"}, "validation": validation})
        return [w for w in session.prepare(space, threads=1).dataset.warnings if "validat" in w]

    assert said({"scheme": "kfold", "k": 3, "shuffle": False, "stratify": False})[0].startswith(
        "split 0 trains on no row of class(es) 0, which its validation rows hold (3 of 3 splits are so)")
    assert said({"scheme": "holdout", "fraction": 0.3, "shuffle": False})[0].startswith(
        "split 0 validates on rows of class(es) 2 only")
    assert said({"scheme": "kfold", "k": 3}) == []
    space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                             "validation": {"scheme": "holdout", "fraction": 0.3, "shuffle": False}})
    described = dict(review.describe(space, {"task": "multiclass", "rows": 150, "test_rows": 30, "n_splits": 1}))
    assert "stratified" not in described["Validation"]


def test_a_baseline_that_keeps_fixed_regularizers_is_not_called_unregularized() -> None:
    """dropout: 0.3 and l2: 0.01 fixed in the file stay on in trial 0, which had been called 'the unregularized
    baseline'; a two-objective study had been described with its (unused) pruner."""
    from search import review, space as spaces
    from search.runner import _space_warnings

    space = spaces.validate({"study": {"name": "x", "objectives": ["val_loss", "params"], "pruner": "hyperband"},
                             "data": {"source": "sklearn:iris"},
                             "model": {"units": {"int": [4, 16]}, "dropout": 0.3, "l2": 0.01}})
    assert space.fixed_regularizers() == {"model.dropout": 0.3, "model.l2": 0.01}
    said = _space_warnings.space_warnings(space, None)
    assert any(w.startswith("study.pruner: hyperband is not used: a study of two objectives is never pruned")
               for w in said)
    assert any("fixes model.dropout = 0.3, model.l2 = 0.01 on: it is no unregularized baseline" in w for w in said)
    described = dict(review.describe(space, {"task": "multiclass", "rows": 150, "test_rows": 30, "n_splits": 5}))
    assert "pruner none (a study of two objectives is never pruned)" in described["Study"]
    assert "baseline with the searched regularizers off (dropout=0.3, l2=0.01 fixed on by the file)" in \
        described["Study"]
    assert "and the model's params (two objectives" in described["Objective"]


def test_a_regression_builder_that_cannot_reach_the_target_is_warned_about() -> None:
    """Built-in families rescale their output by the target's scale; a builder's model got diabetes' target
    (25 to 346) as it is, a sigmoid output too, and scored five times worse without a word."""
    import keras

    from search import models

    y = np.random.default_rng(0).normal(150.0, 77.0, 300)

    def linear(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))

    def sigmoid(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))

    def rescaled(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Rescaling(77.0, 150.0)(keras.layers.Dense(1)(inputs)))

    head = models.Head("regression", 1)
    said = {f.__name__: models.check_custom_builder({"family": models.register_builder(f)}, (4,), head, target=y)
            for f in (linear, sigmoid, rescaled)}
    assert said["linear"][0].startswith("the regression target has a mean of about 1.5e+02")
    assert "keras.layers.Rescaling(scale=78, offset=1.5e+02)" in said["linear"][0]
    assert "outputs values in [0, 1] only (a sigmoid?)" in said["sigmoid"][0]
    assert said["rescaled"] == []
    assert models.check_custom_builder({"family": models.register_builder(linear)}, (4,), head,
                                       target=y / 150.0) == []

    # A sigmoid cannot reach a target a little above 1 either (it was let through below 1.5), and a softmax
    # over one unit gives 1 for every row (it was said to be "a sigmoid?").
    def softmax(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(1, activation="softmax")(inputs))

    near_one = np.linspace(0.5, 1.4, 50)
    assert "outputs values in [0, 1] only (a sigmoid?), and the regression target runs from 0.5 to 1.4" in \
        models.check_custom_builder({"family": models.register_builder(sigmoid)}, (4,), head, target=near_one)[0]
    assert models.check_custom_builder({"family": models.register_builder(sigmoid)}, (4,), head,
                                       target=np.linspace(0.0, 1.0, 50)) == []
    assert "gives the same output, 1, for every row (a softmax over one unit is always 1)" in \
        models.check_custom_builder({"family": models.register_builder(softmax)}, (4,), head, target=near_one)[0]


def test_a_binary_softmax_over_one_unit_and_a_builder_that_returns_its_model_again_are_refused() -> None:
    """Two KerasTuner habits: ``Dense(n_outputs, activation="softmax")`` on two classes (Keras scored it from the
    logits under the softmax, so the trials ranked on losses the saved models, 1 for every row, do not give), and
    a builder that keeps its model and returns it on every call (each trial, and each split, went on from the
    weights the last one trained: a split from weights trained on its own validation rows; now each such trial
    fails with the reason, and the run stops after study.max_consecutive_failures)."""
    import keras

    from search import models

    def softmax(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(inputs))

    with pytest.raises(SpaceError, match=r"gives the same output, 1, for every row .*Dense\(1, activation='sigmoid'\)"):
        models.check_custom_builder({"family": models.register_builder(softmax)}, (4,), models.Head("binary", 1))
    assert models.check_custom_builder({"family": models.register_builder(softmax)}, (4,),
                                       models.Head("multiclass", 3)) == []

    kept: list[object] = []

    def cached(settings, input_shape, n_outputs):
        if not kept:
            kept.append(softmax(settings, input_shape, n_outputs))
        return kept[0]

    # Rows of shape (2, 2) through Dense layers: the output keeps the extra axis, said as such.
    with pytest.raises(SpaceError, match=r"built for rows of shape \(2, 2\), and its output keeps their extra axes"):
        models.check_custom_builder({"family": models.register_builder(softmax)}, (2, 2), models.Head("multiclass", 3))

    # The check builds once (a builder may count its calls); the next build, the first trial's, is refused.
    family = {"family": models.register_builder(cached)}
    assert models.check_custom_builder(family, (4,), models.Head("multiclass", 3)) == []
    with pytest.raises(SpaceError, match="returned a model it had returned before") as refused:
        models.build(family, (4,), models.Head("multiclass", 3))
    assert refused.value.field == "model.family"


def test_a_builder_that_compiles_its_model_is_told_its_compile_is_replaced() -> None:
    import keras

    from search import models

    def compiled(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        model = keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        return model

    said = models.check_custom_builder({"family": models.register_builder(compiled)}, (4,),
                                       models.Head("multiclass", 3))
    assert len(said) == 1 and "compiles its model" in said[0] and "SGD optimizer" in said[0].replace("sgd", "SGD")


def test_time_ordered_test_rows_without_a_class_are_warned_about() -> None:
    """The latest rows of iris in file order are one class: the stratified path warned, this one did not."""
    from search import space as spaces
    from search.runner import session

    space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                             "validation": {"scheme": "time_series", "k": 3}})
    said = session.prepare(space, threads=1).dataset.warnings
    assert any(w.startswith("class(es) 0, 1 have no test row (the test rows are the latest rows") for w in said)
    assert any("time-series splits keep the rows' order" in w for w in said)


def test_a_stratified_hold_out_too_lopsided_for_the_classes_is_said_in_its_own_words() -> None:
    from search import space as spaces
    from search.runner import session
    from search.errors import ValidationSchemeError

    space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                             "validation": {"scheme": "holdout", "fraction": 0.99}})
    with pytest.raises(ValidationSchemeError) as err:
        session.prepare(space, threads=1)
    assert err.value.field == "validation.fraction" and "scikit-learn" not in str(err.value)
    assert "fraction 0.99 of 119 development rows leaves 1 row on one side for 3 classes" in str(err.value)


def test_a_setting_of_another_family_names_the_families_that_have_it() -> None:
    from search import space as spaces

    with pytest.raises(spaces.SpaceError) as err:
        spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris"},
                         "model": {"family": "mlp", "augment_flip": True}})
    assert err.value.field == "model.augment_flip"
    assert "unknown setting of family mlp; it is a setting of the cnn and transfer families" in str(err.value)


def test_pruning_settings_the_chosen_pruner_does_not_read_are_warned_about() -> None:
    """prune_startup and prune_warmup given with successive_halving were ignored without a word."""
    from search import space as spaces
    from search.runner import _space_warnings

    def said(study: dict, train: dict | None = None) -> list[str]:
        space = spaces.validate({"study": {"name": "x", **study}, "data": {"source": "sklearn:iris"},
                                 "model": {"dropout": {"float": [0.0, 0.5]}}, "train": train or {}})
        return [w for w in _space_warnings.space_warnings(space, None) if "prune" in w]

    assert said({"pruner": "successive_halving", "prune_startup": 1, "prune_warmup": 0}) == [
        "study.prune_startup, study.prune_warmup are read by the median and percentile pruners only, and "
        "study.pruner is successive_halving: ignored"]
    assert said({"pruner": "median", "prune_startup": 1}) == []
    assert said({"pruner": "hyperband"}) == []
    # A pruner that can never act, asked for: too few epochs to judge, or splits that finish together.
    assert said({"pruner": "median"}, {"epochs": {"int": [2, 5]}}) == [
        "study.pruner: median can prune no trial: no split is judged before epoch 5 or at its last epoch, and "
        "train.epochs is 5; train more epochs to let it act"]
    assert said({"pruner": "median"}, {"epochs": 6}) == [] and said({}, {"epochs": 3}) == []
    assert said({"split_pruner": "wilcoxon"}) == [
        "study.split_pruner: wilcoxon judges a trial between its splits, which are trained together "
        "(train.fuse_splits: true) and finish together: it acts only with train.fuse_splits: false"]
    assert said({"split_pruner": "wilcoxon"}, {"fuse_splits": False}) == []



def test_kept_copies_that_land_on_both_sides_of_the_drawn_test_rows_are_warned_about(tmp_path: Path) -> None:
    """An oversampled class (its rows written ten times) with data.duplicates: keep passed every check, with
    the same rows in training and in the test rows."""
    from search import space as spaces
    from search.runner import session

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), (rng.random(200) < 0.1).astype(int)
    rare = np.nonzero(y)[0]
    X, y = np.concatenate([X, np.repeat(X[rare], 9, axis=0)]), np.concatenate([y, np.repeat(y[rare], 9)])
    np.savez(tmp_path / "over.npz", X=X, y=y)
    path = tmp_path / "over.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "over"}, "data": {"source": f"npz:{tmp_path / 'over.npz'}",
                                                                         "duplicates": "keep"}}))
    warnings = session.prepare(spaces.load(path)).summary.warnings
    assert any("have the same features as a held-out test row (data.duplicates: keep" in w for w in warnings), warnings
    # And across each split's training and validation rows, which chose the settings that memorize.
    assert any("validation row(s) of the splits have the same features as a training row of their split" in w
               for w in warnings), warnings


def test_a_store_made_by_an_older_optuna_is_refused_with_optunas_upgrade_command(tmp_path: Path) -> None:
    """The schema check reads Optuna's latest revision once per process, not at each opening; a store of an
    older schema still meets Optuna's own check and its words, opened first or after a current one."""
    import sqlite3

    from search.errors import StudyError
    from search.studies import lifecycle as studies

    current, old = (f"sqlite:///{tmp_path / name}" for name in ("current.db", "old.db"))
    studies.make_storage(current)
    studies.make_storage(old)
    with sqlite3.connect(tmp_path / "old.db") as con:
        con.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    with pytest.raises(StudyError, match="optuna storage upgrade"):
        studies.make_storage(old)
    assert studies.make_storage(current) is not None  # the current one opens on


def test_time_series_blocks_without_a_rare_class_are_all_named_with_the_remedy(tmp_path) -> None:
    """Twelve blocks of 3.8 % failures: the warning named split 5 alone, and blamed rows sorted by class."""
    import pandas as pd

    from search import space as spaces
    from search.runner import session

    rng = np.random.default_rng(0)
    days = pd.date_range("2022-01-01", periods=600, freq="D")
    failure = np.zeros(600, dtype=int)
    failure[[30, 95, 150, 160, 222, 290, 300, 410, 415, 470, 520, 580]] = 1
    pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "a": rng.normal(size=600), "failure": failure}).to_csv(
        tmp_path / "m.csv", index=False)
    space = spaces.validate({"study": {"name": "x"}, "data": {"source": f"csv:{tmp_path / 'm.csv'}",
                                                               "target": "failure", "order": "day"},
                             "validation": {"scheme": "time_series", "k": 12}})
    warnings = [w for w in session.prepare(space, threads=1).dataset.warnings if "validate" in w]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert re.search(r"^splits \d+(, \d+)+ \(\d+ of 12\) validate on rows of class\(es\) 0 only, with no row of the "
                     r"rare class\(es\) 1 \(2\.0% of the rows\)", warning), warning
    assert "fewer splits (validation.k) or longer blocks (validation.val_size)" in warning
    assert "sorted by class" not in warning



def test_every_problem_the_schema_finds_is_said_at_once(write_space, capsys):
    """A file of several mistakes was refused one per run ('2 more problem(s) after this one', never named)."""
    path = write_space({"study": {"n_trials": 0, "seed": -1}, "validation": {"k": 1}})
    assert run_cli("check", path) == 2
    err = capsys.readouterr().err
    assert "more problem(s): " in err and "field 'study.n_trials': the value must be at least 1" in err
    assert "field 'validation.k': the value must be at least 2" in err and "Traceback" not in err


def test_every_unknown_field_and_setting_is_said_at_once(write_space, capsys):
    """A KerasTuner user's study section took four runs, one unknown name each; settings too."""
    path = write_space({"study": {"max_trials": 3, "objective": "val_accuracy", "executions_per_trial": 2}})
    assert run_cli("check", path) == 2
    err = capsys.readouterr().err
    assert "field 'study.max_trials': unknown field" in err and "(did you mean 'n_trials'?)" in err
    assert "2 more problem(s): field 'study.objective': unknown field" in err and "(did you mean 'objectives'?)" in err
    assert "field 'study.executions_per_trial': unknown field" in err
    path = write_space({"model": {"dropuot": 0.2}, "train": {"lr": 0.1}})
    assert run_cli("check", path) == 2
    err = capsys.readouterr().err
    assert "field 'model.dropuot': unknown setting (did you mean 'dropout'?); 1 more problem(s): field 'train.lr': " \
        "unknown setting (did you mean 'learning_rate'?)" in err and "Traceback" not in err


def test_a_tab_in_the_space_file_is_named_as_one(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text("study:\n\tname: x\ndata: {source: 'sklearn:iris'}\n")
    assert run_cli("check", path) == 2
    assert "at line 2, column 1" in (err := capsys.readouterr().err) and "YAML indents with spaces only" in err


def test_a_keras_message_is_cut_at_a_sentence_not_mid_word() -> None:
    """A subclassed model's error ended '...Example: class CustomLayer(keras.layers.); build a functional...'."""
    from search.models import _sentences

    text = ("Layer sub does not implement get_config. Example: class CustomLayer(keras.layers.Layer): def "
            "get_config(self): return {}")
    assert _sentences(text, 60) == "Layer sub does not implement get_config."
    assert _sentences("x" * 90, 40) == "x" * 40 + " …" and _sentences("short.", 40) == "short."


@pytest.mark.parametrize("setting", [{"dropout": [0.1, 0.2]}, {"learning_rate": "cosine"},
                                     {"l2": {"float": [1e-6, 1e-2], "log": True}}])
def test_a_builders_own_settings_named_as_the_families_are_its_own_to_read(setting, tmp_path: Path) -> None:
    """Checking a builder's settings against the families' ranges refused its per-layer dropout list, its
    schedule name and a penalty range it never declared as a regularizer to switch off."""
    from search import space as spaces

    (tmp_path / "mynet.py").write_text("def build(settings, input_shape, n_outputs):\n    raise NotImplementedError\n")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"model": {"family": "python:mynet:build", "dropout": None,
                                                          "units": None, **setting}})))
    assert spaces.load(path).model[next(iter(setting))] == next(iter(setting.values()))
    declared = merge(TINY, {"model": {"family": "python:mynet:build", "units": None, "regularizers": ["dropout"],
                                      "dropout": 1.5}})
    path.write_text(yaml.safe_dump(declared))
    with pytest.raises(SpaceError, match="model.dropout"):  # a declared regularizer is checked as the families' is
        spaces.load(path)


def test_searching_class_weight_none_against_balanced_is_warned_about() -> None:
    """Ranked by the plain validation loss, which weighting raises on purpose, a balanced trial came last at the
    same ROC AUC as the others: the search of the choice could not be won on its merits."""
    from search import space as spaces
    from search.runner import session

    searched = spaces.validate(merge(TINY, {"train": {"class_weight": {"choice": ["none", "balanced"]}}}))
    fixed = spaces.validate(merge(TINY, {"train": {"class_weight": "balanced"}}))
    said = session.prepare(searched).dataset.warnings
    assert any("train.class_weight searches none and balanced" in w and "balanced accuracy and ROC AUC" in w
               for w in said), said
    assert not any("class_weight searches" in w for w in session.prepare(fixed).dataset.warnings)


def test_an_exported_config_run_more_than_once_is_said_to_repeat_one_result() -> None:
    """An exported config (seed_trial set, nothing searched) with n_trials raised trained the same trial again and
    again without a word."""
    from search import space as spaces
    from search.runner import session

    fixed = {"study": {"n_trials": 3, "seed_trial": 4}, "model": {"dropout": 0.1},
             "train": {"learning_rate": 0.01}}
    said = session.prepare(spaces.validate(merge(TINY, fixed))).dataset.warnings
    assert any("study.seed_trial (4) fixes every trial's seeds" in w and "repeat one result" in w for w in said), said
