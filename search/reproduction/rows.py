"""Each row's place in a study and the final model's predictions for the test rows: ``rows.csv`` of a
``reproduce`` run. Without it the test rows and the splits were counts and fingerprints only: no one could
look at the misclassified test images, score a subgroup on the tool's own test rows, check that a
patient's visits stayed on one side of each split, or run another model on the same folds."""
from __future__ import annotations

from typing import Any

import numpy as np

from search import scoring


def table(prepared: Any, test_pred: np.ndarray) -> str:
    """The CSV text: a line per row of the data as read and kept (de-duplicated rows are not in it), in the
    order the study holds them.

    ``source`` (``data.source`` or ``data.test`` as the space names it) and ``row`` (``file`` for an image
    folder) say where the row came from: the row of the CSV
    or array counting from 0 (a CSV's header is not counted), or the image's file in its folder. ``role`` is
    ``test``, ``development`` or ``left out`` (the gap before time-ordered test rows); ``split_<k>`` is
    ``train``, ``validation`` or empty; ``target`` the label or value; the test rows also have the final
    model's predictions: each class's probability (``p(<class>)``) and the ``predicted`` class, or the
    ``predicted`` value.
    """
    import pandas as pd

    ds = prepared.dataset
    n = len(ds.X)
    ids = ds.rows if ds.rows is not None and len(ds.rows) == n else np.arange(n)
    data = prepared.space.data
    # The file (or bundled set) as the space names it: the field's name alone ('data.source') said nothing.
    source = str(data.source)  # with data.split_column the test rows are of the same file
    test_source = source if getattr(data, "split_column", None) else str(getattr(data, "test", None) or "data.test")
    frame: dict[str, Any] = {
        "source": np.where(ds.test_mask, test_source, source) if ds.test_mask is not None else np.full(n, source),
        "file" if ids.dtype.kind in "UO" else "row": ids}
    role = np.full(n, "left out", dtype=object)
    role[prepared.dev_idx], role[prepared.test_idx] = "development", "test"
    frame["role"] = role
    for split in prepared.splits:
        place = np.full(n, "", dtype=object)
        place[split.train], place[split.val] = "train", "validation"
        frame[f"split_{split.index}"] = place
    classes = ds.labels
    labels = np.asarray(ds.y).reshape(n, -1)
    codes = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    frame["target"] = (np.asarray(classes, dtype=object)[codes.astype(int)] if ds.is_classification
                       else shortest_text(codes))
    test = np.asarray(prepared.test_idx)
    pred = np.asarray(test_pred, dtype=float).reshape(len(test), -1)
    if ds.is_classification:
        probabilities = np.column_stack([1.0 - pred[:, 0], pred[:, 0]]) if pred.shape[1] == 1 else pred
        for k, name in enumerate(classes):
            column = np.full(n, np.nan)
            column[test] = probabilities[:, k]
            frame[f"p({name})"] = shortest_text(column)
        predicted = np.full(n, "", dtype=object)
        predicted[test] = np.asarray(classes, dtype=object)[scoring.predicted_codes(ds.task, pred)]
    else:
        predicted = np.full(n, np.nan)
        predicted[test] = pred[:, 0]
    frame["predicted"] = predicted if ds.is_classification else shortest_text(predicted)
    return str(pd.DataFrame(frame).to_csv(index=False))


def shortest_text(values: np.ndarray) -> np.ndarray:
    """Numbers as the float32 they were trained and predicted in, in the fewest digits that read back as it:
    a price of 1234567.89 was written 1234567.875 and a probability 0.1 as 0.10000000149011612."""
    return np.array([_shortest(np.float32(v)) if np.isfinite(v) else "" for v in np.asarray(values, dtype=float)],
                    dtype=object)


def _shortest(v: np.float32) -> str:
    if v == 0 or 1e-4 <= abs(v) < 1e15:  # prices and probabilities as read, not 1.2345679e+06
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-")
