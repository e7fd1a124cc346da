"""Bringing MLflow back in line with Optuna after a process died between the two.

Optuna is told a trial's end before MLflow is (MLflow's writes go to a side thread), so a process killed
in that gap leaves a trial COMPLETE in Optuna whose run is still RUNNING, without its summary, and a parent
run whose ``best_trial`` is an older trial. Optuna's record is the one to trust: these helpers close such
runs from it and hand the ★ to the trial Optuna ranks first.
"""
from __future__ import annotations

import math
import time
from typing import Any

from search import review
from search._redact import redact
from search.runner.results import is_summary_metric
from search.tracking._store import RUN_ID_ATTR, end_run

_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def close_orphan_runs(tracker: Any, trials: list[Any]) -> list[int]:
    """End the RUNNING runs of trials that Optuna no longer counts as running (their process died),
    with what Optuna holds of them: state, summary metrics, the name a closed run has. Returns their numbers."""
    from mlflow.entities import Metric, RunTag

    runs = tracker.client.search_runs([tracker.experiment_id], "attributes.status = 'RUNNING' and "
                                      "tags.`search.kind` = 'trial'", max_results=1000)
    if not runs:
        return []
    states = {t.number: t for t in trials}
    closed = []
    for run in runs:
        number = int(run.data.tags.get("optuna.trial_number", -1))
        trial = states.get(number)
        if (trial is None or trial.state.name == "RUNNING" or number in tracker._runs
                or number in tracker._closing):
            continue
        state = _STATES.get(trial.state.name, "failed")
        reason = trial.user_attrs.get("reason") or ("" if state == "complete" else
                                                     "its worker stopped without closing it")
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in trial.user_attrs.items()
                   if is_summary_metric(k) and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v)]
        metrics += _split_metrics(trial, now)
        tags = [RunTag("optuna.state", trial.state.name), RunTag("pruned", str(state == "pruned").lower())]
        if reason:
            tags.append(RunTag("reason", redact(str(reason))[:5000]))
        if trial.user_attrs.get("fit"):  # the review's columns, as a live run has them
            tags.append(RunTag("fit", str(trial.user_attrs["fit"])))
        if state == "complete" and trial.user_attrs.get("splits"):
            from search.review.verdicts import peaked_at_end

            tags.append(RunTag("still_improving", str(bool(peaked_at_end(trial.user_attrs["splits"]))).lower()))
        if "best" not in run.data.tags:
            tags.append(RunTag("best", "false"))  # rerank() gives the ★ to the trial Optuna ranks first
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            tracker.client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000],
                                     tags=tags if start == 0 else [])
        value = trial.values[0] if state == "complete" and trial.values else math.nan
        name = review.outcome_label(number, trial.params, bool(trial.user_attrs.get("baseline")), state, value,
                                    str(reason), best=run.data.tags.get("best") == "true")
        end_run(tracker.client, run.info.run_id, "FINISHED" if state in ("complete", "pruned") else "FAILED", name)
        _learning_curves(tracker, trial, run.info.run_id)
        closed.append(number)
    return closed


def _learning_curves(tracker: Any, trial: Any, run_id: str) -> None:
    """The trial's learning-curve figure, drawn from the curves Optuna holds, as its live run would have had."""
    if not review.curves_of(trial):
        return
    name, curves, diagnosis = review.curves_and_diagnosis(trial, tracker.reference_loss, tracker.split_references)
    fit = str(trial.user_attrs.get("fit") or diagnosis.fit)
    tracker._drawing.submit(tracker._draw_trial_figure, trial.number, run_id, name, curves, diagnosis, fit)


def _split_metrics(trial: Any, now: int) -> list[Any]:
    """The per-split curves and bests a live run logs (``split_K/val_loss`` per epoch, ...), from what Optuna
    holds of the trial: a run closed here had summary metrics only."""
    from mlflow.entities import Metric

    out = [Metric(f"split_{k}/{name}", value, now, epoch)
           for k, history in review.curves_of(trial).items() for name, values in history.items()
           for epoch, value in enumerate(values, start=1) if math.isfinite(value)]
    for split in trial.user_attrs.get("splits") or []:
        if not isinstance(split, dict):
            continue
        loss = split.get("best_val_loss")
        if not isinstance(loss, (int, float)) or not math.isfinite(loss):
            continue  # diverged: no best epoch
        for name in ("best_val_loss", "best_epoch", "best_val_metric"):
            value = split.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out.append(Metric(f"split_{split.get('split')}/{name}", float(value), now, 0))
    return out


def rerank(tracker: Any, trials: list[Any]) -> int | None:
    """Give the ★, the ``best`` tag, the best model and the parent's ``best_trial`` to the complete trial
    with the lowest validation loss, where the parent run names another. Returns the trial moved to."""
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values and math.isfinite(t.values[0])]
    if not complete or not tracker.parent_run_id:
        return None
    best = min(complete, key=lambda t: (t.values[0], t.number))
    parent = tracker.client.get_run(tracker.parent_run_id)
    run_id = best.user_attrs.get(RUN_ID_ATTR)
    if parent.data.tags.get("best_trial") == str(best.number) or not run_id or not tracker._exists(run_id):
        return None
    run = tracker.client.get_run(run_id)
    if run.info.status == "RUNNING":  # still being closed by a live process, which ranks it itself
        return None
    tracker.client.set_tag(run_id, "best", "true")
    name = review.outcome_label(best.number, best.params, bool(best.user_attrs.get("baseline")), "complete",
                                best.values[0], best=True)
    tracker.client.update_run(run_id, name=name)
    path = _best_checkpoint(tracker, best)
    has_model = bool(tracker.client.list_artifacts(run_id, "best_model"))
    tracker._log_best_model(best.number, run_id, best.values[0], None if has_model else path)
    tracker._move_best(run_id, best.values[0])
    return int(best.number)


def _best_checkpoint(tracker: Any, trial: Any) -> Any:
    from search.runner.checkpoints import split_path

    splits = [s for s in trial.user_attrs.get("splits", []) if isinstance(s, dict)
              and isinstance(s.get("best_val_loss"), (int, float)) and math.isfinite(s["best_val_loss"])]
    if not splits:
        return None
    split = min(splits, key=lambda s: s["best_val_loss"])
    study = tracker._study.study_name if tracker._study is not None else tracker.space.study.name
    path = split_path(tracker.home, study, trial.number, int(split["split"]))
    return path if path.exists() else None
