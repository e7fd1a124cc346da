"""Sampler hygiene: the same study seed gives the same suggestions; a grid is covered exactly once,
also by two worker processes sharing one SQLite study. Real Optuna storage; the objective is a cheap
function of the sampled settings, since what is under test is the sampler, not training."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from search import space as spaces
from search.studies import lifecycle as studies

SPACE = {"study": {"name": "s", "seed": 3, "n_trials": 14},
         "data": {"source": "sklearn:iris"},
         "model": {"family": "mlp", "layers": {"int": [1, 3]}, "units": {"int": [4, 64], "log": True},
                   "dropout": {"float": [0.0, 0.5]}, "l2": {"float": [1e-5, 1e-2], "log": True, "or_off": True}},
         "train": {"learning_rate": {"float": [1e-4, 1e-1], "log": True}}}

GRID = {**SPACE, "study": {"name": "g", "seed": 3, "n_trials": 100, "sampler": "grid"},
        "model": {"family": "mlp", "layers": {"int": [1, 3]}, "units": {"choice": [8, 16]},
                  "dropout": {"float": [0.0, 0.4], "step": 0.2}},
        "train": {"learning_rate": {"choice": [0.01, 0.001]}}}


def _objective(space):
    def objective(trial):
        s = space.sample(trial)
        return s["model"]["dropout"] + float(s["train"]["learning_rate"]) * s["model"]["units"]
    return objective


def _suggestions(tmp_path: Path, raw: dict, name: str, n: int, rounds: int = 1) -> list[dict]:
    """Run ``n`` trials per round; every round reopens the study, as ``search run`` does when continued."""
    space = spaces.validate(raw)
    storage = studies.make_storage(f"sqlite:///{tmp_path / (name + '.db')}")
    for _ in range(rounds):
        study = studies.open_study(space, storage, {"n_splits": 3})
        study.optimize(_objective(space), n_trials=n)
    return [t.params for t in study.trials if t.state.name == "COMPLETE"]


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid"])
def test_same_seed_same_suggestions(tmp_path, sampler):
    raw = GRID if sampler == "grid" else {**SPACE, "study": {**SPACE["study"], "sampler": sampler}}
    first = _suggestions(tmp_path, raw, "a", 6, rounds=2)   # 12 trials: past TPE's 10 random start-up trials
    again = _suggestions(tmp_path, raw, "b", 6, rounds=2)
    assert len(first) == 12 and first == again
    if sampler in ("tpe", "random"):
        other = {**raw, "study": {**raw["study"], "seed": 4}}
        assert _suggestions(tmp_path, other, "c", 6, rounds=2) != first


def test_grid_is_covered_exactly_once_by_two_workers(tmp_path):
    import yaml

    space = spaces.validate(GRID)
    grid = space.grid()
    size = len(grid["model.layers"]) * 2 * 3 * 2
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(GRID))
    worker = textwrap.dedent(f"""
        import time, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from search import space as spaces
        from search.studies import lifecycle as studies
        space = spaces.load({str(tmp_path / 'grid.yaml')!r})
        study = studies.open_study(space, studies.make_storage({f'sqlite:///{tmp_path / "g.db"}'!r}),
                                   {{"n_splits": 3}})

        from search.runner.objective import _over_budget

        def objective(trial):
            if _over_budget(trial, studies.budget_of(space)):  # the harness's own check
                raise RuntimeError("over budget")
            space.sample(trial)
            time.sleep(0.05)
            return 0.0

        # As search/runner/session.py's loop: one trial at a time while queued grid points remain.
        while studies.waiting_count(study):
            study.optimize(objective, n_trials=1, catch=(RuntimeError,))
    """)
    # The first worker creates the study (and enqueues the baseline) before the second joins it.
    studies.open_study(space, studies.make_storage(f"sqlite:///{tmp_path / 'g.db'}"), {"n_splits": 3})
    procs = [subprocess.Popen([sys.executable, "-c", worker]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    trials = optuna.load_study(study_name="g", storage=f"sqlite:///{tmp_path / 'g.db'}").trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    points = [tuple(t.params[k] for k in sorted(grid)) for t in complete]
    assert len(points) == size and len(set(points)) == size
    assert complete[0].number == 0 and complete[0].user_attrs["baseline"]
    assert complete[0].params["model.dropout"] == 0.0
    # A trial started while the last point was still running was closed before it evaluated anything.
    assert all(t.state.name == "FAIL" for t in trials if t.state.name != "COMPLETE")


def test_a_joining_worker_waits_until_the_creator_has_made_what_must_exist_once(tmp_path):
    """The creator queues the baseline before its ``on_create`` hook (the MLflow parent run) is done; a
    worker joining in between must wait for the hook, or it makes a second parent run of its own."""
    import threading

    space = spaces.validate(SPACE)
    url = f"sqlite:///{tmp_path / 'join.db'}"
    in_hook, release, events = threading.Event(), threading.Event(), []

    def slow_hook(study):
        in_hook.set()
        release.wait(timeout=30)
        study.set_user_attr("parent", "made-once")
        events.append("hook done")

    creator = threading.Thread(target=studies.open_study,
                               args=(space, studies.make_storage(url), {"n_splits": 3}, slow_hook))
    creator.start()
    assert in_hook.wait(timeout=30)
    joined = {}

    def join():
        joined["study"] = studies.open_study(space, studies.make_storage(url), {"n_splits": 3})
        events.append("joined")

    joiner = threading.Thread(target=join)
    joiner.start()
    joiner.join(timeout=2.0)
    assert joiner.is_alive(), "the joiner went on while the creator's hook was still running"
    assert studies.waiting_count(optuna.load_study(study_name="s", storage=url)) == 1  # the queued baseline
    release.set()
    creator.join(timeout=30)
    joiner.join(timeout=30)
    assert events == ["hook done", "joined"]
    assert joined["study"].user_attrs["parent"] == "made-once"


def test_cmaes_is_said_to_draw_choices_and_or_off_settings_at_random(tmp_path):
    """CMA-ES searches the numeric ranges every trial has; the rest Optuna draws at random, without a word
    from a study whose every setting is a choice: a random search the user believed was CMA-ES."""
    from search.runner import _space_warnings

    def said(model: dict) -> list[str]:
        space = spaces.validate({**SPACE, "study": {"name": "c", "sampler": "cmaes"}, "model": model,
                                 "train": {}})
        return [w for w in _space_warnings.space_warnings(space, None) if "cmaes" in w]

    (mixed,) = said(SPACE["model"])
    assert "model.l2 (or_off) is drawn at random in every trial" in mixed and "write the setting as a range" in mixed
    (choices,) = said({"family": "mlp", "units": {"choice": [8, 16]}, "activation": {"choice": ["relu", "elu"]}})
    assert "model.units (choice), model.activation (choice) are drawn" in choices
    assert "nothing else is searched: this study is a random search; use tpe" in choices
    assert said({"family": "mlp", "units": {"int": [4, 64]}, "dropout": {"float": [0.0, 0.5]}}) == []
    # What the warning says of Optuna holds: after its first trial, CMA-ES's own space leaves both out.
    space = spaces.validate({**SPACE, "study": {"name": "c", "sampler": "cmaes", "seed": 0}})
    study = optuna.create_study(sampler=optuna.samplers.CmaEsSampler(seed=0))
    study.optimize(_objective(space), n_trials=4)
    searched = study.sampler.infer_relative_search_space(study, study.trials[-1])
    assert "model.units" in searched and not {"model.l2", "model.l2.on"} & set(searched), searched
