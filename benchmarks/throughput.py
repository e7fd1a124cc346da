"""Throughput: fused splits against one-after-another, and `search run` against a plain Optuna + Keras loop.

    python benchmarks/throughput.py [--seconds 180] [--rounds 2] [--parts a b]

(a) One trial's splits trained fused (``search.runner.fused``) and one after another
    (``training.train_on_split``, i.e. ``train.fuse_splits: false``), same settings, rows and seeds, for
    k = 3, k = 5 and iterated 5 x 3 on the shipped MLP and CNN spaces (one sampled config each, a fixed
    10 epochs, early stopping off so both paths do the same work). Alternating rounds, medians.
    Target: 5-fold fused <= 0.4x sequential.
(b) Trials per hour of `search run spaces/digits_mlp.yaml` (all its logging on: Optuna SQLite, MLflow,
    checkpoints, figures) against the same space searched by a plain loop written the usual way: Optuna's
    TPE, scikit-learn's KFold, a scaler per fold, ``model.fit`` with EarlyStopping(restore_best_weights),
    folds one after another, no logging, no pruning. Same wall-clock budget, one after the other, each a
    fresh process. Target: `search run` >= 2x the plain loop's trials per hour.

Prints ratios and the best validation loss each arm reached.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = {"k=3": {"scheme": "kfold", "k": 3}, "k=5": {"scheme": "kfold", "k": 5},
           "iterated 5x3": {"scheme": "iterated_kfold", "k": 5, "repeats": 3}}
SPACES = {"mlp": "spaces/digits_mlp.yaml", "cnn": "spaces/digits_cnn_augment.yaml"}


def part_a(rounds: int) -> None:
    import optuna

    from search import space as spaces
    from search.runner import _runtime, fused, session, training

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("(a) one trial's wall time, fused vs one split after another (10 epochs, early stopping off)")
    print(f"{'space':<6} {'splits':<14} {'fused s':>8} {'sequential s':>13} {'ratio':>7}")
    for name, path in SPACES.items():
        raw = yaml.safe_load((ROOT / path).read_text())
        raw["train"].update(epochs=10, early_stopping=0)
        for label, validation in SCHEMES.items():
            spec = copy.deepcopy(raw)
            spec["validation"] = validation
            space = spaces.validate(spec, source=str(ROOT / path))
            prepared = session.prepare(space)
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
            settings = space.sample(study.ask())
            seeds = [training.derive_seed(0, 1, s.index) for s in prepared.splits]

            def run_fused() -> float:
                start = time.perf_counter()
                fused.train(space, settings, prepared.dataset, prepared.splits, seeds)
                return time.perf_counter() - start

            def run_sequential() -> float:
                start = time.perf_counter()
                for split, seed in zip(prepared.splits, seeds):
                    training.train_on_split(space, settings, prepared.dataset, split, seed)
                return time.perf_counter() - start

            times: dict[str, list[float]] = {"fused": [], "sequential": []}
            with _runtime.live_objects_frozen():  # as `search run` does around its trials
                run_fused()  # warm-up: the first graph of a process pays for TensorFlow's start
                for _ in range(rounds):
                    times["fused"].append(run_fused())
                    times["sequential"].append(run_sequential())
            f, s = statistics.median(times["fused"]), statistics.median(times["sequential"])
            print(f"{name:<6} {label:<14} {f:>8.2f} {s:>13.2f} {f / s:>7.2f}", flush=True)


def _arm(argv: list[str], home: Path, seconds: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=seconds + 600)
    elapsed = time.perf_counter() - start
    result = json.loads((home / "result.json").read_text()) if (home / "result.json").exists() else {}
    if not result:
        import optuna

        study = optuna.load_study(study_name="digits-mlp", storage=f"sqlite:///{home / 'optuna.db'}")
        done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
        values = [t.value for t in done if t.state.name == "COMPLETE" and t.value is not None]
        result = {"trials": len(done), "complete": len(values), "best": min(values) if values else float("nan")}
    result["elapsed"] = elapsed
    return result


def plain_loop(space_path: str, seconds: int, out: Path) -> None:
    """The usual hand-written search: Optuna TPE, KFold, a scaler per fold, fit with early stopping."""
    import keras
    import numpy as np
    import optuna
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    from search import space as spaces
    from search.models import Head, build
    from search.runner import session

    space = spaces.load(space_path)
    prepared = session.prepare(space)  # the same rows; only the search loop is written by hand
    ds, dev = prepared.dataset, prepared.dev_idx
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        settings = space.sample(trial)
        train = settings["train"]
        losses = []
        for fold, (tr, va) in enumerate(KFold(space.validation.k, shuffle=True, random_state=0).split(dev)):
            tr, va = dev[tr], dev[va]
            scaler = StandardScaler().fit(ds.X[tr])
            keras.backend.clear_session()
            keras.utils.set_random_seed(trial.number * 100 + fold)
            head = Head(ds.task, ds.n_outputs)
            model = build(settings["model"], ds.input_shape, head)
            model.compile(keras.optimizers.Adam(train["learning_rate"]), head.loss, metrics=[head.metric])
            stop = keras.callbacks.EarlyStopping(patience=train["early_stopping"], restore_best_weights=True)
            history = model.fit(scaler.transform(ds.X[tr]), ds.y[tr], epochs=train["epochs"],
                                batch_size=train["batch_size"], callbacks=[stop], verbose=0,
                                validation_data=(scaler.transform(ds.X[va]), ds.y[va]))
            losses.append(min(history.history["val_loss"]))
        return float(np.mean(losses))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, timeout=seconds)
    values = [t.value for t in study.trials if t.value is not None]
    out.write_text(json.dumps({"trials": len(values), "complete": len(values), "best": min(values)}))


def part_b(seconds: int) -> None:
    space = str(ROOT / SPACES["mlp"])
    tmp = Path(tempfile.mkdtemp(prefix="throughput-"))
    raw = yaml.safe_load(Path(space).read_text())
    raw["study"]["n_trials"] = 100000
    big = tmp / "space.yaml"
    big.write_text(yaml.safe_dump(raw))
    plain_home = tmp / "plain"
    plain_home.mkdir()
    plain = _arm([sys.executable, __file__, "--plain", str(big), str(seconds), str(plain_home / "result.json")],
                 plain_home, seconds)
    ours_home = tmp / "search"
    ours = _arm([sys.executable, "-m", "search", "run", str(big), "--home", str(ours_home), "--quiet",
                 "--timeout", f"{seconds}s"], ours_home, seconds)
    print(f"\n(b) {SPACES['mlp']} for {seconds} s each, whole process wall time (start-up included)")
    print(f"{'arm':<26} {'trials':>7} {'complete':>9} {'trials/hour':>12} {'best val_loss':>14}")
    rates = {}
    for name, r in (("plain Optuna + Keras loop", plain), ("search run (all logging)", ours)):
        rates[name] = r["trials"] / r["elapsed"] * 3600
        print(f"{name:<26} {r['trials']:>7} {r['complete']:>9} {rates[name]:>12.0f} {r['best']:>14.4f}")
    print(f"search run / plain loop = {rates['search run (all logging)'] / rates['plain Optuna + Keras loop']:.2f}x "
          f"trials per hour (target >= 2)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--plain":
        sys.path.insert(0, str(ROOT))
        plain_loop(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["a", "b"], choices=["a", "b"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"{os.cpu_count()} CPU cores")
    if "a" in args.parts:
        from search.runner import _runtime

        _runtime.configure()
        part_a(args.rounds)
    if "b" in args.parts:
        part_b(args.seconds)


if __name__ == "__main__":
    main()
