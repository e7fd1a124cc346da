"""Is pruning fair to regularized trials? Pruning as shipped against pruning off, at one wall-clock budget.

    python benchmarks/fairness.py [--seconds 300] [--seeds 0 1] [--sets digits breast_cancer digits_cnn]

For every data set and seed, three studies of the same space run *at the same time* (one TensorFlow
thread each, so machine load hits all alike), each with ``--timeout SECONDS``:

- ``shipped``: the shipped pruning defaults (median rule against complete trials with alike regularizers,
  once 5 of them are complete, baseline left out, from half the epoch at which complete trials peaked;
  the paired rule across splits);
- ``old``: the previous defaults, Optuna's median pruner as usually configured (3 complete trials, the
  baseline among them; every epoch from the 5th judged);
- ``off``: ``pruner: none`` and ``split_pruner: none``.

Then:

(a) for each regularizer (L2 on, L1 on, dropout >= 0.2, batch norm, augmentation on), the share of an
    arm's finished trials using it that completed, divided by the share of all its finished trials that
    completed (target for ``shipped``: >= 0.7, i.e. pruning does not single the regularizer out);
(b) ``search reproduce`` of each arm's pick: its test loss (target: shipped <= off on every data set,
    within the spread over seeds).

Prints one table per part, ratios and means only.
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

_MLP = {
    "family": "mlp", "layers": {"int": [1, 2]}, "units": {"int": [16, 128], "log": True},
    "dropout": {"float": [0.0, 0.6]}, "l2": {"float": [1e-5, 1e-2], "log": True, "or_off": True},
    "l1": {"float": [1e-6, 1e-3], "log": True, "or_off": True}, "batchnorm": {"choice": [False, True]},
}
_TRAIN = {"optimizer": "adam", "learning_rate": {"float": [3e-4, 1e-2], "log": True}, "batch_size": 64,
          "epochs": 15, "early_stopping": 4}
SETS: dict[str, dict[str, Any]] = {
    "digits": {"data": {"source": "sklearn:digits", "test_size": 0.25}, "model": _MLP, "train": _TRAIN},
    "breast_cancer": {"data": {"source": "sklearn:breast_cancer", "test_size": 0.25}, "model": _MLP,
                      "train": _TRAIN},
    "digits_cnn": {"data": {"source": "sklearn:digits", "as_images": True, "test_size": 0.25},
                   "model": {"family": "cnn", "blocks": 1, "filters": {"int": [8, 32], "log": True},
                             "dense_units": 32, "dropout": {"float": [0.0, 0.5]},
                             "batchnorm": {"choice": [False, True]},
                             "augment_rotation": {"float": [0.0, 15.0]},
                             "augment_zoom": {"float": [0.0, 0.1]}, "augment_fill": "constant"},
                   "train": {**_TRAIN, "learning_rate": {"float": [1e-3, 1e-2], "log": True}, "epochs": 15,
                             "batch_size": 128, "early_stopping": 4}},
}
REGULARIZERS = {
    "L2 on": lambda p: bool(p.get("model.l2.on")),
    "L1 on": lambda p: bool(p.get("model.l1.on")),
    "dropout >= 0.2": lambda p: float(p.get("model.dropout", 0.0)) >= 0.2,
    "batch norm": lambda p: bool(p.get("model.batchnorm")),
    "augmentation on": lambda p: any(float(v) > 0 for k, v in p.items() if k.startswith("model.augment_")
                                     and not isinstance(v, str)),
}


def space_for(name: str, seed: int, arm: str) -> dict[str, Any]:
    spec = copy.deepcopy(SETS[name])
    study = {"name": f"{name}-{arm}-{seed}", "seed": seed, "n_trials": 100000, "ablation": False}
    if arm == "off":
        study.update(pruner="none", split_pruner="none")
    elif arm == "old":
        # 2 + the baseline = 3 complete; epoch 5 on; every complete trial is a yardstick
        study.update(prune_startup=2, prune_warmup=0.0, prune_compare="all")
    return {"study": study, "validation": {"scheme": "kfold", "k": 3}, **spec}


def start(space: dict[str, Any], home: Path, seconds: int) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(path), "--home", str(home), "--quiet",
                             "--threads", "1", "--timeout", f"{seconds}s"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def trials(home: Path, study_name: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{home / 'optuna.db'}")
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_loss(home: Path, study_name: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-m", "search", "reproduce", study_name, "--home", str(home),
                          "--threads", "2"], env=env, capture_output=True, text=True)
    found = re.search(r"test set \(one look\): loss ([0-9.eE+-]+)", out.stdout)
    if not found:
        print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
        return float("nan")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fairness-"))
    arms = ("shipped", "old", "off")
    counts = {(n, a): {r: [0, 0] for r in REGULARIZERS} for n in args.sets for a in arms[:2]}
    overall = {(n, a): [0, 0] for n in args.sets for a in arms[:2]}
    losses = {(n, a): [] for n in args.sets for a in arms}
    finished = {(n, a): [] for n in args.sets for a in arms}
    for name in args.sets:
        for seed in args.seeds:
            procs = {arm: start(space_for(name, seed, arm), root / f"{name}-{arm}-{seed}", args.seconds)
                     for arm in arms}
            for arm, proc in procs.items():
                _, err = proc.communicate()
                if proc.returncode != 0:
                    print(f"{name} {arm} seed {seed} failed: {err[-1500:]}", file=sys.stderr)
            for arm in arms:
                home, study = root / f"{name}-{arm}-{seed}", f"{name}-{arm}-{seed}"
                done = trials(home, study)
                finished[name, arm].append(len(done))
                losses[name, arm].append(test_loss(home, study))
                if arm == "off":
                    continue
                for t in done:
                    if t.user_attrs.get("baseline"):
                        continue  # the baseline has every regularizer off by construction
                    ok = t.state.name == "COMPLETE"
                    overall[name, arm][0] += ok
                    overall[name, arm][1] += 1
                    for reg, uses in REGULARIZERS.items():
                        if uses(t.params):
                            counts[name, arm][reg][0] += ok
                            counts[name, arm][reg][1] += 1
            print(f"  {name} seed {seed}: " + "; ".join(
                f"{arm} {finished[name, arm][-1]} trials, test loss {losses[name, arm][-1]:.4f}" for arm in arms),
                flush=True)

    print(f"\n(a) completion share of trials using a regularizer / completion share of all trials "
          f"({args.seconds} s x {len(args.seeds)} seeds per data set; baseline left out; target >= 0.7; "
          f"n = finished trials using it)")
    print(f"{'data set':<14} {'arm':<8} {'all':>10} " + " ".join(f"{r:>16}" for r in REGULARIZERS))
    for name in args.sets:
        for arm in arms[:2]:
            ok_all, n_all = overall[name, arm]
            share = ok_all / n_all if n_all else float("nan")
            cells = []
            for reg in REGULARIZERS:
                ok, n = counts[name, arm][reg]
                cells.append(f"{(ok / n) / share:>10.2f} n={n:<3}" if n and share else f"{'-':>16}")
            print(f"{name:<14} {arm:<8} {share:>5.2f} n={n_all:<3}" + " ".join(cells))
    print("\n(b) reproduced test loss of each arm's pick (mean ± sd over seeds; target: shipped <= off)")
    print(f"{'data set':<14} " + " ".join(f"{arm:>17}" for arm in arms) + f" {'shipped/off':>12} {'trials':>16}")
    for name in args.sets:
        means = {arm: np.nanmean(losses[name, arm]) for arm in arms}
        print(f"{name:<14} " + " ".join(f"{means[arm]:>9.4f} ± {np.nanstd(losses[name, arm]):.4f}" for arm in arms)
              + f" {means['shipped'] / means['off']:>12.3f} "
              + "/".join(f"{np.mean(finished[name, arm]):.1f}" for arm in arms))


if __name__ == "__main__":
    main()
