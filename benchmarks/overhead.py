"""Harness overhead: one trial through `search` (Optuna SQLite, MLflow logging and figures, checkpoints,
pruning reports) against the bare fit it wraps, alternating in one process.

    python benchmarks/overhead.py [--rounds 5]

The bare fit is ``search.runner.fused.train`` on the same settings, splits and seeds with no hooks, no
storage and no files: what is left of a trial once the harness is taken away. Also timed, for scale: the
same k models as a hand-written Keras loop (``model.fit`` per fold, one after another).

Prints the times per round and the ratios of the medians. Target: harness / bare fit <= 1.03.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPACE = {
    # No pruner: a pruned round would be a short trial and skew the ratio.
    "study": {"name": "overhead", "seed": 0, "n_trials": 1000, "baseline": False, "pruner": "none"},
    "data": {"source": "sklearn:digits", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 3},
    "model": {"family": "mlp", "layers": 2, "units": 128, "dropout": 0.2},
    "train": {"epochs": 15, "batch_size": 64, "early_stopping": 0, "learning_rate": 0.001},
}


def harness_trial(prepared, study, objective) -> float:
    start = time.perf_counter()
    study.optimize(objective, n_trials=1)
    return time.perf_counter() - start


def bare_fused(space, prepared) -> float:
    import optuna

    from search.runner import fused, training

    settings = space.sample(optuna.trial.FixedTrial({}))
    seeds = [training.derive_seed(0, 1, s.index) for s in prepared.splits]
    start = time.perf_counter()
    fused.train(space, settings, prepared.dataset, prepared.splits, seeds)
    return time.perf_counter() - start


def bare_kfold(prepared) -> float:
    import keras
    from sklearn.preprocessing import StandardScaler

    ds, train = prepared.dataset, SPACE["train"]
    start = time.perf_counter()
    for split in prepared.splits:
        scaler = StandardScaler().fit(ds.X[split.train])
        X_tr, X_va = scaler.transform(ds.X[split.train]), scaler.transform(ds.X[split.val])
        keras.backend.clear_session()
        keras.utils.set_random_seed(split.index)
        inputs = keras.Input((X_tr.shape[1],))
        x = inputs
        for _ in range(SPACE["model"]["layers"]):
            x = keras.layers.Dense(SPACE["model"]["units"], activation="relu")(x)
            x = keras.layers.Dropout(SPACE["model"]["dropout"])(x)
        model = keras.Model(inputs, keras.layers.Dense(len(ds.classes), activation="softmax")(x))
        model.compile(keras.optimizers.Adam(train["learning_rate"]), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(X_tr, ds.y[split.train], validation_data=(X_va, ds.y[split.val]), epochs=train["epochs"],
                  batch_size=train["batch_size"], verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from search import space as spaces, tracking
    from search.runner import _runtime
    from search.runner import session
    from search.studies import lifecycle as studies
    from search.runner.objective import Objective

    _runtime.configure()
    home = Path(tempfile.mkdtemp(prefix="overhead-"))
    space = spaces.validate(SPACE)
    prepared = session.prepare(space)
    study = studies.open_study(space, studies.make_storage(studies.default_storage(home)), prepared.attrs())
    tracker = tracking.MlflowTracker(tracking.default_tracking_uri(home), home, space, "", {})
    tracker.start(study)
    objective = Objective(space, prepared.dataset, prepared.splits, home, [tracker])
    harness_trial(prepared, study, objective)  # warm-up: graph tracing, store creation
    bare_fused(space, prepared)
    bare_kfold(prepared)
    harness, bare, keras_loop = [], [], []
    for r in range(args.rounds):
        harness.append(harness_trial(prepared, study, objective))
        bare.append(bare_fused(space, prepared))
        keras_loop.append(bare_kfold(prepared))
        print(f"round {r + 1}: harness {harness[-1]:.2f} s   bare fit {bare[-1]:.2f} s   "
              f"hand-written keras k-fold {keras_loop[-1]:.2f} s", flush=True)
    h, b, k = (statistics.median(x) for x in (harness, bare, keras_loop))
    print(f"overhead ratio (median harness / median bare fit) = {h / b:.3f}   target <= 1.03")
    print(f"harness / hand-written keras k-fold loop = {h / k:.3f}")


if __name__ == "__main__":
    main()
