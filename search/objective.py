"""One Optuna trial: sample settings, train a fresh model per split, report, prune, aggregate.

Intermediate values are reported at step ``split * STEP_STRIDE + epoch`` (epoch 1-based), and a
finished split's best validation loss at ``split * STEP_STRIDE``: split ``k`` holds the same rows in
every trial, and search/pruning.py keeps the two levels apart, so a pruner only ever compares the same
epoch of the same split, or the same finished split.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search import checkpoints, models, preprocess, pruning
from search.data import Dataset
from search.results import SplitResult, TrialListener, TrialOutcome
from search.space import Space, flatten
from search.splits import Split

STEP_STRIDE = pruning.STEP_STRIDE
PRUNE_WARMUP_EPOCHS = pruning.PRUNE_WARMUP_EPOCHS


class NonFiniteLoss(Exception):
    """Training produced NaN or infinity: the settings diverge."""


@dataclass
class Objective:
    space: Space
    dataset: Dataset
    splits: Sequence[Split]
    home: Path
    listeners: Sequence[TrialListener] = ()

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        import optuna

        if trial.user_attrs.get("grid_covered"):  # search/_grid.py: another worker holds the last point
            raise optuna.TrialPruned("the grid is already covered")
        settings = self.space.sample(trial)
        outcome = TrialOutcome(trial.number, "complete", settings, metric_name=self._head().metric)
        self._emit("on_trial_start", trial, settings)
        try:
            for split in self.splits:
                self._emit("on_split_start", trial, split.index, len(self.splits))
                result = self._fit(trial, settings, split)
                outcome.splits.append(result)
                trial.set_user_attr("splits", [s.summary() for s in outcome.splits])
                self._emit("on_split_end", trial, result)
                if result.diverged:
                    raise optuna.TrialPruned(f"non-finite loss in split {split.index} at epoch "
                                             f"{result.epochs_run}: these settings diverge")
                if result.stop_reason == "stopped":
                    raise optuna.TrialPruned(f"pruned in split {split.index} at epoch {result.epochs_run}")
                self._judge_split(trial, result, len(outcome.splits))
            for key, value in outcome.metrics().items():
                trial.set_user_attr(key, value)
            self._emit("on_trial_end", trial, outcome)
            return self._values(outcome)
        except optuna.TrialPruned as exc:
            outcome.state, outcome.reason = "pruned", str(exc)
            trial.set_user_attr("reason", outcome.reason)
            for key, value in outcome.metrics().items():  # what the finished splits measured
                trial.set_user_attr(key, value)
            self._emit("on_trial_end", trial, outcome)
            raise
        except Exception as exc:
            outcome.state, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("reason", outcome.reason[:2000])
            self._emit("on_trial_end", trial, outcome)
            raise

    def _judge_split(self, trial: Any, result: SplitResult, n_done: int) -> None:
        """Report a finished split's score; before the last split, let the across-split rule stop the trial."""
        import optuna

        if self.space.study.multi_objective:  # Optuna has no intermediate values for several objectives
            return
        trial.report(result.best_val_loss, pruning.split_step(result.split))
        if n_done < len(self.splits) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after split {n_done} of {len(self.splits)}: worse than the best "
                                     f"trial on every finished split")

    def _values(self, outcome: TrialOutcome) -> float | tuple[float, float]:
        objectives = self.space.study.objectives
        if len(objectives) == 1:
            return outcome.value
        return outcome.value, float(outcome.n_params if objectives[1] == "params" else outcome.latency_ms)

    def _head(self, y_train: np.ndarray | None = None) -> models.Head:
        ds = self.dataset
        if ds.task == "regression" and y_train is not None:
            std = float(np.std(y_train)) or 1.0
            return models.Head(ds.task, 1, float(np.mean(y_train)), std)
        return models.Head(ds.task, ds.n_outputs)

    def _fit(self, trial: Any, settings: dict[str, dict[str, Any]], split: Split) -> SplitResult:
        from search import training

        study = self.space.study
        seed = training.derive_seed(study.seed, trial.number if study.seed_trial is None else study.seed_trial,
                                    split.index)
        ds = self.dataset
        X_train, X_val = preprocess.fit_transform(self.space.data.preprocess, ds.X[split.train], ds.X[split.val])
        y_train, y_val = ds.y[split.train], ds.y[split.val]
        head = self._head(y_train)
        import keras

        keras.backend.clear_session()  # keeps memory flat over hundreds of trials
        training.set_seed(seed)
        model = models.build(settings["model"], ds.input_shape, head,
                             self.space.path.parent if self.space.path else None)
        training.compile_model(model, settings["train"], head)

        multi_objective = self.space.study.multi_objective

        def on_epoch(epoch: int, logs: dict[str, float]) -> bool:
            self._emit("on_epoch", trial, split.index, epoch, logs)
            val_loss = float(logs.get("val_loss", math.nan))
            if not math.isfinite(val_loss) or multi_objective:
                return False
            trial.report(val_loss, pruning.epoch_step(split.index, epoch))
            return epoch >= PRUNE_WARMUP_EPOCHS and trial.should_prune()

        result = training.fit_split(model, X_train, y_train, X_val, y_val, settings["train"], head,
                                    split=split.index, on_epoch=on_epoch)
        result.seed, result.n_params = seed, int(model.count_params())
        if "latency" in self.space.study.objectives and math.isfinite(result.best_val_loss):
            result.latency_ms = _latency_ms(model, X_val)
        if math.isfinite(result.best_val_loss):
            path = checkpoints.split_path(self.home, trial.study.study_name, trial.number, split.index)
            result.checkpoint = checkpoints.save_atomic(model, path)
        del model
        return result

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)


def _latency_ms(model: Any, X: np.ndarray, rows: int = 256, repeats: int = 7) -> float:
    """Median wall time of one forward pass over a batch of validation rows, in milliseconds.

    A batch, not one row: a single row measures Python call overhead, not the model.
    """
    batch = X[:rows]
    model(batch, training=False)  # the first call traces the graph
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(batch, training=False)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def trial_params(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every setting, sampled or fixed, by its dotted name."""
    return flatten(settings)
