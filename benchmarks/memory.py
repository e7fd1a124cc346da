"""Memory over a long unattended run: RSS growth across many small sequential trials in one process.

    python benchmarks/memory.py [--trials 200]

Runs tiny trials (iris, hold-out, 2 epochs) through the whole harness (Optuna SQLite, MLflow SQLite,
checkpoints with retention) and prints RSS after a warm-up and at the end (target: growth < 100 MB),
then the same number of trials through `search run --recycle-after R` and the largest RSS any of its
worker processes reached. Without `search._runtime.reset_keras` (TensorFlow's gradient registry keeps
every traced train step alive) the first number grew by about 4 MB per trial; recycling bounds it anyway.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPACE = {
    "study": {"name": "memory", "seed": 0, "n_trials": 100000, "baseline": False, "pruner": "none"},
    "data": {"source": "sklearn:iris", "test_size": 0.2},
    "validation": {"scheme": "holdout", "fraction": 0.25},
    "model": {"family": "mlp", "layers": {"int": [1, 2]}, "units": {"int": [4, 32]},
              "dropout": {"float": [0.0, 0.5]}},
    "train": {"epochs": 2, "batch_size": 16, "early_stopping": 0},
}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--recycle-after", type=int, default=25)
    parser.add_argument("--every", type=int, default=50, help="print RSS after every N trials")
    parser.add_argument("--in-process-only", action="store_true", help="skip the recycled run")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from search import api, space as spaces
    from search.runner import session

    # Recycled first: a child forked from a process that already holds TensorFlow would count its memory.
    recycled_peak = None if args.in_process_only else run_recycled(args.warmup + args.trials, args.recycle_after)
    home = Path(tempfile.mkdtemp(prefix="memory-"))
    prepared = session.prepare(spaces.validate(SPACE))
    options = session.RunOptions(home=home, n_trials=args.warmup, quiet=True, threads=1)
    start = time.perf_counter()
    api.run_prepared(prepared, options, "", out=open(os.devnull, "w"))
    warm = rss_mb()
    print(f"after {args.warmup} warm-up trials: RSS {warm:.0f} MB", flush=True)
    done = 0
    while done < args.trials:  # session.run's n_trials counts this invocation's trials
        options.n_trials = min(args.every, args.trials - done)
        api.run_prepared(prepared, options, "", out=open(os.devnull, "w"))
        done += options.n_trials
        print(f"  after {done} more trials: RSS {rss_mb():.0f} MB (+{rss_mb() - warm:.1f})", flush=True)
    end = rss_mb()
    print(f"after {args.trials} more trials: RSS {end:.0f} MB, {time.perf_counter() - start:.0f} s in all")
    print(f"in one process: RSS growth over {args.trials} trials = {end - warm:.1f} MB   target < 100 MB")
    if recycled_peak is not None:
        print(f"with --recycle-after {args.recycle_after}: largest worker RSS over {args.warmup + args.trials} "
              f"trials = {recycled_peak:.0f} MB, against {end:.0f} MB in one process")


def run_recycled(trials: int, recycle_after: int) -> float:
    import subprocess

    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="memory-recycled-"))
    space = {**SPACE, "study": {**SPACE["study"], "n_trials": trials}}
    (tmp / "space.yaml").write_text(yaml.safe_dump(space))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-m", "search", "run", str(tmp / "space.yaml"), "--home", str(tmp / "mlruns"),
                    "--recycle-after", str(recycle_after), "--threads", "1"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


if __name__ == "__main__":
    main()
