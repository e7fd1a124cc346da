"""Workers with different --heartbeat values on one study: a trial is judged silent by its own worker's interval,
and a worker whose trial another took over says so and goes on. Real SQLite storage and real processes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from conftest import mlflow_store_in
from test_overnight import ROOT, _env
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


def _worker(space: Path, home: Path, host: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--home", str(home), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**_env(), "SEARCH_HOSTNAME": host}, start_new_session=True)


def _beating_trial(db: Path) -> int | None:
    """The number of a running trial with a heartbeat and its worker's interval on record, if there is one."""
    try:
        with sqlite3.connect(db, timeout=1) as con:
            row = con.execute(
                "SELECT t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
                "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'heartbeat_interval' "
                "WHERE t.state = 'RUNNING'").fetchone()
    except sqlite3.OperationalError:  # the file or its tables not made yet, or locked for a moment
        return None
    return None if row is None else int(row[0])


def _write_locked(db: Path) -> bool:
    """Whether another connection holds the file's write lock (every transaction of a worker takes it)."""
    con = sqlite3.connect(db, timeout=0.5)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.rollback()
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc), exc
        return True
    finally:
        con.close()


def test_a_store_locked_by_a_stopped_worker_is_said_as_such(tmp_path):
    """A worker stopped in the middle of a write holds the SQLite file's lock: another worker waited its minute and
    ended with "unexpected failure … StorageInternalError: An exception is raised during the commit … please
    report it". Here the lock is held by this test, and the storage waits a tenth of a second, not a minute."""
    from search.stores import trouble_of

    db = tmp_path / "optuna.db"
    optuna.create_study(study_name="held", storage=f"sqlite:///{db}")
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{db}", engine_kwargs={"connect_args": {"timeout": 0.1}})
        with pytest.raises(Exception) as raised:
            storage.create_new_study(directions=[optuna.study.StudyDirection.MINIMIZE], study_name="second")
    finally:
        holder.rollback()
        holder.close()
    said = trouble_of(raised.value)
    assert said is not None and "stayed locked by another process" in said, raised.value
    assert "stopped in the middle of a write (Ctrl-Z" in said and "PostgreSQL" in said


def test_a_worker_whose_trial_was_taken_over_says_so_and_goes_on(write_space, home, tmp_path):
    """Worker B falls silent (stopped, as a machine that swaps or a VM that pauses) past three of its heartbeats;
    A fails its trial and queues it again. B, woken, crashed with "Cannot tell a FAIL trial" (exit 1)."""
    space = write_space({"study": {"name": "handover", "n_trials": 2, "baseline": False},
                         "validation": {"scheme": "holdout", "fraction": 0.3},
                         "train": {"epochs": 60, "batch_size": 16, "early_stopping": 0}})
    mlflow_store_in(home)
    b = _worker(space, home, "host-b", "--heartbeat", "1")
    a = None
    try:
        storage = f"sqlite:///{home / 'optuna.db'}"
        deadline = time.monotonic() + 180
        victim = None
        while victim is None:  # a running trial that beats and has its interval: read straight from the file,
            # since a trial of B's lasts about 2 s and loading the study under load can take longer than that
            assert b.poll() is None and time.monotonic() < deadline, b.communicate()
            victim = _beating_trial(home / "optuna.db")
            time.sleep(0.05)
        os.kill(b.pid, signal.SIGSTOP)
        while any(_write_locked(home / db) for db in ("optuna.db", "mlflow.db")):  # stopped mid-write, B would
            # lock A out of the file (MLflow waits 5 s for it, Optuna 60 s): the case
            # of test_a_store_locked_by_a_stopped_worker_is_said_as_such, not this one's; let it finish the write
            os.kill(b.pid, signal.SIGCONT)
            time.sleep(0.02)
            os.kill(b.pid, signal.SIGSTOP)
        a = _worker(space, home, "host-a", "--heartbeat", "1")
        while True:  # until A has failed B's trial as silent
            assert a.poll() is None and time.monotonic() < deadline + 120, a.communicate()
            if optuna.load_study(study_name="handover", storage=storage).trials[victim].state.name == "FAIL":
                break
            time.sleep(0.3)
        os.kill(b.pid, signal.SIGCONT)
        out_b, err_b = b.communicate(timeout=240)
        out_a, err_a = a.communicate(timeout=240)
    finally:
        for proc in (b, a):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert b.returncode == 0, err_b
    assert a.returncode == 0, err_a
    assert f"trial {victim} was taken over by another worker" in err_b, err_b
    assert "Traceback" not in err_b + err_a and "Cannot tell" not in err_b
    assert f"trial {victim} (of host host-b) went silent: no heartbeat for" in err_a, err_a
    assert "(its worker's interval 1 s); marked failed and queued again here" in err_a, err_a

    study = optuna.load_study(study_name="handover", storage=storage)
    failed = study.trials[victim]
    assert failed.state.name == "FAIL" and failed.user_attrs["failure"] == "silent"
    assert failed.user_attrs["reason"].startswith("went silent: no heartbeat for")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 2
    again = [t for t in study.trials if t.user_attrs.get("retry_of") == victim]
    assert len(again) == 1 and again[0].params == failed.params
    with sqlite3.connect(home / "mlflow.db") as con:  # B closed its run of the trial it lost
        assert con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone() == (0,)


def test_a_trial_records_its_workers_heartbeat_interval(write_space, home):
    from conftest import run_cli

    space = write_space({"study": {"name": "beats", "n_trials": 1, "baseline": False}, "train": {"epochs": 1}})
    assert run_cli("run", str(space), "--home", str(home), "--heartbeat", "7", "--quiet") == 0
    trial = optuna.load_study(study_name="beats", storage=f"sqlite:///{home / 'optuna.db'}").trials[0]
    assert trial.user_attrs["heartbeat_interval"] == 7
