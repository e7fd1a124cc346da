"""What an unattended night can throw at a run besides a crash: a Ctrl-C as the plan is printed, a second
Ctrl-C, a stop during the ablation, a tracking store that breaks mid-run, a full disk, a kill after the last
trial, and limits given as zero (stops of worker processes: test_worker_stops.py)."""
from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from conftest import mlflow_store_in, run_cli
from test_overnight import ROOT, SLOW, _env, _running_trials, _study
from search import api, space as spaces
from search.runner import session
from search.studies._identity import process_alive
from search.runner.results import TrialListener

# Long enough that signals land mid-trial also on the fused path, which trains a trial's splits at once.
LONG = {**SLOW, "train": {"epochs": 2000, "batch_size": 8}}


def _start_in_own_group(space: Path, home: Path, *extra: str, figures: bool = False) -> subprocess.Popen:
    """As a shell starts a foreground job: the command leads a process group a terminal signals as one."""
    mlflow_store_in(home)
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--home", str(home), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(figures),
                            cwd=ROOT, start_new_session=True)


def _wait_for_running_trials(home: Path, name: str, proc: subprocess.Popen, n: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        running = _running_trials(home, name)
        # Training has begun: a split has finished, or an epoch was reported (fused splits finish together).
        started = [t for t in running if t.user_attrs.get("splits") or t.intermediate_values]
        if len(started) >= n:
            return started
        time.sleep(0.3)
    raise AssertionError(f"never saw {n} running trials")


def _stopped_once(proc: subprocess.Popen, ready: Any, sig: int) -> tuple[str, str]:
    """``sig`` to the command's group once ``ready()`` returns; its output. Nothing of it is left running."""
    try:
        ready()
        os.killpg(proc.pid, sig)
        return proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    return process_alive(pid)


def _wait_for_states(pids: list[int], ok, timeout: float = 30) -> None:
    """Until every process's state letter in /proc (R, S, T for stopped ...) satisfies ``ok``."""
    def state(pid: int) -> str:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0]

    deadline = time.monotonic() + timeout
    while not all(ok(state(p)) for p in pids):
        assert time.monotonic() < deadline, {p: state(p) for p in pids}
        time.sleep(0.1)


def test_ctrl_c_as_soon_as_the_plan_is_printed_is_a_graceful_stop(write_space, home):
    """Between the printed plan and the first trial the study is being made: a Ctrl-C there waits for it."""
    space = write_space({**LONG, "study": {"name": "early", "n_trials": 2, "baseline": False}})
    proc = _start_in_own_group(space, home)

    def plan_printed() -> None:
        line = ""
        while not line.startswith("study       early"):  # the plan's first line, on stderr with the progress
            line = proc.stderr.readline()
            assert line, proc.communicate()

    out, err = _stopped_once(proc, plan_printed, signal.SIGINT)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "stopped by SIGINT" in out
    study = _study(home, "early")  # made whole: it continues with the same command
    assert study.user_attrs["ready"] and not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))


def test_a_sigterm_while_the_data_is_read_is_a_graceful_stop(write_space, home):
    """A scheduler's SIGTERM in the command's first seconds killed it with status 143 and no word."""
    space = write_space({**LONG, "study": {"name": "sooner", "n_trials": 2, "baseline": False},
                         "data": {"source": "sklearn:digits"}})
    proc = _start_in_own_group(space, home)

    def catching_sigterm() -> None:  # bit 15 of SigCgt: the command's start, before it reads the data
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(f"/proc/{proc.pid}/status") as fh:
                caught = int(next(line for line in fh if line.startswith("SigCgt:")).split()[1], 16)
            if caught & (1 << (signal.SIGTERM - 1)):
                break
            time.sleep(0.01)
        assert not (home / "optuna.db").exists() or not _study(home, "sooner").trials, "too late to test"

    tensorflow: list[str] = []

    def watch() -> None:  # a run stopped before its first trial has no use for TensorFlow's seconds of import
        while proc.poll() is None and not tensorflow:
            try:
                tensorflow.extend(line for line in Path(f"/proc/{proc.pid}/maps").read_text().splitlines()
                                  if "libtensorflow" in line)
            except OSError:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = _stopped_once(proc, catching_sigterm, signal.SIGTERM)
    watcher.join(timeout=10)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "stopped by SIGTERM" in out
    assert not tensorflow, tensorflow[:1]


