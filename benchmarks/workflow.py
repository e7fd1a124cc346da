"""The phased workflow against the joint search, at the same wall-clock budget.

    python benchmarks/workflow.py [--seconds 90] [--seeds 0 1 2] [--sets digits breast_cancer]
                                  [--phase1-trials 4]

For every data set and seed, two studies of the same space run *at the same time* (one TensorFlow thread
each, so machine load hits both alike), each with ``--timeout SECONDS``:

- ``joint``: every setting searched at once (``study.workflow: joint``, the default);
- ``phased``: ``study.workflow: phased``: phase 0 baselines, phase 1 capacity with regularizers off for at
  most ``--phase1-trials`` trials (or until a trial clearly overfits after 3 complete), phase 2
  regularizers at the picked capacity.

Both have a trial budget far above what the time allows, so the clock ends both. Then ``search reproduce``
of each arm's pick (both at once, one thread each): its test loss on the held-out rows, the same rows for
both arms. Prints one line per run and a table: mean ± sd over seeds of the reproduced test loss,
phased / joint, finished trials, and how phase 1 ended. Default: about 12-15 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 100_000  # trials: the clock, not the count, ends both arms

_MLP = {"family": "mlp", "layers": {"int": [1, 3]}, "units": {"int": [16, 512], "log": True},
        "dropout": {"float": [0.0, 0.5]}, "l2": {"float": [1e-5, 1e-2], "log": True, "or_off": True},
        "batchnorm": {"choice": [False, True]}}
_TRAIN = {"optimizer": "adam", "learning_rate": {"float": [3e-4, 1e-2], "log": True}, "batch_size": 64,
          "epochs": 20, "early_stopping": 4}
SETS: dict[str, dict[str, Any]] = {
    "digits": {"data": {"source": "sklearn:digits", "test_size": 0.25}, "model": _MLP, "train": _TRAIN},
    "breast_cancer": {"data": {"source": "sklearn:breast_cancer", "test_size": 0.25}, "model": _MLP,
                      "train": {**_TRAIN, "batch_size": 32}},
}
ARMS = ("joint", "phased")


def space_for(name: str, seed: int, arm: str, phase1_trials: int) -> dict[str, Any]:
    spec = copy.deepcopy(SETS[name])
    study: dict[str, Any] = {"name": f"{name}-{arm}-{seed}", "seed": seed, "n_trials": BUDGET, "ablation": False}
    if arm == "phased":
        study.update(workflow="phased", phases={"capacity": phase1_trials / BUDGET, "min_trials": 3})
    # Two folds: a 2-core machine shared with other work gets through enough trials for phase 2 to start.
    return {"study": study, "validation": {"scheme": "kfold", "k": 2}, **spec}


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1",
                TF_NUM_INTEROP_THREADS="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def start(space: dict[str, Any], home: Path, seconds: int) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(path), "--home", str(home), "--quiet",
                             "--threads", "1", "--timeout", f"{seconds}s"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def reproduce(home: Path, study_name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search", "reproduce", study_name, "--home", str(home),
                             "--threads", "1"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_loss(proc: subprocess.Popen) -> float:
    out, err = proc.communicate()
    found = re.search(r"test set \(one look\): loss ([0-9.eE+-]+)", out)
    if not found:
        print(out[-2000:], err[-2000:], file=sys.stderr)
        return float("nan")
    return float(found.group(1))


def study_facts(home: Path, study_name: str) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{home / 'optuna.db'}")
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    pick = study.user_attrs.get("workflow_pick")
    best = study.best_trial
    return {"trials": len(done), "phase2": sum(t.user_attrs.get("phase") == 2 for t in done),
            "ended": "-" if "workflow_baseline" not in study.user_attrs else (pick["why"] if pick else "never"),
            "val": float(best.value), "baseline": study.user_attrs.get("workflow_baseline")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--phase1-trials", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="workflow-"))
    losses = {(n, a): [] for n in args.sets for a in ARMS}
    facts: dict[tuple[str, str], list[dict[str, Any]]] = {(n, a): [] for n in args.sets for a in ARMS}
    for name in args.sets:
        for seed in args.seeds:
            homes = {arm: root / f"{name}-{arm}-{seed}" for arm in ARMS}
            procs = {arm: start(space_for(name, seed, arm, args.phase1_trials), homes[arm], args.seconds)
                     for arm in ARMS}
            for arm, proc in procs.items():
                _, err = proc.communicate()
                if proc.returncode != 0:
                    print(f"{name} {arm} seed {seed} failed: {err[-1500:]}", file=sys.stderr)
            reps = {arm: reproduce(homes[arm], f"{name}-{arm}-{seed}") for arm in ARMS}
            for arm in ARMS:
                losses[name, arm].append(test_loss(reps[arm]))
                facts[name, arm].append(study_facts(homes[arm], f"{name}-{arm}-{seed}"))
            base = facts[name, "phased"][-1]["baseline"] or {}
            print(f"  {name} seed {seed}: " + "; ".join(
                f"{arm} {facts[name, arm][-1]['trials']} trials, val {facts[name, arm][-1]['val']:.4f}, "
                f"test {losses[name, arm][-1]:.4f}" for arm in ARMS)
                + f"; phase 1 ended: {facts[name, 'phased'][-1]['ended']}, "
                f"phase 0: prior {base.get('prior', float('nan')):.3f} linear {base.get('linear', float('nan')):.3f}",
                flush=True)
    print(f"\nreproduced test loss of each arm's pick ({args.seconds} s per arm, both at once, 1 thread each; "
          f"mean ± sd over seeds {args.seeds}; phase 1 at most {args.phase1_trials} trials)")
    print(f"{'data set':<14} {'joint':>17} {'phased':>17} {'phased/joint':>13} {'trials j/p':>11} "
          f"{'phase-2 trials':>15} {'phase 1 ended by':>18} {'linear baseline':>16}")
    for name in args.sets:
        m = {arm: np.nanmean(losses[name, arm]) for arm in ARMS}
        ended = ", ".join(f["ended"] for f in facts[name, "phased"])
        linear = np.nanmean([(f["baseline"] or {}).get("linear") or np.nan for f in facts[name, "phased"]])
        print(f"{name:<14} " + " ".join(f"{m[arm]:>9.4f} ± {np.nanstd(losses[name, arm]):.4f}" for arm in ARMS)
              + f" {m['phased'] / m['joint']:>13.3f} "
              + f"{np.mean([f['trials'] for f in facts[name, 'joint']]):>5.1f}/"
              + f"{np.mean([f['trials'] for f in facts[name, 'phased']]):<5.1f}"
              + f" {np.mean([f['phase2'] for f in facts[name, 'phased']]):>15.1f} {ended:>18} {linear:>16.4f}")


if __name__ == "__main__":
    main()
