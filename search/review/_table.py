"""Every trial of a study as one CSV table: what scikit-learn's ``cv_results_`` and Optuna's
``trials_dataframe`` give, with each split's score beside the mean."""
from __future__ import annotations

import csv
import io
import math
from typing import Any

from search.runner.results import settings_of
from search.studies.space_versions import DIGEST_ATTR, held_by_version

# Summary attributes of a trial, in the order a reader compares them.
_SUMMARY = ("val_loss_mean", "val_loss_std", "best_epoch_mean", "penalty_mean", "gap_mean", "fit", "n_params")
HEADER_START = "trial,state,"


def trials_csv(study: Any) -> str:
    """One row per trial (pruned and failed ones too): state, settings, summary, and per split its best
    validation loss and epoch. Settings are named as in the space file (``model.dropout``)."""
    trials = study.trials
    held = held_by_version(study)  # a space file edited between runs: the values each trial's version fixed
    params = sorted({name for t in trials for name in t.params} | {name for v in held.values() for name in v})
    metrics = sorted({k for t in trials for k in t.user_attrs
                      if k.startswith("val_") and k not in _SUMMARY and k.endswith(("_mean", "_std"))})
    n_splits = max((len(t.user_attrs.get("splits", [])) for t in trials), default=0)
    splits = [f"split_{k}_{what}" for k in range(n_splits) for what in ("val_loss", "best_epoch")]
    # The version of the space file each trial ran with (edited between runs, a study holds several).
    task = study.user_attrs.get("task")
    metric = ("mae" if task == "regression" else "accuracy") if task else \
        next((k[4:-5] for k in metrics if k.endswith("_mean")), None)
    scores = sorted({name for t in trials for r in t.user_attrs.get("splits", []) for name in r.get("scores", {})})
    # Each split's task metric and scores at its best epoch beside its loss, as cv_results_'s split<k>_test_<score>.
    per_split = ["val_loss", *([f"val_{metric}"] if metric else []), *(f"val_{n}" for n in scores), "best_epoch"]
    splits = [f"split_{k}_{what}" for k in range(n_splits) for what in per_split]
    # As cv_results_'s rank_test_score: 1 for the lowest mean validation loss among complete trials.
    complete = sorted((t.values[0], t.number) for t in trials if t.state.name == "COMPLETE" and t.values)
    ranks = {number: place for place, (_, number) in enumerate(complete, start=1)}
    columns = ["trial", "state", "duration_s", "space_digest", *params, *_SUMMARY, "rank", *metrics, *splits,
               "reason"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for t in trials:
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name, **held.get(t.number, {}),
                               **settings_of(t, set(params), raw=True),
                               "duration_s": round(t.duration.total_seconds(), 3) if t.duration else "",
                               "reason": t.user_attrs.get("reason", ""),
                               "space_digest": t.user_attrs.get(DIGEST_ATTR, ""), "rank": ranks.get(t.number, "")}
        row.update({k: t.user_attrs[k] for k in (*_SUMMARY, *metrics) if k in t.user_attrs})
        for record in t.user_attrs.get("splits", []):
            row[f"split_{record['split']}_val_loss"] = record.get("best_val_loss", "")
            if metric:
                row[f"split_{record['split']}_val_{metric}"] = record.get("best_val_metric", "")
            for name, value in record.get("scores", {}).items():
                row[f"split_{record['split']}_val_{name}"] = value
            scored = isinstance(record.get("best_val_loss"), (int, float)) and math.isfinite(record["best_val_loss"])
            # A split that diverged has no best epoch (its record says 0, which no epoch is).
            row[f"split_{record['split']}_best_epoch"] = record.get("best_epoch", "") if scored else ""
        writer.writerow(row)
    return buffer.getvalue()


def write_csv(study: Any, path: Any) -> None:
    """Write :func:`trials_csv` to ``path``; a file there that this did not write is refused, never replaced."""
    from pathlib import Path

    from search.errors import StudyError

    path = Path(path)
    if path.is_file():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                ours = handle.read(len(HEADER_START)) == HEADER_START
        except OSError:
            ours = False
        if not ours:
            raise StudyError(f"{path} exists and is not a trials table this tool wrote; it is left as it is: choose "
                             f"another name with --csv, or delete it first", field="--csv", found=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(trials_csv(study), encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"cannot write {path} ({exc.strerror or exc})", field="--csv") from None
