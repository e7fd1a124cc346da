"""The pyfunc loader of a final model that `search reproduce` logs, shipped inside the model as its own code.

MLflow copies this file into the model's ``code/`` folder as ``search_pyfunc_loader.py`` and names it the
model's ``loader_module``, so ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` run it where this
package is not installed. It depends on Keras, pandas and MLflow only, for that reason.

Three things MLflow's own Keras loader does not do: it imports the layers of this package (augmentation,
DropConnect, a backbone's preprocessing) that Keras cannot find by itself, the installed package's when
there is one, else the copy saved beside this file; it names a frame's output columns by what they are
(the classes, or the target) where MLflow's gave them 0..n-1; and it one-hot encodes a frame's category
columns as ``data.categorical: one_hot`` encoded them for training, so the frame is the rows as read.
"""
from __future__ import annotations

import json
import os
from typing import Any

OUTPUTS_FILE = "outputs.json"


def encoded_names(one_hot: dict[str, list[str]]) -> list[str]:
    """The 0/1 columns ``column=value`` of each category column, as search.data names them (an empty value is
    ``(empty)``)."""
    return [f"{name}={value if value else '(empty)'}" for name, values in one_hot.items() for value in values]


# What pandas' read_csv reads as missing by default. search reads a category column as written, so a city
# written "NA" is the value NA there; a frame read with pandas' defaults has NaN in its place.
_PANDAS_MISSING = ("NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>", "#N/A",
                   "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN")


def _missing_as(values: list[str]) -> str:
    """The value a missing cell of a category stands for: the empty value where training saw one, else the
    spelling of missing that training read as a value (``NA``), so that a frame read by pandas, whose NaN
    stands where the file wrote NA, is encoded as training encoded the file."""
    if "" in values:
        return ""
    return next((v for v in _PANDAS_MISSING if v in values), "")


def _as_written(column: Any, values: list[str]) -> Any:
    """pandas reads a column of TRUE/FALSE (any case) as Python's True and False: each is given the spelling
    training read from the file, so that it is not a value training never saw."""
    import numpy as np

    spelled = {flag: next((v for v in values if v.strip().casefold() == str(flag).casefold()), str(flag))
               for flag in (True, False)}
    return column.map(lambda v: spelled[bool(v)] if isinstance(v, (bool, np.bool_)) else v)


def _encode(data: Any, encoding: dict[str, Any]) -> Any:
    """A frame of raw rows with its category columns one-hot encoded, in the model's column order. A value
    training never saw is 0 in every column of its category, as it was for test rows, and is warned
    about; a missing one is the value :func:`_missing_as` names."""
    import unicodedata

    import numpy as np
    import pandas as pd

    one_hot: dict[str, list[str]] = encoding["one_hot"]
    columns = {str(c): data[c] for c in data.columns if str(c) not in one_hot}
    for name, values in one_hot.items():
        text = _as_written(data[name].astype(object), values)
        text = text.where(data[name].notna(), _missing_as(values)).astype(str)
        spaced = text[(text != text.str.strip()) & text.str.strip().isin(values)]
        if len(spaced):
            import warnings

            # Read as training read them (with a note there): said here too, where they were taken unsaid.
            warnings.warn(f"column {name!r}: {len(spaced)} value(s) with spaces around them (such as "
                          f"{spaced.iloc[0]!r}) were read without them, as training read its values", stacklevel=3)
        text = text.str.strip()
        text = text.map(lambda v: unicodedata.normalize("NFC", v))  # as training read them
        for value, column in zip(values, encoded_names({name: values})):
            columns[column] = (text == value).astype(np.float64)
        unseen = text[~text.isin(values)]
        if len(unseen):
            import warnings

            counts = unseen.value_counts()
            # A missing value (NaN, None, blank) reads as '' here: said as what the user gave.
            shown = ", ".join(f"{'a missing value' if v == '' else repr(v)} ({n} row{'s' if n != 1 else ''})"
                              for v, n in counts.head(5).items())
            warnings.warn(f"column {name!r}: value(s) {shown}{' and more' if len(counts) > 5 else ''} never occurred "
                          f"in training, so such a row is 0 in every {name}= column (training's values: "
                          f"{', '.join(map(repr, values[:10]))}{', ...' if len(values) > 10 else ''})", stacklevel=3)
    return pd.DataFrame({c: columns[c] for c in encoding["features"]}, index=data.index)


