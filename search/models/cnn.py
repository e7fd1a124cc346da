"""Small convolutional networks for images (height, width, channels), with augmentation inside the model."""
from __future__ import annotations

from typing import Any

from search.models._params import ACTIVATIONS, AUGMENT_PARAMS, Param, augment_settings

IMAGE_INPUT = True  # needs (height, width, channels) inputs; checked before any training

PARAMS: dict[str, Param] = {
    "blocks": Param("int", 2, low=1, high=8, doc="conv blocks; each ends in pooling while the image is > 1 px"),
    "convs_per_block": Param("int", 1, low=1, high=4),
    "filters": Param("int", 32, low=1, high=4096, doc="filters of the first block, doubled in each next block"),
    "kernel_size": Param("int", 3, low=1, high=15),
    "pooling": Param("str", "max", choices=("max", "average")),
    "global_pool": Param("bool", False, doc="global average pooling instead of flattening before the head"),
    "activation": Param("str", "relu", choices=ACTIVATIONS),
    "batchnorm": Param("bool", False, off=False),
    "spatial_dropout": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0,
                             doc="drops whole feature maps at the end of each block"),
    "conv_l2": Param("float", 0.0, low=0.0, high=10.0, off=0.0),
    "dense_units": Param("int", 64, low=0, high=65_536, doc="units of the hidden head layer; 0: none"),
    "dropout": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0, doc="before the output"),
    "dropconnect": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0,
                         doc="DropConnect rate on the hidden head layer's weights"),
    "dense_l2": Param("float", 0.0, low=0.0, high=10.0, off=0.0),
    **AUGMENT_PARAMS,
}


def build(settings: dict[str, Any], input_shape: tuple[int, ...], head: Any) -> Any:
    """augment → [Conv (BN) act]×n → pool → (spatial dropout), per block → flatten → dense → dropout → head."""
    import keras
    from keras import layers

    from search.models.layers import Augment, dense

    conv_reg = keras.regularizers.L2(settings["conv_l2"]) if settings["conv_l2"] else None
    dense_reg = keras.regularizers.L2(settings["dense_l2"]) if settings["dense_l2"] else None
    inputs = keras.Input(shape=input_shape)
    augment = Augment(**augment_settings(settings), name="augment")
    # Left out when off: a model without this package's layers loads with plain Keras (and MLflow).
    x = augment(inputs) if augment.active else inputs
    size = min(input_shape[0], input_shape[1])
    for block in range(int(settings["blocks"])):
        for _ in range(int(settings["convs_per_block"])):
            x = layers.Conv2D(int(settings["filters"]) * 2 ** block, int(settings["kernel_size"]), padding="same",
                              kernel_regularizer=conv_reg, use_bias=not settings["batchnorm"])(x)
            if settings["batchnorm"]:
                x = layers.BatchNormalization()(x)
            x = layers.Activation(settings["activation"])(x)
        if size >= 2:  # deep stacks on small images stop pooling at 1 px rather than failing
            x = (layers.MaxPooling2D if settings["pooling"] == "max" else layers.AveragePooling2D)()(x)
            size //= 2
        if settings["spatial_dropout"] > 0:
            x = layers.SpatialDropout2D(settings["spatial_dropout"])(x)
    x = layers.GlobalAveragePooling2D()(x) if settings["global_pool"] else layers.Flatten()(x)
    if int(settings["dense_units"]) > 0:
        x = dense(int(settings["dense_units"]), settings["dropconnect"], activation=settings["activation"],
                  kernel_regularizer=dense_reg)(x)
    if settings["dropout"] > 0:
        x = layers.Dropout(settings["dropout"])(x)
    return keras.Model(inputs, head.layer(x), name="cnn")
