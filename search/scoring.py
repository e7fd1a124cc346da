"""Per-row losses and the task metric from predictions, for averaged (ensemble) predictions and noise estimates.

The same formulas as the Keras losses the models train with (probabilities clipped to [1e-7, 1 - 1e-7]),
without the weight penalties that ``model.evaluate`` adds: a penalty is a property of one model's
weights, and an average of predictions has none.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-7


def row_losses(task: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    if task == "multiclass":
        p = np.clip(pred[np.arange(len(y)), np.asarray(y, dtype=np.int64)], _EPS, 1 - _EPS)
        return -np.log(p)
    if task == "binary":
        p = np.clip(pred.reshape(-1), _EPS, 1 - _EPS)
        t = np.asarray(y, dtype=np.float64).reshape(-1)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))
    return (np.asarray(y, dtype=np.float64).reshape(-1) - pred.reshape(-1)) ** 2


def metric(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Accuracy for classification, mean absolute error for regression."""
    pred = np.asarray(pred, dtype=np.float64)
    if task == "multiclass":
        return float(np.mean(np.argmax(pred, axis=1) == y))
    if task == "binary":
        return float(np.mean((pred.reshape(-1) > 0.5) == (np.asarray(y).reshape(-1) == 1)))
    return float(np.mean(np.abs(np.asarray(y, dtype=np.float64).reshape(-1) - pred.reshape(-1))))
