"""What a reader hands to search.data: the rows as read, before any check of the whole data set."""
from __future__ import annotations

from dataclasses import dataclass, field as _field
from pathlib import Path

import numpy as np


@dataclass
class Raw:
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None = None
    order: np.ndarray | None = None
    feature_names: list[str] | None = None
    declared_task: str | None = None  # what the source itself knows (sklearn sets)
    skipped: list[Path] = _field(default_factory=list)  # unreadable images left out (skip_bad_images)
    test_mask: np.ndarray | None = None  # from data.split_column: True for the provided test rows
    notes: list[str] = _field(default_factory=list)      # how the data was read, for the summary
    warnings: list[str] = _field(default_factory=list)   # what may distort the results, said louder
    # data.categorical: one_hot: a CSV's category columns as text, one-hot encoded by search.data with the
    # development rows' values (so that data.test gets the same columns); emptied once encoded.
    categories: dict[str, np.ndarray] = _field(default_factory=dict)
    label: str = ""                                       # the file or folder, for messages
    # Each row's place in its source: the row of a CSV or an array counting from 0, an image's file relative
    # to its folder; set by search.data where a reader leaves it out. Carried through every drop and sort.
    rows: np.ndarray | None = None
