"""The pyfunc loader of a final model that `search reproduce` logs, shipped inside the model as its own code.

MLflow copies this file into the model's ``code/`` folder as ``search_pyfunc_loader.py`` and names it the
model's ``loader_module``, so ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` run it where this
package is not installed. It depends on Keras, pandas and MLflow only, for that reason.

Two things MLflow's own Keras loader does not do: it imports the layers of this package (augmentation,
DropConnect, a backbone's preprocessing) that Keras cannot find by itself, the installed package's when
there is one, else the copy saved beside this file; and it names a frame's output columns by what they
are (the classes, or the target) where MLflow's gave them 0..n-1.
"""
from __future__ import annotations

import json
import os
from typing import Any

OUTPUTS_FILE = "outputs.json"


def _import_layers() -> None:
    # Importing registers the layers with Keras; the installed package's first, so that one process never
    # holds two classes under one registered name where it also trains.
    try:
        import search.models.layers  # noqa: F401
    except ImportError:
        import search_model_layers  # noqa: F401


class _NamedOutputs:
    """MLflow's Keras pyfunc model, whose frame outputs carry the classes' (or the target's) names."""

    def __init__(self, inner: Any, columns: list[str]) -> None:
        self._inner = inner
        self._columns = columns

    def get_raw_model(self) -> Any:
        return self._inner.get_raw_model()

    def predict(self, data: Any, params: Any = None) -> Any:
        import pandas as pd

        out = self._inner.predict(data)
        if isinstance(out, pd.DataFrame) and len(out.columns) == len(self._columns):
            out.columns = self._columns
        return out


def _load_pyfunc(path: str) -> Any:
    from mlflow.keras import _load_pyfunc as load_keras  # what models saved with loader_module mlflow.keras call

    _import_layers()
    inner = load_keras(path)
    outputs_file = os.path.join(path, OUTPUTS_FILE)
    if not os.path.isfile(outputs_file):
        return inner
    with open(outputs_file, encoding="utf-8") as f:
        columns = [str(c) for c in json.load(f)["columns"]]
    return _NamedOutputs(inner, columns)
