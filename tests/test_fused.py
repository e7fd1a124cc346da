"""Fused splits (search/runner/fused.py): the k split models of a trial trained side by side in one graph.

Compared with the sequential path (``train.fuse_splits: false``) on the same splits and seeds: the same
rows, the same best-epoch rule, results within the noise of different shuffles.
"""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from search import preprocess, space as spaces
from search.runner import fused, session, training
from search.runner.checkpoints import load_model, split_path

from conftest import TINY, merge

SPACE = merge(TINY, {"data": {"source": "sklearn:breast_cancer"}, "validation": {"k": 3},
                     "model": {"layers": 1, "units": 16, "dropout": 0.1, "l2": 1e-3},
                     "train": {"epochs": 12, "batch_size": 32, "early_stopping": 0, "learning_rate": 0.003}})


def _prepared(overrides: dict | None = None):
    space = spaces.validate(merge(SPACE, overrides or {}))
    return space, session.prepare(space), space.sample(optuna.trial.FixedTrial({}))


def _seeds(prepared, trial: int = 1) -> list[int]:
    return [training.derive_seed(0, trial, split.index) for split in prepared.splits]


def test_fused_splits_match_the_sequential_path_within_seed_noise():
    space, prepared, settings = _prepared()
    seeds = _seeds(prepared)
    fused_results = [r for _, r in fused.train(space, settings, prepared.dataset, prepared.splits, seeds)]
    one_by_one = [training.train_on_split(space, settings, prepared.dataset, split, seed)[1]
                  for split, seed in zip(prepared.splits, seeds)]
    for a, b in zip(fused_results, one_by_one):
        assert a.split == b.split and a.epochs_run == b.epochs_run == 12
        assert sorted(a.history) == sorted(b.history)  # loss, penalty, accuracy and their val_ twins
        # Same rows, same initial weights: the losses differ only by the order of the shuffles.
        assert abs(a.best_val_loss - b.best_val_loss) < 0.25 * b.best_val_loss + 0.02
        # The penalty is recorded beside the data loss, never in it, on both paths.
        assert a.history["penalty"][0] == pytest.approx(b.history["penalty"][0], rel=0.05)
    mean_fused = np.mean([r.best_val_loss for r in fused_results])
    mean_seq = np.mean([r.best_val_loss for r in one_by_one])
    assert abs(mean_fused - mean_seq) < 0.15 * mean_seq


