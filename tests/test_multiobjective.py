"""A second objective (parameter count): Pareto front, and the documented rule for picking one trial."""
from __future__ import annotations

import math

import optuna
import pytest
import yaml

import search

from conftest import run_cli
from search.errors import StudyError
from search.studies.lifecycle import pick_trial


def _study(home, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def test_multi_objective_study_has_a_pareto_front_and_picks_by_the_rule(write_space, home, capsys):
    path = write_space({"study": {"name": "mo", "n_trials": 3, "objectives": ["val_loss", "params"], "ablation": True},
                        "validation": {"scheme": "holdout", "fraction": 0.3, "k": None},
                        "model": {"units": {"int": [2, 32], "log": True}}})
    assert run_cli("run", path, "--home", home) == 0
    study = _study(home, "mo")
    assert len(study.directions) == 2 and study.user_attrs["objectives"] == ["val_loss", "params"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    for t in complete:  # the second value is the model's real parameter count
        assert t.values[1] == t.user_attrs["n_params"] == t.user_attrs["splits"][0]["n_params"] > 0
    front = {t.number for t in study.best_trials}
    assert front == {t.number for t in complete
                     if not any(o.values[0] <= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
                                for o in complete)}
    picked = pick_trial(study)  # "auto" is one_se for a multi-objective study
    best = min(complete, key=lambda t: t.values[0])
    bound = best.values[0] + best.user_attrs["val_loss_std"] / math.sqrt(best.user_attrs["splits_done"])
    assert picked.number == min((t for t in complete if t.values[0] <= bound),
                                key=lambda t: (t.values[1], t.values[0])).number
    assert picked.number in front
    for out in (capsys.readouterr().out, _status_output(home, capsys), _best_output(home, capsys)):
        assert "Pareto front of val_loss and params" in out
        marked = [line for line in out.splitlines() if "← one_se pick" in line]
        assert len(marked) == 1 and marked[0].split()[0] == str(picked.number)
    # What `search best` marks is what it exports, what reproduce retrains and what the API returns.
    assert yaml.safe_load((home / "picked.yaml").read_text())["study"]["seed_trial"] == picked.number
    assert search.best("mo", home=home).number == picked.number
    assert search.run(path, home=home).best.number == picked.number  # budget spent: nothing trains
    assert study.user_attrs["ablation"]["trial"] == picked.number  # the pick's regularizers were ablated


def _best_output(home, capsys):
    assert run_cli("best", "mo", "--home", home, "--export", home / "picked.yaml") == 0
    out = capsys.readouterr().out
    assert f"wrote trial {picked_number(out)}'s config (the one_se pick)" in out
    # A trial asked for by number is that trial, not the pick (it was labelled the one_se pick all the same).
    other = next(t.number for t in optuna.load_study(study_name="mo", storage=f"sqlite:///{home / 'optuna.db'}")
                 .trials if t.state.name == "COMPLETE" and t.number != int(picked_number(out)))
    assert run_cli("best", "mo", "--home", home, "--trial", other, "--export", home / "other.yaml") == 0
    assert f"wrote trial {other}'s config (from" in capsys.readouterr().out
    return out


def picked_number(out):
    return next(line.split()[0] for line in out.splitlines() if "← one_se pick" in line)


def _status_output(home, capsys):
    assert run_cli("status", "mo", "--home", home) == 0
    return capsys.readouterr().out


def _add(study, loss, size, std, number_of_splits=5):
    study.add_trial(optuna.trial.create_trial(
        values=[loss, size], user_attrs={"val_loss_std": std, "splits_done": number_of_splits}))


def test_one_standard_error_rule_takes_the_smallest_model_near_the_best(tmp_path):
    study = optuna.create_study(directions=["minimize", "minimize"], storage=f"sqlite:///{tmp_path / 'o.db'}")
    _add(study, 0.200, 5000, 0.05)   # 0: lowest loss; one standard error = 0.05 / sqrt(5) = 0.0224
    _add(study, 0.215, 1200, 0.04)   # 1: within 0.2224, smaller  → the pick
    _add(study, 0.221, 1200, 0.04)   # 2: within, same size, higher loss
    _add(study, 0.230, 300, 0.01)    # 3: smallest, but 0.230 > 0.2224
    _add(study, 0.210, 9000, 0.02)   # 4: dominated by 0
    assert {t.number for t in study.best_trials} == {0, 1, 3}
    assert pick_trial(study, "one_se").number == 1
    assert pick_trial(study).number == 1
    assert pick_trial(study, "best").number == 0
    assert pick_trial(study, 3).number == 3 and pick_trial(study, "3").number == 3
    # `search best --top 1`: the lowest-loss point, and the pick wherever it stands.
    from search.review.display import format_pareto

    rows = [line.split()[0] for line in format_pareto(study, top=1).splitlines()[3:] if line[:1].isdigit()]
    assert rows == ["0", "1"] and "(2 of the front's 3 trials shown" in format_pareto(study, top=1)
    assert "shown" not in format_pareto(study, top=3)
    with pytest.raises(StudyError):
        pick_trial(study, 42)
    with pytest.raises(StudyError):
        pick_trial(study, "smallest")


def test_single_objective_one_se_uses_the_recorded_parameter_count(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    for loss, n_params in ((0.30, 900), (0.31, 400), (0.50, 100)):
        study.add_trial(optuna.trial.create_trial(value=loss, user_attrs={
            "val_loss_std": 0.03, "splits_done": 3, "n_params": n_params}))
    assert pick_trial(study).number == 0                 # auto is "best" with one objective
    assert pick_trial(study, "one_se").number == 1      # 0.31 <= 0.30 + 0.03 / sqrt(3)


def test_cmaes_with_two_objectives_is_refused_before_training(write_space, home, capsys):
    path = write_space({"study": {"sampler": "cmaes", "objectives": ["val_loss", "params"]}})
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "study.objectives" in err and "cmaes" in err
    assert not (home / "optuna.db").exists()
