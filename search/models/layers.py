"""Layers the families share: augmentation, a centred shear, DropConnect, a backbone's input preprocessing.

Importing this module imports Keras, so families import it inside ``build``. Every layer is registered
as serializable, so saved ``.keras`` checkpoints load with ``keras.models.load_model`` once this module
has been imported (``search.training`` and ``search.checkpoints.load_model`` do that).
"""
from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

PACKAGE = "search"
FILL_MODES = ("nearest", "reflect", "constant", "wrap")


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomCenteredShear(keras.layers.Layer):
    """Shears each image along x by an angle drawn from [-max_degrees, max_degrees], about its centre.

    Written because ``keras.layers.RandomShear`` shears about the top-left corner, so its bottom rows
    also slide sideways by up to ``factor × height``: a shear plus a translation. This one keeps the
    middle row in place, like the old ImageDataGenerator's ``shear_range`` (also in degrees).
    """

    def __init__(self, max_degrees: float, fill_mode: str = "nearest", fill_value: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_degrees, self.fill_mode, self.fill_value, self.seed = float(max_degrees), fill_mode, fill_value, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training or self.max_degrees == 0:
            return images
        n = ops.shape(images)[0]
        limit = math.tan(math.radians(self.max_degrees))
        t = keras.random.uniform((n,), -limit, limit, seed=self.seed_generator)
        cy = (ops.cast(ops.shape(images)[1], "float32") - 1.0) / 2.0
        one, zero = ops.ones((n,)), ops.zeros((n,))
        # Output (x, y) samples input (x + t·(y − cy), y): row cy stays put, rows above and below slide apart.
        transform = ops.stack([one, t, -t * cy, zero, one, zero, zero, zero], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode=self.fill_mode,
                                          fill_value=self.fill_value)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_degrees": self.max_degrees, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomContrastUnclipped(keras.layers.Layer):
    """Scales each image's deviation from its per-channel mean by a factor in [1 − c, 1 + c].

    ``keras.layers.RandomContrast`` clips to a fixed value range (0–255 by default), which would destroy
    standardized inputs; this works on any scale.
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor, self.seed = float(factor), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training or self.factor == 0:
            return images
        n = ops.shape(images)[0]
        f = keras.random.uniform((n, 1, 1, 1), 1.0 - self.factor, 1.0 + self.factor, seed=self.seed_generator)
        mean = ops.mean(images, axis=(1, 2), keepdims=True)
        return (images - mean) * f + mean

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Augment(keras.layers.Layer):
    """The training-time augmentation block: identity (the very same tensor) unless ``training`` is true.

    Keras' preprocessing layers default to ``training=True`` when called without a training flag (a bare
    ``model(x)``), so they are wrapped here and only ever called with an explicit ``training=True``:
    validation, test and ensemble predictions are never augmented, whatever way the model is called.
    Units follow the old ImageDataGenerator: rotation and shear in degrees, shifts and zoom as fractions.
    """

    def __init__(self, rotation: float = 0.0, width_shift: float = 0.0, height_shift: float = 0.0,
                 shear: float = 0.0, zoom: float = 0.0, flip: bool = False, contrast: float = 0.0,
                 fill_mode: str = "nearest", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings: dict[str, Any] = {"rotation": float(rotation), "width_shift": float(width_shift),
                         "height_shift": float(height_shift), "shear": float(shear), "zoom": float(zoom),
                         "flip": bool(flip), "contrast": float(contrast), "fill_mode": fill_mode}
        self.steps = _augmentation_steps(**self.settings)

    @property
    def active(self) -> bool:
        return bool(self.steps)

    def build(self, input_shape: Any) -> None:
        for step in self.steps:
            step.build(input_shape)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        for step in self.steps:
            images = step(images, training=True)
        return images

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.settings}


def _augmentation_steps(rotation: float, width_shift: float, height_shift: float, shear: float, zoom: float,
                        flip: bool, contrast: float, fill_mode: str) -> list[Any]:
    from keras import layers

    steps: list[Any] = []
    if flip:
        steps.append(layers.RandomFlip("horizontal"))
    if rotation:
        steps.append(layers.RandomRotation(rotation / 360.0, fill_mode=fill_mode))
    if width_shift or height_shift:
        steps.append(layers.RandomTranslation(height_shift, width_shift, fill_mode=fill_mode))
    if shear:
        steps.append(RandomCenteredShear(shear, fill_mode=fill_mode))
    if zoom:
        steps.append(layers.RandomZoom(zoom, fill_mode=fill_mode))
    if contrast:
        steps.append(RandomContrastUnclipped(contrast))
    return steps


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropConnectDense(keras.layers.Layer):
    """A Dense layer whose *weights* are dropped while training (DropConnect, Wan et al. 2013).

    Each training step draws one Bernoulli mask over the kernel, shared by the batch, keeps each weight
    with probability ``1 − rate`` and scales the kept ones by ``1 / (1 − rate)``, so the expected kernel is
    the full one. At inference the layer is exactly ``activation(x @ kernel + bias)`` with the full weights.
    """

    def __init__(self, units: int, rate: float = 0.0, activation: Any = None, use_bias: bool = True,
                 kernel_regularizer: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropConnect rate must be in [0, 1), got {rate}")
        self.units, self.rate, self.use_bias, self.seed = int(units), float(rate), use_bias, seed
        self.activation = keras.activations.get(activation)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") if self.use_bias else None

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        kernel = self.kernel
        if training and self.rate > 0:
            keep = keras.random.uniform(ops.shape(kernel), seed=self.seed_generator) >= self.rate
            kernel = ops.where(keep, kernel / (1.0 - self.rate), ops.zeros_like(kernel))
        x = ops.matmul(inputs, kernel)
        if self.bias is not None:
            x = x + self.bias
        return self.activation(x) if self.activation is not None else x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "rate": self.rate,
                "activation": keras.activations.serialize(self.activation) if self.activation else None,
                "use_bias": self.use_bias,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)
                if self.kernel_regularizer else None, "seed": self.seed}


def dense(units: int, dropconnect: float = 0.0, **kwargs: Any) -> Any:
    """A plain Dense layer, or a DropConnectDense one when ``dropconnect`` > 0."""
    if dropconnect:
        return DropConnectDense(units, rate=dropconnect, **kwargs)
    return keras.layers.Dense(units, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BackbonePreprocess(keras.layers.Layer):
    """Pixels in [0, 1] → what a ``keras.applications`` backbone expects, via its own ``preprocess_input``.

    Grey images are repeated to three channels, since the backbones (and their weight files) are RGB.
    """

    def __init__(self, module: str, channels: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module, self.channels = module, int(channels)

    def call(self, images: Any) -> Any:
        x = images * 255.0
        if self.channels == 3 and images.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        return getattr(keras.applications, self.module).preprocess_input(x)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "module": self.module, "channels": self.channels}


def row_data_loss(task: str, y_true: Any, y_pred: Any) -> Any:
    """Each row's loss of the task, without any weight penalty, with the target shaped like the output.

    A binary or regression target arrives as (n,) and the output as (n, 1): Keras' loss functions do not
    squeeze them to the same rank (a binary cross-entropy refuses the ranks; a squared error would
    broadcast to n x n).
    """
    if task == "multiclass":
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    loss = keras.losses.binary_crossentropy if task == "binary" else keras.losses.mean_squared_error
    return loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="search")
class DataLoss(keras.metrics.Mean):
    """The task's plain loss (no weight penalty) as a metric, with the target shaped like the output.

    A binary or regression target arrives as (n,) and the output as (n, 1): Keras' loss squeezes them to
    the same rank, its metric classes do not (a binary cross-entropy refuses the ranks; a squared error
    would broadcast to n x n). Registered, so checkpoints and final models that carry it load again.
    """

    def __init__(self, task: str = "multiclass", name: str = "data_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.task = task

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # Unweighted on purpose: with train.class_weight, Keras hands the class weights over as sample weights,
        # and this metric is what reports the plain data loss beside the weighted one training minimizes.
        return super().update_state(row_data_loss(self.task, y_true, y_pred))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task": self.task}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FillMissing(keras.layers.Layer):
    """Replaces NaN in each feature by that feature's fill value (learnt from the training rows), so a saved
    model takes raw rows with missing values, as the search saw them (``data.missing``). Final models are
    now saved with Keras operations in its place (search/preprocess.py); kept so earlier ones load."""

    def __init__(self, values: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, inputs: Any) -> Any:
        return ops.where(ops.isnan(inputs), ops.convert_to_tensor(self.values, dtype=inputs.dtype), inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "values": self.values}
