"""Training a trial's splits together: one Keras model per split, stepped side by side in one graph call.

Why: for the small networks this tool searches, a training step costs mostly framework overhead (a
Python call, a graph launch, a callback round), not arithmetic. k split models stepped by one graph call
pay that overhead once per step instead of k times, and TensorFlow runs the k independent branches on
different cores at once.

Each branch is its own model with its own optimizer, rows, scaler, seed, shuffles, best epoch and
early-stopping clock; nothing flows between branches, so a branch's result does not depend on which
others train beside it (``reproduce --verify`` and the re-training of a missing checkpoint train one
split alone through this same code and get the same model).

A branch that stops (early stopping, a non-finite loss) leaves the graph: the next steps are traced
without it, so its weights are not touched again, and at the end it gets the weights of its best epoch
back. Splits of unequal size keep all their rows: every branch takes ``ceil(rows / batch_size)`` steps
an epoch (the last one partial, as in ``model.fit``), and the larger splits take their extra step alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from search import models, preprocess
from search._stack import call_with_room
from search.models import Head
from search.models.layers import row_data_loss
from search.runner import _runtime
from search.runner.results import SplitResult

if TYPE_CHECKING:
    from search.data import Dataset
    from search.space import Space
    from search.splits import Split

# on_epoch(epoch, {split: logs}) -> True to stop every branch after this epoch (pruning, a stop request).
FusedEpochHook = Callable[[int, dict[int, dict[str, float]]], bool]
# Steps one graph call runs: fewer calls, and a second Ctrl-C (checked between calls) still lands quickly.
STEPS_PER_CALL = 32
# Validation rows one call predicts per branch: bounds the activations held at once for large images.
VAL_CHUNK = 2048
# Every branch holds its own scaled copy of its rows; past this many bytes for all of them together the
# splits are trained one after another, one copy at a time (large image sets).
MEMORY_LIMIT = 2 * 1024**3


class NotFusable(Exception):
    """The builder's model cannot be trained by the fused loop; the message says why."""


