"""What a split and a trial produce, and the listener interface that side channels implement.

Kept free of Keras, Optuna and MLflow imports so that every room can share these types.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


# TrialOutcome.metrics' names besides the val_* ones; each is also stored as an attribute of the trial.
SUMMARY_NAMES = ("best_epoch_mean", "penalty_mean", "n_params", "latency_ms", "splits_done")


def is_summary_metric(name: str) -> bool:
    """Whether a trial attribute of this name is one of its summary metrics."""
    return name.startswith("val_") or name in SUMMARY_NAMES


# A phased study's trial attributes (search/workflow/phases.py): its phase, and the settings that phase held
# at a value instead of sampling them (so they are not among the trial's params).
PHASE_ATTR = "phase"
FIXED_ATTR = "phase_fixed"


def settings_of(trial: Any, columns: set[str], raw: bool = False) -> dict[str, Any]:
    """A trial's settings for a table whose ``columns`` are the study's sampled settings: its params, and in
    a phased study those its phase held fixed instead (tables showed them as blank cells); phase 1's
    regularizers read "off" unless ``raw`` (a CSV keeps the number)."""
    fixed = trial.user_attrs.get(FIXED_ATTR) or {}
    off = trial.user_attrs.get(PHASE_ATTR) == 1 and not raw
    held = {name: "off" if off else value for name, value in fixed.items() if name in columns}
    return {**held, **trial.params}


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
    n_params: int = 0                 # the model's parameter count (trainable and not)
    latency_ms: float = math.nan      # measured only when it is an objective
    # Scores of the best epoch's predictions on the split's validation rows that are no mean over rows (ROC
    # AUC, balanced accuracy; RMSE and R² for regression): what scikit-learn's scoring= would rank by.
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Trained to its end (all epochs or early stopping), not cut short by pruning or divergence."""
        return self.stop_reason in ("", "early_stopping")

    @property
    def diverged(self) -> bool:
        return self.stop_reason == "non_finite_loss"

    @property
    def best_penalty(self) -> float:
        """The weight penalty Keras added to the training loss at the best epoch (0 for an unpenalized model).

        Recorded beside the scores, never in them: ``best_val_loss`` is the data loss alone.
        """
        curve = self.history.get("penalty", [])
        return float(curve[self.best_epoch - 1]) if 0 < self.best_epoch <= len(curve) else 0.0

    def summary(self) -> dict[str, Any]:
        return {"split": self.split, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "best_val_metric": self.best_val_metric, "epochs_run": self.epochs_run,
                "stop_reason": self.stop_reason, "seed": self.seed, "n_params": self.n_params,
                "penalty": self.best_penalty, **({"scores": self.scores} if self.scores else {})}


@dataclass
class TrialOutcome:
    number: int
    state: str                        # "complete" | "pruned" | "failed" | "interrupted"
    settings: dict[str, dict[str, Any]]
    splits: list[SplitResult] = field(default_factory=list)
    reason: str = ""
    metric_name: str = "accuracy"
    # The fit judged from its curves (search/review/trial_fit.py), made once and read by every listener after it.
    diagnosis: Any = field(default=None, compare=False, repr=False)
    diagnosed: bool = False
    _stored: list[Any] | None = field(default=None, init=False, repr=False, compare=False)

    def stored_trials(self, study: Any) -> list[Any]:
        """The study's trials as stored when this trial ended, read once for everyone who asks.

        The checkpoint writer and the listeners (retention, tracker) each rank the trial among the
        others; one read serves them all, and they judge from the same list.
        """
        if self._stored is None:
            self._stored = study.get_trials(deepcopy=False)
        return self._stored

    @property
    def finished(self) -> list[SplitResult]:
        """The splits that trained to their end; a split cut short by pruning is not a score."""
        return [s for s in self.splits if s.finished]

    @property
    def losses(self) -> list[float]:
        return [s.best_val_loss for s in self.finished]

    @property
    def value(self) -> float:
        return float(np.mean(self.losses)) if self.finished else math.nan

    @property
    def value_std(self) -> float:
        return float(np.std(self.losses, ddof=1)) if len(self.finished) > 1 else 0.0

    @property
    def metric_mean(self) -> float:
        return float(np.mean([s.best_val_metric for s in self.finished])) if self.finished else math.nan

    @property
    def n_params(self) -> int:
        return max((s.n_params for s in self.splits), default=0)

    @property
    def latency_ms(self) -> float:
        measured = [s.latency_ms for s in self.splits if math.isfinite(s.latency_ms)]
        return float(np.median(measured)) if measured else math.nan

    def metrics(self) -> dict[str, float]:
        """Summary metrics by name, over the finished splits (all of them unless the trial was pruned)."""
        done = self.finished
        out = {"splits_done": float(len(done))}
        if self.n_params:
            out["n_params"] = float(self.n_params)
        if math.isfinite(self.latency_ms):
            out["latency_ms"] = self.latency_ms
        if not done:
            return out
        # A score every finished split has (ROC AUC needs both classes among a split's validation rows).
        names = [n for n in done[0].scores if all(n in s.scores for s in done)]
        for name in names:
            values = [s.scores[name] for s in done]
            out[f"val_{name}_mean"] = float(np.mean(values))
            out[f"val_{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return {"val_loss_mean": self.value, "val_loss_std": self.value_std,
                f"val_{self.metric_name}_mean": self.metric_mean,
                # The sample standard deviation (n - 1), as val_loss_std: the two spreads of one run differed.
                f"val_{self.metric_name}_std": float(np.std([s.best_val_metric for s in done], ddof=1))
                if len(done) > 1 else 0.0,
                "best_epoch_mean": float(np.mean([s.best_epoch for s in done])),
                "penalty_mean": float(np.mean([s.best_penalty for s in done])), **out}


class TrialListener:
    """Hooks called by the run and the objective; every method is optional. Tracking and progress implement it.

    The run knows its listeners only through these calls, so it never depends on MLflow or the terminal.
    """

    def on_study_open(self, study: Any) -> None:
        """The study is open (called in the process that creates it before others are let in, and again
        in every process once it is open: must be idempotent)."""

    def on_study_repair(self, study: Any) -> None:
        """The study's budget is spent, so this run trains nothing: set straight what an earlier process
        left half written (called in every process that finds it so: must be idempotent)."""

    def on_run_finish(self, study: Any, status: str) -> None:
        """The run is over (called once, by the process that started it): FINISHED, KILLED or FAILED."""

    def on_trial_start(self, trial: Any, settings: dict[str, dict[str, Any]]) -> None: ...

    def on_split_start(self, trial: Any, split: int, n_splits: int) -> None: ...

    def on_epoch(self, trial: Any, split: int, epoch: int, logs: dict[str, float]) -> None: ...

    def on_split_end(self, trial: Any, result: SplitResult) -> None: ...

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None: ...

    def on_run_end(self, study: Any) -> None:
        """After this process's last trial has been told to the study (so it counts as finished)."""
