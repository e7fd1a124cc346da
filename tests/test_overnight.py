"""Overnight safety with real processes and real stores: SIGKILL, SIGTERM, faults, workers, disk."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import mlflow_store_in, run_cli
from search import stores
from search.runner.results import TrialListener

ROOT = Path(__file__).resolve().parents[1]

# Trials long enough (several seconds even with the splits fused) to be caught mid-way by a signal. A trial
# shows it has started only when its reports reach the store, at most once a second: at 80 epochs (1.5 s) a
# loaded CI machine saw some trials only as they ended, or not at all.
# Long enough for a signal to land inside a trial (up to 240 epochs a split); early stopping ends the splits
# of the run that finishes the study once they have learned iris (the rerun took up to three minutes).
# A patience of 30: with 8, a trial could stop early just after the signal was sent and end complete (a stop
# in a trial's last epoch keeps it), which failed the SIGTERM test once on CI (3430af4).
SLOW = {"study": {"name": "slow", "n_trials": 2, "baseline": False},
        "model": {"units": 16, "dropout": {"float": [0.0, 0.5]}},
        "train": {"epochs": 240, "batch_size": 8, "learning_rate": 0.02, "early_stopping": 30}}


def _env(figures: bool = False) -> dict[str, str]:
    """A child's environment: one TensorFlow thread, and no figures unless asked for (they cost each child
    about 2 s of CPU; the tests of figures, and one of signals with drawing processes alive, keep them)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3",
               SEARCH_FIGURES="on" if figures else "off")
    return env


def _start(space: Path, home: Path, *extra: str) -> subprocess.Popen:
    mlflow_store_in(home)
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--home", str(home), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _study(home: Path, name: str):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def _running_trials(home: Path, name: str) -> list:
    """The study's running trials; none while the child has not made the study yet.

    Read under the run's own schema lock: an Optuna reader on a half-made database creates the tables
    too, and would race the child doing so ("table trial_user_attributes already exists").
    """
    try:
        with stores.home_lock(home):
            return _study(home, name).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    except Exception:  # no home yet, or KeyError: the child has not created the study yet
        return []