def test_a_regression_is_minimized_on_its_targets_scale_on_both_paths():
    """The squared error in diabetes' own units (spread 77) made gradients 6,000 times larger: SGD with
    momentum diverged at every usual learning rate, and an l2 penalty weighed next to nothing. Minimized in
    units of the target's spread, SGD trains, the losses said stay in the target's units, and the penalty
    is recorded as it is, on both paths."""
    space, prepared, settings = _prepared({
        "data": {"source": "sklearn:diabetes"}, "validation": {"k": 2},
        "train": {"optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.01, "epochs": 4}})
    y = prepared.dataset.y[prepared.dev_idx]
    seeds = _seeds(prepared)
    fused_results = [r for _, r in fused.train(space, settings, prepared.dataset, prepared.splits, seeds)]
    one_by_one = [training.train_on_split(space, settings, prepared.dataset, split, seed)[1]
                  for split, seed in zip(prepared.splits, seeds)]
    for a, b in zip(fused_results, one_by_one):
        assert a.epochs_run == b.epochs_run == 4 and not a.stop_reason and not b.stop_reason
        # Better than predicting the mean (the target's variance), in the target's squared units.
        assert 1000 < a.best_val_loss < 0.8 * np.var(y) and 1000 < b.best_val_loss < 0.8 * np.var(y)
        assert abs(a.best_val_loss - b.best_val_loss) < 0.25 * b.best_val_loss
        # The penalty is said in the data loss's units, as the loss is: the weights' own l2 sum (under 1)
        # divided by the weight the squared error is minimized with (one over the target's variance here),
        # so that a penalty of 0.4 beside a loss of 5,800 reads as the 2,300 of it that it is.
        variance = np.var(prepared.dataset.y[prepared.splits[a.split].train])
        assert 0 < a.history["penalty"][0] / variance < 1 and a.history["penalty"][0] == \
            pytest.approx(b.history["penalty"][0], rel=0.2)


def test_a_branch_holds_its_best_epoch_and_stops_on_its_own_clock():
    space, prepared, settings = _prepared({"train": {"epochs": 40, "early_stopping": 2, "learning_rate": 0.05}})
    pairs = fused.train(space, settings, prepared.dataset, prepared.splits, _seeds(prepared))
    for (model, result), split in zip(pairs, prepared.splits):
        ds = prepared.dataset
        _, X_val = preprocess.fit_transform(space.data.preprocess, ds.X[split.train], ds.X[split.val])
        pred = np.asarray(model(X_val, training=False)).reshape(-1)
        y = ds.y[split.val].astype(np.float64)
        p = np.clip(pred.astype(np.float64), 1e-7, 1 - 1e-7)
        recomputed = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
        # The returned model is the best epoch's, and its recorded value is its plain data loss.
        assert recomputed == pytest.approx(result.best_val_loss, rel=2e-3, abs=2e-4)
        assert result.best_val_loss == pytest.approx(min(result.history["val_loss"]))
        if result.stop_reason == "early_stopping":
            assert result.epochs_run == result.best_epoch + 2
    assert any(r.stop_reason == "early_stopping" for _, r in pairs)


def test_unequal_splits_keep_every_row():
    _, prepared, _ = _prepared({"validation": {"k": 4}})
    sizes = {len(s.train) for s in prepared.splits}
    assert len(sizes) > 1, "the test needs splits of unequal size"
    # One batch holds the smallest split whole: the larger ones take a second, partial step on their own.
    space, prepared, settings = _prepared({"validation": {"k": 4}, "train": {"epochs": 2, "batch_size": min(sizes)}})
    branches = [fused._branch(space, settings, prepared.dataset, split, seed)
                for split, seed in zip(prepared.splits, _seeds(prepared))]
    loop = fused._Loop(min(sizes))
    logs = loop.epoch(branches, None)
    # Each branch stepped over all of its own training rows, none dropped or repeated.
    assert loop.rows_seen == {s.index: len(s.train) for s in prepared.splits}
    assert all(math.isfinite(logs[s.index]["val_loss"]) for s in prepared.splits)


def test_a_branch_does_not_depend_on_its_neighbours():
    """``--verify`` and re-training a missing checkpoint train some splits alone: they must get the same model,
    with TensorFlow's kernels as a search runs them (no op determinism, which a search does not turn on)."""
    space, prepared, settings = _prepared({"train": {"epochs": 5}})
    seeds = _seeds(prepared)
    together = fused.train(space, settings, prepared.dataset, prepared.splits, seeds)
    alone = fused.train(space, settings, prepared.dataset, prepared.splits[2:], seeds[2:])
    assert alone[0][1].best_val_loss == pytest.approx(together[2][1].best_val_loss, rel=1e-5)


def test_a_study_runs_fused_and_stores_a_checkpoint_per_split(write_space, home):
    from search import api

    path = write_space({"train": {"epochs": 4}})
    api.run(path, home=home, quiet=True)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{home / 'optuna.db'}")
    trial = study.trials[-1]
    assert trial.state.name == "COMPLETE"
    assert {s["split"] for s in trial.user_attrs["splits"]} == {0, 1, 2}
    for k in range(3):
        saved = load_model(split_path(home, "tiny", trial.number, k))
        assert saved.count_params() > 0
    # Both pruning levels' steps are reported: every epoch of every split, and each split's score.
    steps = set(trial.intermediate_values)
    assert {0, 10_000, 20_000} <= steps and {1, 10_004, 20_004} <= steps


def test_a_builder_that_cannot_be_fused_falls_back_with_a_reason(write_space, home, tmp_path, capsys):
    (tmp_path / "own_step.py").write_text(
        "import keras\n"
        "@keras.saving.register_keras_serializable(package='own_step')\n"  # its checkpoints must load again
        "class OwnStep(keras.Model):\n"
        "    def train_step(self, data):\n"
        "        return super().train_step(data)\n"
        "def build(settings, input_shape, n_outputs):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    outputs = keras.layers.Dense(n_outputs, activation='softmax')(keras.layers.Dense(4)(inputs))\n"
        "    return OwnStep(inputs, outputs)\n")
    from search import api

    path = write_space({"model": {"family": "python:own_step:build", "dropout": None}, "train": {"epochs": 2}})
    api.run(path, home=home, quiet=True)
    err = capsys.readouterr().err
    assert "trained one after another, not fused" in err and "defines its own train_step" in err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{home / 'optuna.db'}")
    assert all(t.state.name == "COMPLETE" for t in study.trials)


def test_fuse_splits_false_takes_the_sequential_path(write_space, home):
    from search import api

    calls = []
    real = training.train_on_split

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    training.train_on_split = spy
    try:
        api.run(write_space({"study": {"n_trials": 1}, "train": {"fuse_splits": False}}), home=home, quiet=True)
    finally:
        training.train_on_split = real
    assert len(calls) == 3


def test_mixed_precision_trains_in_float16_and_scores_in_float32():
    space, prepared, settings = _prepared({"train": {"epochs": 3, "mixed_precision": True}})
    try:
        pairs = fused.train(space, settings, prepared.dataset, prepared.splits[:1], _seeds(prepared)[:1])
        model, result = pairs[0]
        assert model.layers[1].compute_dtype == "float16"      # a hidden layer computes in float16 ...
        assert model.layers[-1].compute_dtype == "float32"     # ... the output stays float32
        assert math.isfinite(result.best_val_loss) and result.best_val_loss < 1.0
    finally:
        training.set_precision({"mixed_precision": False})


def test_each_worker_gets_its_own_gpu_round_robin(monkeypatch):
    from search.runner import workers

    assert [workers.gpu_env(i, ["0", "1"]) for i in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "0"}]
    assert workers.gpu_env(0, []) == {}, "no GPU: the environment is left alone"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert workers.visible_gpus() == ["2", "3"], "only the GPUs this process may use are shared out"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert workers.visible_gpus() == []


def test_a_fused_trial_pruned_mid_training_says_so_in_the_summary():
    from search.review import prune_where
    from search.review.display import pruned_summary

    reason = ("pruned at epoch 7 (all 3 splits, trained together): its mean validation loss was worse than "
              "study.pruner median lets through at that epoch")
    assert prune_where(reason) == ("fused", 3, 7, "e7")
    assert prune_where("pruned at epoch 7 of 3 splits trained together") == ("fused", 3, 7, "e7")  # older studies
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.5))
    for epoch in (6, 9):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                                  user_attrs={"reason": reason.replace("7", str(epoch))}))
    assert pruned_summary(study) == ("2 pruned: 2 at epochs 6-9 (all splits trained together, worse than the pruner "
                                     "lets through)")


