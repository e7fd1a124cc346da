"""Bringing MLflow back in line with Optuna after a process died between the two.

Optuna is told a trial's end before MLflow is (MLflow's writes go to a side thread), so a process killed
in that gap leaves a trial COMPLETE in Optuna whose run is still RUNNING, without its summary, and a parent
run whose ``best_trial`` is an older trial. A tracking store that failed for a while (a server down, its
artifacts folder read-only, MLflow switched off for the rest of the run) leaves finished trials with no run
at all. Optuna's record is the one to trust: these helpers close such runs from it, make the missing ones
from it, and hand the ★ to the trial Optuna ranks first.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

from search import review
from search._redact import redact
from search.runner.results import is_summary_metric
from search.tracking._records import param_text
from search.tracking._store import RUN_ID_ATTR, end_run

_logger = logging.getLogger("search")
# On the parent run: the best trial whose best_model/ could not be written when it took the ★.
BEST_MODEL_MISSING = "search.best_model_missing"
_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def close_orphan_runs(tracker: Any, trials: list[Any]) -> list[int]:
    """End the RUNNING runs of trials that Optuna no longer counts as running (their process died),
    with what Optuna holds of them: state, summary metrics, the name a closed run has. Returns their numbers."""
    from mlflow.entities import RunTag

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
        metrics, tags = _record(trial)
        # The run may hold some of them already (its split curves, logged before its store failed, or by the
        # catch-up after it): the rounded copies Optuna keeps would be second points beside MLflow's own.
        metrics = [m for m in metrics if m.key not in run.data.metrics]
        if "best" not in run.data.tags:
            tags.append(RunTag("best", "false"))  # rerank() gives the ★ to the trial Optuna ranks first
        _log(tracker, run.info.run_id, metrics, tags)
        end_run(tracker.client, run.info.run_id, _status(trial),
                _name(trial, best=run.data.tags.get("best") == "true", tracker=tracker))
        _learning_curves(tracker, trial, run.info.run_id)
        closed.append(number)
    return closed


def add_missing_runs(tracker: Any, trials: list[Any]) -> list[int]:
    """Make a run, from its Optuna record (parameters, summary metrics, per-split curves, tags), for each
    complete or pruned trial the study's parent run has none for: the tracking store failed while it ran.
    Tagged ``search.rebuilt: optuna``. Returns their numbers."""
    from mlflow.entities import Param, RunTag

    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")
                and t.number not in tracker._runs and t.number not in tracker._closing]
    if not finished or not tracker.parent_run_id:
        return []
    have = _trial_runs(tracker)
    made = []
    for trial in finished:
        if trial.number in have:
            continue
        metrics, tags = _record(trial)
        tags += [RunTag(k, v) for k, v in _opening_tags(tracker, trial).items()]
        tags += [RunTag("best", "false"), RunTag("search.rebuilt", "optuna")]
        run_id = tracker.client.create_run(tracker.experiment_id, run_name=_name(trial, best=False, tracker=tracker),
                                           tags={"mlflow.parentRunId": tracker.parent_run_id,
                                                 "search.kind": "trial",
                                                 "optuna.trial_number": str(trial.number)}).info.run_id
        tracker.client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in _params(tracker, trial).items()])
        _log(tracker, run_id, metrics, tags)
        end_run(tracker.client, run_id, _status(trial), _name(trial, best=False, tracker=tracker))
        _learning_curves(tracker, trial, run_id)
        made.append(trial.number)
    return made


def _trial_runs(tracker: Any) -> dict[int, Any]:
    """The parent run's trial runs by trial number, every page of them."""
    query = f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}' and tags.`search.kind` = 'trial'"
    out: dict[int, Any] = {}
    token = None
    while True:
        page = tracker.client.search_runs([tracker.experiment_id], query, max_results=1000, page_token=token)
        for run in page:
            out.setdefault(int(run.data.tags.get("optuna.trial_number", -1)), run)
        token = page.token
        if not token:
            return out


