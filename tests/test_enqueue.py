"""``study.enqueue``: the user's own configs tried first, checked against the space before anything trains."""
from __future__ import annotations

import optuna
import pytest

from conftest import TINY, merge, run_cli
from search import space as spaces
from search.errors import SpaceError

SEARCHED = {"model": {"l2": {"float": [1.0e-5, 1.0e-2], "log": True, "or_off": True},
                      "units": {"int": [4, 16], "step": 4}},
            "train": {"learning_rate": {"float": [1.0e-3, 1.0e-1], "log": True}}}


def _space(enqueue, **study):
    return spaces.validate(merge(TINY, {**SEARCHED, "study": {"enqueue": enqueue, **study}}))


def test_entries_become_optuna_params_by_dotted_or_plain_name():
    space = _space([{"dropout": 0.3, "model.l2": 0, "learning_rate": 0.01}, {"l2": 0.001, "units": 12},
                    {"model.layers": 1}])
    assert spaces.enqueued_params(space) == [
        {"model.dropout": 0.3, "model.l2.on": False, "train.learning_rate": 0.01},
        {"model.l2.on": True, "model.l2": 0.001, "model.units": 12},
        {},  # the value the file fixes anyway: nothing to queue but the sampler's own choice
    ]
    assert spaces.enqueued_params(_space({"dropout": 0.1})) == [{"model.dropout": 0.1}]  # one entry, no list


@pytest.mark.parametrize(("entry", "field", "words"), [
    ({"dropout": 0.7}, "study.enqueue[0].dropout", "outside the searched range"),
    ({"dropot": 0.3}, "study.enqueue[0].dropot", "did you mean 'dropout'"),
    ({"units": 6}, "study.enqueue[0].units", "not on the range's steps of 4"),
    ({"units": 8.5}, "study.enqueue[0].units", "not a whole number"),
    ({"layers": 2}, "study.enqueue[0].layers", "fixed at 1 in this file"),
    ({"learning_rate": "fast"}, "study.enqueue[0].learning_rate", "not a number"),
    ({"l2": -1}, "study.enqueue[0].l2", "outside the searched range"),
    (3, "study.enqueue[0]", "a mapping of searched settings"),
])
def test_a_bad_entry_is_refused_naming_its_place(entry, field, words):
    with pytest.raises(SpaceError) as err:
        _space([{"dropout": 0.2}, entry] if field.startswith("study.enqueue[1]") else [entry])
    assert err.value.field == field and words in str(err.value)


def test_refused_with_the_grid_sampler_and_the_phased_workflow():
    grid = merge(TINY, {"study": {"sampler": "grid", "enqueue": [{"dropout": 0.0}]},
                        "model": {"dropout": {"choice": [0.0, 0.2]}}})
    with pytest.raises(SpaceError, match="grid sampler already tries every point"):
        spaces.validate(grid)
    with pytest.raises(SpaceError, match="phased workflow"):
        _space([{"dropout": 0.2}], workflow="phased")


def test_a_run_tries_the_entries_after_the_baseline_and_a_continued_run_queues_only_new_ones(write_space, home):
    path = write_space({**SEARCHED, "study": {"name": "enq", "n_trials": 3,
                                              "enqueue": [{"dropout": 0.3, "l2": 0}, {"l2": 0.001, "units": 16}]},
                        "train": {**SEARCHED["train"], "epochs": 1}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    storage = f"sqlite:///{home / 'optuna.db'}"
    trials = optuna.load_study(study_name="enq", storage=storage).trials
    assert trials[0].user_attrs["baseline"] is True
    assert trials[1].params["model.dropout"] == 0.3 and trials[1].params["model.l2.on"] is False
    assert trials[2].params["model.l2"] == 0.001 and trials[2].params["model.units"] == 16
    assert [t.user_attrs.get("enqueued") for t in trials] == [None, 0, 1]

    # The file gains a third entry and a larger budget: only the new entry is queued, once.
    path = write_space({**SEARCHED, "study": {"name": "enq", "n_trials": 5,
                                              "enqueue": [{"dropout": 0.3, "l2": 0}, {"l2": 0.001, "units": 16},
                                                          {"dropout": 0.45}]},
                        "train": {**SEARCHED["train"], "epochs": 1}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trials = optuna.load_study(study_name="enq", storage=storage).trials
    assert len(trials) == 5 and trials[3].params["model.dropout"] == 0.45
    assert [t.user_attrs.get("enqueued") for t in trials] == [None, 0, 1, 2, None]
