"""What the terminal says during and after a run: a header with the plan and the stores, time-stamped trial
lines with the time left, the next steps at the end; a stop exits with its own status (see test_overnight)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import run_cli
from search import space as spaces
from search.review import display
from search.runner import session

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_says_what_it_does_where_results_go_and_what_to_do_next(write_space, home, capsys):
    path = write_space({"study": {"name": "told", "n_trials": 2}})
    assert run_cli("run", path, "--home", home) == 0
    captured = capsys.readouterr()
    err, out = captured.err, captured.out
    head = err[:err.index("trial 1/2")]
    for text in ("study       told", "data        sklearn:iris: 149 rows, task multiclass, 30 held out",
                 "validation  3-fold cross-validation (stratified, shuffled)",
                 "budget      2 trials in all, 0 finished",
                 f"storage     sqlite:///{home.resolve()}", f"results     {home.resolve()}",
                 f"watch       search ui told --home {home}"):
        assert text in head, (text, head)
    lines = [line for line in err.splitlines() if re.search(r"trial \d/2 \(#\d\) complete", line)]
    assert len(lines) == 2, err
    assert re.match(r"\[(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\] trial 1/2 \(#0\) complete: "
                    r".*\(elapsed \d+s, ~\d+s left for 1 trial\)$", lines[0]), lines[0]
    assert re.search(r"\(elapsed \d+s\)$", lines[1]), lines[1]  # nothing left
    steps = out[out.index("next steps:"):]
    for verb in ("ui", "report", "reproduce"):
        assert f"search {verb} told --home {home}" in steps


def test_the_header_never_shows_a_database_password(write_space, home, monkeypatch):
    space = spaces.load(write_space())
    prepared = session.prepare(space)
    options = session.RunOptions(home=home, storage="postgresql://search:hunter2@db.example/optuna",
                                 tracking_uri="http://mlflow:hunter2@tracker:5000", timeout=5400, n_trials=3)
    text = "\n".join(display.header_lines(prepared, options, options.storage, options.tracking_uri, 4, 20))
    assert "hunter2" not in text and "postgresql://search:" in text
    assert "budget      20 trials in all, 4 finished, at most 3 now, no new trial after 1h30m" in text
    steps = display.next_steps("tiny", options)
    assert "hunter2" not in steps  # and the hidden password is said, with where to put the URLs instead
    assert "put the full URL in $SEARCH_STORAGE and $MLFLOW_TRACKING_URI and leave --storage and --tracking-uri" \
        in steps
    # URLs the shell holds in $SEARCH_STORAGE and $MLFLOW_TRACKING_URI run as printed without the options,
    # which were printed hidden, with the advice to do what had been done.
    monkeypatch.setenv("SEARCH_STORAGE", options.storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", options.tracking_uri)
    steps = display.next_steps("tiny", options)
    assert "--storage" not in steps and "--tracking-uri" not in steps and "do not run as printed" not in steps
    # The watch line is pasted into a shell as printed: a home holding a space is quoted, the storage
    # (which `search ui` does not read) left out.
    options.home = home / "my runs"
    watch = display.header_lines(prepared, options, options.storage, options.tracking_uri, 4, 20)[-1]
    assert watch.startswith("watch       search ui ")
    argv = shlex.split(watch.removeprefix("watch"))
    assert argv[:2] == ["search", "ui"] and argv[argv.index("--home") + 1] == str(home / "my runs")
    assert "--storage" not in argv and "hunter2" not in watch


def test_a_run_where_no_trial_completes_says_why_and_offers_no_reproduce(write_space, home, tmp_path, capsys):
    """Every trial diverges (the model's output is NaN): the budget is spent, but there is nothing to retrain."""
    (tmp_path / "nanet.py").write_text(
        "import keras\n\n\ndef build(settings, input_shape, n_outputs):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Dense(n_outputs, activation='softmax')(inputs)\n"
        "    return keras.Model(inputs, keras.layers.Lambda(lambda t: t * float('nan'))(x))\n")
    path = write_space({"study": {"name": "lost", "n_trials": 1, "baseline": False},
                        "model": {"family": "python:nanet:build", "layers": None, "units": None,
                                  "dropout": {"float": [0.0, 0.5]}, "regularizers": ["dropout"]},
                        "train": {"epochs": 1}})
    assert run_cli("run", path, "--home", home) == 0
    out = capsys.readouterr().out
    assert "1 pruned: 1 diverged (non-finite loss)" in out
    assert "no trial completed, so there is nothing to reproduce" in out
    assert "search reproduce" not in out and "next steps" not in out
    capsys.readouterr()
    assert run_cli("reproduce", "lost", "--home", home) == 2
    assert "study 'lost' has no completed trial" in capsys.readouterr().err


def test_printed_commands_paste_into_a_shell_with_a_home_holding_spaces():
    import shlex
    from pathlib import Path
    from types import SimpleNamespace

    from search.cli._commands import _continue_command
    from search.review import display

    options = SimpleNamespace(home=Path("/data/my runs"), storage=None, tracking_uri=None)
    assert shlex.split(display.command("reproduce", "q", options)) == ["search", "reproduce", "q", "--home",
                                                                        "/data/my runs"]
    args = SimpleNamespace(space=Path("spaces/my space.yaml"), study_name=None, storage=None, tracking_uri=None,
                           home="/data/my runs", workers=1, threads=None, recycle_after=None, heartbeat=30)
    assert shlex.split(_continue_command(args)) == ["search", "run", "spaces/my space.yaml", "--home", "/data/my runs"]
    # How it ran is kept (the --threads 1 a user chose was dropped, and a fleet's --heartbeat 5); the limits of
    # this invocation are not.
    args.threads, args.heartbeat = 1, 5
    assert shlex.split(_continue_command(args))[-4:] == ["--threads", "1", "--heartbeat", "5"]
    # A hidden password is said not to run as printed, as the end of a run's next steps say it.
    args.storage = "postgresql://ops:s3cret@db/optuna"
    first, note = _continue_command(args).split("\n")
    assert "postgresql://ops:***@db/optuna" in first and "s3cret" not in first + note
    assert note == "  (a password is shown as ***, so this does not run as printed: put the full URL in " \
                   "$SEARCH_STORAGE and leave --storage out)"


def test_a_split_line_says_how_many_epochs_were_trained_and_whether_a_stop_cut_it() -> None:
    """It read 'at epoch 1/1' for a trial of 6 epochs that a stop had cut after one."""
    import io

    import optuna

    from search.runner.results import SplitResult

    stream = io.StringIO()
    progress = display.Progress(4, stream=stream)
    progress.n_splits = 3
    trial = optuna.trial.FixedTrial({}, number=7)
    progress.on_split_end(trial, SplitResult(0, 1, 2.069, 0.1, 1, stop_reason="stopped"))
    progress.on_split_end(trial, SplitResult(1, 4, 0.5, 0.8, 6))
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("split 0 (1/3): best val_loss 2.069 at epoch 1 of the 1 trained before the stop")
    assert lines[1].endswith("split 1 (2/3): best val_loss 0.5 at epoch 4 of the 6 trained")


def test_a_ctrl_c_after_the_command_has_finished_is_ignored(write_space, tmp_path):
    """While the interpreter shuts down (TensorFlow's and MLflow's clean-up) a Ctrl-C printed a traceback."""
    import os
    import subprocess
    import sys

    space = write_space({"study": {"name": "late"}})
    script = ("import atexit, os, signal, sys\n"
              f"sys.argv = ['search', 'check', {str(space)!r}]\n"
              "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), __import__('time').sleep(0.5)))\n"
              "from search.cli import main\n"
              "sys.exit(main())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "KeyboardInterrupt" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_trial_of_one_split_shows_no_spread_in_the_table():
    """A hold-out's std over its one split is 0, which the table printed as a certain score: '± std 0'."""
    import optuna

    study = optuna.create_study()
    for number, splits in ((0, [{"split": 0}]), (1, [{"split": 0}, {"split": 1}])):
        study.add_trial(optuna.trial.create_trial(value=0.5 + number, user_attrs={
            "val_loss_std": 0.0 if len(splits) == 1 else 0.03, "splits": splits, "val_accuracy_mean": 0.9}))
    lines = display.format_table(display.trial_rows(study)).splitlines()
    assert lines[2].split()[:4] == ["1", "0", "0.5", "-"] and lines[3].split()[:4] == ["2", "1", "1.5", "0.03"]


def test_a_trial_the_budget_does_not_count_is_not_numbered_as_the_last_one_it_did() -> None:
    """An interrupted trial's line read 'trial 3/4 (#3) interrupted' right below 'trial 3/4 (#2) pruned'."""
    import io

    import optuna

    from search.runner.results import TrialOutcome

    stream = io.StringIO()
    progress = display.Progress(4, stream=stream)
    progress.on_trial_end(optuna.trial.FixedTrial({}, number=2), TrialOutcome(2, "pruned", {}, reason="cut"))
    progress.on_trial_end(optuna.trial.FixedTrial({}, number=3), TrialOutcome(3, "interrupted", {}, reason="stop"))
    progress.on_trial_end(optuna.trial.FixedTrial({}, number=4), TrialOutcome(4, "failed", {}, reason="oom"))
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines[0].startswith("trial 1/4 (#2) pruned: cut"), lines
    assert lines[1].startswith("trial #3 (not counted: 1/4 done) interrupted: stop"), lines
    assert lines[2].startswith("trial #4 (not counted: 1/4 done) failed: oom"), lines


def test_progress_counts_the_trials_other_runs_on_the_study_finished() -> None:
    """Two terminals on one study: each numbered trials and judged 'best so far' by its own trials only, so a
    failure line read 'not counted: 0/8 done' when the other run had finished three."""
    import io

    import optuna

    from search.runner.results import TrialOutcome

    study = optuna.create_study()
    stream = io.StringIO()
    progress = display.Progress(6, stream=stream)
    progress.seed_from(study)
    for value in (0.5, 0.3):  # finished meanwhile by the other run
        study.add_trial(optuna.trial.create_trial(value=value))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    mine = study.ask()
    progress.on_trial_end(mine, TrialOutcome(mine.number, "failed", {}, reason="oom"))
    progress.on_trial_end(mine, TrialOutcome(mine.number, "pruned", {}, reason="cut"))
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines[0].startswith("trial #3 (not counted: 3/6 done) failed: oom"), lines
    assert lines[1].startswith("trial 4/6 (#3) pruned: cut"), lines
    assert progress.best == (0.3, 1)


def test_progress_lines_say_the_date_once_a_day(monkeypatch):
    """An overnight log went from [23:58:10] to [00:12:03] without saying which night."""
    from search import _numbers

    monkeypatch.setattr(_numbers, "_day_said", [])
    first, second = _numbers.stamp(), _numbers.stamp()
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]", first), first
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\]", second), second
    monkeypatch.setattr(_numbers, "_day_said", ["2026-01-01"])  # the last line was written on an earlier day
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]", _numbers.stamp())


