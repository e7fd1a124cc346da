"""Harness overhead: trials through `search` against the bare fits they wrap, alternating in one process.

    python benchmarks/overhead.py [--rounds 5] [--block 3] [--epochs 15,100]

The harness arm is what `search run` does per trial: its trial loop (orphan recovery, budget checks,
Optuna ask/tell on SQLite), the default pruner's judgement after every epoch, MLflow logging and the
trial figure, checkpoints and their retention. The bare fit is ``search.runner.fused.train`` on the same
settings, splits and seeds with no hooks, no storage and no files: what is left of a trial once the
harness is taken away. Both run inside the same garbage-collector setting `search run` uses. For scale,
at the first trial length, the same k models as a hand-written Keras loop (``model.fit`` per fold, one
after another), whose models are freed after it, untimed, so that neither arm pays for them.

Each round times ``--block`` harness trials in a row, then (untimed) waits until the work they handed to
side threads and the drawing process (MLflow writes, figures, study figures) is done, then times as many
bare fits in a row. So side work slows the harness trials it runs beside, as in a real run, and never
the bare fits; only the last trial's, which a real run would overlap with the next trial, is left out
of both. The pruner is the default (median, alike regularizers) with a warm-up too long
for these 15- and 100-epoch trials to be cut: it reads and judges every epoch as in a real study, and
every round trains the same number of epochs. Prints the times per round and the ratio of the medians
for each trial length. Target: harness / bare fit <= 1.03.
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
    # The default pruner, judging every epoch; warm-up 10x the median best epoch, so no trial is cut short.
    "study": {"name": "overhead", "seed": 0, "n_trials": 1000, "baseline": False, "prune_warmup": 10.0},
    "data": {"source": "sklearn:digits", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 3},
    "model": {"family": "mlp", "layers": 2, "units": 128, "dropout": 0.2},
    "train": {"epochs": 15, "batch_size": 64, "early_stopping": 0, "learning_rate": 0.001},
}


def harness_trials(loop, tracker, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        loop.run()
    elapsed = time.perf_counter() - start
    tracker.flush()  # the last trial's side work, done before the bare fits start
    return elapsed


def bare_fused(space, prepared, n: int = 1) -> float:
    import optuna

    from search.runner import fused, training

    settings = space.sample(optuna.trial.FixedTrial({}))
    seeds = [training.derive_seed(0, 1, s.index) for s in prepared.splits]
    start = time.perf_counter()
    for _ in range(n):
        fused.train(space, settings, prepared.dataset, prepared.splits, seeds)
    return time.perf_counter() - start


def bare_kfold(prepared, epochs: int) -> float:
    import keras
    from sklearn.preprocessing import StandardScaler

    ds, train = prepared.dataset, space_dict(epochs)["train"]
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


def space_dict(epochs: int) -> dict:
    return {**SPACE, "study": {**SPACE["study"], "name": f"overhead-{epochs}"},
            "train": {**SPACE["train"], "epochs": epochs}}


def measure(epochs: int, rounds: int, block: int, home: Path, with_keras: bool) -> None:
    from search import space as spaces, tracking
    from search.runner import _runtime, checkpoints, session
    from search.runner._loop import TrialLoop
    from search.runner.objective import Objective
    from search.runner.stopping import StopRequest
    from search.studies import lifecycle as studies

    space = spaces.validate(space_dict(epochs))
    prepared = session.prepare(space)
    study = studies.open_study(space, studies.make_storage(studies.default_storage(home)), prepared.attrs())
    tracker = tracking.MlflowTracker(tracking.default_tracking_uri(home), home, space, "", {})
    tracker.start(study)
    stop = StopRequest(announce=False)
    listeners = [tracker, checkpoints.CheckpointRetention(home, space.study.keep_checkpoints)]
    objective = Objective(space, prepared.dataset, prepared.splits, home, listeners, stop=stop,
                          budget=studies.budget_of(space))
    loop = TrialLoop(study, objective, studies.budget_of(space), space.study.max_consecutive_failures,
                         session.RunOptions(home=home, n_trials=1, quiet=True), stop)
    print(f"-- {epochs} epochs, {len(prepared.splits)} splits, {block} trials per arm and round", flush=True)
    with _runtime.live_objects_frozen():  # where `search run` sets its objects aside: right before the trials
        _measure(space, prepared, loop, tracker, rounds, block, with_keras, epochs)
    tracker.finish()


def _measure(space, prepared, loop, tracker, rounds: int, block: int, with_keras: bool, epochs: int) -> None:
    from search.runner import _runtime

    harness_trials(loop, tracker, 1)  # warm-up: graph tracing, store creation, the drawing process
    bare_fused(space, prepared)
    if with_keras:
        bare_kfold(prepared, epochs)
        _runtime.reset_keras()
    harness, bare, keras_loop = [], [], []
    for r in range(rounds):
        harness.append(harness_trials(loop, tracker, block))
        bare.append(bare_fused(space, prepared, block))
        line = f"round {r + 1}: harness {harness[-1]:.2f} s   bare fit {bare[-1]:.2f} s"
        if with_keras:
            keras_loop.append(sum(bare_kfold(prepared, epochs) for _ in range(block)))
            line += f"   hand-written keras k-fold {keras_loop[-1]:.2f} s"
            # Its models and traced functions are freed here, untimed: otherwise the next harness trial's
            # Keras reset would pay for three models it never made.
            _runtime.reset_keras()
        print(line, flush=True)
    h, b = statistics.median(harness), statistics.median(bare)
    print(f"{epochs} epochs: overhead ratio (median harness / median bare fit) = {h / b:.3f}   target <= 1.03")
    if with_keras:
        print(f"{epochs} epochs: harness / hand-written keras k-fold loop = {h / statistics.median(keras_loop):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=4, help="trials in a row per arm and round")
    parser.add_argument("--epochs", default="15,100", help="trial lengths, comma-separated")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from search.runner import _runtime

    _runtime.configure()
    home = Path(tempfile.mkdtemp(prefix="overhead-"))
    for i, epochs in enumerate(int(e) for e in args.epochs.split(",")):
        measure(epochs, args.rounds, args.block, home, with_keras=i == 0)


if __name__ == "__main__":
    main()
