"""Review: what a study found, for the terminal, MLflow and the HTML report.

``summary`` builds the study's review (tables, figures, metrics, description); ``diagnostics`` judges fit
from learning curves; ``figures`` draws; ``display`` writes the terminal lines; ``report`` the HTML file.
Nothing here trains a model.
"""
from search.review.summary import (CURVES_ATTR, DESCRIPTION_ATTR, PATIENCE_ATTR, REFERENCE_ATTR, REFERENCES_ATTR,
                                   Review, build, compact_curves, curves_and_diagnosis, curves_of, describe,
                                   description_markdown, format_value, is_baseline, label_of, outcome_label,
                                   prune_where, snapshot, trial_label)

__all__ = ["CURVES_ATTR", "DESCRIPTION_ATTR", "PATIENCE_ATTR", "REFERENCE_ATTR", "REFERENCES_ATTR", "Review",
           "build", "compact_curves", "curves_and_diagnosis", "curves_of", "describe", "description_markdown",
           "format_value", "is_baseline", "label_of", "outcome_label", "prune_where", "snapshot", "trial_label"]
