"""Per-row losses and the task metric from predictions, for averaged (ensemble) predictions and noise estimates.

The same formulas as the Keras losses the models train with (probabilities clipped to [1e-7, 1 - 1e-7]),
without the weight penalties that ``model.evaluate`` adds: a penalty is a property of one model's
weights, and an average of predictions has none.
"""
from __future__ import annotations

from typing import Any

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


def more_scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The scores a reader of the test look expects beside the loss and the task metric: RMSE and R² for
    regression (R² against the test rows' own mean), balanced accuracy for classification, and ROC AUC for
    a binary task whose test rows hold both classes, with its precision-recall area (average precision)."""
    import warnings

    pred = np.asarray(pred, dtype=np.float64)
    if not len(y) or not np.all(np.isfinite(pred)):
        return {}
    with warnings.catch_warnings():  # a test set without some class is the reader's to see, not a warning's
        warnings.simplefilter("ignore")
        return _more_scores(task, y, pred)


def _more_scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as sk

    if task == "regression":
        t, p = np.asarray(y, dtype=np.float64).reshape(-1), pred.reshape(-1)
        out = {"rmse": float(np.sqrt(np.mean((t - p) ** 2)))}
        if len(t) > 1 and np.var(t) > 0:
            out["r2"] = float(sk.r2_score(t, p))
        return out
    labels = predicted_codes(task, pred)
    out = {"balanced_accuracy": float(sk.balanced_accuracy_score(np.asarray(y).reshape(-1), labels))}
    if task == "binary" and len(np.unique(y)) == 2:
        t, p = np.asarray(y).reshape(-1), pred.reshape(-1)
        out["roc_auc"] = float(sk.roc_auc_score(t, p))
        # The area under precision-recall: where positives are rare, ROC AUC stays high while most of what
        # the model flags is wrong; this one falls with it (scikit-learn's scoring='average_precision').
        out["average_precision"] = float(sk.average_precision_score(t, p))
    return out


def predicted_codes(task: str, pred: np.ndarray) -> np.ndarray:
    """The class each row is predicted as: the largest probability, or a sigmoid's above one half."""
    pred = np.asarray(pred)
    return np.argmax(pred, axis=1) if task == "multiclass" else (pred.reshape(-1) > 0.5).astype(np.int64)


def recall_by_class(task: str, y: np.ndarray, pred: np.ndarray, classes: list[Any]) -> dict[str, list[float]]:
    """Each class's share of its test rows predicted as it, and how many rows it has: a small class never
    predicted (0 of 30 files) hid behind an accuracy of 0.89. ``{class: [recall, rows]}``; {} for regression."""
    if task == "regression" or not len(y):
        return {}
    labels = predicted_codes(task, np.asarray(pred, dtype=np.float64))
    truth = np.asarray(y).reshape(-1)
    out: dict[str, list[float]] = {}
    for code, name in enumerate(classes):
        rows = truth == code
        if rows.any():
            out[str(name.item() if hasattr(name, "item") else name)] = [float(np.mean(labels[rows] == code)),
                                                                        int(rows.sum())]
    return out


def class_report(task: str, y: np.ndarray, pred: np.ndarray, classes: list[Any]) -> dict[str, str]:
    """scikit-learn's classification report (precision, recall, F1 and support by class) and the confusion
    matrix (rows: the true class, columns: the predicted one) of the test look, as the texts of two files; {} for
    regression. What a GridSearchCV user reads of a classifier first."""
    if task == "regression" or not len(y):
        return {}
    import sklearn.metrics as sk

    labels = predicted_codes(task, np.asarray(pred, dtype=np.float64))
    truth = np.asarray(y).reshape(-1)
    names = [str(c.item() if hasattr(c, "item") else c) for c in classes]
    codes = list(range(len(names)))
    report = sk.classification_report(truth, labels, labels=codes, target_names=names, digits=4, zero_division=0)
    matrix = sk.confusion_matrix(truth, labels, labels=codes)
    quoted = [f'"{n}"' if any(ch in n for ch in ',"\n') else n for n in (n.replace('"', '""') for n in names)]
    lines = ["true \\ predicted," + ",".join(quoted)]
    lines += [f"{quoted[i]}," + ",".join(str(int(v)) for v in row) for i, row in enumerate(matrix)]
    return {"classification_report.txt": report, "confusion_matrix.csv": "\n".join(lines) + "\n"}


def recall_text(recalls: dict[str, list[float]], shown: int = 12) -> str:
    """``cat 0.92 (25 rows), blob 0 (6 rows)``, the lowest first, for a line of text."""
    ranked = sorted(recalls.items(), key=lambda item: item[1][0])
    text = ", ".join(f"{name} {recall:.3g} ({int(rows)} rows)" for name, (recall, rows) in ranked[:shown])
    return text + (f", ... {len(ranked) - shown} more" if len(ranked) > shown else "")


def scores_text(scores: dict[str, float]) -> str:
    """``rmse 0.55, R² 0.81``: the scores of :func:`more_scores` for a line of text."""
    names = {"rmse": "RMSE", "r2": "R²", "balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC",
             "average_precision": "PR AUC"}
    return ", ".join(f"{names.get(k, k)} {v:.4g}" for k, v in scores.items())
