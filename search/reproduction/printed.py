"""What ``search reproduce`` prints of its report."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TextIO

from search import scoring
from search.reproduction import looks as looks_module
from search.reproduction import served

if TYPE_CHECKING:
    from search.reproduction.final import Report


def _prior(report: "Report") -> str:
    return "the development rows' " + ("mean" if report.model_io.get("task") == "regression" else "class shares")


def _against_chance(report: "Report") -> str:
    if not report.test_chance_loss > 0 or not math.isfinite(report.test_loss):
        return ""
    return (f" ({report.test_loss / report.test_chance_loss:.0%} of the chance-level {report.test_chance_loss:.4g}, "
            f"always predicting {_prior(report)})")


def _scores(scores: dict[str, float]) -> str:
    """The more scores, R² named as against the test rows' own mean: beside a chance share against the
    development rows' mean, 'R² -0.34' and '80% of chance' read as opposite verdicts."""
    text = scoring.scores_text(scores)
    if "r2" not in scores:
        return text
    said = f"R² {scores['r2']:.4g}"
    return text.replace(said, f"{said} against the test rows' own mean")


def print_report(report: "Report", looks: list[dict[str, Any]], out: TextIO) -> None:
    """What reproduce prints: the final model, its one look at the test rows, the split models' alarm, where
    the model went and what it takes."""
    m = report.metric_name
    look = "one look" if len(looks) <= 1 else f"look {len(looks)}"
    lines = [f"  final model: all development rows, {report.epochs} epoch(s) ({report.epoch_rule})",
             *([f"  {report.epoch_note}"] if report.epoch_note else []),
             f"  test set ({look}): loss {report.test_loss:.4g}{_against_chance(report)}, {m} "
             f"{report.test_metric:.4g}" + (f" ({_scores(report.test_scores)})" if report.test_scores else ""),
             # A binary model's class is its probability at 0.5 or above: a rare class's recall of 0.05 is at that
             # threshold, which nothing said.
             *(["  recall by class (test rows of each class predicted as it"
                + (f"; class {report.model_io['classes'][1]!r} where its probability is 0.5 or more"
                   if report.model_io.get("task") == "binary" and len(report.model_io.get("classes") or []) == 2
                   else "") + "), lowest first: "
                f"{scoring.recall_text(report.recalls)}; precision and F1 by class in the run's "
                f"classification_report.txt, the confusion matrix in confusion_matrix.csv"] if report.recalls else []),
             f"  ensemble of the split models (averaged predictions): loss {report.ensemble_loss:.4g}, "
             f"{m} {report.ensemble_metric:.4g}"
             + (f" ({_scores(report.ensemble_scores)})" if report.ensemble_scores else ""),
             # Always right below the split models' ensemble, whichever optional lines come above.
             *([f"  ensemble of the final models of trials {', '.join(map(str, report.ensemble_trials))} "
                f"(averaged predictions, the same look): loss {report.top_ensemble_loss:.4g}, "
                f"{m} {report.top_ensemble_metric:.4g}"] if report.ensemble_trials else []),
             "  " + report.alarm.summary()]
    lines += looks_module.looks_text(looks)
    classes = len(report.model_io.get("classes") or report.recalls) or 2
    if report.class_weighted and report.test_loss >= report.test_chance_loss > 0:
        # The tool's own advice for rare classes (class_weight: balanced) moves the probabilities off the class
        # shares on purpose: its plain loss is then read against equal shares, what such a model aims at
        # when it has learned nothing (a stranger's was called "learned nothing" at a balanced accuracy of 0.69).
        equal = math.log(classes)
        lines.append(f"note: trained with class_weight: balanced, the final model's probabilities lean toward the "
                     f"rare classes on purpose, so its test loss {report.test_loss:.4g} is above the "
                     f"{report.test_chance_loss:.4g} of always predicting {_prior(report)}; "
                     + (f"it is also no better than the {equal:.4g} of predicting equal shares: it has learned "
                        f"nothing that holds" if report.test_loss >= equal else
                        f"against the {equal:.4g} of predicting equal shares, what such a model predicts when it "
                        f"has learned nothing, it has learned something")
                     + "; read the balanced accuracy and the recall by class")
    elif report.test_loss >= report.test_chance_loss > 0:
        lines.append(f"warning: the final model's test loss {report.test_loss:.4g} is no better than the "
                     f"{report.test_chance_loss:.4g} of always predicting {_prior(report)}: on the test rows it "
                     f"has learned nothing that holds (compare "
                     + ("the recall by class, and " if report.recalls else "")
                     + "the validation loss against chance in `search best`)")
    if report.alarm.fired:
        lines.append("warning: " + report.alarm.warning())
    lines.append(f"  MLflow run {report.run_id}: model at runs:/{report.run_id}/model, file final_model.keras; "
                 f"rows.csv has each row's place (test, each split's training or validation rows) and the test "
                 f"rows' predictions")
    if report.model_io:
        lines.append(served.line(report.model_io))
    if report.registered:
        lines.append(f"  registered as {report.registered} in MLflow's model registry "
                     f"(models:/{report.registered.replace(' version ', '/')})"
                     + (f": the final model of trial {report.trial} alone, not the ensemble of "
                        f"{len(report.ensemble_trials)} (a version is one model)"
                        if len(report.ensemble_trials) > 1 else ""))
    print("\n".join(lines), file=out)
