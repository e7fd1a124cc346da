"""A worker process killed outright (the kernel's out-of-memory killer, kill -9) while the run goes on. (Apart
from test_worker_stops.py so that pytest-xdist's --dist loadfile can run the two beside each other.)"""
from __future__ import annotations

import os
import signal
import sqlite3

import optuna
import pytest

from test_interruptions import _start_in_own_group, _wait_for_running_trials
from test_overnight import _study


@pytest.mark.parametrize("sent", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_killed_outright_is_said_replaced_and_its_trial_run_again(write_space, home, sent):
    """kill -9 of one of two workers: the terminal fell silent until the other ended, nothing said it died, the
    run exited 247 (256 - SIGKILL) with its MLflow run FAILED and no ablation, though the budget was met. A
    SIGTERM to one worker (a scheduler's): it stopped gracefully, was not replaced, and the run's MLflow run
    ended FAILED though every trial was done."""
    from test_overnight import SLOW

    space = write_space({**SLOW, "study": {"name": "oom", "n_trials": 3, "baseline": False},
                         "train": {**SLOW["train"], "epochs": 40}})
    # With figures on for kill -9: the worker dies with its drawing process alive beside it.
    proc = _start_in_own_group(space, home, "--workers", "2", figures=sent == signal.SIGKILL)
    try:
        victim = _wait_for_running_trials(home, "oom", proc, 1)[0]
        os.kill(victim.user_attrs["worker"]["pid"], sent)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    said = ("was ended by SIGKILL, which this run did not send" if sent == signal.SIGKILL else
            "was stopped by a signal sent to it alone, not by this run")
    assert f"(pid {victim.user_attrs['worker']['pid']}) {said}" in err and "a new worker takes its place" in err, err
    with sqlite3.connect(home / "mlflow.db") as con:
        parents = con.execute("SELECT status FROM runs WHERE name = 'oom'").fetchall()
    assert parents == [("FINISHED",)], parents
    assert "Traceback" not in err
    assert "asked for now" not in err, "a worker's share of the budget is not something the user asked for"
    study = _study(home, "oom")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 3
    killed = study.trials[victim.number]
    if killed.state.name == "FAIL":  # killed mid-trial (not between two): its settings ran again
        again = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
        assert len(again) == 1 and again[0].state.name in ("COMPLETE", "PRUNED"), [t.user_attrs for t in again]
