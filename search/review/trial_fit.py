"""A finished trial's fit, judged from its learning curves and stored with the trial in Optuna.

The diagnosis (``fit``, ``gap_mean``, ``overfit_onset``, the compact ``curves``) is part of the trial's
record, which the review, the report and ``search best`` read from Optuna: it is made here, by a listener
of the run's own, so a tracking store that fails (or is switched off after failing) takes nothing from it.
The MLflow tracker reads the same diagnosis from the outcome instead of judging the curves again.
"""
from __future__ import annotations

from typing import Any

from search.runner.results import TrialListener, TrialOutcome


def trial_fit(outcome: TrialOutcome, diagnosis: Any) -> str:
    """The ``fit`` label of a finished trial: a pruned (or failed) trial's cut curves are not judged."""
    return diagnosis.fit if outcome.state == "complete" and diagnosis is not None else "n/a"


def diagnose(trial: Any, outcome: TrialOutcome, reference_loss: float | None,
             split_references: dict[int, tuple[float, float]]) -> Any:
    """Judge the trial's curves, store what the review reads as its user attributes, and return the diagnosis
    (None for a trial that trained no epoch)."""
    from search.review import diagnostics, summary

    histories = {s.split: s.history for s in outcome.splits if s.history}
    if not histories:
        return None
    early = int(outcome.settings.get("train", {}).get("early_stopping") or 0)
    patience = min(diagnostics.DEFAULT_PATIENCE, early) if early else diagnostics.DEFAULT_PATIENCE
    reference, own = reference_loss, split_references
    weighted = outcome.settings.get("train", {}).get("class_weight") == "balanced" and bool(own)
    if weighted and (equal := diagnostics.equal_shares_loss(trial.study)) is not None:
        # Weighted alike, a model that learned nothing predicts equal shares, not the class shares: against
        # the class shares a stranger's model of validation ROC AUC 0.92 was called underfit.
        reference, own = equal, {k: (equal, equal) for k in own}
    diagnosis = diagnostics.diagnose_trial(histories, reference, patience, own)
    kept = {**diagnosis.attrs(), "fit": trial_fit(outcome, diagnosis), summary.PATIENCE_ATTR: patience,
            summary.CURVES_ATTR: summary.compact_curves(histories),
            **({diagnostics.CLASS_WEIGHTED_ATTR: True} if weighted else {})}
    for key, value in kept.items():
        trial.set_user_attr(key, value)
    return diagnosis


class TrialDiagnosis(TrialListener):
    """Diagnoses every trial as it ends, before any other listener hears of it (put it first): its
    attributes go to Optuna with the trial, and the outcome carries the diagnosis to the tracker."""

    def __init__(self, reference_loss: float | None, split_references: dict[int, tuple[float, float]]) -> None:
        self.reference_loss, self.split_references = reference_loss, split_references

    @classmethod
    def of(cls, prepared: Any) -> "TrialDiagnosis":
        """For a ``search.runner.session.Prepared``: chance-level losses of its development rows and splits."""
        from search.review.diagnostics import chance_loss, split_chance_losses

        ds = prepared.dataset
        return cls(chance_loss(ds.y[prepared.dev_idx], ds.task), split_chance_losses(ds.y, ds.task, prepared.splits))

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None:
        outcome.diagnosis = diagnose(trial, outcome, self.reference_loss, self.split_references)
        outcome.diagnosed = True
