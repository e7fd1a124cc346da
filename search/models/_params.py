"""What a model family or the training section accepts, declared without importing TensorFlow.

The space file validator reads these specs to check fixed values and distributions before any
training starts; the builders read the resolved values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


# The keys that make a value a distribution (``{float: [lo, hi]}``, ...). Declared here, beside the
# settings, so that a family can tell a searched value from a fixed one without importing the space.
DIST_KEYS = ("float", "int", "choice")


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in DIST_KEYS)


@dataclass(frozen=True)
class Param:
    """One setting: its type, its valid range, and (for regularizers) the value that turns it off."""

    kind: str  # "float" | "int" | "bool" | "str"
    default: Any
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    off: Any = None  # set for regularizers: the value meaning "not applied"
    doc: str = ""

    @property
    def is_regularizer(self) -> bool:
        return self.off is not None

    def check(self, value: Any) -> str | None:
        """Return what is wrong with a fixed value, or None when it is acceptable."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "true or false"
        if self.kind == "str":
            if not isinstance(value, str):
                return "a string"
            if self.choices and value not in self.choices:
                return "one of " + ", ".join(map(str, self.choices))
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"a number ({self.kind})"
        if not math.isfinite(value):
            return f"a finite number: {self.range_text()}"
        if self.kind == "int" and not float(value).is_integer():
            return "a whole number"
        return self._range_problem(float(value))

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{article(self.kind)} {self.kind} in [{lo}, {hi}{')' if self.high_open else ']'}"

    def _range_problem(self, v: float) -> str | None:
        if self.low is not None and v < self.low:
            return self.range_text()
        if self.high is not None and (v > self.high or (self.high_open and v >= self.high)):
            return self.range_text()
        return None


ACTIVATIONS = ("relu", "elu", "selu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu")

TRAIN_PARAMS: dict[str, Param] = {
    "optimizer": Param("str", "adam", choices=("adam", "adamw", "sgd", "rmsprop")),
    "learning_rate": Param("float", 1e-3, low=1e-7, high=10.0),
    "weight_decay": Param("float", 0.0, low=0.0, high=1.0, off=0.0,
                          doc="decoupled weight decay, used by adamw"),
    "momentum": Param("float", 0.0, low=0.0, high=1.0, high_open=True, doc="used by sgd"),
    "batch_size": Param("int", 32, low=1, high=1_000_000),
    "epochs": Param("int", 50, low=1, high=100_000),
    "early_stopping": Param("int", 10, low=0, high=100_000,
                            doc="patience in epochs without a better validation loss; 0 turns it off"),
    "fuse_splits": Param("bool", True, doc="train a trial's splits together as branches of one graph "
                                           "(docs/performance.md); false trains them one after another"),
    "mixed_precision": Param("bool", False, doc="float16 compute with float32 weights (fast on GPUs with "
                                                "tensor cores, slow on CPUs)"),
    "class_weight": Param("str", "none", choices=("none", "balanced"),
                          doc="balanced: each training row's loss weighted by n / (classes x its class's rows), "
                              "as scikit-learn's class_weight='balanced'; the validation loss stays unweighted"),
}

# A custom builder's settings named as the built-in families' are checked against the same ranges before
# training: dropout 1.5 otherwise ran the whole budget, half its trials failing in Keras ("rate=1.158"). No
# defaults: a builder's setting left out of the space is the builder's to default.
WELL_KNOWN: dict[str, Param] = {
    "dropout": Param("float", None, low=0.0, high=1.0, high_open=True, off=0.0),
    "dropconnect": Param("float", None, low=0.0, high=1.0, high_open=True, off=0.0),
    "recurrent_dropout": Param("float", None, low=0.0, high=1.0, high_open=True, off=0.0),
    "l1": Param("float", None, low=0.0, off=0.0),
    "l2": Param("float", None, low=0.0, off=0.0),
    "learning_rate": TRAIN_PARAMS["learning_rate"],
}

FILL_MODES = ("nearest", "reflect", "constant", "wrap")

# Training-time augmentation, shared by the image families. Every one is a regularizer whose off value
# leaves the images untouched, so the baseline trial trains on the plain images.
AUGMENT_PARAMS: dict[str, Param] = {
    "augment_rotation": Param("float", 0.0, low=0.0, high=180.0, off=0.0,
                              doc="largest rotation, in degrees either way"),
    "augment_width_shift": Param("float", 0.0, low=0.0, high=1.0, off=0.0,
                                 doc="largest horizontal shift, as a fraction of the width"),
    "augment_height_shift": Param("float", 0.0, low=0.0, high=1.0, off=0.0,
                                  doc="largest vertical shift, as a fraction of the height"),
    "augment_shear": Param("float", 0.0, low=0.0, high=80.0, off=0.0,
                           doc="largest shear angle, in degrees either way, about the image centre"),
    "augment_zoom": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0,
                          doc="largest zoom in or out, as a fraction"),
    "augment_flip": Param("bool", False, off=False, doc="random horizontal flips"),
    "augment_contrast": Param("float", 0.0, low=0.0, high=1.0, high_open=True, off=0.0,
                              doc="contrast factor drawn from [1 - c, 1 + c]"),
    "augment_fill": Param("str", "nearest", choices=FILL_MODES,
                          doc="how pixels moved in from outside the image are filled"),
}


def augment_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``augment_*`` settings as keyword arguments of ``search.models.layers.Augment``."""
    out = {key.removeprefix("augment_"): settings[key] for key in AUGMENT_PARAMS}
    out["fill_mode"] = out.pop("fill")
    return out
