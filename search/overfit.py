"""The validation-overfit alarm: is the test loss worse than the cross-validation estimate can explain?

A search that tries many settings against the same validation rows picks, among other things, the
settings that happen to suit those rows. Its best cross-validation loss is then optimistic, and the
only honest judge is data no trial saw: the held-out test rows.

The comparison is like for like: the trial's own split models (the models whose best validation losses
make up the estimate) are scored on the test rows, and the mean of those test losses is compared with
the mean of their validation losses. Two sources of honest noise separate them:

- the cross-validation estimate's own error, the larger of the spread of the splits (standard deviation
  over splits / sqrt(K)) and the row-sampling error of the validation rows (per-row loss standard
  deviations, sqrt(sum_k sd_k² / n_k) / K); the second is a floor, so that a hold-out (one split) or
  three folds that agree by chance do not make the estimate look exact;
- the test loss's row-sampling error: standard deviation of the per-row test losses / sqrt(n_test).

The alarm fires when the test loss exceeds the estimate by more than ``Z_ALARM`` times their combined
error (one-sided, about a 2% false-alarm rate when nothing is wrong).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Z_ALARM = 2.0

REMEDY = ("the search has overfit its validation data: its best trials were chosen partly for suiting the "
          "validation rows. Use iterated k-fold (validation: {scheme: iterated_kfold, k: 5, repeats: 3}) so "
          "that every trial is judged on more, reshuffled validation rows, use fewer trials per validation "
          "row, and quote the test score, not the validation score")


@dataclass
class OverfitCheck:
    cv_mean: float        # mean over splits of the best validation loss (the trial's value)
    cv_std: float         # standard deviation over splits (0 for one split)
    n_splits: int
    cv_error: float       # the estimate's standard error (see the module docstring)
    test_loss: float      # mean over the split models of their test loss
    test_error: float     # the test loss's row-sampling standard error
    z: float              # (test_loss - cv_mean) / sqrt(cv_error² + test_error²)

    @property
    def fired(self) -> bool:
        return self.z > Z_ALARM

    def summary(self) -> str:
        return (f"split models: test loss {self.test_loss:.4g} vs cross-validation {self.cv_mean:.4g} "
                f"± {self.cv_std:.2g} over {self.n_splits} split(s); gap {self.test_loss - self.cv_mean:+.3g} "
                f"= {self.z:.1f} standard errors (alarm above {Z_ALARM:g})")

    def warning(self) -> str:
        return (f"validation overfit: the test loss {self.test_loss:.4g} is worse than the cross-validation "
                f"estimate {self.cv_mean:.4g} by {self.z:.1f} standard errors, more than the spread of the "
                f"splits and the size of the test set explain; " + REMEDY)

    def metrics(self) -> dict[str, float]:
        return {"overfit_z": self.z, "cv_val_loss_mean": self.cv_mean, "cv_val_loss_std": self.cv_std,
                "cv_val_loss_error": self.cv_error, "split_models_test_loss_mean": self.test_loss,
                "split_models_test_loss_error": self.test_error}


def check(val_losses: Sequence[float], val_row_losses: Sequence[np.ndarray], test_losses: Sequence[float],
          test_row_losses: Sequence[np.ndarray]) -> OverfitCheck:
    """Compare split models on test rows with their validation losses.

    ``val_losses[k]`` is split k's stored best validation loss, ``val_row_losses[k]`` its model's per-row
    losses on its validation rows, ``test_losses[k]`` the same model's test loss (computed like the
    validation loss, penalties included) and ``test_row_losses[k]`` its per-row test losses.
    """
    k = len(val_losses)
    cv_mean = float(np.mean(val_losses))
    cv_std = float(np.std(val_losses, ddof=1)) if k > 1 else 0.0
    row_error = math.sqrt(sum(float(np.var(r, ddof=1)) / len(r) for r in val_row_losses if len(r) > 1)) / k
    cv_error = max(cv_std / math.sqrt(k), row_error)
    test_rows = np.mean(np.stack(test_row_losses), axis=0)
    test_error = float(np.std(test_rows, ddof=1) / math.sqrt(len(test_rows))) if len(test_rows) > 1 else 0.0
    test_loss = float(np.mean(test_losses))
    scale = math.hypot(cv_error, test_error)
    gap = test_loss - cv_mean
    z = gap / scale if scale > 0 else (math.inf if gap > 0 else 0.0)
    return OverfitCheck(cv_mean, cv_std, k, cv_error, test_loss, test_error, float(z))