def test_splits_too_large_to_hold_together_are_trained_one_after_another(monkeypatch):
    space, prepared, settings = _prepared({"train": {"epochs": 1}})
    monkeypatch.setattr(fused, "MEMORY_LIMIT", 1000)
    with pytest.raises(fused.NotFusable, match="scaled rows would take"):
        fused.train(space, settings, prepared.dataset, prepared.splits, _seeds(prepared))
    pairs = training.train_splits(space, settings, prepared.dataset, prepared.splits, _seeds(prepared))
    assert [r.split for _, r in pairs] == [0, 1, 2] and all(r.epochs_run == 1 for _, r in pairs)


def test_a_checkpoint_saved_with_the_skip_sets_set_aside_is_the_one_keras_writes(tmp_path):
    """checkpoints.save_atomic gives Keras its per-type skip sets computed once; the file must not change."""
    import re
    import zipfile

    import h5py
    import keras
    import numpy as np

    from search.runner import _runtime, checkpoints
    from search.models import layers  # noqa: F401  (the data-loss metric, registered)

    def build():  # after a reset, so layer names and seeds are the same each time
        _runtime.reset_keras()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        x = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(inputs)
        x = keras.layers.BatchNormalization()(keras.layers.Dropout(0.2)(x))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(np.ones((16, 4)), np.arange(16) % 3, epochs=1, verbose=0)
        return model

    def contents(path):
        with zipfile.ZipFile(path) as z:  # objects shared between layers are named by their id() in memory
            config = re.sub(rb'"shared_object_id": [0-9]+', b"", z.read("config.json"))
            z.extract("model.weights.h5", tmp_path / path.stem)
        with h5py.File(tmp_path / path.stem / "model.weights.h5") as h5:
            arrays = {}
            h5.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                          else None)
        return config, arrays

    build().save(tmp_path / "keras.keras")  # Keras alone
    checkpoints.save_atomic(build(), tmp_path / "primed.keras")
    checkpoints.save_atomic(build(), tmp_path / "again.keras")  # the skip sets now come from the process cache
    expected_config, expected = contents(tmp_path / "keras.keras")
    for name in ("primed.keras", "again.keras"):
        config, arrays = contents(tmp_path / name)
        assert config == expected_config
        assert arrays.keys() == expected.keys() and len(arrays) > 10
        assert all(np.array_equal(arrays[k], expected[k]) for k in arrays)
    assert checkpoints._skipsets, "the skip sets were set aside"
    loaded = checkpoints.load_model(tmp_path / "again.keras")
    assert loaded.evaluate(np.ones((4, 4)), np.arange(4) % 3, verbose=0)