def _no_missing(missing: dict[str, Any]) -> None:
    """A model trained with data.missing: refuse has no fill: a missing value gave a NaN prediction, silently."""
    holes = {name: int(rows.nonzero()[0][0]) for name, rows in missing.items() if rows.any()}
    if holes:
        named = ", ".join(f"{name!r} (first in row {row}, counting from 0)" for name, row in list(holes.items())[:5])
        raise ValueError(f"missing values in {named}: this model was trained with data.missing: refuse, so it has "
                         f"no fill for them and would predict NaN; fill them first, or search again with "
                         f"data.missing: median (or mean), which puts the fill inside the model")


def _finite(columns: dict[str, Any]) -> None:
    """An infinite value, or one beyond float32 (which the model computes in), gave NaN without a word."""
    import numpy as np

    limit = float(np.finfo(np.float32).max)
    bad = {name: int(rows.nonzero()[0][0]) for name, values in columns.items()
           if (rows := np.isinf(values) | (np.abs(np.nan_to_num(values)) > limit)).any()}
    if bad:
        named = ", ".join(f"{name!r} (first in row {row}, counting from 0)" for name, row in list(bad.items())[:5])
        raise ValueError(f"infinite values, or values beyond float32's range (3.4e38), in {named}: the model "
                         f"computes in float32 and would predict NaN for them")


def _images_as_trained(data: Any, shape: tuple[Any, ...], pixel_max: float | None) -> None:
    """Images of another shape met TensorFlow's own errors (a matrix size, a filter depth, an unknown
    TensorShape); pixels of 0-255 given to a model trained on 0-1 gave every image one class with full
    confidence, without a word."""
    import numpy as np

    wanted = "(n, " + ", ".join(str(d) for d in shape) + ")"
    if data.ndim != len(shape) + 1 or any(d is not None and d != got for d, got in zip(shape, data.shape[1:])):
        hint = ""
        if data.shape == tuple(shape):
            hint = "; one image needs the leading axis of a batch: images[None]"
        elif data.ndim == len(shape) and tuple(data.shape[1:]) == tuple(shape[:-1]) and shape[-1] == 1:
            hint = "; grey images need their channel axis: images[..., None]"
        elif data.ndim == len(shape) + 1 and data.shape[-1] != shape[-1]:
            hint = f"; the model takes {shape[-1]} channel(s), these have {data.shape[-1]}"
        raise ValueError(f"images of shape {tuple(data.shape)}: the model takes a batch of shape {wanted}, "
                         f"as reproduce.json's 'model' entry says{hint}")
    if pixel_max is not None and pixel_max <= 1.0 and data.size:
        top = float(np.nanmax(data))
        if top > 1.0 + 1e-3:
            raise ValueError(f"pixel values up to {top:g}, but the model was trained on pixel values in [0, 1] "
                             f"(8-bit values / 255): divide by the type's maximum first (images / 255.0); "
                             f"as they are, the model would give every image one class with full confidence")


def _import_layers() -> None:
    # Importing registers the layers with Keras; the installed package's first, so that one process never
    # holds two classes under one registered name where it also trains.
    try:
        import search.models.layers  # noqa: F401
    except ImportError:
        import search_model_layers  # noqa: F401


