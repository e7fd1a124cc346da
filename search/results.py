"""What a split and a trial produce, and the listener interface that side channels implement.

Kept free of Keras, Optuna and MLflow imports so that every room can share these types.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SplitResult:
    split: int
    best_epoch: int            # 1-based epoch whose weights the model holds
    best_val_loss: float
    best_val_metric: float
    epochs_run: int
    history: dict[str, list[float]] = field(default_factory=dict)
    stop_reason: str = ""      # "" (ran all epochs) | "early_stopping" | "non_finite_loss" | "stopped"
    seed: int = 0
    checkpoint: Path | None = None

    @property
    def diverged(self) -> bool:
        return self.stop_reason == "non_finite_loss"

    def summary(self) -> dict[str, Any]:
        return {"split": self.split, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "best_val_metric": self.best_val_metric, "epochs_run": self.epochs_run,
                "stop_reason": self.stop_reason, "seed": self.seed}


@dataclass
class TrialOutcome:
    number: int
    state: str                        # "complete" | "pruned" | "failed" | "interrupted"
    settings: dict[str, dict[str, Any]]
    splits: list[SplitResult] = field(default_factory=list)
    reason: str = ""
    metric_name: str = "accuracy"

    @property
    def losses(self) -> list[float]:
        return [s.best_val_loss for s in self.splits]

    @property
    def value(self) -> float:
        return float(np.mean(self.losses)) if self.splits else math.nan

    @property
    def value_std(self) -> float:
        return float(np.std(self.losses, ddof=1)) if len(self.splits) > 1 else 0.0

    @property
    def metric_mean(self) -> float:
        return float(np.mean([s.best_val_metric for s in self.splits])) if self.splits else math.nan

    def metrics(self) -> dict[str, float]:
        """Summary metrics by name, for storage and display."""
        if not self.splits:
            return {}
        return {"val_loss_mean": self.value, "val_loss_std": self.value_std,
                f"val_{self.metric_name}_mean": self.metric_mean,
                f"val_{self.metric_name}_std": float(np.std([s.best_val_metric for s in self.splits])),
                "best_epoch_mean": float(np.mean([s.best_epoch for s in self.splits])),
                "splits_done": float(len(self.splits))}


class TrialListener:
    """Hooks called by the objective; every method is optional. Tracking and progress implement it."""

    def on_trial_start(self, trial: Any, settings: dict[str, dict[str, Any]]) -> None: ...

    def on_split_start(self, trial: Any, split: int, n_splits: int) -> None: ...

    def on_epoch(self, trial: Any, split: int, epoch: int, logs: dict[str, float]) -> None: ...

    def on_split_end(self, trial: Any, result: SplitResult) -> None: ...

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None: ...