def test_the_plan_says_enqueued_configs_are_tried_first_only_where_they_will_be():
    """A continued study whose study.enqueue entry had run was told "1 config(s) from study.enqueue tried first",
    and the next trial was sampled."""
    from conftest import TINY, merge
    from search.review.display import header_lines

    space = spaces.validate(merge(TINY, {"study": {"enqueue": [{"model.dropout": 0.3}]}}))
    prepared = session.prepare(space)
    options = session.RunOptions(home=Path("mlruns"))
    first = "\n".join(header_lines(prepared, options, "sqlite:///x", "sqlite:///y", 0, 4))
    later = "\n".join(header_lines(prepared, options, "sqlite:///x", "sqlite:///y", 3, 4))
    assert "1 config(s) from study.enqueue tried first, after the baseline" in first
    assert "tried first," not in later and "study.enqueue's entries each queued once" in later


def test_the_storage_patience_goes_to_the_workers_and_into_the_printed_continue_command(tmp_path, capsys):
    """A fleet waiting out an hour's database maintenance: each worker of --workers waits as long as its parent
    was told to, and the command printed to continue the study keeps the choice."""
    from search.cli import _commands
    from search.cli._parser import build_parser

    args = build_parser().parse_args(["run", str(tmp_path / "x.yaml"), "--workers", "2", "--storage-patience", "1h"])
    argv = _commands._worker_argv(args)
    assert argv[argv.index("--storage-patience") + 1] == "3600"
    assert "--storage-patience 3600" in _commands._continue_command(args)
    plain = build_parser().parse_args(["run", str(tmp_path / "x.yaml")])
    assert plain.storage_patience == 600 and "--storage-patience" not in _commands._continue_command(plain)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", str(tmp_path / "x.yaml"), "--storage-patience", "0"])
    assert "argument --storage-patience: expected a duration above zero" in capsys.readouterr().err