def _wait_for_running_trial(home: Path, name: str, proc: subprocess.Popen, timeout: float = 120):
    """Block until the child is inside a trial that has finished at least one split."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if (home / "optuna.db").exists():
            running = _running_trials(home, name)
            # Started, and far from its end (epochs of its first split): the signal must land inside it.
            if running and (running[0].user_attrs.get("splits") or running[0].intermediate_values) and \
                    max((step % 10_000 for step in running[0].intermediate_values), default=0) < 100:
                return running[0]
        time.sleep(0.3)
    raise AssertionError("the child never reached a running trial")


def _trial_runs(home: Path, name: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id], "tags.`search.kind` = 'trial'")


def test_sigkill_then_rerun_loses_and_repeats_nothing(write_space, home, capsys):
    space = write_space(SLOW)
    proc = _start(space, home)
    victim = _wait_for_running_trial(home, "slow", proc)
    proc.kill()
    proc.wait()
    assert _study(home, "slow").trials[victim.number].state.name == "RUNNING"
    capsys.readouterr()
    assert run_cli("status", "slow", "--home", home) == 0
    status = capsys.readouterr().out
    assert "1 marked running whose process on this host is gone" in status and ", 1 running" not in status

    rerun = _start(space, home)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"trial(s) {victim.number} lost their process" in out
    study = _study(home, "slow")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1, states
    assert study.trials[victim.number].state.name == "FAIL"
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].params == victim.params and retry[0].state.name == "COMPLETE"

    runs = _trial_runs(home, "slow")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    by_trial = {}
    for r in runs:
        by_trial.setdefault(int(r.data.tags["optuna.trial_number"]), []).append(r)
    assert all(len(v) == 1 for v in by_trial.values()), "a trial was logged twice"
    assert by_trial[victim.number][0].info.status in ("FAILED", "KILLED")
    finished = [n for n, (r,) in by_trial.items() if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted(t.number for t in study.trials if t.state.name == "COMPLETE")


def test_sigterm_stops_at_the_end_of_an_epoch_and_says_how_to_continue(write_space, home):
    space = write_space(SLOW)
    proc = _start(space, home)
    victim = _wait_for_running_trial(home, "slow", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # stopped, not finished: a wrapper can tell
    assert "stopped by SIGTERM" in out and f"search run {space}" in out
    assert "Traceback" not in err
    study = _study(home, "slow")
    stopped = study.trials[victim.number]
    assert stopped.state.name == "FAIL" and "stopped by SIGTERM" in stopped.user_attrs["reason"]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [stopped.params]
    run = next(r for r in _trial_runs(home, "slow") if r.data.tags["optuna.trial_number"] == str(victim.number))
    assert run.info.status == "KILLED"
    # Optuna's name of the state, as every other view gives it; the failure kind tells a stop apart.
    assert run.data.tags["optuna.state"] == "FAIL" and run.data.tags["failure"] == "interrupted"
    # The study continues where it stopped, starting with the interrupted settings.
    assert run_cli("run", space, "--home", home, "--quiet", "--n-trials", "1") == 0
    study = _study(home, "slow")
    assert any(t.user_attrs.get("retry_of") == victim.number and t.state.name == "COMPLETE" for t in study.trials)


def test_faulty_settings_are_recorded_and_the_budget_is_still_met(write_space, home, tmp_path):
    (tmp_path / "fragile.py").write_text(textwrap.dedent("""
        import keras

        def build(settings, input_shape, n_outputs):
            if settings["width"] > 4:
                raise ValueError(f"width {settings['width']} is not supported")
            inputs = keras.Input(input_shape)
            x = keras.layers.Dense(settings["width"], activation="relu")(inputs)
            return keras.Model(inputs, keras.layers.Dense(n_outputs)(x))
    """))
    space = write_space({"study": {"name": "faults", "n_trials": 3, "baseline": False, "seed": 1,
                                   "sampler": "random", "max_consecutive_failures": 10},
                         "data": {"source": "sklearn:diabetes"},
                         "model": {"family": "python:fragile:build", "width": {"choice": [3, 5]},
                                   "layers": None, "units": None, "dropout": None},
                         "train": {"optimizer": "sgd", "learning_rate": {"choice": [0.001, 10.0]}}})
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    study = _study(home, "faults")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 3
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all("width 5 is not supported" in t.user_attrs["reason"] for t in failed)
    runs = {int(r.data.tags["optuna.trial_number"]): r for r in _trial_runs(home, "faults")}
    assert all(runs[t.number].info.status == "FAILED" for t in failed)
    for t in study.trials:
        if t.state.name == "PRUNED":
            assert "non-finite" in t.user_attrs["reason"] and runs[t.number].info.status == "FINISHED"


def test_two_workers_finish_exactly_the_budget_without_duplicates(write_space, home):
    space = write_space({"study": {"name": "pair", "n_trials": 6, "keep_checkpoints": 2},
                         "model": {"units": {"int": [4, 64]}}, "validation": {"scheme": "holdout"}})
    proc = _start(space, home, "--workers", "2")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "database is locked" not in out + err
    assert "asked for now" not in err, "a worker's share of the budget is not something the user asked for"
    # The workers run quiet; the parent says every finished trial, so several workers show progress too.
    said = re.findall(r"trial (\d)/6 \(#(\d+)\) (complete|pruned)", err)
    assert sorted(int(done) for done, _, _ in said) == [1, 2, 3, 4, 5, 6], err
    assert not re.search(r"val_loss [0-9.]+ ±", err), "one split (a hold-out) has no spread to show"
    study = _study(home, "pair")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 6, "two trials ran the same settings"
    assert len([t for t in study.trials if t.user_attrs.get("baseline")]) == 1
    workers = {t.user_attrs["worker"]["pid"] for t in finished}
    assert len(workers) == 2, "both workers should have run trials"
    runs = _trial_runs(home, "pair")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in runs if r.info.status == "FINISHED") == \
        sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    # Trials finishing at once in two workers may each keep theirs for a moment; the end settles on K.
    best_two = {t.number for t in sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
                                         key=lambda t: t.value)[:2]}
    assert {int(p.name.removeprefix("trial_")) for p in (home / "checkpoints" / "pair").iterdir()} == best_two


def test_a_run_whose_budget_is_held_by_another_workers_running_trial_waits_for_it(write_space, home, capsys):
    """A worker with nothing left to do asked for one more trial and closed it as over the budget: every run
    of several workers ended with a failed trial in its table (and the parent started a new worker for it).
    It now waits for the trial that holds the budget, and starts none while that one runs."""
    import threading

    from search.studies._identity import worker_identity

    space = write_space({"study": {"name": "held", "n_trials": 2}})
    assert run_cli("run", space, "--home", home) == 0
    study = _study(home, "held")
    held = study.ask()  # another worker's trial, alive (its pid is this test's)
    held.set_user_attr("worker", worker_identity())
    space.write_text(space.read_text().replace("n_trials: 2", "n_trials: 3"))
    capsys.readouterr()
    timer = threading.Timer(4.0, lambda: study.tell(held, 0.5))  # the other worker finishes it
    timer.start()
    try:
        assert run_cli("run", space, "--home", home) == 0
    finally:
        timer.cancel()
    out, err = capsys.readouterr()
    states = sorted(t.state.name for t in _study(home, "held").trials)
    assert states == ["COMPLETE"] * 3, (states, out)
    assert f"waiting for trial(s) {held.number}, running in other processes" in err and "fail" not in out, out


def test_a_trial_whose_worker_on_another_host_went_silent_is_run_again_with_its_seeds(write_space, home, capsys):
    """A worker on another host died holding the last of the budget: the other workers left, each run after
    ended 'finished' short of its budget, and the silent trial was never failed. Its retry (Optuna's) kept
    none of the seeds it trained with."""
    from search.studies import lifecycle

    space = write_space({"study": {"name": "silent", "n_trials": 2}})
    assert run_cli("run", space, "--home", home, "--heartbeat", "1") == 0
    storage = lifecycle.make_storage(f"sqlite:///{home / 'optuna.db'}", heartbeat=1)
    study = optuna.load_study(study_name="silent", storage=storage)
    silent = study.ask()
    silent.suggest_float("model.dropout", 0.0, 0.5)  # drawn, then its host went down mid-trial
    silent.set_user_attr("worker", {"host": "other-host", "pid": 1})  # a pid check here cannot see it
    storage.record_heartbeat(silent._trial_id)  # one beat, then the host went down
    space.write_text(space.read_text().replace("n_trials: 2", "n_trials: 3"))
    capsys.readouterr()
    assert run_cli("run", space, "--home", home, "--heartbeat", "1") == 0
    trials = _study(home, "silent").trials
    assert trials[silent.number].state.name == "FAIL"
    retry = [t for t in trials if t.number > silent.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE", [(t.number, t.state.name) for t in trials]
    assert retry[0].user_attrs["seed_trial"] == silent.number
    assert retry[0].params == silent.params and retry[0].params["model.dropout"] > 0


def test_the_parent_says_the_trials_that_finish_in_its_last_two_seconds(capsys):
    """Progress is read from the study at most every 2 s; the look at the run's end skipped the last
    trials when the workers ended within 2 s of the one before (it missed trials 5 and 6 of 6)."""
    from search.runner.workers import _FinishedTrials

    study = optuna.create_study()
    progress = _FinishedTrials(study, budget=2)
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"worker": {"pid": 11}}))
    progress.say_new()
    study.add_trial(optuna.trial.create_trial(value=0.4, user_attrs={"worker": {"pid": 12}}))
    progress.say_new()  # within 2 s: not read yet
    assert "trial 2/2" not in capsys.readouterr().err
    progress.say_new(last=True)
    assert "trial 2/2 (#1) complete: val_loss 0.4" in capsys.readouterr().err


def test_only_the_best_k_trials_keep_checkpoints(write_space, home):
    space = write_space({"study": {"name": "disk", "n_trials": 5, "keep_checkpoints": 2},
                         "validation": {"scheme": "holdout"}})
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    study = _study(home, "disk")
    best_two = {t.number for t in sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
                                         key=lambda t: t.value)[:2]}
    on_disk = {int(p.name.removeprefix("trial_")) for p in (home / "checkpoints" / "disk").iterdir()}
    assert on_disk == best_two
    assert study.best_trial.number in on_disk


class _SavedCheckpoints(TrialListener):
    """Which split checkpoints each trial wrote, seen when it ends (before retention's sweep)."""

    def __init__(self) -> None:
        self.saved: dict[int, list[bool]] = {}
        self.kept: dict[int, bool] = {}

    def on_trial_end(self, trial, outcome) -> None:
        from search.studies import lifecycle

        self.saved[trial.number] = [s.checkpoint is not None for s in outcome.splits]
        if outcome.state == "complete":
            self.kept[trial.number] = trial.number in lifecycle.top_trials(
                trial.study.get_trials(deepcopy=False), 1, (trial.number, outcome.value))


def test_a_trial_outside_the_best_k_writes_no_checkpoint(write_space, home):
    """With fused splits a trial that would not survive retention never writes its files."""
    from search import api, space as spaces
    from search.runner import session

    space_file = write_space({"study": {"name": "lean", "n_trials": 5, "keep_checkpoints": 1, "baseline": False},
                              "validation": {"scheme": "kfold", "k": 2}, "model": {"units": {"int": [4, 32]}}})
    seen = _SavedCheckpoints()
    options = session.RunOptions(home=home, quiet=True, threads=1, extra_listeners=[seen])
    api.run_prepared(session.prepare(spaces.load(space_file)), options, space_file.read_text(), out=io.StringIO())
    assert set(seen.kept) == set(range(5)), seen.saved
    assert any(seen.kept.values()) and not all(seen.kept.values()), "the draw must give both kinds of trial"
    for number, kept in seen.kept.items():
        assert seen.saved[number] == [kept, kept], (number, seen.saved)


@pytest.mark.parametrize("argv", [["--timeout", "6s"]])
def test_timeout_ends_the_run_between_trials(write_space, home, argv, capsys):
    # Counted from the command's start, short of 50 trials; a start-up longer than that on a loaded machine
    # still trains one trial (test_trials.py's test of a timeout shorter than the start-up).
    space = write_space({"study": {"name": "timed", "n_trials": 50}, "validation": {"scheme": "holdout"},
                         "train": {"epochs": 20}})
    assert run_cli("run", space, "--home", home, "--quiet", *argv) == 0
    study = _study(home, "timed")
    assert 1 <= len(study.trials) < 50
    assert all(t.state.name != "RUNNING" for t in study.trials)
    # The end says why the budget is not spent, and how to go on (it said nothing of either).
    done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert f"{done}/50 trials finished: this run ended at its --timeout. Continue the study with:\n  search run " \
        in capsys.readouterr().out


def test_timeout_counts_from_the_command_start_not_from_a_workers_first_trial(write_space, home, capsys):
    """A worker (or a recycled one) is told when its run started: the parent's --timeout, not its own. Once the
    command has trained a trial, a worker that starts after the deadline trains none; a command that has
    trained none trains one, as Optuna's timeout does (a start-up longer than the timeout ran nothing)."""
    import time

    space = write_space({"study": {"name": "late", "n_trials": 5}, "validation": {"scheme": "holdout"}})
    started = repr(time.time() - 10)
    assert run_cli("run", space, "--home", home, "--quiet", "--timeout", "5s", "--run-started", started) == 0
    assert [t.state.name for t in _study(home, "late").trials if t.state.name != "WAITING"] == ["COMPLETE"]
    capsys.readouterr()
    assert run_cli("run", space, "--home", home, "--quiet", "--timeout", "5s", "--run-started", started) == 0
    assert [t.state.name for t in _study(home, "late").trials if t.state.name != "WAITING"] == ["COMPLETE"]
    assert "1/5 trials finished: this run ended at its --timeout" in capsys.readouterr().out


def _live_graphs() -> int:
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


def test_trials_in_one_process_leave_no_traced_graphs_behind(write_space, home):
    """The cause of RSS growth per trial is a traced graph kept alive; count them instead of timing RSS."""
    import io

    from search import api, space as spaces
    from search.runner import session

    space_file = write_space({"study": {"name": "flat", "n_trials": 100, "baseline": False},
                              "validation": {"scheme": "holdout"},
                              "model": {"units": {"int": [4, 16]}}, "train": {"epochs": 2}})
    prepared = session.prepare(spaces.load(space_file))
    options = session.RunOptions(home=home, n_trials=2, quiet=True, threads=1)
    api.run_prepared(prepared, options, "", out=io.StringIO())
    after_two = _live_graphs()
    options.n_trials = 3
    api.run_prepared(prepared, options, "", out=io.StringIO())
    assert _live_graphs() <= after_two


def test_status_time_left_counts_the_workers_running_now(tmp_path):
    """Four 60-second trials finished two at a time, two running now: 6 of 10 to go, shared by 2 workers."""
    from datetime import datetime, timedelta

    from optuna.distributions import FloatDistribution
    from optuna.trial import FrozenTrial, TrialState

    from search.studies import lifecycle as studies

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'eta.db'}", study_name="eta")
    now, dist = datetime.now(), {"x": FloatDistribution(0, 1)}
    for i in range(6):
        start = now - timedelta(seconds=125 - 60 * (i // 2)) if i < 4 else now - timedelta(seconds=5)
        done = i < 4
        study.add_trial(FrozenTrial(number=i, state=TrialState.COMPLETE if done else TrialState.RUNNING,
                                    value=0.5 if done else None, values=None, datetime_start=start,
                                    datetime_complete=start + timedelta(seconds=60) if done else None,
                                    params={"x": 0.5}, distributions=dist, user_attrs={}, system_attrs={},
                                    intermediate_values={}, trial_id=i))
    text = studies.timing_text(optuna.load_study(study_name="eta", storage=f"sqlite:///{tmp_path / 'eta.db'}"), 10)
    assert re.match(r"elapsed 2m[0-3]\ds", text), text  # up to now, not to the last finished trial (1m05s)
    # 4 not started plus 2 half done, at 60 s each, on 2 workers: 150 s; one worker's view would say 360 s.
    assert "2 running" in text and "about 2m30s left at 1m00s per trial with 2 workers" in text, text


class _SignalAtTheLastEpoch(TrialListener):
    """Sends this process SIGTERM once the trial's last epoch of its last split is trained."""

    def __init__(self, epochs: int, last_split: int) -> None:
        self.epochs, self.last_split = epochs, last_split

    def on_epoch(self, trial, split, epoch, logs):
        if epoch == self.epochs and split == self.last_split and trial.number == 0:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("fused", [True, False])
def test_a_stop_during_the_last_epoch_keeps_the_finished_trial(write_space, home, fused):
    """A SIGTERM in a trial's last epoch threw the finished trial away: failed, queued, trained again."""
    from search import api, space as spaces
    from search.runner import session

    space_file = write_space({"study": {"name": "last", "n_trials": 3, "baseline": False},
                              "validation": {"scheme": "kfold", "k": 2}, "train": {"fuse_splits": fused}})
    options = session.RunOptions(home=home, quiet=True, threads=1, extra_listeners=[_SignalAtTheLastEpoch(3, 1)])
    outcome = api.run_prepared(session.prepare(spaces.load(space_file)), options, space_file.read_text(),
                               out=io.StringIO())
    assert outcome.stopped_by == "SIGTERM"
    study = _study(home, "last")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert [s["epochs_run"] for s in study.trials[0].user_attrs["splits"]] == [3, 3]
