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


def fit(kind: str, X_train: np.ndarray) -> Any:
    """A scaler of ``kind`` fit on ``X_train`` (flattened per row, as every array it later transforms)."""
    return make(kind).fit(X_train.reshape(len(X_train), -1))


def apply(scaler: Any, X: np.ndarray) -> np.ndarray:
    return scaler.transform(X.reshape(len(X), -1)).reshape(X.shape).astype(np.float32)


def fit_transform(kind: str, X_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Fit on ``X_train`` and transform it and every array in ``others`` with the same statistics."""
    scaler = fit(kind, X_train)
    return tuple(apply(scaler, a) for a in (X_train, *others))


def as_layers(scaler: Any, input_shape: tuple[int, ...]) -> list[Any]:
    """Keras layers that apply a fitted scaler, so a saved model takes the raw feature rows.

    Both scalers are an affine map ``x * a + b`` per feature; ``Normalization`` computes
    ``(x - mean) / sqrt(variance)``, so ``mean = -b / a`` and ``variance = 1 / a**2``. The scalers already
    replace a zero range by 1, so no feature divides by zero.
    """
    from keras import layers

    if isinstance(scaler, Identity):
        return []
    if hasattr(scaler, "mean_"):  # StandardScaler
        a, b = 1.0 / scaler.scale_, -scaler.mean_ / scaler.scale_
    else:  # MinMaxScaler
        a, b = scaler.scale_, scaler.min_
    norm = layers.Normalization(mean=(-b / a).astype(np.float32), variance=(1.0 / a**2).astype(np.float32),
                                name="preprocess")
    if len(input_shape) == 1:
        return [norm]
    return [layers.Flatten(), norm, layers.Reshape(tuple(input_shape))]
