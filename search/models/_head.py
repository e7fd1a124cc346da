"""The output layer, loss and metric that follow from the task."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Head:
    """Output of a network for a task.

    For regression the Dense output is rescaled by the training part's target mean and std (fixed
    constants, not weights), so the network learns in unit scale while losses stay in the target's units.
    """

    task: str  # "binary" | "multiclass" | "regression"
    n_outputs: int
    target_mean: float = 0.0
    target_std: float = 1.0

    @classmethod
    def for_rows(cls, task: str, n_outputs: int, y_train: Any = None) -> "Head":
        """The head for a task; a regression head takes its scale from the training rows' target."""
        if task == "regression" and y_train is not None:
            import numpy as np

            std = float(np.std(y_train)) or 1.0
            return cls(task, 1, float(np.mean(y_train)), std)
        return cls(task, n_outputs)

    @property
    def loss(self) -> str:
        return {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
                "regression": "mse"}[self.task]

    @property
    def loss_weight(self) -> float:
        """What the data loss is multiplied by where it is minimized: for regression, one over the training
        rows' target variance, so that the loss minimized is the squared error in units of the target's
        spread. The losses reported stay in the target's units. A squared error in the target's own units
        made every gradient variance-times larger: plain SGD diverged on a target of spread 77 at any usual
        learning rate, and a weight penalty weighed 6,000 times less against the data than on unit scale."""
        return 1.0 / self.target_std ** 2 if self.task == "regression" else 1.0

    @property
    def metric(self) -> str:
        return "mae" if self.task == "regression" else "accuracy"

    @property
    def metric_higher_is_better(self) -> bool:
        return self.task != "regression"

    def layer(self, x: Any) -> Any:
        import keras
        from keras import layers

        # Under mixed precision the output stays float32: a float16 softmax or rescaled target loses digits.
        mixed = keras.mixed_precision.global_policy().name.startswith("mixed")
        dtype = {"dtype": "float32"} if mixed else {}
        if self.task == "binary":
            return layers.Dense(1, activation="sigmoid", name="output", **dtype)(x)
        if self.task == "multiclass":
            return layers.Dense(self.n_outputs, activation="softmax", name="output", **dtype)(x)
        x = layers.Dense(1, name="output_unit", **dtype)(x)
        return layers.Rescaling(scale=self.target_std, offset=self.target_mean, name="output", **dtype)(x)
