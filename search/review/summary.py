"""What a reviewer sees of a study: readable trial names, the study's description, the top-trials table,
study metrics and the study figures.

Built from Optuna trials alone (each trial keeps its loss curves and diagnosis as user attributes), so
the MLflow parent run and ``search report`` show the same content, and a report needs no MLflow.
"""
from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from search.review import diagnostics

CURVES_ATTR = "curves"                 # trial: {"0": {"loss": [...], "val_loss": [...]}, ...}
PATIENCE_ATTR = "fit_patience"         # trial: the patience its overfit onset was found with
DESCRIPTION_ATTR = "description"       # study: [[label, text], ...]
REFERENCE_ATTR = "reference_loss"      # study: chance-level loss of the development rows
REFERENCES_ATTR = "reference_losses"   # study: each split's, {"0": [training rows, validation rows]}
_CURVE_KEYS = ("loss", "val_loss")
_NAME_LIMIT = 200


# -- names --------------------------------------------------------------------------------------------
def trial_label(number: int, params: Mapping[str, Any], baseline: bool = False) -> str:
    """``t007 dropout=0.31 l2=3e-4``: the trial number and what was sampled, short enough to scan.

    ``params`` are Optuna's (dotted space names); a switched-off ``or_off`` setting shows as ``=off``.
    """
    head = f"t{number:03d}"
    if baseline:
        return head + " baseline"
    values: dict[str, str] = {}
    for name, value in params.items():
        if name.endswith(".on"):
            if not value:
                values[name[:-3]] = "off"
            continue
        values.setdefault(name, format_value(value))
    shorts = [n.rsplit(".", 1)[-1] for n in values]
    parts = [f"{s if shorts.count(s) == 1 else n}={v}" for (n, v), s in zip(values.items(), shorts)]
    label = " ".join([head, *parts])
    return label if len(label) <= _NAME_LIMIT else label[:_NAME_LIMIT - 1] + "…"


def outcome_label(number: int, params: Mapping[str, Any], baseline: bool, state: str, value: float = math.nan,
                  reason: str = "", best: bool = False) -> str:
    """A finished trial's run name, outcome first so that a cut-off name still tells it:
    ``t016 ★ 0.0626 dropout=0.3``, ``t004 pruned s0e5 dropout=0.1``, ``t007 failed …``."""
    head, _, rest = trial_label(number, params, baseline).partition(" ")
    if state == "complete":
        outcome = ("★ " if best else "") + (f"{value:.4g}" if math.isfinite(value) else "complete")
    elif state == "pruned":
        kind, _, _, short = prune_where(reason)
        outcome = short if kind == "diverged" else f"pruned {short}".strip()
    else:
        outcome = {"failed": "failed", "interrupted": "stopped"}.get(state, state)
    label = " ".join(x for x in (head, outcome, rest) if x)
    return label if len(label) <= _NAME_LIMIT else label[:_NAME_LIMIT - 1] + "…"


_PRUNE_PATTERNS = (("within", re.compile(r"pruned in split (\d+) at epoch (\d+)")),
                   # "of 3 splits trained together": the words of studies run before the reason said more
                   ("fused", re.compile(r"pruned at epoch (\d+) (?:of|\(all) (\d+) splits,? trained together")),
                   ("across", re.compile(r"pruned after (?:split )?(\d+) of (\d+)")),
                   ("diverged", re.compile(r"non-finite loss in split (\d+) at epoch (\d+)")))


def prune_where(reason: str) -> tuple[str, int, int, str]:
    """Where a trial was pruned, read from its ``reason``: (kind, split, epoch, short text).

    kind is "within" (a split's curve, at split/epoch), "fused" (every split's curve at once, at
    epoch/number of splits, given in that order), "across" (after ``split`` finished splits of
    ``epoch``), "diverged" (non-finite loss at split/epoch) or "" when the reason says neither.
    """
    for kind, pattern in _PRUNE_PATTERNS:
        match = pattern.search(reason or "")
        if match:
            a, b = int(match.group(1)), int(match.group(2))
            short = {"within": f"s{a}e{b}", "fused": f"e{a}", "across": f"after {a}/{b} splits",
                     "diverged": f"diverged s{a}e{b}"}[kind]
            return (kind, b, a, short) if kind == "fused" else (kind, a, b, short)
    return "", -1, -1, ""


