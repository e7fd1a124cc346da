"""Everything MLflow: one experiment and one parent run per study, one nested run per trial.

A side channel: it listens to the objective's events and never steers training. Uses
``MlflowClient`` rather than the fluent API, so no global "active run" state leaks between trials or
into a user's own code.
"""
from search.tracking._later import DeferredFailure
from search.tracking._store import (CHECKPOINT_ARTIFACTS, PARENT_RUN_ATTR, RUN_ID_ATTR, VIEW_KEY, default_tracking_uri,
                                    experiment_id, fetch_checkpoint, is_server, quiet_mlflow, review_view)
from search.review.trial_fit import trial_fit
from search.tracking._records import param_text
from search.tracking._review import verdict_note
from search.tracking.tracker import FIGURES_ENV, MlflowTracker, figures_wanted, make_tracker

__all__ = ["CHECKPOINT_ARTIFACTS", "FIGURES_ENV", "PARENT_RUN_ATTR", "RUN_ID_ATTR", "VIEW_KEY", "DeferredFailure",
           "MlflowTracker", "default_tracking_uri", "figures_wanted", "experiment_id", "fetch_checkpoint", "is_server",
           "make_tracker", "param_text", "quiet_mlflow", "review_view", "trial_fit", "verdict_note"]
