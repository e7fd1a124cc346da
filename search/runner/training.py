"""Fitting one model on one split and keeping its best-validation-loss epoch.

Knows Keras, nothing of Optuna or MLflow: callers pass ``on_epoch`` to watch (and stop) training.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import keras
import numpy as np

from search import models, preprocess
from search._stack import call_with_room
from search.runner import _runtime
from search.models import Head
from search.models import layers as _custom_layers  # noqa: F401  registers them, so checkpoints load
from search.runner.results import SplitResult

if TYPE_CHECKING:
    from search.data import Dataset
    from search.space import Space
    from search.splits import Split

# on_epoch(epoch, logs) -> True to stop training after this epoch (pruning, a stop request).
EpochHook = Callable[[int, dict[str, float]], bool]
# on_batch() after each batch; it may raise to abandon training at once (a second Ctrl-C).
BatchHook = Callable[[], None]


# train.optimizer -> factory(learning rate, weight decay or None, momentum). Adding one is one entry here
# and one in TRAIN_PARAMS' choices.
OPTIMIZERS: dict[str, Callable[[float, float | None, float], Any]] = {
    "adam": lambda lr, decay, momentum: keras.optimizers.Adam(learning_rate=lr, weight_decay=decay),
    "adamw": lambda lr, decay, momentum: keras.optimizers.AdamW(learning_rate=lr, weight_decay=decay or 0.0),
    "sgd": lambda lr, decay, momentum: keras.optimizers.SGD(learning_rate=lr, momentum=momentum, weight_decay=decay),
    "rmsprop": lambda lr, decay, momentum: keras.optimizers.RMSprop(learning_rate=lr, momentum=momentum,
                                                                    weight_decay=decay),
}


def make_optimizer(train: dict[str, Any]) -> Any:
    decay = float(train.get("weight_decay") or 0.0) or None
    return OPTIMIZERS[train["optimizer"]](float(train["learning_rate"]), decay, float(train.get("momentum") or 0.0))


# Keras adds every weight penalty (``model.losses``) to ``loss`` and ``val_loss``. The search judges a model
# by its data loss alone, so a penalized model also tracks the plain loss as a metric under this name, and
# ``data_logs`` puts it back under ``loss``/``val_loss`` with the penalty beside it.
DATA_LOSS = "data_loss"
PENALTY = "penalty"


def class_weights(train: dict[str, Any], task: str, y: np.ndarray, n_classes: int) -> dict[int, float] | None:
    """``train.class_weight: balanced``: each class's weight n / (classes x its rows) over the training rows
    given (scikit-learn's 'balanced'), so every class weighs as much in the loss; None when not asked."""
    if train.get("class_weight", "none") != "balanced" or task == "regression" or not len(y):
        return None
    k = max(2, n_classes)
    counts = np.bincount(np.asarray(y).astype(np.int64).reshape(-1), minlength=k)
    return {c: (len(y) / (k * int(n)) if n else 1.0) for c, n in enumerate(counts.tolist())}


def compile_model(model: Any, train: dict[str, Any], head: Head) -> None:
    metrics: list[Any] = [head.metric]
    scaled = head.loss_weight != 1.0
    if is_penalized(model) or train.get("class_weight", "none") == "balanced" or scaled:
        metrics.append(_data_loss_metric(head))
    model.compile(optimizer=make_optimizer(train), loss=head.loss, metrics=metrics,
                  loss_weights=head.loss_weight if scaled else None)
    if len(metrics) > 1:
        # What a saved file says to compile with: Keras' own metric only. The data-loss metric serves the
        # training logs; in a checkpoint or final model it made plain `keras.models.load_model` (and MLflow's
        # loaders, which compile) fail without this package imported ("Could not locate class 'DataLoss'").
        saved = getattr(model, "_compile_config", None)
        if saved is not None and isinstance(getattr(saved, "config", None), dict):
            saved.config = {**saved.config, "metrics": metrics[:1]}  # Keras' SerializableDict holds it


def is_penalized(model: Any) -> bool:
    """Whether Keras will add a penalty to this model's loss: a regularizer on any layer, or an added loss."""
    if model.losses:
        return True
    layers = model._flatten_layers(include_self=True, recursive=True)
    return any(value is not None for layer in layers for key, value in vars(layer).items()
               if key.endswith("_regularizer"))


def _data_loss_metric(head: Head) -> Any:
    return _custom_layers.DataLoss(head.task, name=DATA_LOSS)


def data_logs(logs: dict[str, Any], weighted: bool = False, loss_weight: float = 1.0,
              penalized: bool = True) -> dict[str, float]:
    """Keras logs with ``loss``/``val_loss`` as the unpenalized data loss and the penalty as ``penalty``.

    Logs of an unpenalized model are returned as they are (their losses hold no penalty). Where training was
    class-weighted (``weighted``), Keras' loss is the weighted one: the plain data loss replaces it, and no
    penalty is said here, since the difference would hold the weighting too (the caller reads it from the
    model). Keras' loss holds the data loss times ``loss_weight`` (``Head.loss_weight``); the penalty is
    said in the data loss's units, divided by the same weight, so that the two can be compared: a
    regression's squared error of 5,800 is minimized as 1 beside a penalty of 0.4, which is 2,300 of it.
    A model with no penalty (``penalized`` false) says 0: the difference is then float32 rounding alone,
    and divided by a regression's small weight it read as a penalty of -115.
    """
    out = {k: float(v) for k, v in logs.items()}
    if DATA_LOSS not in out:
        return out
    total = out.pop("loss", math.nan)
    out["loss"] = out.pop(DATA_LOSS)
    if not weighted:
        penalty = (total - loss_weight * out["loss"]) / loss_weight
        # Within float32's rounding of the total, the penalty is not told apart from none.
        noise = 1e-6 * abs(total) / loss_weight
        out[PENALTY] = penalty if penalized and abs(penalty) > noise else 0.0
    if f"val_{DATA_LOSS}" in out:
        out.pop("val_loss", None)
        out["val_loss"] = out.pop(f"val_{DATA_LOSS}")
    return out


def fit_split(model: Any, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
              train: dict[str, Any], head: Head, split: int = 0, on_epoch: EpochHook | None = None,
              on_batch: BatchHook | None = None) -> SplitResult:
    """Train a compiled model; on return it holds the weights of its best validation-loss epoch."""
    weights = class_weights(train, head.task, y_train, head.n_outputs)
    keeper = _BestEpoch(patience=int(train["early_stopping"]), on_epoch=on_epoch, on_batch=on_batch,
                        weighted=weights is not None, loss_weight=head.loss_weight)
    model.fit(X_train, y_train, validation_data=(X_val, y_val), batch_size=int(train["batch_size"]),
              epochs=int(train["epochs"]), shuffle=True, verbose=0, callbacks=[keeper], class_weight=weights)
    history = {k: [float(v) for v in vals] for k, vals in keeper.history.items()}
    metric = head.metric
    if keeper.best_weights is None:  # not one finite validation loss
        return SplitResult(split, 0, math.inf, math.nan, len(history.get("loss", [])), history,
                           keeper.stop_reason or "non_finite_loss")
    model.set_weights(keeper.best_weights)
    best = keeper.best_epoch
    return SplitResult(split, best + 1, keeper.best, history[f"val_{metric}"][best],
                       len(history["loss"]), history, keeper.stop_reason,
                       scores=validation_scores(model, X_val, y_val, head.task))


def validation_scores(model: Any, X_val: Any, y_val: Any, task: str, chunk: int = 4096) -> dict[str, float]:
    """The scores beside the loss that are no mean over rows (scoring.more_scores), from the best epoch's
    predictions on the split's validation rows. Called eagerly, a chunk at a time: ``model.predict`` traces
    a function per new model, which cost more than the scores on small splits."""
    from search import scoring

    n = len(y_val)
    if not n:
        return {}
    pred = np.concatenate([np.asarray(model(X_val[i:i + chunk], training=False), dtype=np.float64)
                           for i in range(0, n, chunk)])
    return scoring.more_scores(task, np.asarray(y_val), pred)


def fresh_model(space: "Space", settings: dict[str, dict[str, Any]], input_shape: tuple[int, ...], head: Head,
                seed: int) -> Any:
    """A compiled model whose initial weights (and later shuffles, dropout masks) follow from ``seed`` alone."""
    _runtime.reset_keras()
    set_precision(settings["train"])
    set_seed(seed)
    model = models.build(settings["model"], input_shape, head, space.path.parent if space.path else None)
    compile_model(model, settings["train"], head)
    return model


def train_on_split(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset", split: "Split",
                   seed: int, on_epoch: EpochHook | None = None,
                   on_batch: BatchHook | None = None) -> tuple[Any, SplitResult]:
    """Train one split as a trial does: scaler fit on the split's training rows, best epoch kept.

    The search, ``reproduce --verify`` and the re-training of removed checkpoints all go through here,
    so that the same settings, rows and seed give the same model.
    """
    # Tracing the graphs goes hundreds of frames deep: the same speed from any caller (search/_stack.py).
    return call_with_room(_train_on_split, space, settings, dataset, split, seed, on_epoch, on_batch)


def _train_on_split(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset", split: "Split",
                    seed: int, on_epoch: EpochHook | None, on_batch: BatchHook | None) -> tuple[Any, SplitResult]:
    X_train, X_val = preprocess.fit_transform(space.data.preprocess, dataset.X[split.train], dataset.X[split.val],
                                             missing=space.data.missing, categories=dataset.one_hot_columns,
                                             as_is=dataset.as_is_columns)
    y_train, y_val = dataset.y[split.train], dataset.y[split.val]
    head = Head.for_rows(dataset.task, dataset.n_outputs, y_train)
    model = fresh_model(space, settings, dataset.input_shape, head, seed)
    result = fit_split(model, X_train, y_train, X_val, y_val, settings["train"], head, split=split.index,
                       on_epoch=on_epoch, on_batch=on_batch)
    result.seed = seed
    return model, result


def train_splits(space: "Space", settings: dict[str, dict[str, Any]], dataset: "Dataset",
                 splits: Sequence["Split"], seeds: Sequence[int]) -> list[tuple[Any, SplitResult]]:
    """Train several splits of one trial the way the search trained them: fused unless it was not.

    ``reproduce --verify`` and the re-training of missing checkpoints come through here; a fused branch
    does not depend on the branches beside it, so any subset of a trial's splits gives the same models.
    """
    from search.runner import fused

    if fuses(settings):
        try:
            return fused.train(space, settings, dataset, splits, seeds)
        except fused.NotFusable as exc:
            say_not_fused(settings, str(exc))
    return [train_on_split(space, settings, dataset, split, seed) for split, seed in zip(splits, seeds)]


def fuses(settings: dict[str, dict[str, Any]]) -> bool:
    """Whether these settings ask for fused splits (the default); a builder may still refuse them."""
    return bool(settings["train"].get("fuse_splits", True))


_SAID: set[str] = set()


def say_not_fused(settings: dict[str, dict[str, Any]], reason: str) -> None:
    """Print once per process and family why its splits are trained one after another."""
    import sys

    family = str(settings["model"].get("family"))
    if family not in _SAID:
        _SAID.add(family)
        print(f"note: the splits of {family} are trained one after another, not fused: {reason} "
              f"(set train.fuse_splits: false to say so and silence this)", file=sys.stderr)


def set_precision(train: dict[str, Any]) -> None:
    """Keras' global dtype policy for the next model: mixed float16 when ``train.mixed_precision`` asks."""
    keras.mixed_precision.set_global_policy("mixed_float16" if train.get("mixed_precision") else "float32")


def fit_epochs(model: Any, X: np.ndarray, y: np.ndarray, train: dict[str, Any], epochs: int,
               head: Head) -> dict[str, list[float]]:
    """Train a compiled model for exactly ``epochs`` epochs, no validation rows, no early stopping."""
    weights = class_weights(train, head.task, y, head.n_outputs)
    history = model.fit(X, y, batch_size=int(train["batch_size"]), epochs=int(epochs), shuffle=True, verbose=0,
                        class_weight=weights)
    raw = history.history
    penalized = is_penalized(model)
    per_epoch = [data_logs({k: vals[e] for k, vals in raw.items()}, weighted=weights is not None,
                           loss_weight=head.loss_weight, penalized=penalized)
                 for e in range(len(raw.get("loss", [])))]
    return {k: [logs[k] for logs in per_epoch] for k in (per_epoch[0] if per_epoch else {})}


def derive_seed(study_seed: int, trial: int, split: int) -> int:
    """One seed per (study, trial, split); the same triple always gives the same seed."""
    return int(np.random.SeedSequence([study_seed, trial, split]).generate_state(1)[0] % (2**31 - 1))


def set_seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)


