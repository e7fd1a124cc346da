"""Stops of a run with worker processes: a terminal's Ctrl-C reaching every process, a parent killed outright,
workers racing to recover the same orphan, recycled workers and a space that always fails. (Apart from
test_interruptions.py so that the two halves run side by side under pytest-xdist's --dist loadfile.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import optuna

from search import space as spaces
from search.runner import recovery
from search.studies import lifecycle as studies
from search.studies._identity import worker_identity
from test_interruptions import LONG, _alive, _start_in_own_group, _wait_for_running_trials, _wait_for_states
from test_overnight import _study


def test_ctrl_c_at_the_terminal_stops_every_worker_gracefully(write_space, home):
    """A terminal's Ctrl-C goes to the whole foreground group. Each worker must see one SIGINT (the
    parent's), not two: a second one means "stop now" and would lose the graceful stop."""
    space = write_space({**LONG, "study": {"name": "ctrlc", "n_trials": 6, "baseline": False}})
    proc = _start_in_own_group(space, home, "--workers", "2")
    try:
        victims = _wait_for_running_trials(home, "ctrlc", proc, 2)
        workers = [v.user_attrs["worker"]["pid"] for v in victims]
        # Ctrl-Z, then fg: the parent passes both on to the workers in their own sessions.
        os.killpg(proc.pid, signal.SIGTSTP)
        _wait_for_states([proc.pid, *workers], lambda state: state == "T")
        os.killpg(proc.pid, signal.SIGCONT)
        _wait_for_states([proc.pid, *workers], lambda state: state != "T")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, err  # a graceful stop has its own exit status
    assert "Traceback" not in err
    assert "stopped by SIGINT" in out and f"search run {space}" in out
    study = _study(home, "ctrlc")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    for victim in victims:
        stopped = study.trials[victim.number]
        assert stopped.state.name == "FAIL"
        assert "stopped by SIGINT" in stopped.user_attrs["reason"], stopped.user_attrs["reason"]
        assert "retry_count" not in stopped.user_attrs or stopped.user_attrs["retry_count"] == 0
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(v.number for v in victims)
    # Being stopped is not a crash: the requeued settings still have their one crash retry.
    assert all(t.user_attrs["retry_count"] == 0 for t in waiting)


def test_workers_stop_gracefully_when_their_parent_is_killed_outright(write_space, home):
    space = write_space({**LONG, "study": {"name": "orphaned", "n_trials": 6, "baseline": False}})
    proc = _start_in_own_group(space, home, "--workers", "2")
    try:
        victims = _wait_for_running_trials(home, "orphaned", proc, 2)
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): the workers hold its pipes open until they stop
        pids = {v.user_attrs["worker"]["pid"] for v in victims}
        deadline = time.monotonic() + 150
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not any(_alive(p) for p in pids), "workers outlived their parent"
        proc.communicate(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    study = _study(home, "orphaned")
    for victim in victims:
        stopped = study.trials[victim.number]
        # Said as what happened: nobody sent SIGTERM (it was, by the worker to itself).
        assert stopped.state.name == "FAIL" and f"stopped by the end of its parent process {proc.pid}" in \
            stopped.user_attrs["reason"], stopped.user_attrs["reason"]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(v.number for v in victims)


def test_workers_recovering_the_same_orphans_at_once_each_requeue_it_once(tmp_path):
    """Every worker checks for dead processes' trials between its own; several see the same one."""
    space = spaces.validate({"study": {"name": "race", "seed": 0, "n_trials": 10, "baseline": False},
                             "data": {"source": "sklearn:iris"},
                             "model": {"family": "mlp", "units": {"int": [4, 64]}}})
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = studies.open_study(space, studies.make_storage(url), {"n_splits": 3})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphans = []
    for _ in range(10):
        trial = study.ask()
        trial.suggest_int("units", 4, 64)
        trial.set_user_attr("worker", {"host": worker_identity()["host"], "pid": dead.pid})
        orphans.append(trial.number)

    barrier, recovered, errors = threading.Barrier(8, timeout=60), [], []

    def recover():
        try:
            mine = optuna.load_study(study_name="race", storage=studies.make_storage(url))
            barrier.wait()
            recovered.extend(recovery.recover_orphans(mine))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=recover, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(recovered) == orphans, "each orphan is recovered by exactly one worker"
    study = optuna.load_study(study_name="race", storage=url)
    assert [t.state.name for t in study.trials[:10]] == ["FAIL"] * 10
    assert sorted(t.user_attrs["retry_of"] for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))) \
        == orphans


def test_recycled_workers_still_stop_a_space_that_always_fails(write_space, home, tmp_path):
    """Every process runs one trial (--recycle-after 1), so no process alone sees two failures in a
    row; the study-wide streak since the run began must stop it, or it fails trials all night."""
    (tmp_path / "broken.py").write_text(
        "import keras\nCALLS = []\n\n\ndef build(settings, input_shape, n_outputs):\n"
        "    CALLS.append(settings)\n"
        "    if len(CALLS) > 1:  # each process checks it once before its trial; the trial fails\n"
        "        raise RuntimeError('this builder is broken')\n"
        "    inputs = keras.Input(input_shape)\n"
        "    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation='softmax')(inputs))\n")
    space = write_space({"study": {"name": "broken", "n_trials": 30, "baseline": False,
                                   "max_consecutive_failures": 2},
                         "model": {"family": "python:broken:build", "width": {"choice": [3, 5]},
                                   "layers": None, "units": None, "dropout": None}})
    proc = _start_in_own_group(space, home, "--recycle-after", "1")
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "2 consecutive failed trials" in err and "this builder is broken" in err
    assert "Traceback" not in err
    states = [t.state.name for t in _study(home, "broken").trials]
    assert states == ["FAIL"] * 2, states