def format_value(value: Any) -> str:
    """Two significant digits, exponents without padding: 0.31, 3e-4, 128, true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return f"{value:g}"
        if 1e-2 <= abs(value) < 100:
            return f"{value:.2g}"
        if 100 <= abs(value) < 1e5:
            return f"{value:.0f}"
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return str(value)


# -- the study's description ---------------------------------------------------------------------------
def describe(space: Any, attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the study searched and how it validated, as (label, text) lines."""
    from search.space import is_distribution

    searched, fixed = [], []
    for name, value in space.leaves().items():
        if is_distribution(value):
            searched.append(f"{name} {_distribution_text(value)}")
        else:
            fixed.append(f"{name}={format_value(value)}")
    v, d, s = space.validation, space.data, space.study
    task = attrs.get("task", d.task)
    classification = task in ("binary", "multiclass", "classification")
    scheme = {"holdout": f"hold-out ({v.fraction:g} of the development rows validate)",
              "kfold": f"{v.k}-fold cross-validation",
              "iterated_kfold": f"iterated {v.k}-fold cross-validation, {v.repeats} "
                                f"repeat{'s' if v.repeats != 1 else ''} reshuffled",
              "group_kfold": f"group {v.k}-fold cross-validation (groups from '{d.group}' never split)",
              "time_series": f"time-series {v.k}-fold (train on the past"
                             + (f", at most {v.max_train_size} times of it" if v.max_train_size else "")
                             + ", validate on the next block" + (f" of {v.val_size}" if v.val_size else "")
                             + (f" after a gap of {v.gap}" if v.gap else "") + ")"}[v.scheme]
    # A regression target has no classes: stratify is ignored there (and warned about), whatever it says.
    # As splits.should_stratify decides: an unshuffled hold-out takes the last rows, with nothing to stratify.
    unshuffled_holdout = v.scheme == "holdout" and v.shuffle is False
    stratify = classification and (v.stratify if v.stratify is not None else
                                   v.scheme != "time_series" and not unshuffled_holdout)
    shuffle = v.shuffle if v.shuffle is not None else v.scheme != "time_series"
    how = ", ".join(x for x in ("stratified" if stratify else "", "shuffled" if shuffle else "") if x)
    rows = attrs.get("rows")
    test = attrs.get("test_rows")
    # The development rows as the splits have them: a time-series gap before the test rows leaves some out.
    kept = attrs.get("dev_rows", int(rows) - int(test) if rows is not None and test is not None else None)
    dev = f" on {int(kept)} development rows" if kept is not None else ""
    lines = [
        ("Searched", "; ".join(searched) or "nothing (every setting fixed)"),
        ("Fixed", ", ".join(fixed)),
        ("Validation", f"{scheme}{f' ({how})' if how else ''}{dev}; "
                       f"{attrs.get('n_splits', '?')} split{'' if attrs.get('n_splits') == 1 else 's'}, the same rows "
                       f"in every trial"),
        ("Test rows", (f"{test if test is not None else '?'} provided by "
                       + (f"data.test {d.test}" if d.test else f"data.split_column '{d.split_column}'")
                       + ", never seen by any trial") if d.provided_test else
                      f"{test if test is not None else f'{d.test_fraction:g} of the rows'} held out "
                      f"(test_size {d.test_fraction:g}), never seen by any trial"),
        ("Data", f"{d.source}, task {task}, preprocess {d.preprocess}"),
        ("Objective", "minimize the mean over splits of each split's best validation loss"
                      + (f", and the model's {s.objectives[1]} (two objectives: the Pareto front, the one_se "
                         f"pick)" if s.multi_objective else "")),
        ("Study", f"sampler {s.sampler} (seed {s.seed}), pruner "
                  + ("none (a study of two objectives is never pruned)" if s.multi_objective else s.pruner)
                  + f", budget {s.n_trials} trials" + (_baseline_text(space) if s.baseline else "")),
    ]
    return lines


def description_markdown(title: str, lines: Sequence[Sequence[str]]) -> str:
    return f"**Study {title}**\n\n" + "\n".join(f"- **{label}**: {text}" for label, text in lines)


def _distribution_text(dist: Mapping[str, Any]) -> str:
    if "choice" in dist:
        return "in {" + ", ".join(format_value(c) for c in dist["choice"]) + "}"
    kind = "int" if "int" in dist else "float"
    lo, hi = dist[kind]
    text = f"{'log-' if dist.get('log') else ''}{kind} [{format_value(lo)}, {format_value(hi)}]"
    if dist.get("step"):
        text += f" step {format_value(dist['step'])}"
    return text + (" or off" if dist.get("or_off") else "")


# -- curves kept with each trial -------------------------------------------------------------------------
def compact_curves(histories: Mapping[int, Mapping[str, Sequence[float]]]) -> dict[str, dict[str, list]]:
    """Training and validation loss per split, 5 significant digits, JSON-safe (None for NaN)."""
    return {str(k): {key: [float(f"{v:.5g}") if math.isfinite(v) else None for v in h.get(key, [])]
                     for key in _CURVE_KEYS}
            for k, h in histories.items()}


