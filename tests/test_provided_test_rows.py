"""Provided test rows (data.test, data.split_column) end to end, and the data summary a run stores."""
from __future__ import annotations

import io
import json

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import TINY, merge, run_cli
from search import data, space as spaces
from search.runner import session
from search.tracking import PARENT_RUN_ATTR

NAME = "provided"


def _rows(n: int, seed: int) -> pd.DataFrame:
    """Three separable classes, so two epochs learn something."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 3
    return pd.DataFrame({"a": label + rng.normal(scale=0.3, size=n), "b": -label + rng.normal(scale=0.3, size=n),
                         "label": label})


@pytest.fixture(scope="module")
def provided(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("provided")
    dev, test = _rows(60, 0), _rows(15, 1)
    dev = pd.concat([dev, test.iloc[:2]], ignore_index=True)  # two test rows leak into the development file
    dev.to_csv(tmp / "dev.csv", index=False)
    test[["b", "label", "a"]].to_csv(tmp / "test.csv", index=False)  # same columns, another order
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump(merge(TINY, {
        "study": {"name": NAME, "n_trials": 2},
        "data": {"source": "csv:dev.csv", "target": "label", "test": "csv:test.csv", "test_size": None},
        "train": {"epochs": 2}}), sort_keys=False))
    return {"tmp": tmp, "space": space, "home": tmp / "home", "test": test}


def test_a_run_on_provided_test_rows_stores_its_summary_and_reproduce_uses_those_rows(provided, capsys):
    home, space, test = provided["home"], provided["space"], provided["test"]
    assert run_cli("run", space, "--home", home, "--threads", "1") == 0
    out = capsys.readouterr().out
    # Read from two files, counted by file: 77 beside "data: csv:dev.csv" alone read as one file of 77 rows.
    assert ("rows: 77 read (62 from csv:dev.csv, 15 from data.test), 2 dropped (2 development rows repeating a "
            "test row), 75 kept") in out
    assert "test rows: 15 (provided by data.test csv:test.csv; test_size does not apply); development rows: 60" in out
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{home / 'optuna.db'}")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    attrs = study.user_attrs
    assert attrs["test_rows"] == 15 and attrs["test_source"] == "data.test csv:test.csv"
    assert attrs["test_fingerprint"] == data.fingerprint_indices(np.arange(60, 75))
    summary = attrs["data_summary"]
    assert summary["dropped"] == {"development rows repeating a test row": 2}
    assert summary["classes"] == {"0": [20, 5], "1": [20, 5], "2": [20, 5]}

    # The same rows, in the file's order and the development file's column order, are the test set.
    prepared = session.prepare(spaces.load(space))
    assert np.array_equal(prepared.dataset.X[prepared.test_idx], test[["a", "b"]].to_numpy(np.float32))
    assert np.array_equal(prepared.dataset.y[prepared.test_idx], test["label"].to_numpy())
    assert not np.isin(prepared.dev_idx, prepared.test_idx).any()
    # rows.csv (of a reproduce run) names each row's file as the space does, not the words 'data.test'.
    from search.reproduction import rows

    table = pd.read_csv(io.StringIO(rows.table(prepared, np.zeros((15, 3)))))
    assert list(table["source"]) == ["csv:dev.csv"] * 60 + ["csv:test.csv"] * 15

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(NAME)
    parent = attrs[PARENT_RUN_ATTR]
    logged = json.loads(open(client.download_artifacts(parent, "data_summary.json", str(provided["tmp"]))).read())
    assert logged == summary

    assert run_cli("reproduce", NAME, "--home", home, "--epochs", "1", "--threads", "1") == 0
    rep = client.search_runs([exp.experiment_id], "tags.`search.kind` = 'reproduce'")
    assert len(rep) == 1
    assert rep[0].data.tags["test_fingerprint"] == attrs["test_fingerprint"]
    assert rep[0].data.tags["data_changed"] == "false"


def test_a_changed_test_file_cannot_continue_the_study(provided, capsys):
    """Runs after the study above: the test rows are part of the data the study was started on."""
    changed = provided["test"].copy()
    changed.loc[0, "a"] += 1.0
    changed.to_csv(provided["tmp"] / "test.csv", index=False)
    capsys.readouterr()
    assert run_cli("run", provided["space"], "--home", provided["home"], "--quiet") == 2
    assert "was started with different data" in capsys.readouterr().err


def test_a_split_column_marks_the_test_rows(tmp_path, capsys):
    frame = _rows(40, 2)
    frame["part"] = np.where(np.arange(40) < 10, "test", "train")
    frame.to_csv(tmp_path / "d.csv", index=False)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(merge(TINY, {"data": {"source": "csv:d.csv", "target": "label",
                                                          "split_column": "part", "test_size": None}})))
    prepared = session.prepare(spaces.load(space))
    ds = prepared.dataset
    assert ds.feature_names == ["a", "b"]  # the split column is not a feature
    assert np.array_equal(ds.X[prepared.test_idx], frame[["a", "b"]].to_numpy(np.float32)[:10])
    assert len(prepared.dev_idx) == 30
    assert run_cli("check", space) == 0
    assert "provided by data.split_column 'part'" in capsys.readouterr().out


def test_without_provided_rows_the_summary_reports_the_held_out_plan(tmp_path):
    prepared = session.prepare(spaces.validate(merge(TINY, {"data": {"source": "sklearn:diabetes"}})))
    summary = prepared.summary
    assert summary.task == "regression" and summary.classes == {}
    assert summary.target["min"] < summary.target["mean"] < summary.target["max"]
    assert summary.test_plan == "held out: test_size 0.2, random, seed 0"
    assert summary.dev_rows + summary.test_rows == summary.rows == 442
    assert prepared.dataset.summary()["rows"] == 442  # the older dict keeps its keys


def test_copies_among_provided_test_rows_are_kept_as_given(tmp_path):
    """A user's own group split gave 294 test rows, 3 of them copies of others, and the tool tested on 291:
    its test loss differed from the user's own count on the rows they gave, said only in the summary."""
    dev, test = _rows(60, 0), _rows(15, 1)
    test = pd.concat([test, test.iloc[:3]], ignore_index=True)  # three copies among the test rows
    dev.to_csv(tmp_path / "dev.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(merge(TINY, {"data": {"source": "csv:dev.csv", "target": "label",
                                                          "test": "csv:test.csv", "test_size": None}})))
    prepared = session.prepare(spaces.load(space))
    assert len(prepared.test_idx) == 18 and len(prepared.dev_idx) == 60
    text = prepared.summary.text()
    assert "3 row(s) repeat another test row (exact duplicates); kept as given, so the test score counts each" \
        in text, text
    # Copies with another label too: the test rows are what the user gave.
    conflicting = test.iloc[:3].assign(label=(test.iloc[:3]["label"] + 1) % 3)
    pd.concat([test.iloc[:15], conflicting], ignore_index=True).to_csv(tmp_path / "test.csv", index=False)
    assert len(session.prepare(spaces.load(space)).test_idx) == 18
    # Copies within the development rows are still dropped, one copy kept.
    pd.concat([dev, dev.iloc[:2]], ignore_index=True).to_csv(tmp_path / "dev.csv", index=False)
    again = session.prepare(spaces.load(space))
    assert len(again.dev_idx) == 60 and again.dataset.dropped.get("exact duplicates") == 2, again.dataset.dropped


def test_test_rows_marked_by_a_split_column_are_said_and_listed_as_rows_of_the_one_file(tmp_path):
    """The summary said "58 from data.test" and rows.csv's source column gave data.test for rows of the one file
    whose split_column marks them, where no data.test was set."""
    from search.reproduction import rows

    frame = _rows(45, 2).assign(part=["test" if i % 5 == 0 else "train" for i in range(45)])
    frame.to_csv(tmp_path / "one.csv", index=False)
    space = spaces.validate(merge(TINY, {"data": {"source": "csv:one.csv", "target": "label", "split_column": "part",
                                                  "test_size": None}}), path=tmp_path / "space.yaml")
    prepared = session.prepare(space)
    assert " (36 development, 9 test by data.split_column 'part')" in prepared.summary.text()
    table = pd.read_csv(io.StringIO(rows.table(prepared, np.zeros((9, 3)))))
    assert set(table["source"]) == {"csv:one.csv"}
    assert sorted(table.loc[table["role"] == "test", "row"]) == list(range(0, 45, 5))
