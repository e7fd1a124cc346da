"""Dense networks for tabular or flattened data."""
from __future__ import annotations

from typing import Any

from search.models._params import ACTIVATIONS, Param

PARAMS: dict[str, Param] = {
    "layers": Param("int", 2, low=1, high=64, doc="number of hidden Dense layers"),
    "units": Param("int", 64, low=1, high=65_536, doc="units per hidden layer"),
    "activation": Param("str", "relu", choices=ACTIVATIONS),
    "dropout": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0),
    "l1": Param("float", 0.0, low=0.0, high=10.0, off=0.0),
    "l2": Param("float", 0.0, low=0.0, high=10.0, off=0.0),
    "batchnorm": Param("bool", False, off=False),
    "dropconnect": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0,
                         doc="DropConnect rate: hidden-layer weights dropped while training"),
}


def build(settings: dict[str, Any], input_shape: tuple[int, ...], head: Any) -> Any:
    """Flatten → [Dense → (BatchNorm) → activation → (Dropout)] × layers → head."""
    import keras
    from keras import layers

    from search.models.layers import dense

    regularizer = None
    if settings["l1"] or settings["l2"]:
        regularizer = keras.regularizers.L1L2(l1=settings["l1"], l2=settings["l2"])
    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for _ in range(int(settings["layers"])):
        # Batch norm sits between the affine map and the non-linearity, so the Dense bias is redundant.
        x = dense(int(settings["units"]), settings["dropconnect"], kernel_regularizer=regularizer,
                  use_bias=not settings["batchnorm"])(x)
        if settings["batchnorm"]:
            x = layers.BatchNormalization()(x)
        x = layers.Activation(settings["activation"])(x)
        if settings["dropout"] > 0:
            x = layers.Dropout(settings["dropout"])(x)
    return keras.Model(inputs, head.layer(x), name="mlp")
