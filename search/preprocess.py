"""Feature scaling, and filling of missing values, fit on a split's training rows only, so nothing of the
validation rows leaks in."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class Identity:
    def fit(self, X: np.ndarray) -> "Identity":
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X


class Filled:
    """Missing values (NaN) replaced by a per-column value learnt from the training rows, then scaled.

    A column with no value in the training rows is filled with 0 (it carries nothing to learn from).
    """

    def __init__(self, strategy: str, scaler: Any) -> None:
        self.strategy, self.scaler = strategy, scaler
        self.fill_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "Filled":
        import warnings

        with warnings.catch_warnings():  # an all-NaN column: numpy warns, and it is filled with 0
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmedian(X, axis=0) if self.strategy == "median" else np.nanmean(X, axis=0)
        self.fill_ = np.where(np.isfinite(fill), fill, 0.0)
        self.scaler.fit(self._filled(X))
        return self

    def _filled(self, X: np.ndarray) -> np.ndarray:
        assert self.fill_ is not None, "fit first"
        return np.where(np.isnan(X), self.fill_, X)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.scaler.transform(self._filled(X))


class UnseenZeroed:
    """One-hot columns (``data.categorical: one_hot``) that no training row sets read 0, then ``scaler``.

    The encoding's vocabulary is the development rows': a value that only a split's validation rows hold
    is a column its model never saw set, whose weights stay as initialized. A row with that value is read
    as one whose value is unknown, all zeros, as a ``data.test`` file's unseen values are, rather than
    scored through untrained weights.
    """

    def __init__(self, unseen: Sequence[int], scaler: Any) -> None:
        self.unseen, self.scaler = list(unseen), scaler
        self.keep_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "UnseenZeroed":
        keep = np.ones(X.shape[1], dtype=np.float32)
        keep[self.unseen] = 0.0
        self.keep_ = keep
        self.scaler.fit(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        assert self.keep_ is not None, "fit first"
        return self.scaler.transform(X) * self.keep_


def make(kind: str, missing: str = "refuse") -> Any:
    """A fresh, unfitted scaler: ``standardize``, ``minmax`` or ``none``; with ``missing`` ``mean`` or
    ``median``, missing values are filled first."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    scaler = {"standardize": StandardScaler, "minmax": MinMaxScaler, "none": Identity}[kind]()
    return scaler if missing == "refuse" else Filled(missing, scaler)


def fit(kind: str, X_train: np.ndarray, missing: str = "refuse", categories: Sequence[int] = (),
        as_is: Sequence[int] = ()) -> Any:
    """A scaler of ``kind`` fit on ``X_train`` (flattened per row, as every array it later transforms);
    ``categories``: the one-hot columns, each read 0 where no training row sets it (:class:`UnseenZeroed`);
    ``as_is``: those left as the 0 and 1 they are (:func:`_one_hot_as_is`; ``Dataset.as_is_columns``)."""
    scaler = make(kind, missing)
    unseen = [c for c in categories if not np.any(X_train[:, c])]
    fitted = (UnseenZeroed(unseen, scaler) if unseen else scaler).fit(X_train.reshape(len(X_train), -1))
    _one_hot_as_is(fitted, as_is)
    return fitted


def _one_hot_as_is(scaler: Any, categories: Sequence[int]) -> None:
    """One-hot columns pass the scaler unchanged. Standardized, a category one training row in 640 holds became
    an input of 25 where it was set (variance 0.0016): a stranger's model said 0.012 for a passenger whose port
    was missing against 0.219 for one from the usual port, as a logistic regression on scaled one-hot columns
    does too (0.001), and the search's best loss on a table of 80 cities was 0.400 standardized against 0.342
    scaled to [0, 1]. A min-max scaler left most 0/1 columns as they were, but one set in every training row of a
    split became 0 there and -1 where unset."""
    while isinstance(scaler, (UnseenZeroed, Filled)):
        scaler = scaler.scaler
    columns = list(categories)
    if not columns:
        return
    if hasattr(scaler, "mean_"):  # StandardScaler
        scaler.mean_[columns], scaler.scale_[columns] = 0.0, 1.0
        if getattr(scaler, "var_", None) is not None:
            scaler.var_[columns] = 1.0
    elif hasattr(scaler, "min_"):  # MinMaxScaler: a column set in every training row would map 1 to 0, 0 to -1
        scaler.min_[columns], scaler.scale_[columns] = 0.0, 1.0


def apply(scaler: Any, X: np.ndarray) -> np.ndarray:
    return scaler.transform(X.reshape(len(X), -1)).reshape(X.shape).astype(np.float32)


def fit_transform(kind: str, X_train: np.ndarray, *others: np.ndarray, missing: str = "refuse",
                  categories: Sequence[int] = (), as_is: Sequence[int] = ()) -> tuple[np.ndarray, ...]:
    """Fit on ``X_train`` and transform it and every array in ``others`` with the same statistics."""
    scaler = fit(kind, X_train, missing, categories, as_is)
    return tuple(apply(scaler, a) for a in (X_train, *others))


def _fill_missing(values: np.ndarray) -> Any:
    """NaN in each feature replaced by its fill value, as Keras operations rather than a layer of ours, so
    a saved model loads with plain ``keras.models.load_model`` where this package is not installed."""
    from keras import ops

    def fill(x: Any) -> Any:
        return ops.where(ops.isnan(x), ops.convert_to_tensor(values), x)

    return fill


def _times(factors: np.ndarray) -> Any:
    """Each feature times its factor, as a Keras operation (loads without this package, as ``_fill_missing``)."""
    from keras import ops

    def times(x: Any) -> Any:
        return ops.multiply(x, ops.convert_to_tensor(factors))

    return times


def taking_raw_rows(model: Any, scaler: Any, input_shape: tuple[int, ...], name: str) -> Any:
    """``model`` behind the layers of its fitted ``scaler``: a Keras model that takes raw feature rows."""
    import keras

    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    for layer in as_layers(scaler, input_shape):
        x = layer(x)
    return keras.Model(inputs, model(x), name=name)


def as_layers(scaler: Any, input_shape: tuple[int, ...]) -> list[Any]:
    """Keras layers (and operations) that apply a fitted scaler, so a saved model takes the raw feature rows.

    Both scalers are an affine map ``x * a + b`` per feature; ``Normalization`` computes
    ``(x - mean) / sqrt(variance)``, so ``mean = -b / a`` and ``variance = 1 / a**2``. The scalers already
    replace a zero range by 1, so no feature divides by zero.
    """
    from keras import layers

    if isinstance(scaler, UnseenZeroed):
        assert scaler.keep_ is not None, "fit first"
        return [*as_layers(scaler.scaler, input_shape), _times(scaler.keep_)]
    if isinstance(scaler, Filled):
        assert scaler.fill_ is not None, "fit first"
        fill = _fill_missing(scaler.fill_.astype(np.float32))
        rest = as_layers(scaler.scaler, input_shape)
        return [fill, *rest] if len(input_shape) == 1 else [layers.Flatten(), fill, layers.Reshape(
            tuple(input_shape)), *rest]
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
