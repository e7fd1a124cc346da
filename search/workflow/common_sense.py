"""Phase 0 of the phased workflow: common-sense baselines with no network, on the study's own splits.

A network earns its keep only by beating what needs no network: the prior (class frequencies, or the
mean target) and a linear model. Both are fit on each split's training rows, with the same per-split
scaler the networks get (search/preprocess.py), and scored on its validation rows with the same data loss
the trials are ranked by (search/scoring.py: cross-entropy, or mean squared error), so "baseline to beat:
prior 2.30, linear 0.21" and a trial's validation loss are one scale. scikit-learn's defaults are kept on
purpose: a common-sense baseline is the one anyone would fit first, not a tuned competitor.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from search import preprocess
from search import scoring

# A linear model on more cells than this (rows x features of a split's training rows) would cost more than
# the trials it is meant to frame, e.g. on large images; it is left out with a note.
LINEAR_CELLS_LIMIT = 50_000_000
LOSS_NAMES = {"multiclass": "cross-entropy", "binary": "cross-entropy", "regression": "mean squared error"}


def losses(prepared: Any) -> dict[str, Any]:
    """Mean validation data loss over the study's splits of the prior and the linear model, with per-split values.

    ``prepared`` is a :class:`search.session.Prepared`. Returns what the study stores (JSON-friendly).
    """
    ds, kind = prepared.dataset, prepared.space.data.preprocess
    started = time.monotonic()
    per_split: dict[str, list[float]] = {"prior": [], "linear": []}
    note = ""
    for split in prepared.splits:
        scaler = preprocess.fit(kind, ds.X[split.train], prepared.space.data.missing, ds.one_hot_columns,
                                ds.as_is_columns)
        X_train = preprocess.apply(scaler, ds.X[split.train]).reshape(len(split.train), -1)
        X_val = preprocess.apply(scaler, ds.X[split.val]).reshape(len(split.val), -1)
        y_train, y_val = ds.y[split.train], ds.y[split.val]
        per_split["prior"].append(_score(_prior(ds.task), ds, X_train, y_train, X_val, y_val))
        if X_train.size > LINEAR_CELLS_LIMIT:
            note = f"linear model left out: {X_train.shape[0]} rows x {X_train.shape[1]} features per split"
            per_split["linear"].append(math.nan)
            continue
        per_split["linear"].append(_score(_linear(ds.task), ds, X_train, y_train, X_val, y_val))
    out: dict[str, Any] = {name: _finite_or_none(_mean(values)) for name, values in per_split.items()}
    out.update(per_split={k: [_finite_or_none(v) for v in vs] for k, vs in per_split.items()},
               loss=LOSS_NAMES[ds.task], n_splits=len(prepared.splits), seconds=round(time.monotonic() - started, 2))
    if note:
        out["note"] = note
    return out


def text(stored: dict[str, Any]) -> str:
    """``prior 2.30, linear 0.21``: the stored baselines, as the terminal and the report say them."""
    parts = [f"{name} {stored[name]:.4g}" for name in ("prior", "linear")
             if isinstance(stored.get(name), (int, float)) and math.isfinite(stored[name])]
    return ", ".join(parts) or "(none could be fit)"


def best(stored: dict[str, Any]) -> float:
    """The lower of the two baselines: the number the first network has to beat."""
    values = [stored.get(n) for n in ("prior", "linear")]
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return min(finite) if finite else math.nan


def _prior(task: str) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyRegressor(strategy="mean") if task == "regression" else DummyClassifier(strategy="prior")


def _linear(task: str) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    return Ridge() if task == "regression" else LogisticRegression(max_iter=2000)


def _score(model: Any, ds: Any, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray,
           y_val: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning

    try:
        with warnings.catch_warnings():
            # An unconverged linear model still is a fair common-sense baseline; its loss says how good.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
    except ValueError:  # e.g. one class only in a split's training rows
        return math.nan
    if ds.task == "regression":
        pred = model.predict(X_val)
    else:
        pred = _probabilities(model, X_val, ds.task, len(ds.classes))
    return float(np.mean(scoring.row_losses(ds.task, y_val, pred)))


def _probabilities(model: Any, X: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Class probabilities laid out as the network's head gives them, also when a split's training rows
    lack a class (it gets probability 0, which the loss clips as it clips a network's)."""
    proba = model.predict_proba(X)
    full = np.zeros((len(X), n_classes))
    full[:, np.asarray(model.classes_, dtype=int)] = proba
    return full[:, 1] if task == "binary" else full


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if len(finite) == len(values) and finite else math.nan


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None  # stored as JSON: null, not NaN
