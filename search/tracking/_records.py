"""What a trial's records say: the validation settings logged, parameter text, the trial
as Optuna will store it."""
from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

from search._redact import redact
from search.runner.results import TrialOutcome
from search.space import Space


def validation_settings(space: Space, attrs: dict[str, Any]) -> dict[str, Any]:
    """The validation settings that apply to the study's scheme, with stratify/shuffle as decided."""
    v = space.validation
    keep = {"holdout": ("fraction",), "iterated_kfold": ("k", "repeats"),
            "time_series": ("k", "gap", "max_train_size", "val_size")}.get(v.scheme, ("k",))
    task = attrs.get("task", space.data.task)
    classification = task in ("binary", "multiclass", "classification")
    return {"scheme": v.scheme, **{name: getattr(v, name) for name in keep},
            "stratify": v.stratify if v.stratify is not None else classification and v.scheme != "time_series",
            "shuffle": v.shuffle if v.shuffle is not None else v.scheme != "time_series"}


def param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return redact(text)[:6000]


def with_outcome(trial: Any, outcome: TrialOutcome, stored: list[Any]) -> list[Any]:
    """The study's trials (``stored``, as just read) with the one in flight as Optuna will store it a
    moment later."""
    from optuna.trial import TrialState

    out = []
    for t in stored:
        if t.number == trial.number:
            t = copy.deepcopy(t)
            # Its last reports and attributes may not be written yet (they go in batches:
            # search/studies/writes.py); the trial's own view has them all.
            t.user_attrs = trial.user_attrs
            view = getattr(getattr(trial, "unwrapped", trial), "_cached_frozen_trial", None)
            if view is not None:
                t.intermediate_values = dict(view.intermediate_values)
            t.state = TrialState.COMPLETE if outcome.state == "complete" else TrialState.PRUNED
            # A Pareto study's second value is not known here; the review reads the loss alone.
            t.values = [outcome.value] if outcome.state == "complete" else None
            t.datetime_complete = datetime.now()
        out.append(t)
    return out


def best_model_note(study: str, number: int, checkpoint: str, scaler: str) -> str:
    """What ``best_model/`` on the best trial's run holds, and what takes raw rows: a reader loaded it as an
    MLflow model (it is none), or fed it raw rows (it predicted one class for every row)."""
    takes = (f"It takes rows **already scaled** by that split's scaler (`data.preprocess: {scaler}`, fit on the "
             f"split's training rows only); raw rows give wrong predictions." if scaler != "none" else
             "It takes rows as the data holds them (`data.preprocess: none`), missing values already filled.")
    return (f"# {checkpoint}\n\nTrial {number}'s model of that split, at its best epoch, as trained: a Keras file "
            f"(`keras.models.load_model`), not an MLflow model. {takes}\n\n"
            f"Models that take raw rows:\n\n"
            f"- every split's, scaler included: `search.best({study!r}, trial={number}).split_models()` in Python;\n"
            f"- the final model, trained on all development rows and tested once: `search reproduce {study} "
            f"--trial {number}`, logged as an MLflow model (Keras and pyfunc forms) on a run of its own.\n")


MEAN_CURVE_PREFIX = "mean_over_splits/"


def mean_curve_metrics(outcome: TrialOutcome, now: int) -> list[Any]:
    """The trial's per-epoch curves averaged over its splits (``mean_over_splits/val_loss`` per epoch), a
    stopped split counting with its best epoch's values: MLflow's chart view compares trials by one curve
    each, where the per-split ones gave k curves a trial and none that matched its score."""
    from mlflow.entities import Metric

    from search.review.diagnostics import mean_curve

    histories = {s.split: s.history for s in outcome.splits if s.history}
    if outcome.state != "complete" or len(histories) < 2:
        return []
    keys = set.intersection(*(set(h) for h in histories.values()))
    return [Metric(MEAN_CURVE_PREFIX + key, value, now, epoch)
            for key in sorted(keys) for epoch, value in enumerate(mean_curve(histories, key), start=1)
            if math.isfinite(value)]