def curves_of(trial: Any) -> dict[int, dict[str, list[float]]]:
    stored = trial.user_attrs.get(CURVES_ATTR) or {}
    return {int(k): {key: [math.nan if v is None else float(v) for v in h.get(key, [])] for key in _CURVE_KEYS}
            for k, h in stored.items()}


def is_baseline(trial: Any) -> bool:
    return bool(trial.user_attrs.get("baseline"))


def label_of(trial: Any) -> str:
    return trial_label(trial.number, trial.params, is_baseline(trial))


# -- the study review -----------------------------------------------------------------------------------
# The study run's notes where its figures were not drawn.
FIGURES_OFF_NOTE = ("No figures: this run was started with `--figures off` (or $SEARCH_FIGURES=off). "
                    "`search report` draws them from the study; the table beside this note is current.")


@dataclass
class Review:
    title: str
    description: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    metrics: dict[str, float]
    figures: dict[str, bytes] = field(default_factory=dict)        # study figures: name -> PNG
    notes: list[str] = field(default_factory=list)                 # why a figure is missing
    trial_figures: dict[str, bytes] = field(default_factory=dict)  # run name -> learning curves PNG

    def table(self, raw: bool = False) -> list[list[str]]:
        """Header and rows of the top-trials table; ``raw`` keeps full float precision."""
        columns = _columns(self.rows)
        return [columns] + [[_cell(r, c, raw) for c in columns] for r in self.rows]

    def csv(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(self.table(raw=True))
        return buf.getvalue()

    def markdown(self) -> str:
        if not self.rows:
            return "no completed trials yet\n"
        header, *rows = self.table()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines) + "\n"


_FIXED_COLUMNS = ("rank", "trial", "name", "val_loss", "val_loss_std", "metric", "fit", "gap", "overfit_onset",
                  "best_epoch_mean", "still_improving")


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    params = sorted({k for r in rows for k in r["params"]})
    metric = f"val_{rows[0]['metric_name']}" if rows else "metric"
    auc = any(math.isfinite(r.get("val_roc_auc", math.nan)) for r in rows)  # a binary task's
    columns = [metric if c == "metric" else c for c in _FIXED_COLUMNS]
    return columns[:6] + (["val_roc_auc", "val_average_precision"] if auc else []) + columns[6:] + params


def _cell(row: Mapping[str, Any], column: str, raw: bool = False) -> str:
    if column in row["params"]:
        value = row["params"][column]
    elif column.startswith("val_") and column not in row:  # the task metric's column
        value = row["metric"]
    else:
        value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and not raw:
        return f"{value:.4g}"
    return str(value)