def test_class_weights_lift_a_rare_class_on_both_paths_and_leave_the_reported_losses_plain(tmp_path):
    """train.class_weight: balanced, as Keras' class_weight and scikit-learn's 'balanced': training minimizes
    each row's loss weighted by its class, the losses said (training and validation) stay the plain ones."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    keep = np.concatenate([np.flatnonzero(y == 1), np.flatnonzero(y == 0)[:24]])  # 24 malignant of 381
    np.savez(tmp_path / "rare.npz", X=X[keep], y=y[keep])
    base = {"data": {"source": f"npz:{tmp_path / 'rare.npz'}"},
            "train": {"epochs": 15, "learning_rate": 0.01}, "model": {"dropout": 0.0}}
    recalls, losses = {}, {}
    for weighting in ("none", "balanced"):
        space, prepared, settings = _prepared(merge(base, {"train": {"class_weight": weighting}}))
        pairs = fused.train(space, settings, prepared.dataset, prepared.splits, _seeds(prepared))
        hits = rare = 0
        for (model, result), split in zip(pairs, prepared.splits):
            ds = prepared.dataset
            _, X_val = preprocess.fit_transform(space.data.preprocess, ds.X[split.train], ds.X[split.val])
            pred = np.asarray(model(X_val, training=False)).reshape(-1) > 0.5
            minority = ds.y[split.val] == 0
            hits, rare = hits + int((~pred[minority]).sum()), rare + int(minority.sum())
            assert "penalty" in result.history  # the l2 penalty is still said beside the plain loss
        recalls[weighting], losses[weighting] = hits / rare, [r for _, r in pairs]
    assert recalls["balanced"] > recalls["none"], recalls
    # The plain training loss is what is said: a weighted one would be near the validation loss of a model
    # at chance on the rare class, several times the plain one.
    for result in losses["balanced"]:
        assert result.history["loss"][-1] < 0.5 and result.best_val_loss < 0.5
    # One split after another: within the noise of the shuffles of the fused branches, and the penalty read
    # from the model (Keras' total then holds the weighting as well; a penalty_mean of 0 was logged).
    space, prepared, settings = _prepared(merge(base, {"train": {"class_weight": "balanced"}}))
    split, seed = prepared.splits[0], _seeds(prepared)[0]
    _, alone = training.train_on_split(space, settings, prepared.dataset, split, seed)
    assert alone.best_penalty == pytest.approx(losses["balanced"][0].best_penalty, rel=0.5) and alone.best_penalty > 0
    assert abs(alone.best_val_loss - losses["balanced"][0].best_val_loss) < 0.5 * alone.best_val_loss + 0.03
    from search.errors import SpaceError

    with pytest.raises(SpaceError, match="regression target has no classes"):
        _prepared({"data": {"source": "sklearn:diabetes"}, "train": {"class_weight": "balanced"}})
