"""Harness overhead: one trial through `search` (Optuna SQLite + MLflow SQLite logging + checkpoints)
against the same training as a bare Keras k-fold loop, alternating in one process.

    python benchmarks/overhead.py [--rounds 3]

Prints both times per round and the ratio of the medians. Target: <= 1.10.
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
    parser.add_argument("--rounds", type=int, default=3)
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
    bare_kfold(prepared)
    harness, bare = [], []
    for r in range(args.rounds):
        harness.append(harness_trial(prepared, study, objective))
        bare.append(bare_kfold(prepared))
        print(f"round {r + 1}: harness {harness[-1]:.2f} s   bare keras {bare[-1]:.2f} s")
    ratio = statistics.median(harness) / statistics.median(bare)
    print(f"overhead ratio (median harness / median bare) = {ratio:.3f}   target <= 1.10")


if __name__ == "__main__":
    main()