class _NamedOutputs:
    """MLflow's Keras pyfunc model, whose frame outputs carry the classes' (or the target's) names.

    Predicts without Keras' progress bar on standard output (a served model's log, a notebook's cell), takes
    a frame's true/false and whole-number columns as numbers (a bool column met Keras' "Invalid dtype:
    object"), names a column that is not numbers, and answers an empty frame with an empty one (Keras'
    predict failed on no rows)."""

    def __init__(self, inner: Any, columns: list[str] | None, encoding: dict[str, Any] | None = None,
                 refuses_missing: bool = False, pixel_max: float | None = None) -> None:
        self._inner = inner
        self._columns = columns
        self._encoding = encoding
        self._refuses_missing = refuses_missing
        self._pixel_max = pixel_max

    def get_raw_model(self) -> Any:
        return self._inner.get_raw_model()

    def predict(self, data: Any, params: Any = None) -> Any:
        import numpy as np
        import pandas as pd

        model = self._inner.get_raw_model()
        if isinstance(data, pd.DataFrame) and self._encoding:
            data = _encode(data, self._encoding)
        if isinstance(data, pd.DataFrame):
            # MLflow's schema check hands over columns of any type as objects: each read as numbers here, an
            # empty text as missing (as an empty cell of the training CSV was).
            given = {c: _blank_as_missing(data[c]) for c in data.columns}
            numbers = {c: pd.to_numeric(given[c], errors="coerce") for c in data.columns}
            text = [c for c in data.columns if (numbers[c].isna() & given[c].notna()).any()]
            if text:
                bad = given[text[0]][numbers[text[0]].isna() & given[text[0]].notna()]
                raise ValueError(f"column(s) {', '.join(repr(str(c)) for c in text)} are not numbers (row "
                                 f"{bad.index[0]} of column {str(text[0])!r} holds {str(bad.iloc[0])[:40]!r}): the "
                                 f"model takes numbers in them (only the category columns that reproduce.json's "
                                 f"'model' lists under 'one_hot' are text)")
            if self._refuses_missing:
                _no_missing({str(c): numbers[c].isna().to_numpy() for c in data.columns})
            _finite({str(c): numbers[c].to_numpy(dtype="float64") for c in data.columns})
            width = int(model.output_shape[-1])
            rows = np.column_stack([numbers[c].to_numpy(dtype="float64") for c in data.columns]) if len(data.columns) \
                else np.zeros((len(data), 0))
            out = model.predict(rows, verbose=0) if len(data) else \
                np.zeros((0, width), dtype="float32")
            columns = self._columns if self._columns and len(self._columns) == width else None
            return pd.DataFrame(np.asarray(out).reshape(len(data), width), index=data.index, columns=columns)
        if isinstance(data, np.ndarray):
            if len(model.input_shape) > 2:
                _images_as_trained(data, tuple(model.input_shape[1:]), self._pixel_max)
            if self._refuses_missing and data.ndim == 2 and np.issubdtype(data.dtype, np.floating):
                _no_missing({f"column {j}": np.isnan(data[:, j]) for j in range(data.shape[1])})
            if data.ndim == 2 and np.issubdtype(data.dtype, np.number):
                _finite({f"column {j}": data[:, j].astype("float64") for j in range(data.shape[1])})
            return np.asarray(model.predict(data, verbose=0)) if len(data) else \
                np.zeros((0, *model.output_shape[1:]), dtype="float32")
        return self._inner.predict(data)


def _blank_as_missing(column: Any) -> Any:
    """Cells of spaces read as missing, as training read them. pandas 3 reads text as its own ``str`` dtype, not
    as objects: a stranger's training CSV, given back to its model, was refused for its cells of " "."""
    import pandas as pd

    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return column
    return column.mask(column.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore").fillna(False)
                       .astype(bool))


def _load_pyfunc(path: str) -> Any:
    from mlflow.keras import _load_pyfunc as load_keras  # what models saved with loader_module mlflow.keras call

    _import_layers()
    inner = load_keras(path)
    outputs_file = os.path.join(path, OUTPUTS_FILE)
    columns, encoding = None, None
    if os.path.isfile(outputs_file):
        with open(outputs_file, encoding="utf-8") as f:
            saved = json.load(f)
        columns, encoding = [str(c) for c in saved["columns"]] or None, saved.get("encoding")
        refuses, pixel_max = bool(saved.get("refuses_missing")), saved.get("pixel_max")
    else:
        refuses, pixel_max = False, None
    return _NamedOutputs(inner, columns, encoding, refuses, pixel_max)
