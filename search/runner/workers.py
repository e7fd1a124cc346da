"""``search run --workers N``: N processes on one study, on this machine.

The parent opens the study first (so exactly one creates it and queues the baseline), then starts
the workers, forwards SIGINT/SIGTERM to them, and prints the table when they are done.

With ``recycle_after`` R, a worker process exits after R trials and the parent starts a fresh one in
its slot. Our own trials keep memory flat in one process (``_runtime.reset_keras``); recycling is the
safety valve for what we cannot clean up, such as a user's model builder that keeps references.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from typing import Any

from search._numbers import sig, stamp
from search.errors import FailureKind
from search.runner.results import TrialListener
from search.runner.session import Prepared, RunOptions, RunOutcome, emit, note_space, open_storage, say_budget_cap
from search.runner.stopping import STOPPED_EXIT_CODE, announce, graceful_signals, leave_terminal


PARENT_ENV = "SEARCH_PARENT_PID"


def follow_parent() -> None:
    """In a worker: stop gracefully (SIGTERM to itself) when the parent dies, however it dies.

    Workers sit in sessions of their own, so nothing else would stop them if the parent were killed.
    Polling the parent id works on every POSIX system, unlike Linux's PR_SET_PDEATHSIG.
    """
    import threading

    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        from search.runner.stopping import stop_self

        while os.getppid() == int(parent):
            time.sleep(1.0)
        stop_self(f"the end of its parent process {parent}")

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, by index, read without starting TensorFlow (``nvidia-smi -L``).

    ``CUDA_VISIBLE_DEVICES`` narrows them (and ``""`` hides all); without nvidia-smi there are none.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpu_env(worker: int, gpus: list[str] | None = None) -> dict[str, str]:
    """Worker ``worker``'s share of the GPUs: one of its own, round robin (two workers on one GPU share it)."""
    gpus = visible_gpus() if gpus is None else gpus
    return {"CUDA_VISIBLE_DEVICES": gpus[worker % len(gpus)]} if gpus else {}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_workers(prepared: Prepared, options: RunOptions, n: int, argv: list[str],
                listeners: list[TrialListener] | tuple[TrialListener, ...] = (), recycle_after: int = 0,
                storage: Any = None) -> RunOutcome:
    """Run ``n`` worker processes (``argv`` is their shared command line) until they are done.

    The listeners hear of the study opening here, once, before the workers start (the MLflow experiment
    and parent run are made by the study's creator, if another host is starting the same study right
    now), and of the end; the workers have listeners of their own for their trials.
    """
    from search.studies import lifecycle as studies

    space = prepared.space
    if storage is None:
        storage = open_storage(options)
    stopped: list[signal.Signals] = []  # the stop signals received, passed on as they came
    procs: list[subprocess.Popen | None] = [None] * n

    def live() -> list[subprocess.Popen]:
        return [p for p in procs if p is not None and p.poll() is None]

    def forward(signum: int, frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            leave_terminal()  # the workers leave theirs when it reaches them
        if not stopped:
            announce(signum)
        stopped.append(signal.Signals(signum))
        for p in live():
            p.send_signal(signum)

    # Ctrl-Z and fg/bg reach the parent only (workers have sessions of their own): pass them on.
    def suspend(signum: int, frame: Any) -> None:
        for p in live():
            p.send_signal(signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGSTOP)  # the parent stops here until SIGCONT

    def resume(signum: int, frame: Any) -> None:
        for p in live():
            p.send_signal(signal.SIGCONT)

    # Heard from before the study opens (the plan is printed then): a stop that comes while the study is
    # made lets it be made whole, and then no worker starts.
    handlers = {**{sig: forward for sig in graceful_signals()}, signal.SIGTSTP: suspend, signal.SIGCONT: resume}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        study = studies.open_study(space, storage, prepared.attrs(),
                                   on_create=lambda created: emit(listeners, "on_study_open", created, strict=True))
        emit(listeners, "on_study_open", study, strict=True)
        note_space(study, space, options)  # before the workers: one of them said it, or none did (a race)
        say_budget_cap(study, studies.budget_of(space), options.n_trials)
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    threads = options.threads or max(1, cores() // n)
    left = [None if options.n_trials is None else math.ceil(options.n_trials / n) for _ in range(n)]
    gpus = visible_gpus()  # asked once: nvidia-smi is not free, and recycled workers keep their slot's GPU

    deadline = options.deadline()
    # By the environment, which the worker's --storage and --tracking-uri default to: on a command line any
    # user of the machine reads a password (ps, /proc/<pid>/cmdline).
    urls = {name: str(value) for name, value in (("SEARCH_STORAGE", options.storage),
                                                 ("MLFLOW_TRACKING_URI", options.tracking_uri)) if value}

    def start(i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "search", *argv, "--worker-index", str(i + 1), "--threads", str(threads),
               "--run-started", repr(options.run_started)]
        if options.timeout:  # counted from --run-started, so a recycled worker gets what is left of it
            cmd += ["--timeout", repr(options.timeout)]
        quota = [q for q in (left[i], recycle_after or None) if q is not None]
        if quota:
            cmd += ["--n-trials", str(min(quota))]
            remaining = left[i]
            if remaining is not None:
                left[i] = remaining - min(quota)
        # Its own session: a Ctrl-C at the terminal reaches the parent only, which forwards it once. In
        # the terminal's process group each worker would get it twice, and a second SIGINT means "now".
        env = {**os.environ, PARENT_ENV: str(os.getpid()), **gpu_env(i, gpus), **urls}
        return subprocess.Popen(cmd, start_new_session=True, env=env)

    def launch(i: int) -> None:
        proc = procs[i] = start(i)
        if stopped:  # the stop came while it was starting, before forward() could reach it
            proc.send_signal(stopped[-1])

    codes: list[int] = []
    deaths = [0] * n  # workers of each slot ended by a signal nobody here sent (the OOM killer, kill -9)
    progress: _FinishedTrials | None = None
    try:
        for i in range(n):  # one at a time: once a stop has come, no more start
            if stopped:
                break
            launch(i)
        print(f"{sum(p is not None for p in procs)} worker(s) on study '{space.study.name}', {threads} "
              f"TensorFlow thread(s) each"
              + (f", each process recycled after {recycle_after} trials" if recycle_after else ""),
              file=sys.stderr)
        running = {i for i in range(n) if procs[i] is not None}
        if not options.quiet:
            progress = _FinishedTrials(study, studies.budget_of(space))
        while running:
            if progress is not None:
                progress.say_new()
            for i in sorted(running):
                p = procs[i]
                assert p is not None
                # Polled, never waited on: the progress lines go on while the last worker runs.
                code = p.poll()
                if code is None:
                    continue
                # A worker stopped gracefully by a signal sent to it alone (a scheduler, kill <pid>): its trial
                # is queued again as at a death, and the slot is filled again as after one.
                died = (code < 0 or code == STOPPED_EXIT_CODE) and not stopped
                # A worker that ended by its own choice left because the budget is met or held by the running
                # trials; a dead one's trial is still marked running, and is the work left to do.
                trials = study.get_trials(deepcopy=False)
                done = studies.count_finished(trials) if died else studies.count_taken(trials)
                budget_left = (not stopped and left[i] != 0 and (deadline is None or time.monotonic() < deadline)
                               and done < studies.budget_of(space))
                if died:
                    deaths[i] += 1
                    why_not = ("" if budget_left and deaths[i] <= MAX_DEATHS else
                               f"its slot's workers died {deaths[i]} times, a fault to look into" if budget_left
                               else "nothing is left for one to do")
                    print(_death_note(i, p.pid, -code, why_not) if code < 0 else _stop_note(i, p.pid, why_not),
                          file=sys.stderr, flush=True)
                if (code == 0 and recycle_after and budget_left) or (died and budget_left and deaths[i] <= MAX_DEATHS):
                    launch(i)
                else:
                    # A death after which nothing was left to do is said above, and not a failure of the run.
                    codes.append(0 if died and not budget_left else code)
                    running.discard(i)
            if running:
                time.sleep(0.5)
    finally:
        if any(deaths):  # a dead worker's last trial: failed and queued again now, not by the next run
            from search.runner import recovery

            try:
                recovery.recover_orphans(study)
            except Exception:  # the next run recovers it
                pass
        if progress is not None:
            progress.say_new(last=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        status = "KILLED" if stopped else "FAILED" if any(c not in (0, STOPPED_EXIT_CODE) for c in codes) \
            else "FINISHED"
        emit(listeners, "on_run_finish", study, status)
    if stopped.count(signal.SIGINT) >= 2:
        # A second Ctrl-C means "now", as in one process: the workers stopped at once (their trials queued
        # again), and the run ends as an interrupted one (exit status 130), not as a graceful stop (3).
        print(f"\ninterrupted; the running trials are queued again. Continue the study with:\n  "
              f"{options.continue_command}")
        raise KeyboardInterrupt
    study = studies.open_study(space, storage, prepared.attrs())
    bad = [c for c in codes if c not in (0, STOPPED_EXIT_CODE)]
    # A worker ended by a signal has a negative code, which a shell would read as 256 - signal (247): 1.
    return RunOutcome(study, status, stopped_by=stopped[0].name if stopped else "",
                      exit_code=(bad[0] if bad[0] > 0 else 1) if bad else 0)


# Deaths of one worker slot that are replaced: a worker killed once (the OOM killer at 2 am) is replaced;
# one that dies every time is a fault the run should not hide all night.
MAX_DEATHS = 3


def _death_note(i: int, pid: int, signum: int, why_not: str) -> str:
    """A worker ended by a signal this run did not send, said as it happens: the parent's other lines go on."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return (f"warning: worker {i + 1} (pid {pid}) was ended by {name}, which this run did not send (out of "
            f"memory? killed by hand?); its trial is failed and queued again; "
            + (f"no new worker: {why_not}" if why_not else "a new worker takes its place"))


def _stop_note(i: int, pid: int, why_not: str) -> str:
    """A worker that stopped gracefully on a signal sent to it alone, not by this run."""
    return (f"warning: worker {i + 1} (pid {pid}) was stopped by a signal sent to it alone, not by this run (a "
            f"scheduler? kill <pid>?); its trial is queued again; "
            + (f"no new worker: {why_not}" if why_not else "a new worker takes its place"))


class _FinishedTrials:
    """The workers run quiet (their lines would interleave): the parent says each trial as it finishes,
    read from the study at most every two seconds, so a run of several workers shows live progress too."""

    def __init__(self, study: Any, budget: int) -> None:
        self.study, self.budget, self._last = study, budget, 0.0
        finished = self._finished()
        self.seen = {t.number for t in finished}
        self.done = sum(1 for t in finished if t.state.name in ("COMPLETE", "PRUNED"))
        self.best = min((t.values[0] for t in finished if t.state.name == "COMPLETE" and t.values), default=math.inf)

    def _finished(self) -> list[Any]:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                             TrialState.FAIL))

    def say_new(self, last: bool = False) -> None:
        """Say the trials finished since the last look; looks come at most every 2 s, except the ``last``."""
        from search._redact import redact

        if time.monotonic() - self._last < 2.0 and not last:  # the last look always comes: the run's end
            return
        self._last = time.monotonic()
        try:
            finished = self._finished()
        except Exception:  # a busy store: the next look says it
            return
        for t in sorted((t for t in finished if t.number not in self.seen), key=lambda t: t.number):
            self.seen.add(t.number)
            if FailureKind.of(t) is FailureKind.OVER_BUDGET:  # asked for after the budget was met: never ran
                continue
            attrs, mark = t.user_attrs, ""
            if t.state.name == "COMPLETE" and t.values:
                self.done += 1
                if t.values[0] < self.best:
                    self.best, mark = t.values[0], "  ← best so far"
                metric = next((k for k in attrs if k.startswith("val_") and k.endswith("_mean")
                               and k != "val_loss_mean"), None)
                spread = (f" ± {sig(float(attrs.get('val_loss_std', math.nan)))}"
                          if len(attrs.get("splits", [])) != 1 else "")
                text = (f"val_loss {t.values[0]:.4g}{spread}"
                        + (f", {metric[4:-5]} {float(attrs[metric]):.4g}" if metric else ""))
            else:
                self.done += t.state.name == "PRUNED"
                text = str(attrs.get("reason", ""))
            worker = attrs.get("worker", {}).get("pid", "?") if isinstance(attrs.get("worker"), dict) else "?"
            print(redact(f"{stamp()} trial {self.done}/{self.budget} (#{t.number}) "
                         f"{t.state.name.lower()}: {text}{mark}  (worker pid {worker})"), file=sys.stderr, flush=True)
