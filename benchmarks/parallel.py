"""Throughput of local parallel workers: trials per hour with 1 and with 2 worker processes.

    python benchmarks/parallel.py [--seconds 120]

Each setting runs `search run --workers N --timeout S` on the same small space in a fresh store (one
after the other, same machine), counts finished trials, and prints trials per hour and the ratio.
TensorFlow threads per worker = cores / N, so both settings use the whole machine; a third run, one
worker at one thread, shows how close two processes come to two copies of one.

Each line also says how many cores the run kept busy (CPU seconds of the whole process tree / wall
seconds) and the trials per CPU-minute. One worker already keeps more than one core busy (side threads:
MLflow writes, figures, storage rows; TensorFlow's own threads), so two workers on two cores can gain
at most cores / (cores one worker keeps busy): the ceiling is printed with the ratio. Trials per
CPU-minute falling with two workers is the cost of sharing (SQLite's write lock, memory bandwidth).
Last, the machine itself: the same CPU-bound kernel (small float32 matrix products, one thread, as a
small network's steps are) run as one process and as two at once; two copies finishing in the time of
one is 2.00x, and whatever the machine gives, a search's workers cannot beat.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "study": {"name": "parallel", "seed": 0, "n_trials": 100000, "pruner": "none"},
    "data": {"source": "sklearn:breast_cancer", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 3},
    "model": {"family": "mlp", "layers": {"int": [1, 2]}, "units": {"int": [8, 64], "log": True},
              "dropout": {"float": [0.0, 0.5]}},
    "train": {"epochs": 10, "batch_size": 32, "early_stopping": 0},
}


def finished_trials(home: Path) -> tuple[int, float]:
    """Finished trials, and the seconds from the first trial's start to the last one's end."""
    import optuna

    study = optuna.load_study(study_name="parallel", storage=f"sqlite:///{home / 'optuna.db'}")
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    window = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return len(done), window.total_seconds()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(workers: int, seconds: int, threads: int | None = None) -> tuple[float, float, float]:
    """Trials per hour (whole process, and once started), and the cores the run kept busy on average."""
    tmp = Path(tempfile.mkdtemp(prefix=f"parallel-{workers}-"))
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    start, cpu_start = time.perf_counter(), _children_cpu()
    subprocess.run([sys.executable, "-m", "search", "run", str(space), "--home", str(tmp / "mlruns"),
                    "--workers", str(workers), "--timeout", f"{seconds}s", "--quiet",
                    *(["--threads", str(threads)] if threads else [])], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    n, window = finished_trials(tmp / "mlruns")
    per_hour = n / elapsed * 3600
    print(f"{workers} worker(s){f', {threads} thread(s) each' if threads else ''}: {n} trials in {elapsed:.0f} s "
          f"= {per_hour:.0f} trials/hour ({n / window * 3600:.0f} once started: first trial's start to last trial's "
          f"end, {window:.0f} s); {cpu / elapsed:.2f} cores busy, {n / cpu * 60:.1f} trials per CPU-minute", flush=True)
    return per_hour, n / window * 3600, cpu / elapsed


_KERNEL = """
import time, numpy as np
a = np.random.default_rng(0).random((96, 96), dtype=np.float32)
start = time.perf_counter()
for _ in range(60000):
    a = np.tanh(a @ a * 0.01)
print(time.perf_counter() - start)
"""


def machine_scaling() -> float:
    """Two copies of a one-thread CPU-bound kernel at once, against one copy: work per second, as a ratio."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def run(copies: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _KERNEL], env=env, stdout=subprocess.DEVNULL)
                 for _ in range(copies)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    one, two = run(1), run(2)
    return 2 * one / two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=120)
    args = parser.parse_args()
    one, one_started, busy_one = measure(1, args.seconds)
    two, two_started, _ = measure(2, args.seconds)
    single_thread, _, _ = measure(1, args.seconds, threads=1)
    cores = os.cpu_count() or 1
    print(f"2 workers / 1 worker = {two / one:.2f}x trials per hour on {cores} cores (target >= 1.8), "
          f"{two_started / one_started:.2f}x once started; ceiling = {cores} cores / {busy_one:.2f} cores busy with "
          f"one worker = {min(2.0, cores / busy_one):.2f}x")
    # How far a second process is from a second copy of the first: both at one TensorFlow thread.
    print(f"2 workers / 1 worker at 1 thread = {two / single_thread:.2f}x (2.00 = perfect scaling per core)")
    print(f"the machine: 2 copies of a one-thread CPU-bound kernel at once = {machine_scaling():.2f}x the work per "
          f"second of 1 copy (2.00 = two independent cores)")


if __name__ == "__main__":
    main()
