"""Workers with different --heartbeat values on one study: a trial is judged silent by its own worker's interval.
Real SQLite storage."""
from __future__ import annotations

from datetime import timedelta

import optuna
import pytest
import sqlalchemy

from search.runner import recovery
from search.studies import lifecycle


def _age_heartbeats(storage, seconds: float) -> None:
    """Every heartbeat ``seconds`` older: as if its worker had been silent that long."""
    with storage.engine.begin() as con:
        now = con.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        con.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :t"),
                    {"t": now.replace(tzinfo=None) - timedelta(seconds=seconds)})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() stands for a worker here
def test_a_trial_is_silent_after_three_of_its_own_workers_heartbeats_not_the_lookers(tmp_path, capsys):
    """The report: a worker with --heartbeat 3 failed, 11 s in, the live trial of a worker beating every 120 s."""
    storage = lifecycle.make_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat=3,
                                     on_stale=recovery.requeue_silent)
    study = optuna.create_study(study_name="mixed", storage=storage)
    x = {"x": optuna.distributions.FloatDistribution(0, 1)}
    slow, fast, older = (study.ask(x) for _ in range(3))
    slow.set_user_attr("heartbeat_interval", 120)
    fast.set_user_attr("heartbeat_interval", 3)  # older: a trial from before the attribute existed
    for trial in (slow, fast, older):
        storage.record_heartbeat(trial._trial_id)
    _age_heartbeats(storage, 20)

    optuna.storages.fail_stale_trials(study)

    trials = study.get_trials()
    assert [t.state.name for t in trials[:3]] == ["RUNNING", "FAIL", "FAIL"]
    assert trials[1].user_attrs["reason"] == \
        "went silent: no heartbeat for 20 s (its worker's interval 3 s); queued again"
    assert trials[1].user_attrs["failure"] == "silent"
    assert trials[2].user_attrs["reason"].startswith("went silent: no heartbeat for 20 s (no interval recorded; "
                                                     "this worker's grace 9 s)")
    retries = sorted(t.user_attrs["retry_of"] for t in trials[3:])
    assert retries == [1, 2] and all(t.state.name == "WAITING" for t in trials[3:])
    err = capsys.readouterr().err
    assert "trial 1 went silent: no heartbeat for 20 s (its worker's interval 3 s); marked failed and queued again " \
           "here" in err, err
    assert "trial 0" not in err

    _age_heartbeats(storage, 361)  # three of its own 120 s beats: now it is silent
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[0].state.name == "FAIL"


def test_a_trial_records_its_workers_heartbeat_interval(write_space, home):
    from conftest import run_cli

    space = write_space({"study": {"name": "beats", "n_trials": 1, "baseline": False}, "train": {"epochs": 1}})
    assert run_cli("run", str(space), "--home", str(home), "--heartbeat", "7", "--quiet") == 0
    trial = optuna.load_study(study_name="beats", storage=f"sqlite:///{home / 'optuna.db'}").trials[0]
    assert trial.user_attrs["heartbeat_interval"] == 7