class _BestEpoch(keras.callbacks.Callback):
    """Keeps the best epoch's weights in memory, stops on patience, on a non-finite loss, or on request.

    Written instead of Keras' EarlyStopping because it must always restore the best epoch (also when
    training runs to the last epoch), record why it stopped, and let the caller stop it.
    """

    def __init__(self, patience: int, on_epoch: EpochHook | None, on_batch: BatchHook | None = None,
                 weighted: bool = False, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.patience, self.on_epoch, self.on_batch, self.weighted = patience, on_epoch, on_batch, weighted
        self.loss_weight = loss_weight
        self.penalized: bool | None = None  # known once the model is
        self.best, self.best_epoch, self.best_weights = math.inf, -1, None
        self.history: dict[str, list[float]] = {}
        self.stop_reason = ""

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.on_batch is not None:
            self.on_batch()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self._should_stop(epoch, logs or {}):
            self.model.stop_training = True

    def _should_stop(self, epoch: int, logs: dict[str, float]) -> bool:
        if self.penalized is None:
            self.penalized = is_penalized(self.model)
        logs = data_logs(logs, self.weighted, self.loss_weight, self.penalized)
        if self.weighted and self.model.losses:
            # Class-weighted: the penalty of the epoch's last weights, as the loss cannot tell it.
            logs[PENALTY] = float(sum(float(v) for v in self.model.losses)) / self.loss_weight
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        loss, val_loss = float(logs.get("loss", math.nan)), float(logs.get("val_loss", math.nan))
        if not (math.isfinite(loss) and math.isfinite(val_loss)):
            self.stop_reason = "non_finite_loss"
            return True
        if val_loss < self.best:
            self.best, self.best_epoch, self.best_weights = val_loss, epoch, self.model.get_weights()
        if self.on_epoch is not None and self.on_epoch(epoch + 1, dict(logs)):
            self.stop_reason = "stopped"
            return True
        if self.patience and epoch - self.best_epoch >= self.patience:
            self.stop_reason = "early_stopping"
            return True
        return False