def snapshot(trials: Iterable[Any]) -> Any:
    """An in-memory study holding copies of the finished trials, for Optuna's plotting functions.

    The tracker passes the trial in flight as complete already, so a refresh shows it.
    """
    import optuna

    from search.review import figures

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    with warnings.catch_warnings():  # ExperimentalWarning: a stable name since Optuna 3.2
        warnings.simplefilter("ignore")
        study.set_metric_names([figures.OBJECTIVE_NAME])  # Optuna's axes then say what the value is
    keep = [_loss_only(t) for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")]
    study.add_trials(keep)
    return study


def _loss_only(trial: Any) -> Any:
    """A two-objective trial as the review sees it: its loss (the first value) alone."""
    if trial.values is None or len(trial.values) == 1:
        return trial
    import copy

    one = copy.deepcopy(trial)
    one.values = trial.values[:1]
    return one


def build(trials: Sequence[Any], title: str, description: Sequence[Sequence[str]] = (), seed: int = 0,
          reference: float | None = None, top: int = 10, trial_figures: int = 0,
          split_references: dict[int, tuple[float, float]] | None = None, draw: bool = True) -> Review:
    """The review of a study whose trials (Optuna ``FrozenTrial``s) are given.

    ``trial_figures``: also draw the learning curves of this many top trials (and the baseline).
    ``draw``: False leaves every figure out (a run with ``--figures off``): the table, metrics and notes only.
    """
    from search.review import figures
    from search.review.display import trial_rows

    study = snapshot(trials)
    rows = [_row(study, r) for r in trial_rows(study, top)]
    review = Review(title, [(str(x[0]), str(x[1])) for x in description], rows, _metrics(trials, study))
    if not draw:
        review.notes.append(FIGURES_OFF_NOTE)
        return review
    complete = sorted((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"),
                      key=lambda t: t.value)
    # Trials from before curves were kept have none: they are left out of the curve figures.
    curved = [t for t in complete if t.user_attrs.get(CURVES_ATTR)]
    if curved:
        base = next((t for t in curved if is_baseline(t)), None)
        review.figures["before_after"] = figures.before_after(
            curves_and_diagnosis(curved[0], reference, split_references),
            curves_and_diagnosis(base, reference, split_references) if base is not None else None)
    review.figures.update(figures.optuna_pngs(study, seed))
    if len(complete) < figures.MIN_TRIALS_FOR_IMPORTANCES:
        review.notes.append(f"No parameter importances yet: {len(complete)} complete trial(s), and fANOVA on "
                            f"fewer than {figures.MIN_TRIALS_FOR_IMPORTANCES} ranks noise.")
    split0 = [(t, curves_of(t).get(0, {}).get("val_loss", []))
              for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]
    split0 = [(t, c) for t, c in split0 if c]
    if split0:
        best_number = complete[0].number if complete else -1
        review.figures["intermediate_values"] = figures.intermediate_values(
            [(label_of(t).split(" ", 1)[0] + (" (best)" if t.number == best_number else " (baseline)"),
              "best" if t.number == best_number else "baseline" if is_baseline(t) else t.state.name.lower(), c)
             for t, c in split0])
    chosen = curved[:trial_figures]
    chosen += [t for t in curved if is_baseline(t) and t not in chosen] if trial_figures else []
    for t in chosen:
        name, curves, diagnosis = curves_and_diagnosis(t, reference, split_references)
        review.trial_figures[name] = figures.learning_curves(curves, diagnosis, name)
    return review


def curves_and_diagnosis(trial: Any, reference: float | None,
                          split_references: dict[int, tuple[float, float]] | None = None) -> tuple[str, Any, Any]:
    curves = curves_of(trial)
    patience = int(trial.user_attrs.get(PATIENCE_ATTR, diagnostics.DEFAULT_PATIENCE))
    return label_of(trial), curves, diagnostics.diagnose_trial(curves, reference, patience, split_references)


def _row(study: Any, row: dict[str, Any]) -> dict[str, Any]:
    from search.review.verdicts import peaked_at_end

    t = next(t for t in study.get_trials(deepcopy=False) if t.number == row["trial"])
    attrs = t.user_attrs
    return {"rank": row["rank"], "trial": t.number, "name": label_of(t), "val_loss": row["value"],
            "val_loss_std": row["std"], "metric": row["metric_value"], "metric_name": row["metric"],
            "val_roc_auc": row.get("roc_auc", math.nan),
            "val_average_precision": row.get("average_precision", math.nan),
            "fit": attrs.get("fit", ""), "gap": attrs.get("gap_mean"), "overfit_onset": attrs.get("overfit_onset"),
            "best_epoch_mean": attrs.get("best_epoch_mean"),
            # Beside the fit, which calls a trial cut off by train.epochs good: a runner-up that would likely pass
            # the best with more epochs was a tag in MLflow only (the `still_improving` of its run).
            "still_improving": "yes" if peaked_at_end(attrs.get("splits") or []) else "",
            "baseline": row["baseline"], "params": row["params"]}


def _metrics(trials: Sequence[Any], study: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for state, name in (("COMPLETE", "complete"), ("PRUNED", "pruned"), ("FAIL", "failed"), ("RUNNING", "running")):
        out[f"trials_{name}"] = float(sum(1 for t in trials if t.state.name == state))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if complete:
        best = min(complete, key=lambda t: t.value)
        out["best_value"], out["best_trial"] = float(best.value), float(best.number)
        base = next((t for t in complete if is_baseline(t)), None)
        if base is not None:
            out["baseline_value"] = float(base.value)
            if base.value:
                out["improvement_vs_baseline_pct"] = (base.value - best.value) / base.value * 100
                # Its noise beside it, for a reader of the metrics alone (a table scripted from search_runs): two
                # standard errors of the two means over their splits, the band within which the gain is not
                # told apart from chance (the terminal's and the description's "within the noise").
                errors = [t.user_attrs.get("val_loss_std", math.nan) / math.sqrt(n) for t in (best, base)
                          if (n := len(t.user_attrs.get("splits") or [])) > 1]
                if len(errors) == 2 and all(math.isfinite(e) for e in errors):
                    band = 2 * math.sqrt(errors[0] ** 2 + errors[1] ** 2)
                    out["improvement_vs_baseline_noise_pct"] = band / base.value * 100
        fits = [t.user_attrs.get("fit") for t in complete]
        for fit in ("underfit", "good", "overfit"):
            out[f"fit_{fit}"] = float(fits.count(fit))
    return out


def _baseline_text(space: Any) -> str:
    if not space.declares_regularizers:
        return ("; trial 0 is the baseline at each range's default, else its middle (the custom family declares no "
                "regularizers)")
    kept = space.fixed_regularizers()
    if kept:
        return ("; trial 0 is the baseline with the searched regularizers off ("
                + ", ".join(f"{k.removeprefix('model.')}={format_value(v)}" for k, v in kept.items())
                + " fixed on by the file)")
    return "; trial 0 is the unregularized baseline"