def _exit_status(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("still running long after its terminal closed")


def test_a_closed_terminal_stops_the_run_gracefully(write_space, home):
    """An ssh session that drops hangs up the run's terminal: SIGHUP killed the run mid-epoch, leaving its
    trial and MLflow run RUNNING until the next run noticed; a write to the hung-up terminal then fails."""
    space = write_space({**LONG, "study": {"name": "hungup", "n_trials": 2, "baseline": False}})
    mlflow_store_in(home)
    pid, terminal = pty.fork()  # the child leads a session whose controlling terminal is the pty
    if pid == 0:  # pragma: no cover (the child)
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "search", "run", str(space), "--home", str(home)], _env())
    seen = b""
    try:
        deadline = time.monotonic() + 180
        while not [t for t in _running_trials(home, "hungup") if t.intermediate_values or t.user_attrs.get("splits")]:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([terminal], [], [], 0.3)[0]:
                seen += os.read(terminal, 65536)  # drained, as a terminal is: a full one blocks the writer
    finally:
        os.close(terminal)  # the terminal hangs up: the kernel sends its session SIGHUP
    assert _exit_status(pid, 180) == 3  # stopped gracefully, not killed by the signal (-1)
    study = _study(home, "hungup")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    stopped = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(stopped) == 1 and "stopped by SIGHUP" in stopped[0].user_attrs["reason"]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [stopped[0].params]


def test_a_run_started_with_nohup_outlives_its_terminal(tmp_path):
    """``nohup`` ignores SIGHUP before the command starts: the graceful stop must not take that back."""
    probe = ("import signal\n"
             "from search.runner.stopping import StopRequest\n"
             "held = StopRequest().install()\n"
             "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, signal.SIGHUP in held._previous)\n")
    for command, expected in ((["nohup"], "True False"), ([], "False True")):
        out = subprocess.run([*command, sys.executable, "-c", probe], capture_output=True, text=True, env=_env(),
                             cwd=tmp_path, timeout=120)
        assert out.stdout.strip() == expected, out.stderr  # a pipe, not a terminal: nohup leaves it be


