"""One Optuna trial: sample settings, train a fresh model per split, report, prune, aggregate.

Intermediate values are reported at step ``split * STEP_STRIDE + epoch`` (epoch 1-based): split ``k``
holds the same rows in every trial, so a pruner only ever compares the same epoch of the same split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search import checkpoints, models
from search.data import Dataset
from search.results import SplitResult, TrialListener, TrialOutcome
from search.space import Space, flatten
from search.splits import Split

STEP_STRIDE = 10_000
PRUNE_WARMUP_EPOCHS = 5


class NonFiniteLoss(Exception):
    """Training produced NaN or infinity: the settings diverge."""


@dataclass
class Objective:
    space: Space
    dataset: Dataset
    splits: Sequence[Split]
    home: Path
    listeners: Sequence[TrialListener] = ()

    def __call__(self, trial: Any) -> float:
        import optuna

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
            for key, value in outcome.metrics().items():
                trial.set_user_attr(key, value)
            self._emit("on_trial_end", trial, outcome)
            return outcome.value
        except optuna.TrialPruned as exc:
            outcome.state, outcome.reason = "pruned", str(exc)
            trial.set_user_attr("reason", outcome.reason)
            self._emit("on_trial_end", trial, outcome)
            raise
        except Exception as exc:
            outcome.state, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("reason", outcome.reason[:2000])
            self._emit("on_trial_end", trial, outcome)
            raise

    def _head(self, y_train: np.ndarray | None = None) -> models.Head:
        return models.Head.for_rows(self.dataset.task, self.dataset.n_outputs, y_train)

    def _fit(self, trial: Any, settings: dict[str, dict[str, Any]], split: Split) -> SplitResult:
        from search import training

        study = self.space.study
        seed = training.derive_seed(study.seed, trial.number if study.seed_trial is None else study.seed_trial,
                                    split.index)

        def on_epoch(epoch: int, logs: dict[str, float]) -> bool:
            self._emit("on_epoch", trial, split.index, epoch, logs)
            val_loss = float(logs.get("val_loss", math.nan))
            if not math.isfinite(val_loss):
                return False
            trial.report(val_loss, split.index * STEP_STRIDE + epoch)
            return epoch >= PRUNE_WARMUP_EPOCHS and trial.should_prune()

        model, result = training.train_on_split(self.space, settings, self.dataset, split, seed, on_epoch)
        if math.isfinite(result.best_val_loss):
            path = checkpoints.split_path(self.home, trial.study.study_name, trial.number, split.index)
            result.checkpoint = checkpoints.save_atomic(model, path)
        del model
        return result

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)


def trial_params(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every setting, sampled or fixed, by its dotted name."""
    return flatten(settings)
