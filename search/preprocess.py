"""Feature scaling fit on a split's training rows only, so nothing of the validation rows leaks in."""
from __future__ import annotations

from typing import Any

import numpy as np


class Identity:
    def fit(self, X: np.ndarray) -> "Identity":
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X


def make(kind: str) -> Any:
    """A fresh, unfitted scaler: ``standardize``, ``minmax`` or ``none``."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return {"standardize": StandardScaler, "minmax": MinMaxScaler, "none": Identity}[kind]()


def fit_transform(kind: str, X_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Fit on ``X_train`` and transform it and every array in ``others`` with the same statistics."""
    shape = X_train.shape[1:]
    scaler = make(kind).fit(X_train.reshape(len(X_train), -1))
    return tuple(scaler.transform(a.reshape(len(a), -1)).reshape((len(a), *shape)).astype(np.float32)
                 for a in (X_train, *others))
