"""The drawing helper's CPU priority: harness trials with the helper at the training's own priority (its
default) against the lowest, alternating in one process, each against the bare fits they wrap.

    python benchmarks/drawing_priority.py [--epochs 100] [--rounds 6] [--block 3] [--niceness 19]

The same trial loop, store and tracker as `benchmarks/overhead.py`; the tracker draws through one of
two helper processes, switched between blocks of ``--block`` trials: one at niceness 0, one at
``--niceness``. Each round times a block with each helper (in turns, so neither always goes first) and
the bare fits after each block; the side work is waited for, untimed, before each bare block, as in the
overhead benchmark. Prints the ratio of each arm's median to the bare fits' median.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import overhead  # noqa: E402  (benchmarks/overhead.py: the same space, trial loop and bare fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--niceness", type=int, default=19)
    args = parser.parse_args()
    from search import space as spaces, tracking
    from search.review._drawing import Drawer
    from search.runner import _runtime, checkpoints, session
    from search.runner._loop import TrialLoop
    from search.runner.objective import Objective
    from search.runner.stopping import StopRequest
    from search.studies import lifecycle as studies

    _runtime.configure()
    home = Path(tempfile.mkdtemp(prefix="drawing-priority-"))
    space = spaces.validate(overhead.space_dict(args.epochs))
    prepared = session.prepare(space)
    study = studies.open_study(space, studies.make_storage(studies.default_storage(home)), prepared.attrs())
    tracker = tracking.MlflowTracker(tracking.default_tracking_uri(home), home, space, "", {})
    tracker.start(study)
    stop = StopRequest(announce=False)
    objective = Objective(space, prepared.dataset, prepared.splits, home,
                          [tracker, checkpoints.CheckpointRetention(home, space.study.keep_checkpoints)], stop=stop,
                          budget=studies.budget_of(space))
    loop = TrialLoop(study, objective, studies.budget_of(space), space.study.max_consecutive_failures,
                         session.RunOptions(home=home, n_trials=1, quiet=True), stop)
    drawers = {0: Drawer(niceness=0), args.niceness: Drawer(niceness=args.niceness)}
    times: dict[int, list[float]] = {n: [] for n in drawers}
    bare: list[float] = []
    print(f"-- {args.epochs} epochs, {len(prepared.splits)} splits, {args.block} trials per arm and round", flush=True)
    with _runtime.live_objects_frozen():
        for drawer in drawers.values():  # warm-up: tracing, the stores, both helpers started
            tracker._drawer = drawer
            overhead.harness_trials(loop, tracker, 1)
        overhead.bare_fused(space, prepared)
        for r in range(args.rounds):
            order = list(drawers) if r % 2 == 0 else list(drawers)[::-1]
            line = f"round {r + 1}:"
            for niceness in order:
                tracker._drawer = drawers[niceness]
                times[niceness].append(overhead.harness_trials(loop, tracker, args.block))
                bare.append(overhead.bare_fused(space, prepared, args.block))
                line += f"   helper at niceness {niceness}: {times[niceness][-1]:.2f} s (bare fit {bare[-1]:.2f} s)"
            print(line, flush=True)
    b = statistics.median(bare)
    for niceness, arm in times.items():
        print(f"{args.epochs} epochs, helper at niceness {niceness}: harness / bare fit = "
              f"{statistics.median(arm) / b:.3f}")
    tracker.finish()
    for drawer in drawers.values():
        drawer.close()


if __name__ == "__main__":
    main()