def test_sigterm_during_the_ablation_is_a_stop_and_the_next_run_finishes_it(write_space, home):
    """The ablation after the budget is part of the run: a stop there exits 3 and stores no half table."""
    space = write_space({**SLOW, "study": {"name": "ablated", "n_trials": 1, "baseline": False, "ablation": True},
                         "model": {"units": 16, "dropout": 0.3, "l2": 1e-4},
                         # Its splits stop once iris is learned: the rerun that finishes the ablation trains
                         # three variants (it took half the test's time at 100 epochs each; 40 now).
                         "train": {"epochs": 40, "batch_size": 8, "learning_rate": 0.02, "early_stopping": 5}})
    proc = _start_in_own_group(space, home)
    try:
        line = ""
        while not line.startswith("ablation of trial"):
            line = proc.stdout.readline()
            assert line, proc.communicate()
        _wait_for_running_trials(home, "ablated.ablation.t00000", proc, 1)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, out + err
    assert "Traceback" not in err and "nothing to ablate" not in out
    assert "stopped by SIGTERM before its variants finished" in out and "search ablate ablated --home" in out
    assert re.search(r"search ablate ablated --home \S+ --trial \d+` continues it", out), out
    assert "ablation" not in _study(home, "ablated").user_attrs
    done = subprocess.run([sys.executable, "-m", "search", "run", str(space), "--home", str(home)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    # The program leaves without the interpreter's teardown (search/cli/_exit.py), yet closes its databases:
    # SQLite folds the write-ahead log back into the file as the last connection closes, so a copied
    # mlflow.db is whole (optuna.db is open in this test's process too, which keeps its log).
    assert (home / "mlflow.db").exists() and not (home / "mlflow.db-wal").exists()
    assert _study(home, "ablated").user_attrs["ablation"]["rows"], done.stdout


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_ctrl_c_stops_at_once_and_still_queues_the_trial(write_space, home, workers):
    # One row per step over digits makes an epoch last a second or more, so the second Ctrl-C, sent as
    # soon as the run says it heard the first, lands inside the epoch the first one is waiting out.
    # A wide network keeps each step slow enough for that on the fused path too. With worker processes,
    # the parent passes each Ctrl-C on: the second stops them at once too, and the run exits 130, not 3.
    space = write_space({**LONG, "study": {"name": "twice", "n_trials": 3, "baseline": False},
                         "data": {"source": "sklearn:digits"}, "train": {"epochs": 3, "batch_size": 1},
                         "model": {"layers": 3, "units": 256, "dropout": 0.0}})
    proc = _start_in_own_group(space, home, *(["--workers", str(workers)] if workers > 1 else []))
    heard, err_lines = threading.Event(), []

    def read_stderr() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if "Ctrl-C again to stop at once" in line:
                heard.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        _wait_for_running_trials(home, "twice", proc, 1)
        os.killpg(proc.pid, signal.SIGINT)
        assert heard.wait(60), "".join(err_lines)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = "".join(err_lines)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    queued = "the running trial is queued again" if workers == 1 else "the running trials are queued again"
    assert f"{queued}. Continue the study with:" in proc.stdout.read() + err
    study = _study(home, "twice")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    victims = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert victims and all("queued to run again" in t.user_attrs["reason"] for t in victims)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == [t.number for t in victims]
    with sqlite3.connect(home / "mlflow.db") as con:
        statuses = con.execute("SELECT status FROM runs").fetchall()
    assert ("RUNNING",) not in statuses, statuses


class _BreakTrackingStore(TrialListener):
    """Drops MLflow's metric tables once trial 1 has started: the store fails from then on, for real."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def on_trial_start(self, trial, settings) -> None:
        if trial.number == 1:
            with sqlite3.connect(self.db) as con:
                con.execute("DROP TABLE latest_metrics")
                con.execute("DROP TABLE metrics")


def test_a_tracking_store_that_breaks_mid_run_costs_no_trial(write_space, home, capsys):
    space_file = write_space({"study": {"name": "untracked", "n_trials": 6, "baseline": False,
                                        "max_consecutive_failures": 1},
                              "validation": {"scheme": "holdout"}})
    prepared = session.prepare(spaces.load(space_file))
    options = session.RunOptions(home=home, quiet=True, threads=1,
                                 extra_listeners=[_BreakTrackingStore(home / "mlflow.db")])
    out = io.StringIO()
    api.run_prepared(prepared, options, space_file.read_text(), out=out)
    study = _study(home, "untracked")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    err = capsys.readouterr().err
    import re

    warned = re.findall(r"warning: MlflowTracker\.(\w+) failed", err)
    assert warned and len(warned) == len(set(warned)), "one warning per listener and event"
    # A dead server can take minutes per call: after failing in 3 trials in a row the tracker is off. Its
    # writes run beside the next trial's training, so a write of trial N that failed is counted at the end
    # of trial N + 1 (trial 0's last writes race with the breakage at trial 1's start).
    assert "MlflowTracker failed in 3 trials in a row and is off for the rest of this run" in err
    with sqlite3.connect(home / "mlflow.db") as con:  # MLflow's own queries need the dropped tables
        logged = con.execute("SELECT value FROM tags WHERE key = 'optuna.trial_number'").fetchall()
    assert sorted(int(v) for (v,) in logged) in ([0, 1, 2, 3], [0, 1, 2, 3, 4])
    assert "6/6 finished" in out.getvalue()


@pytest.mark.parametrize("flag, value", [("--timeout", "0"), ("--timeout", "0s"), ("--n-trials", "0"),
                                         ("--workers", "0"), ("--threads", "-1")])
def test_limits_of_zero_are_refused_not_read_as_no_limit(write_space, home, capsys, flag, value):
    space = write_space()
    with pytest.raises(SystemExit) as exit_:
        run_cli("run", space, "--home", home, flag, value)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and repr(value) in err
    assert not (home / "optuna.db").exists()


def test_a_full_disk_stops_the_run_and_queues_the_trial_again(write_space, home):
    """Writing a checkpoint into /dev/full fails as a full disk does (ENOSPC). That is no fault of the
    settings: the run stops at once, says so, and the trial runs again once there is room."""
    from search.runner import checkpoints
    from search.errors import StudyError

    space_file = write_space({"study": {"name": "full", "n_trials": 3, "baseline": False,
                                        "max_consecutive_failures": 10},
                              "validation": {"scheme": "holdout"}})
    target = checkpoints.split_path(home, "full", 1, 0)
    target.parent.mkdir(parents=True)
    target.with_name(f".{target.stem}.tmp-{os.getpid()}.keras").symlink_to("/dev/full")
    prepared = session.prepare(spaces.load(space_file))
    options = session.RunOptions(home=home, quiet=True, threads=1, continue_command="search run again")
    with pytest.raises(StudyError) as error:
        api.run_prepared(prepared, options, space_file.read_text(), out=io.StringIO())
    message = str(error.value)
    assert "no space left" in message and "search run again" in message
    assert "consecutive" not in message
    study = _study(home, "full")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert study.trials[2].user_attrs["retry_of"] == 1 and study.trials[2].user_attrs["retry_count"] == 0
    assert not target.parent.exists() or not list(target.parent.iterdir()), "no half-written checkpoint is left"


_KILLED_AFTER_THE_LAST_TELL = """
import os, signal, sqlite3, sys, time
from search.tracking.tracker import MlflowTracker

space, home = sys.argv[1], sys.argv[2]
real = MlflowTracker._finish_trial


def die_once_optuna_has_it(self, study, number, *args):
    # The side thread's closing writes of the last trial: the process dies once Optuna holds the trial
    # COMPLETE and before MLflow hears of it, the gap a kill -9 can land in.
    if number == 1:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite3.connect(os.path.join(home, "optuna.db")) as con:
                row = con.execute("SELECT state FROM trials WHERE number = 1").fetchone()
            if row and row[0] == "COMPLETE":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.05)
    return real(self, study, number, *args)


MlflowTracker._finish_trial = die_once_optuna_has_it
from search.cli import main
sys.exit(main(["run", space, "--home", home]))
"""


def test_a_process_killed_after_its_last_trial_is_set_straight_by_the_next_run(write_space, home, capsys):
    """Optuna hears of a trial's end before MLflow (whose writes go to a side thread): a kill in between
    left the last trial's run and the parent RUNNING and the ★ on an older trial, and a run with its budget
    spent repaired nothing."""
    from mlflow.tracking import MlflowClient

    space = write_space({"study": {"name": "gap", "n_trials": 2, "baseline": False,
                                   "enqueue": [{"learning_rate": 1e-5}, {"learning_rate": 0.05}]},
                         "train": {"epochs": 12, "learning_rate": {"float": [1e-5, 0.1], "log": True}}})
    mlflow_store_in(home)
    proc = subprocess.run([sys.executable, "-c", _KILLED_AFTER_THE_LAST_TELL, str(space), str(home)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    study = _study(home, "gap")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.best_trial.number == 1, "the enqueued learning rates make the last trial the best"
    runs = {r.data.tags.get("search.kind") + r.data.tags.get("optuna.trial_number", ""): r
            for r in client.search_runs([client.get_experiment_by_name("gap").experiment_id])}
    assert runs["study"].info.status == runs["trial1"].info.status == "RUNNING"  # the gap, as a kill leaves it
    assert runs["study"].data.tags["best_trial"] == "0"

    assert run_cli("run", space, "--home", home, "--figures", "on") == 0  # the repair draws the figure too
    assert "already has its 2 finished trials" in capsys.readouterr().out
    runs = {r.data.tags.get("search.kind") + r.data.tags.get("optuna.trial_number", ""): r
            for r in client.search_runs([client.get_experiment_by_name("gap").experiment_id])}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    last = runs["trial1"]
    assert last.data.metrics["val_loss_mean"] == pytest.approx(study.trials[1].value)
    assert last.data.tags["optuna.state"] == "COMPLETE" and last.data.tags["best"] == "true"
    assert last.info.run_name.startswith("t001 ★ ")
    assert runs["trial0"].data.tags["best"] == "false" and "★" not in runs["trial0"].info.run_name
    assert runs["study"].data.tags["best_trial"] == "1"
    assert runs["study"].data.metrics["best_value"] == pytest.approx(study.trials[1].value)
    assert [a.path for a in client.list_artifacts(last.info.run_id, "best_model")]
    # Its per-split curves too, from Optuna's record (the run closed here had summary metrics only).
    from search.review import curves_of

    curves = curves_of(study.trials[1])
    assert curves and all(
        [m.value for m in client.get_metric_history(last.info.run_id, f"split_{k}/val_loss")] ==
        pytest.approx(history["val_loss"]) for k, history in curves.items())
    assert "split_0/best_epoch" in last.data.metrics
    from search.tracking._review import TRIAL_FIGURE  # and its learning-curve figure, drawn from them

    assert TRIAL_FIGURE in [a.path for a in client.list_artifacts(last.info.run_id, str(Path(TRIAL_FIGURE).parent))]
    # Once set straight, another run finds nothing to do and changes nothing.
    assert run_cli("run", space, "--home", home) == 0
    again = client.get_run(runs["study"].info.run_id)
    assert again.info.status == "FINISHED" and again.info.end_time == runs["study"].info.end_time


def test_a_trial_queued_again_trains_with_the_seeds_of_the_trial_it_repeats(write_space, home, tmp_path):
    """A study stopped and continued trains what it would have trained uninterrupted: the same settings
    with the same seeds (they had scored 0.094 uninterrupted and 0.123 after a stop, a new draw of seeds)."""
    from search.runner import checkpoints
    from search.errors import StudyError
    from search.reproduction import targets

    overrides = {"study": {"name": "again", "n_trials": 2, "baseline": False, "max_consecutive_failures": 10},
                 "validation": {"scheme": "holdout"}}
    options = dict(quiet=True, threads=1, continue_command="search run again")
    uninterrupted = tmp_path / "uninterrupted"
    space_file = write_space(overrides)
    api.run_prepared(session.prepare(spaces.load(space_file)), session.RunOptions(home=uninterrupted, **options),
                     space_file.read_text(), out=io.StringIO())

    target = checkpoints.split_path(home, "again", 1, 0)  # trial 1's checkpoint meets a full disk
    target.parent.mkdir(parents=True)
    blocker = target.with_name(f".{target.stem}.tmp-{os.getpid()}.keras")
    blocker.symlink_to("/dev/full")
    with pytest.raises(StudyError):
        api.run_prepared(session.prepare(spaces.load(space_file)), session.RunOptions(home=home, **options),
                         space_file.read_text(), out=io.StringIO())
    blocker.unlink(missing_ok=True)  # the failed save removed its temporary name already
    api.run_prepared(session.prepare(spaces.load(space_file)), session.RunOptions(home=home, **options),
                     space_file.read_text(), out=io.StringIO())

    retry = _study(home, "again").trials[2]
    first = _study(uninterrupted, "again").trials[1]
    assert retry.user_attrs["retry_of"] == 1 and retry.state.name == "COMPLETE" and retry.params == first.params
    assert retry.value == pytest.approx(first.value, rel=1e-6)
    assert [s["seed"] for s in retry.user_attrs["splits"]] == [s["seed"] for s in first.user_attrs["splits"]]
    # What reproduces it says so too: its recorded config names trial 1's seeds.
    study = _study(home, "again")
    recorded, origin = targets.trial_config(study, retry, f"sqlite:///{home / 'mlflow.db'}")
    assert origin.startswith("MLflow run") and recorded.study.seed_trial == 1
    rebuilt, origin = targets.trial_config(study, retry, None)  # without MLflow: from the study's space
    assert origin.startswith("the study's space") and rebuilt.study.seed_trial == 1
    # Its export names those seeds, and the export reproduces the retry (trial 1 itself failed).
    exported = tmp_path / "retry.yaml"
    assert run_cli("best", "again", "--home", home, "--export", exported, "--trial", "2") == 0
    assert spaces.load(exported).study.seed_trial == 1
    found = targets.locate(study, f"sqlite:///{home / 'mlflow.db'}", config=exported)
    assert found.trial.number == 2 and found.seed_trial == 1 and not found.changed


@pytest.mark.parametrize("when, sig", [("closing", signal.SIGINT), ("summary", signal.SIGTERM)])
def test_a_stop_after_the_last_trial_is_graceful_and_leaves_the_ablation_for_the_next_run(
        write_space, home, capsys, monkeypatch, when, sig):
    """Ctrl-C while the last trial's writes were closing ended in "interrupted." (exit 130), the MLflow parent
    run left RUNNING; SIGTERM while the summary printed killed the process outright, printing nothing."""
    from mlflow.tracking import MlflowClient

    from search.review import verdicts

    space = write_space({"study": {"name": "late", "n_trials": 2, "ablation": True},
                         "model": {"dropout": {"float": [0.0, 0.5]}}})
    sent = []

    def signal_once(real):
        def call(*args, **kwargs):
            if not sent:
                sent.append(sig)
                os.kill(os.getpid(), sig)
            return real(*args, **kwargs)
        return call

    if when == "closing":
        monkeypatch.setattr(session, "_run_end", signal_once(session._run_end))
    else:
        monkeypatch.setattr(verdicts, "why_ended", signal_once(verdicts.why_ended))
    assert run_cli("run", space, "--home", home, "--quiet") == 3
    out = capsys.readouterr().out
    assert sent and f"stopped by {sig.name}" in out and "search run" in out, out
    assert "ablation of trial" not in out and "what regularization bought" not in out  # left for the next run
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("late").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"], [(r.info.run_name, r.info.status) for r in runs]
    monkeypatch.undo()
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    again = capsys.readouterr().out
    assert "ablation of trial" in again or "what regularization bought" in again, again