def test_a_study_whose_trials_were_only_stopped_is_sent_to_run_again_not_to_status(tmp_path, capsys):
    """After a Ctrl-C in the first trial, reproduce said "no completed trial (1 fail, 1 waiting); `search status`
    shows why": status said "stopped", and neither said that running the space file again goes on."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from search.errors import StudyError
    from search.studies.lifecycle import pick_trial

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="slow", storage=storage)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"failure": "interrupted"}))
    study.enqueue_trial({})
    with pytest.raises(StudyError) as caught:
        pick_trial(optuna.load_study(study_name="slow", storage=storage), "best")
    assert "study 'slow' has no finished trial yet (1 fail, 1 waiting; none failed by its settings: stopped or " \
           "cut short, and queued again): `search run` its space file again continues it" in str(caught.value)
    # Where the study knows its space file, the command is written out, on the stores of the command that failed.
    study.set_user_attr("space_path", str(tmp_path / "my space.yaml"))
    assert run_cli("reproduce", "slow", "--home", tmp_path) == 2
    assert f"`search run '{tmp_path / 'my space.yaml'}' --home {tmp_path}` continues it" in capsys.readouterr().err
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"failure": "bad_settings"}))
    with pytest.raises(StudyError, match=r"has no completed trial \(2 fail, 1 waiting\); `search status slow`"):
        pick_trial(optuna.load_study(study_name="slow", storage=storage), "best")
