"""The phased workflow: phase 0 baselines, phase 1 capacity with regularizers off, phase 2 regularizers at the pick."""
from __future__ import annotations

import csv
import io
import math
import textwrap

import numpy as np
import optuna
import pytest

from conftest import run_cli
from search import space as spaces
from search.reproduction import targets
from search.runner import session
from search.workflow import common_sense
from search.workflow import phases as workflow
from search.workflow.phases import PHASE0_ATTR, PICK_ATTR

PHASED = {"study": {"name": "ph", "n_trials": 4, "workflow": "phased", "phases": {"capacity": 0.5}},
          "validation": {"scheme": "kfold", "k": 2},
          "model": {"layers": {"int": [1, 2]}, "units": {"int": [4, 16], "log": True},
                    "dropout": {"float": [0.0, 0.5]}, "l2": {"float": [1e-4, 1e-2], "log": True, "or_off": True}},
          "train": {"epochs": 2}}


def _study(home, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def test_phases_follow_each_other_and_a_study_stopped_mid_phase_resumes_in_it(write_space, home, tmp_path, capsys):
    path = write_space(PHASED)
    # Stopped inside phase 1 (its budget is 0.5 x 4 = 2 trials) ...
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1", "--n-trials", "1") == 0
    first = capsys.readouterr().out
    assert "phase 0, baseline to beat" in first and "phase 1: capacity (layers, units)" in first
    # 2 phase-1 trials cannot end early once phases.min_trials (3) have completed: it does not say they can.
    assert "; 2 trial(s)." in first and "ending early" not in first
    study = _study(home, "ph")
    assert [t.user_attrs["phase"] for t in study.trials] == [1] and PICK_ATTR not in study.user_attrs
    # ... and continued: one more phase-1 trial, then phase 2 at phase 1's pick.
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    second = capsys.readouterr().out
    assert "phase 1 ends: its 2 trial(s) are spent" in second
    study = _study(home, "ph")
    trials = study.trials
    assert [t.user_attrs["phase"] for t in trials] == [1, 1, 2, 2]
    uri = f"sqlite:///{home / 'mlflow.db'}"
    for t in trials[:2]:  # every regularizer off, searched ones not even suggested
        assert t.user_attrs["phase_fixed"] == {"model.dropout": 0.0, "model.l2": 0.0}
        assert not any(name.startswith(("model.dropout", "model.l2")) for name in t.params)
        for tracking_uri in (uri, None):  # the MLflow record and the rebuild from Optuna alone agree
            leaves = targets.trial_config(study, t, tracking_uri)[0].leaves()
            assert leaves["model.dropout"] == 0.0 and leaves["model.l2"] == 0.0
    pick = study.user_attrs[PICK_ATTR]
    phase1 = [t for t in trials[:2] if t.state.name == "COMPLETE"]
    # Two epochs cannot show an overfit: the pick is the best phase-1 trial.
    assert pick["why"] == "best" and pick["trial"] == min(phase1, key=lambda t: t.value).number
    assert pick["capacity"] == {"model.layers": trials[pick["trial"]].params["model.layers"],
                                "model.units": trials[pick["trial"]].params["model.units"]}
    for t in trials[2:]:  # capacity held at the pick, regularizers searched
        assert t.user_attrs["phase_fixed"] == pick["capacity"]
        assert "model.units" not in t.params and "model.dropout" in t.params
        leaves = targets.trial_config(study, t, None)[0].leaves()
        assert {n: leaves[n] for n in pick["capacity"]} == pick["capacity"]
    assert "the universal workflow, study 'ph'" in second and "smallest capacity that overfits: none found" in second
    # The tables show what each phase held fixed (they showed blank cells): regularizers off, the capacity.
    from search.review import display
    from search.review._table import trials_csv

    rows = {r["trial"]: r["params"] for r in display.trial_rows(study)}
    for t in trials:
        if t.number in rows and t.user_attrs["phase"] == 1:
            assert rows[t.number]["model.dropout"] == "off" and rows[t.number]["model.l2"] == "off"
        elif t.number in rows:
            assert rows[t.number]["model.units"] == pick["capacity"]["model.units"]
    table = list(csv.DictReader(io.StringIO(trials_csv(study))))
    assert all(row["model.units"] != "" and row["model.dropout"] != "" for row in table), table
    # The final test, once reproduced, is part of the answer.
    assert run_cli("reproduce", "ph", "--home", home, "--threads", "1") == 0
    loss = float(capsys.readouterr().out.split("test set (one look): loss ")[1].split()[0].rstrip(","))  # the first
    assert _study(home, "ph").user_attrs["test_looks"][-1]["test_loss"] == pytest.approx(loss, rel=1e-3)
    report = tmp_path / "r.html"
    assert run_cli("report", "ph", "--home", home, "--out", report) == 0
    page = report.read_text()
    assert "The universal workflow" in page and "data-figure='workflow'" in page
    assert f"retrained and tested once: test loss {loss:.4g}" in page


def test_phase_0_scores_the_prior_and_a_linear_model_on_the_studys_splits(write_space):
    prepared = session.prepare(spaces.load(write_space(PHASED)))
    stored = common_sense.losses(prepared)
    assert stored["n_splits"] == 2 and len(stored["per_split"]["prior"]) == 2
    ds = prepared.dataset
    for k, split in enumerate(prepared.splits):  # the prior's loss, from the class counts by hand
        counts = np.bincount(ds.y[split.train], minlength=3) / len(split.train)
        assert stored["per_split"]["prior"][k] == pytest.approx(-np.mean(np.log(counts[ds.y[split.val]])))
    assert stored["prior"] == pytest.approx(math.log(3), abs=0.02)  # iris is balanced
    assert stored["linear"] < 0.5 * stored["prior"], "a linear model separates iris well"
    assert common_sense.text(stored).startswith("prior 1.0")


def test_phase_0_of_a_regression_is_the_mean_squared_error_of_the_mean(write_space):
    prepared = session.prepare(spaces.load(write_space({**PHASED, "data": {"source": "sklearn:diabetes"}})))
    stored = common_sense.losses(prepared)
    ds = prepared.dataset
    split = prepared.splits[0]
    expected = np.mean((ds.y[split.val] - ds.y[split.train].mean()) ** 2)
    assert stored["loss"] == "mean squared error"
    assert stored["per_split"]["prior"][0] == pytest.approx(expected, rel=1e-6)
    assert stored["linear"] < stored["prior"]


def test_a_space_without_capacity_settings_skips_phase_1_and_says_why(write_space, home, capsys):
    path = write_space({**PHASED, "study": {**PHASED["study"], "name": "flat", "n_trials": 1},
                        "model": {"layers": 1, "units": 8, "dropout": {"float": [0.0, 0.5]}}})
    assert run_cli("run", path, "--home", home, "--quiet", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "phase 1 skipped: the space searches no capacity setting (layers, units are fixed)" in out
    study = _study(home, "flat")
    assert [t.user_attrs["phase"] for t in study.trials] == [2]
    assert study.user_attrs[PHASE0_ATTR]["prior"] == pytest.approx(math.log(3), abs=0.02)
    assert "phase 1 skipped" in out.split("the universal workflow")[1]


def _trial(number, state="COMPLETE", value=0.5, phase=1, fit="good", n_params=100, units=8):
    return optuna.trial.create_trial(
        state=getattr(optuna.trial.TrialState, state), value=value if state == "COMPLETE" else None,
        params={"model.layers": 1, "model.units": units},
        distributions={"model.layers": optuna.distributions.IntDistribution(1, 2),
                       "model.units": optuna.distributions.IntDistribution(4, 64, log=True)},
        user_attrs={"phase": phase, "fit": fit, "n_params": n_params,
                    "phase_fixed": {"model.dropout": 0.0, "model.l2": 0.0}})


def test_a_clear_overfit_ends_phase_1_early_at_the_smallest_overfitting_capacity(write_space):
    space = spaces.load(write_space({**PHASED, "study": {**PHASED["study"], "n_trials": 20},
                                     "model": {**PHASED["model"], "units": {"int": [4, 64], "log": True}}}))
    study = optuna.create_study()
    study.add_trial(_trial(0, fit="overfit", n_params=900, units=32, value=0.4))
    study.add_trial(_trial(1, fit="overfit", n_params=300, units=16, value=0.45))
    # Two overfit, but fewer than phases.min_trials (3) complete: still phase 1, regularizers off.
    decision = workflow.decide(space, study.trials, None, current=2)
    assert decision.phase == 1 and decision.fixed == {"model.dropout": 0.0, "model.l2": 0.0}
    study.add_trial(_trial(2, fit="good", n_params=50, units=4, value=0.6))
    decision = workflow.decide(space, study.trials, None, current=3)
    assert decision.phase == 2 and decision.pick["why"] == "overfit"
    assert decision.pick["trial"] == 1, "the smallest capacity that overfits, not the best trial"
    assert decision.fixed == {"model.layers": 1, "model.units": 16}
    # Once stored, the pick holds whatever finishes later; a neighbourhood searches around it.
    study.add_trial(_trial(3, fit="overfit", n_params=10, units=4))
    space.study.phases.neighbourhood = 1
    later = workflow.decide(space, study.trials, decision.pick, current=4)
    assert later.pick is None and later.fixed == {}
    assert later.narrowed == {"model.layers": {"int": [1, 2], "step": 1},  # one step either side, in range
                              "model.units": {"int": [8, 32], "log": True}}  # a factor of 2 either side


def test_phase_1_budget_counts_pruned_trials_and_waits_for_one_complete(write_space):
    space = spaces.load(write_space(PHASED))  # phase 1 budget: 2 trials
    study = optuna.create_study()
    study.add_trial(_trial(0, state="PRUNED"))
    study.add_trial(_trial(1, state="PRUNED"))
    assert workflow.decide(space, study.trials, None, current=2).phase == 1, "nothing complete to pick yet"
    study.add_trial(_trial(2, value=0.3, units=8))
    decision = workflow.decide(space, study.trials, None, current=3)
    assert decision.phase == 2 and decision.pick["trial"] == 2 and decision.pick["why"] == "best"


_BUILDER = textwrap.dedent("""
    import keras

    def build(settings, input_shape, n_outputs):
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(settings["width"], activation="relu")(inputs)
        x = keras.layers.Dropout(settings["drop"])(x)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
""")


@pytest.mark.parametrize("model, sampler, expected", [
    ({"capacity": ["units"]}, "tpe", "model.capacity declares a custom builder's"),
    ({}, "grid", "the phased workflow changes what is searched"),
    ({"family": "python:cap_builder:build", "layers": None, "units": None, "dropout": None, "width": 8,
      "drop": 0.0, "capacity": ["widht"]}, "tpe", "model.capacity names 'widht'"),
    ({"family": "python:cap_builder:build", "layers": None, "units": None, "dropout": None, "width": 8,
      "drop": 0.0, "regularizers": ["drop"], "capacity": ["width", "drop"]}, "tpe", "both a capacity setting"),
])
def test_capacity_declarations_are_checked_before_training(write_space, home, tmp_path, capsys, model, sampler,
                                                           expected):
    (tmp_path / "cap_builder.py").write_text(_BUILDER)
    path = write_space({**PHASED, "study": {**PHASED["study"], "sampler": sampler},
                        "model": {**PHASED["model"], "units": {"choice": [4, 8]}, "dropout": {"choice": [0.0, 0.2]},
                                  "l2": None, **model}})
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (home / "optuna.db").exists(), "refused before any store is written"


def test_a_custom_builder_names_its_capacity(write_space, tmp_path):
    (tmp_path / "cap_builder2.py").write_text(_BUILDER)
    space = spaces.load(write_space({"model": {"family": "python:cap_builder2:build", "layers": None, "units": None,
                                               "dropout": None, "width": {"int": [4, 16]}, "drop": 0.1,
                                               "regularizers": ["drop"], "capacity": ["width"]}}))
    assert space.capacity() == ["model.width"] and workflow.searched_capacity(space) == ["model.width"]
    assert "model.capacity" not in space.leaves(), "a declaration, not a setting of the builder"
    assert workflow.regularizers_off(space) == {"model.drop": 0.0}


def test_the_shipped_phased_space_searches_capacity_then_regularizers():
    from pathlib import Path

    space = spaces.load(Path(__file__).resolve().parents[1] / "spaces" / "digits_phased.yaml")
    assert space.study.workflow == "phased"
    assert workflow.searched_capacity(space) == ["model.layers", "model.units"]
    assert set(workflow.regularizers_off(space)) == {"model.dropout", "model.l2", "model.batchnorm"}


def test_the_workflows_answer_judges_what_regularization_bought_by_the_ablations_margin():
    """"regularization helped: +0.001242 ± 0.0032" sat right below the ablation's note that it bought nothing
    measurable: the answer took any positive difference as help."""
    from search.reproduction import workflow_answer as wa
    from search.reproduction.ablation import ALL_OFF, AblationRow

    def said(bought: float, se: float) -> str:
        answer = wa.Answer("s", None, [wa.PhaseRow(1), wa.PhaseRow(2)], None, None, 3,
                           [AblationRow(ALL_OFF, 0.2, bought, se, 3, 0)], None, 0)
        return wa._bought(answer)

    assert said(0.001242, 0.0032).startswith("regularization made no measurable difference")
    assert said(0.02, 0.004).startswith("regularization helped")
    assert said(-0.02, 0.004).startswith("regularization did not help")
