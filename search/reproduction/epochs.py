"""How many epochs reproduce's final model trains on all development rows, and when that count is only a
lower bound."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def final_epochs(stored: list[dict[str, Any]], splits: list[Any], n_rows: int, batch_size: int) -> tuple[int, str]:
    """The epoch rule: as many optimizer updates as the median split needed to reach its best validation loss.

    A split's best epoch counts passes over that split's training rows; all development rows hold more
    rows, so each epoch makes more updates, and the number of epochs shrinks in proportion (Goodfellow et
    al., Deep Learning, algorithm 7.2: retrain on all the data for the same number of steps).

    Only splits that trained on at least half as many rows as the largest count: time-series windows grow
    from a small first one, whose few updates to its best epoch say little of a model trained on all the
    rows (twelve such splits gave the final model 1 epoch where the larger ones needed 5 to 10). Splits of
    one size (k-fold, hold-out) all count.
    """
    largest = max(len(splits[s["split"]].train) for s in stored)
    counted = [s for s in stored if 2 * len(splits[s["split"]].train) >= largest]
    steps = [int(s["best_epoch"]) * math.ceil(len(splits[s["split"]].train) / batch_size) for s in counted]
    median = float(np.median(steps))
    per_epoch = math.ceil(n_rows / batch_size)
    epochs = max(1, int(math.floor(median / per_epoch + 0.5)))
    best = sorted(int(s["best_epoch"]) for s in counted)
    which = (f"{len(counted)} split(s)" if len(counted) == len(stored) else
             f"the {len(counted)} of {len(stored)} split(s) that trained on at least half the rows of the largest")
    return epochs, (f"median {median:g} updates to the best epoch over {which} (best epochs "
                    f"{', '.join(map(str, best))}) / {per_epoch} updates per epoch on {n_rows} rows")


def censored_epochs(stored: list[dict[str, Any]], epochs: int) -> str:
    """A note where most splits peaked at the last epoch they trained, neither stopped early nor pruned: their
    best epoch is where training ended, not where the loss turned, so the rule's count is a lower bound
    (a final model of 3 epochs left a small class never predicted; 8 predicted it)."""
    from search.review.verdicts import peaked_at_end

    at_end = peaked_at_end(stored)
    if not at_end:
        return ""
    return (f"note: {len(at_end)} of {len(stored)} split(s) peaked at the last epoch they trained, still improving, "
            f"so the rule's {epochs} epoch(s) are a lower bound. Searching again with more train.epochs (and "
            f"train.early_stopping) finds where the loss turns; --epochs sets the number here, at the cost of "
            f"another look at the test rows")