def _run_of(tracker: Any, trial: Any) -> str | None:
    """The trial's run: the one its Optuna record names, else the parent's run tagged with its number (a run
    whose trial ended while the store failed, or made by :func:`add_missing_runs`, is not named there)."""
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id and tracker._exists(run_id):
        return str(run_id)
    runs = tracker.client.search_runs(
        [tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}' and "
        f"tags.`search.kind` = 'trial' and tags.`optuna.trial_number` = '{trial.number}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _record(trial: Any) -> tuple[list[Any], list[Any]]:
    """A finished trial's closing metrics and tags, as a live run ends with them, from what Optuna holds."""
    from mlflow.entities import Metric, RunTag

    state = _STATES.get(trial.state.name, "failed")
    now = int(time.time() * 1000)
    # The diagnosis's trial-level numbers too: Optuna keeps them (search/review/trial_fit.py), not the per-split ones.
    metrics = [Metric(k, float(v), now, 0) for k, v in trial.user_attrs.items()
               if (is_summary_metric(k) or k in ("gap_mean", "overfit_onset")) and isinstance(v, (int, float))
               and not isinstance(v, bool) and math.isfinite(v)]
    metrics += _split_metrics(trial, now)
    tags = [RunTag("optuna.state", trial.state.name), RunTag("pruned", str(state == "pruned").lower())]
    if reason := _reason(trial):
        tags.append(RunTag("reason", redact(str(reason))[:5000]))
    if trial.user_attrs.get("fit"):  # the review's columns, as a live run has them
        tags.append(RunTag("fit", str(trial.user_attrs["fit"])))
    if state == "complete" and trial.user_attrs.get("splits"):
        from search.review.verdicts import peaked_at_end

        tags.append(RunTag("still_improving", str(bool(peaked_at_end(trial.user_attrs["splits"]))).lower()))
    return metrics, tags


def _reason(trial: Any) -> str:
    state = _STATES.get(trial.state.name, "failed")
    return str(trial.user_attrs.get("reason") or ("" if state == "complete" else
                                                  "its worker stopped without closing it"))


def _status(trial: Any) -> str:
    return "FINISHED" if trial.state.name in ("COMPLETE", "PRUNED") else "FAILED"


def _name(trial: Any, best: bool, tracker: Any = None) -> str:
    state = _STATES.get(trial.state.name, "failed")
    value = trial.values[0] if state == "complete" and trial.values else math.nan
    name = review.outcome_label(trial.number, trial.params, bool(trial.user_attrs.get("baseline")), state, value,
                                _reason(trial), best=best)
    study = getattr(tracker, "_study", None)
    if trial.user_attrs.get("ablation") and study is not None:  # named as the tracker names a variant
        from types import SimpleNamespace

        from search.tracking.tracker import _with_variant

        return _with_variant(name, SimpleNamespace(user_attrs=trial.user_attrs, study=study))
    return name


def _log(tracker: Any, run_id: str, metrics: list[Any], tags: list[Any]) -> None:
    for start in range(0, max(1, len(metrics)), 1000):  # MLflow takes at most 1000 metrics per batch
        tracker.client.log_batch(run_id, metrics=metrics[start:start + 1000], tags=tags if start == 0 else [])


def _opening_tags(tracker: Any, trial: Any) -> dict[str, str]:
    """The tags a live run gets as its trial starts (search/tracking/tracker.py, on_trial_start)."""
    from search.studies.space_versions import DIGEST_ATTR
    from search.tracking._space_versions import DIGEST_TAG

    attrs = trial.user_attrs
    study = tracker._study.study_name if tracker._study is not None else tracker.space.study.name
    return {"optuna.study_name": study, "search.baseline": str(bool(attrs.get("baseline"))).lower(),
            **({"search.ablation": str(attrs["ablation"])} if attrs.get("ablation") else {}),
            **({DIGEST_TAG: str(attrs[DIGEST_ATTR])} if attrs.get(DIGEST_ATTR) else {}),
            **({"search.phase": str(attrs["phase"])} if attrs.get("phase") else {})}


def _params(tracker: Any, trial: Any) -> dict[str, Any]:
    """Every setting the trial trained with, as a live run logs them, where the space at hand is the one it ran
    with; else the parameters Optuna sampled, under Optuna's names."""
    import optuna

    from search.space import flatten
    from search.studies.space_versions import DIGEST_ATTR, digest_of

    if trial.user_attrs.get(DIGEST_ATTR) == digest_of(tracker.space):
        try:
            return flatten(tracker.space.sample(optuna.trial.FixedTrial(trial.params, trial.number)))
        except Exception:  # a phased trial did not sample what its phase held fixed: Optuna's own record
            pass
    return dict(trial.params)


def _learning_curves(tracker: Any, trial: Any, run_id: str) -> None:
    """The trial's learning-curve figure, drawn from the curves Optuna holds, as its live run would have had."""
    if not tracker.figures or not review.curves_of(trial):
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
    # An ablation's variants are measurements of the picked trial, not candidates: none takes the ★ (as the
    # tracker gives none), and its name keeps the trial it ablates.
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values and math.isfinite(t.values[0])
                and not t.user_attrs.get("ablation")]
    if not complete or not tracker.parent_run_id:
        return None
    best = min(complete, key=lambda t: (t.values[0], t.number))
    parent = tracker.client.get_run(tracker.parent_run_id)
    if parent.data.tags.get("best_trial") == str(best.number):
        if parent.data.tags.get(BEST_MODEL_MISSING) == str(best.number) and (run_id := _run_of(tracker, best)):
            _best_model(tracker, best, run_id)  # the ★ moved while the artifacts folder failed: its files now
        return None
    run_id = _run_of(tracker, best)
    if run_id is None:  # add_missing_runs makes it first, where the caller asked for that
        return None
    run = tracker.client.get_run(run_id)
    if run.info.status == "RUNNING":  # still being closed by a live process, which ranks it itself
        return None
    tracker.client.set_tag(run_id, "best", "true")
    name = review.outcome_label(best.number, best.params, bool(best.user_attrs.get("baseline")), "complete",
                                best.values[0], best=True)
    tracker.client.update_run(run_id, name=name)
    tracker._move_best(run_id, best.values[0])
    tracker._note_best(best.number, run_id, best.values[0])
    # The files last: a store whose artifacts folder still fails keeps the ★ and best_trial in line all the same.
    _best_model(tracker, best, run_id)
    return int(best.number)


def _best_model(tracker: Any, best: Any, run_id: str) -> None:
    """``best_model/`` on the best trial's run where it has none; where that fails (its artifacts folder is
    read-only), the parent run says so, and the next repair tries again."""
    try:
        if not tracker.client.list_artifacts(run_id, "best_model"):
            tracker._log_best_model(best.number, run_id, best.values[0], _best_checkpoint(tracker, best),
                                    noted=True)
        if tracker.client.get_run(tracker.parent_run_id).data.tags.get(BEST_MODEL_MISSING) is not None:
            tracker.client.delete_tag(tracker.parent_run_id, BEST_MODEL_MISSING)
    except Exception as exc:
        _logger.warning("could not log trial %s's best model to MLflow (the next run tries again): %s: %s",
                        best.number, type(exc).__name__, redact(exc))
        try:
            tracker.client.set_tag(tracker.parent_run_id, BEST_MODEL_MISSING, str(best.number))
        except Exception:  # the store fails as a whole: the warning above is what there is to say
            pass


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
