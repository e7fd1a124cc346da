"""``search run --workers N``: N processes on one study, on this machine.

The parent opens the study first (so exactly one creates it and queues the baseline), then starts
the workers, forwards SIGINT/SIGTERM to them, and prints the table when they are done.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from typing import Any

from search.session import Prepared, RunOptions, make_tracker


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_workers(prepared: Prepared, options: RunOptions, n: int, argv: list[str], space_text: str) -> int:
    from search import study as studies
    from search.display import format_counts, summary_table

    space = prepared.space
    options.home.mkdir(parents=True, exist_ok=True)
    storage = studies.make_storage(options.storage or studies.default_storage(options.home), options.heartbeat)
    storage_url = options.storage or studies.default_storage(options.home)
    study = studies.open_study(space, storage, prepared.attrs())
    # Create the tracking store, experiment and parent run here, once, before workers race to do it.
    tracker = make_tracker(prepared, options, space_text, storage_url)
    tracker.start(study)
    threads = options.threads or max(1, cores() // n)
    per_worker = None if options.n_trials is None else math.ceil(options.n_trials / n)
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-m", "search", *argv, "--worker-index", str(i + 1), "--threads", str(threads)]
        if per_worker is not None:
            cmd += ["--n-trials", str(per_worker)]
        procs.append(subprocess.Popen(cmd))
    print(f"{n} workers on study '{space.study.name}', {threads} TensorFlow thread(s) each", file=sys.stderr)

    stopped: list[str] = []

    def forward(signum: int, frame: Any) -> None:
        stopped.append(signal.Signals(signum).name)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        tracker.close_orphans(study)
        tracker.finish("KILLED" if stopped else "FINISHED")
    study = studies.open_study(space, storage, prepared.attrs())
    print("\n" + format_counts(studies.trials_by_state(study), studies.budget_of(space)))
    print(summary_table(study))
    if stopped:
        print(f"\nstopped by {stopped[0]}; interrupted trials are queued again. Continue the study with:\n"
              f"  {options.continue_command}")
    bad = [c for c in codes if c != 0]
    return bad[0] if bad else 0