def why_not_fusable(model: Any) -> str | None:
    """Why a built model cannot be a branch (its own training step, several inputs or outputs), or None."""
    import keras

    cls = type(model)
    for name in ("train_step", "compute_loss"):
        if getattr(cls, name) is not getattr(keras.Model, name):
            return f"its model class {cls.__name__} defines its own {name}, which the fused loop would bypass"
    try:
        inputs, outputs = len(model.inputs), len(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model that was never called: one tensor in and out
        return None
    if inputs != 1 or outputs != 1:
        return f"its model has {inputs} inputs and {outputs} outputs; the fused loop feeds one array to one output"
    return None


@dataclass
class _Branch:
    split: int
    seed: int
    model: Any
    head: Head
    data: tuple[Any, Any, Any, Any]      # X_train, y_train, X_val, y_val as tensors
    n_train: int
    n_val: int
    penalized: bool
    rng: np.random.Generator
    class_weights: Any = None            # train.class_weight: balanced, one weight per class (a tensor)
    best: float = math.inf
    best_epoch: int = -1
    best_weights: list[Any] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    stop_reason: str = ""
    live: bool = True

    def steps(self, batch_size: int) -> int:
        return max(1, math.ceil(self.n_train / batch_size))

    def record(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def result(self) -> SplitResult:
        epochs = len(self.history.get("loss", []))
        if self.best_weights is None:  # not one finite validation loss
            return SplitResult(self.split, 0, math.inf, math.nan, epochs, self.history,
                               self.stop_reason or "non_finite_loss", seed=self.seed)
        from search.runner.training import validation_scores

        self.model.set_weights(self.best_weights)
        metric = self.history[f"val_{self.head.metric}"][self.best_epoch]
        return SplitResult(self.split, self.best_epoch + 1, self.best, metric, epochs, self.history,
                           self.stop_reason, seed=self.seed,
                           scores=validation_scores(self.model, self.data[2], self.data[3].numpy(), self.head.task))


def train(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset", splits: Sequence["Split"],
          seeds: Sequence[int], on_epoch: FusedEpochHook | None = None,
          on_batch: Callable[[], None] | None = None) -> list[tuple[Any, SplitResult]]:
    """Train one model per split together; each returned model holds its best validation-loss epoch.

    Raises :class:`NotFusable` (before any training) when the builder's model cannot be a branch.
    """
    # Tracing the graphs goes hundreds of frames deep: the same speed from any caller (search/_stack.py).
    return call_with_room(_train, space, settings, dataset, splits, seeds, on_epoch, on_batch)


def _train(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset", splits: Sequence["Split"],
           seeds: Sequence[int], on_epoch: FusedEpochHook | None,
           on_batch: Callable[[], None] | None) -> list[tuple[Any, SplitResult]]:
    from search.runner import training

    row_bytes = 4 * int(np.prod(dataset.input_shape))
    needed = sum(len(split.train) + len(split.val) for split in splits) * row_bytes
    if needed > MEMORY_LIMIT:
        raise NotFusable(f"the {len(splits)} splits' scaled rows would take {needed / 1024**3:.1f} GiB together "
                         f"(more than {MEMORY_LIMIT / 1024**3:.0f} GiB)")
    train_settings = settings["train"]
    batch_size, patience = int(train_settings["batch_size"]), int(train_settings["early_stopping"])
    _runtime.reset_keras()
    training.set_precision(train_settings)
    first = _branch(space, settings, dataset, splits[0], seeds[0])
    reason = why_not_fusable(first.model)
    if reason is not None:  # before the other models are built for nothing
        raise NotFusable(reason)
    branches = [first] + [_branch(space, settings, dataset, split, seed)
                          for split, seed in zip(splits[1:], seeds[1:])]
    loop = _Loop(batch_size)
    for epoch in range(int(train_settings["epochs"])):
        live = [b for b in branches if b.live]
        if not live:
            break
        logs = loop.epoch(live, on_batch)
        stop_all = False
        for b in live:
            b.record(logs[b.split])
            loss, val_loss = logs[b.split]["loss"], logs[b.split]["val_loss"]
            if not (math.isfinite(loss) and math.isfinite(val_loss)):
                b.live, b.stop_reason, stop_all = False, "non_finite_loss", True  # the trial is lost anyway
            elif val_loss < b.best:
                b.best, b.best_epoch, b.best_weights = val_loss, epoch, b.model.get_weights()
        watching = {b.split: dict(logs[b.split]) for b in live if b.live}
        if on_epoch is not None and watching and on_epoch(epoch + 1, watching):
            stop_all = True
        for b in live:
            if not b.live:
                continue
            if stop_all:
                b.live, b.stop_reason = False, "stopped"
            elif patience and epoch - b.best_epoch >= patience:
                b.live, b.stop_reason = False, "early_stopping"
    return [(b.model, b.result()) for b in branches]


def _branch(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset", split: "Split",
            seed: int) -> _Branch:
    """One split's model and rows, built exactly as ``training.train_on_split`` builds them."""
    import tensorflow as tf

    from search.runner import training

    X_train, X_val = preprocess.fit_transform(space.data.preprocess, dataset.X[split.train], dataset.X[split.val],
                                             missing=space.data.missing, categories=dataset.one_hot_columns,
                                             as_is=dataset.as_is_columns)
    y_train, y_val = dataset.y[split.train], dataset.y[split.val]
    head = Head.for_rows(dataset.task, dataset.n_outputs, y_train)
    training.set_seed(seed)
    model = models.build(settings["model"], dataset.input_shape, head, space.path.parent if space.path else None)
    training.compile_model(model, settings["train"], head)
    model.optimizer.build(model.trainable_variables)
    y_dtype = tf.int32 if dataset.task == "multiclass" else tf.float32
    data = (tf.constant(X_train, tf.float32), tf.constant(y_train, y_dtype), tf.constant(X_val, tf.float32),
            tf.constant(y_val, y_dtype))
    weights = training.class_weights(settings["train"], dataset.task, y_train, head.n_outputs)
    return _Branch(split.index, seed, model, head, data, len(y_train), len(y_val), training.is_penalized(model),
                   np.random.default_rng(seed),
                   None if weights is None else tf.constant([weights[c] for c in sorted(weights)], tf.float32))


class _Loop:
    """The traced step and evaluation functions, one per set of branches still training."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.rows_seen: dict[int, int] = {}
        self._train: dict[tuple[int, ...], Any] = {}
        self._eval: dict[tuple[int, ...], Any] = {}

    def epoch(self, live: list[_Branch], on_batch: Callable[[], None] | None) -> dict[int, dict[str, float]]:
        """One epoch of every live branch: its own shuffle, all its rows, then its validation rows."""
        import tensorflow as tf

        perms = {b.split: tf.constant(b.rng.permutation(b.n_train).astype(np.int32)) for b in live}
        sums = {b.split: np.zeros(4) for b in live}
        steps = {b.split: b.steps(self.batch_size) for b in live}
        step = 0
        while step < max(steps.values()):
            group = [b for b in live if steps[b.split] > step]
            end = min(min(steps[b.split] for b in group), step + STEPS_PER_CALL)
            out = self._train_fn(group)(tuple(perms[b.split] for b in group), tf.constant(step), tf.constant(end))
            for b, row in zip(group, out.numpy()):
                sums[b.split] += row
            step = end
            if on_batch is not None:
                on_batch()
        val = self._evaluate(live)
        logs = {}
        for b in live:
            loss_sum, penalty_sum, metric_sum, rows = sums[b.split]
            self.rows_seen[b.split] = int(rows)  # every training row once an epoch (tests read it)
            out = {"loss": loss_sum / b.n_train, b.head.metric: metric_sum / b.n_train}
            if b.penalized:
                out["penalty"] = penalty_sum / b.n_train / b.head.loss_weight  # in the data loss's units
            out["val_loss"], out[f"val_{b.head.metric}"] = val[b.split]
            logs[b.split] = out
        return logs

    def _evaluate(self, live: list[_Branch]) -> dict[int, tuple[float, float]]:
        import tensorflow as tf

        fn = self._eval_fn(live)
        totals = np.zeros((len(live), 2))
        for start in range(0, max(b.n_val for b in live), VAL_CHUNK):
            totals += fn(tf.constant(start), tf.constant(start + VAL_CHUNK)).numpy()
        return {b.split: (totals[i, 0] / b.n_val, totals[i, 1] / b.n_val) if b.n_val else (math.nan, math.nan)
                for i, b in enumerate(live)}

    def _train_fn(self, group: list[_Branch]) -> Any:
        key = tuple(b.split for b in group)
        if key not in self._train:
            self._train[key] = _trace_train(group, self.batch_size)
        return self._train[key]

    def _eval_fn(self, group: list[_Branch]) -> Any:
        key = tuple(b.split for b in group)
        if key not in self._eval:
            self._eval[key] = _trace_eval(group)
        return self._eval[key]


def _trace_train(group: list[_Branch], batch_size: int) -> Any:
    """A graph that runs steps [start, end) of every branch in ``group``; returns per-branch row sums.

    Sums, not means, of (data loss, penalty, metric, rows) over the rows each step saw, so the epoch's
    means weigh a partial last batch by its rows, as ``model.fit``'s logs do.
    """
    import tensorflow as tf

    # The loop written as tf.while_loop, without AutoGraph: its conversion of every Keras call it met while
    # tracing cost about 8 % of a small trial's CPU, for the same graph (the same losses to the last bit).
    @tf.function(reduce_retracing=True, autograph=False)
    def run(perms: tuple[Any, ...], start: Any, end: Any) -> Any:
        def step_all(step: Any, sums: Any) -> tuple[Any, Any]:
            rows = []
            for b, perm in zip(group, perms):
                X, y = b.data[0], b.data[1]
                idx = perm[step * batch_size:tf.minimum((step + 1) * batch_size, b.n_train)]
                rows.append(_train_step(b, tf.gather(X, idx), tf.gather(y, idx)))
            return step + 1, sums + tf.stack(rows)

        _, sums = tf.while_loop(lambda step, sums: step < end, step_all,
                                (start, tf.zeros((len(group), 4), tf.float32)))
        return sums

    return run


def _train_step(b: _Branch, x: Any, y: Any) -> Any:
    """One optimizer step of one branch, as Keras' own ``train_step`` takes it (penalty included)."""
    import tensorflow as tf

    model, optimizer = b.model, b.model.optimizer
    with tf.GradientTape() as tape:
        pred = tf.cast(model(x, training=True), tf.float32)
        per_row = row_data_loss(b.head.task, y, pred)
        data = tf.reduce_mean(per_row)
        penalty = tf.add_n([tf.cast(v, tf.float32) for v in model.losses]) if b.penalized else tf.constant(0.0)
        # Class weights change what is minimized, as Keras' class_weight does; the loss reported stays the plain one.
        # A regression's squared error is minimized in units of its target's spread (Head.loss_weight).
        minimized = data * b.head.loss_weight if b.class_weights is None else tf.reduce_mean(
            per_row * tf.gather(b.class_weights, tf.cast(tf.reshape(y, [-1]), tf.int32)))
        scaled = optimizer.scale_loss(minimized + penalty)
    weights = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
    n = tf.cast(tf.shape(x)[0], tf.float32)
    return tf.stack([data * n, penalty * n, tf.reduce_sum(_metric(b.head.task, y, pred)), n])


def _trace_eval(group: list[_Branch]) -> Any:
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def run(start: Any, end: Any) -> Any:
        rows = []
        for b in group:
            x, y = b.data[2][start:end], b.data[3][start:end]
            pred = tf.cast(b.model(x, training=False), tf.float32)
            rows.append(tf.stack([tf.reduce_sum(row_data_loss(b.head.task, y, pred)),
                                  tf.reduce_sum(_metric(b.head.task, y, pred))]))
        return tf.stack(rows)

    return run


def _metric(task: str, y: Any, pred: Any) -> Any:
    """Per-row accuracy (classification) or absolute error (regression), as Keras' metrics count them."""
    import tensorflow as tf

    if task == "multiclass":
        return tf.cast(tf.equal(tf.cast(tf.argmax(pred, axis=-1), tf.int32), tf.cast(y, tf.int32)), tf.float32)
    y = tf.reshape(tf.cast(y, pred.dtype), tf.shape(pred))
    if task == "binary":
        return tf.reduce_mean(tf.cast(tf.equal(tf.cast(pred > 0.5, tf.float32), y), tf.float32), axis=-1)
    return tf.reduce_mean(tf.abs(pred - y), axis=-1)
