"""A worker process killed outright (the kernel's out-of-memory killer, kill -9) while the run goes on. (Apart
from test_worker_stops.py so that pytest-xdist's --dist loadfile can run the two beside each other.)"""
from __future__ import annotations

import os
import signal
import sqlite3

import optuna

from test_interruptions import _start_in_own_group, _wait_for_running_trials
from test_overnight import _study


def test_workers_killed_outright_or_stopped_alone_are_said_replaced_and_their_trials_run_again(write_space, home):
    """kill -9 of one of two workers: the terminal fell silent until the other ended, nothing said it died, the
    run exited 247 (256 - SIGKILL) with its MLflow run FAILED and no ablation, though the budget was met. A
    SIGTERM to one worker (a scheduler's): it stopped gracefully, was not replaced, and the run's MLflow run
    ended FAILED though every trial was done. Both at once here, one to each worker, in one run."""
    from test_overnight import SLOW

    space = write_space({**SLOW, "study": {"name": "oom", "n_trials": 3, "baseline": False},
                         "train": {**SLOW["train"], "epochs": 40}})
    # With figures on: the killed worker dies with its drawing process alive beside it.
    proc = _start_in_own_group(space, home, "--workers", "2", figures=True)
    try:
        victims = _wait_for_running_trials(home, "oom", proc, 2)
        pids = {v.number: v.user_attrs["worker"]["pid"] for v in victims}
        assert len(set(pids.values())) == 2, pids
        sent = dict(zip(pids, (signal.SIGKILL, signal.SIGTERM)))
        for number, sig in sent.items():
            os.kill(pids[number], sig)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    for number, sig in sent.items():
        said = ("was ended by SIGKILL, which this run did not send" if sig == signal.SIGKILL else
                "was stopped by a signal sent to it alone, not by this run")
        assert f"(pid {pids[number]}) {said}" in err, err
    assert err.count("a new worker takes its place") == 2, err
    with sqlite3.connect(home / "mlflow.db") as con:
        parents = con.execute("SELECT status FROM runs WHERE name = 'oom'").fetchall()
    assert parents == [("FINISHED",)], parents
    assert "Traceback" not in err
    assert "asked for now" not in err, "a worker's share of the budget is not something the user asked for"
    study = _study(home, "oom")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 3
    for number in sent:
        if study.trials[number].state.name == "FAIL":  # stopped mid-trial (not between two): its settings ran again
            again = [t for t in study.trials if t.user_attrs.get("retry_of") == number]
            assert len(again) == 1 and again[0].state.name in ("COMPLETE", "PRUNED"), [t.user_attrs for t in again]
