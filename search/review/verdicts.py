"""What the end of a run says beyond its table, also in `search status` and `search best`: why trials did
not complete, a study that learned nothing, a best trial still improving, the best loss against chance, and
regularizers the ablation found did not help."""
from __future__ import annotations

import math
from typing import Any

from search._numbers import sig
from search.review.display import first_line, failed_summary, headline_lines, pruned_summary, trial_rows


def peaked_at_end(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The split records that peaked at the last epoch they trained, neither stopped early nor pruned, where
    they are most of the trial's splits (else none): the best epoch is then where training ended."""
    at_end = [r for r in records if not r.get("stop_reason") and r.get("best_epoch") == r.get("epochs_run")]
    return at_end if len(at_end) * 2 > len(records) else []


def why_ended(study: Any) -> list[str]:
    """The lines that say why trials did not complete: pruned, failed (with their reasons), the baseline."""
    lines = [line for line in (pruned_summary(study), failed_summary(study)) if line]
    trials = study.get_trials(deepcopy=False)
    baselines = [t for t in trials if t.user_attrs.get("baseline")]
    if baselines and not any(t.state.name == "COMPLETE" for t in baselines) and \
            all(t.state.name in ("FAIL", "PRUNED") for t in baselines):
        t = baselines[-1]
        ended = "failed" if t.state.name == "FAIL" else "was pruned"
        reason = first_line(t.user_attrs.get("reason", "no reason recorded"))
        lines.append(f"the baseline (trial {t.number}, every regularizer off) {ended}: {reason}; the table has no "
                     f"unregularized trial to compare with")
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("fit")]
    all_underfit = bool(complete) and all(t.user_attrs["fit"] == "underfit" for t in complete)
    if all_underfit:
        # The table's gains over the baseline would otherwise read as progress: both sit near chance.
        share = _chance_share(study)
        base = ("predicting the training rows' mean" if study.user_attrs.get("task") == "regression" else
                "predicting the class shares" if study.user_attrs.get("task") else
                "predicting the class shares (or the mean)")
        where = (f"above the loss of {base}: the best trial's is {share:.0%} of it, worse than that base rate, so "
                 f"no trial learned it" if share is not None and share > 1.05 else
                 f"near the loss of {base}, so no trial learned much beyond the base rate")
        best = _single_best(study)
        records = (best.user_attrs.get("splits") or []) if best is not None else []
        # Still improving at its last epoch: more epochs first. A network that stopped improving near chance is
        # more often noisy data than too small a network (a stranger's churn table: a linear model did no better).
        advice = (f"The best trial ({best.number}) was still improving at its last epoch: train longer "
                  f"(train.epochs) or search a higher learning rate; then" if best is not None and
                  peaked_at_end(records) else "Check")
        lines.append(f"warning: every complete trial ({len(complete)}) is underfit: its validation loss stays "
                     f"{where}, and gains over the baseline are small steps near chance. {advice} "
                     f"{'check ' if advice != 'Check' else ''}that the features carry the signal (study.workflow: "
                     f"phased compares with a linear model, which noisy data does not beat either) before searching "
                     f"more capacity")
    elif (still := _still_improving(study)) is not None:
        lines.append(still)
    if (chance := against_chance(study, warn=not all_underfit)) is not None:  # that warning says it already
        lines.append(chance)
    from search.studies.lifecycle import picked_number

    stored = study.user_attrs.get("ablation") or {}
    if stored.get("trial") is not None and int(stored["trial"]) == picked_number(study):
        # An earlier best's table, from before the study was continued, is not the current best's: its note sat
        # above a table whose best was another trial until that one's ablation ran.
        from types import SimpleNamespace

        hurt = ablation_note(int(stored["trial"]), [SimpleNamespace(**r) for r in stored.get("rows", [])])
        if hurt:
            lines.append(hurt)
    return lines


def verdict(study: Any) -> list[str]:
    """What the terminal says below its table, for the report and the MLflow study run: why trials ended,
    the best against chance and the baseline, and what that gap may not be read as."""
    return why_ended(study) + headline_lines(trial_rows(study))


def _single_best(study: Any) -> Any:
    """The best trial of a one-objective study; None for two objectives or no complete trial."""
    if len(study.directions) != 1:
        return None
    try:
        return study.best_trial
    except ValueError:
        return None


def against_chance(study: Any, warn: bool = True) -> str | None:
    """The best trial's validation loss against what predicting the training rows' prior scores on the same
    rows: a loss means little alone (29.2 days² of a skewed target looked like progress at 1.6 % under
    chance), and for regression it gives the cross-validated R² a scikit-learn user reads first."""
    if (share := _chance_share(study)) is None:
        return None
    regression = study.user_attrs.get("task") == "regression"
    weighted = _weighted_equal(study) is not None
    prior = ("equal shares of the classes (the best trial is class-weighted: what such a model predicts when it "
             "has learned nothing)" if weighted else
             "the training rows' mean" if regression else "the training rows' class shares")
    r2 = f" (a cross-validated R² of {1 - share:.3g})" if regression else ""
    said = (f"the best trial's validation loss is {share:.0%} of the chance-level loss, that of always predicting "
            f"{prior} (mean over its splits, each on its own rows){r2}")
    if share <= 1 or not warn:
        return said
    # Above chance the best trial is worse than predicting the prior, and "← best so far" and the neutral
    # share read as progress (a stranger's 114 %).
    return (f"warning: {said}: worse than that prediction, so no trial learned anything that holds on its "
            f"validation rows; check the features carry the signal and the scaling of the inputs "
            f"(data.preprocess), and compare with study.workflow: phased, which starts from a linear model")


def _chance_share(study: Any) -> float | None:
    """The best trial's validation loss as a share of the chance-level loss on the same rows."""
    from search.review import diagnostics
    from search.review.summary import REFERENCE_ATTR, REFERENCES_ATTR

    if (best := _single_best(study)) is None:
        return None
    if (equal := _weighted_equal(study)) is not None and best.value is not None:
        return float(best.value) / equal
    attrs = study.user_attrs
    own = diagnostics.split_references_from_attr(attrs.get(REFERENCES_ATTR))
    splits = {int(s["split"]): float(s["best_val_loss"]) for s in best.user_attrs.get("splits") or []
              if math.isfinite(float(s.get("best_val_loss", math.nan)))}
    shares = [loss / own[k][1] for k, loss in splits.items() if k in own and own[k][1] > 0]
    if shares and len(shares) == len(splits):
        return sum(shares) / len(shares)
    if isinstance(attrs.get(REFERENCE_ATTR), (int, float)) and attrs[REFERENCE_ATTR] > 0 and best.value is not None:
        return float(best.value) / float(attrs[REFERENCE_ATTR])
    return None


def _weighted_equal(study: Any) -> float | None:
    """The loss of equal shares where the best trial trained class-weighted (train.class_weight: balanced): it
    leaves the class shares on purpose, and against them a stranger's best trial of validation ROC AUC 0.93 was
    said to have learned nothing."""
    from search.review import diagnostics

    best = _single_best(study)
    if best is None or not best.user_attrs.get(diagnostics.CLASS_WEIGHTED_ATTR):
        return None
    return diagnostics.equal_shares_loss(study)


# The ablation's row of every regularizer switched off (search/reproduction/ablation.py names it so).
ALL_OFF = "all regularizers"


def ablation_note(picked: int, rows: list[Any]) -> str:
    """A note where the picked trial's config scores better with all its regularizers off, beyond the noise
    of its splits: its gain over the unregularized baseline came from its other settings, and the headline
    "x % lower than the baseline" was read as what regularization bought."""
    # The same loss to the last digit on every split, with the same seeds: the switch changed nothing trained.
    idle = [r.label for r in rows if r.bought == 0 and (not math.isfinite(r.bought_se) or r.bought_se == 0)]
    said = (f"note: switching {', '.join(idle)} off left every split's validation loss of trial {picked} exactly "
            f"as it was: the model does not use {'that setting' if len(idle) == 1 else 'those settings'}? (A "
            f"builder of your own must apply each regularizer it declares under model.regularizers)" if idle else "")
    rest = _all_off_note(picked, [r for r in rows if r.label not in idle])
    # A variant with one regularizer off that scores better beyond the noise, where the all-off row said nothing
    # of it: a stranger's dropout-off variant beat the ablated best, 0.1066 against 0.1153, unremarked.
    harms = [r for r in rows if r.label not in (ALL_OFF, *idle) and r.bought < 0 and math.isfinite(r.bought_se)
             and r.bought_se > 0 and -r.bought >= 2 * r.bought_se and "one at a time" not in rest]
    each = ", ".join(f"{r.label} scores val_loss {r.val_loss:.4g} ({-r.bought:.4g} lower, ± {sig(r.bought_se)})"
                     for r in harms)
    hurt = (f"note: switched off alone, {each} against trial {picked} with it on: beyond two standard errors, so "
            f"here that regularizer cost more than it bought" if harms else "")
    return "\n".join(s for s in (said, rest, hurt) if s)


def _all_off_note(picked: int, rows: list[Any]) -> str:
    off = next((r for r in rows if r.label == ALL_OFF), None)
    if off is None or not math.isfinite(off.bought):
        return ""
    if math.isfinite(off.bought_se) and abs(off.bought) < 2 * off.bought_se:
        # A small negative 'bought' read as harm and a small positive one as a gain: neither is told apart.
        head = (f"note: with all its regularizers off, trial {picked}'s config scores val_loss {off.val_loss:.4g}, "
                f"{off.bought:+.4g} against it with them on: within two standard errors ({2 * off.bought_se:.2g}) "
                f"of no change")
        # One at a time some may be told apart (a stranger's dropout: +0.0042 ± 0.00065) while together they
        # were not: "nothing measurable" alone hid it.
        apart = [r for r in rows if r.label != ALL_OFF and math.isfinite(r.bought_se) and r.bought_se > 0
                 and abs(r.bought) >= 2 * r.bought_se]
        if not apart:
            return head + ", so over these splits the regularizers bought nothing measurable, neither gain nor harm"
        each = ", ".join(f"{r.label} {'bought' if r.bought > 0 else 'cost'} {abs(r.bought):.4g} "
                         f"(± {sig(r.bought_se)})" for r in apart)
        return (f"{head} together; one at a time, beyond two standard errors: {each} (the ablation's table), so "
                f"switched off together their effects offset or overlap")
    if not off.bought < 0:
        return ""
    return (f"note: the regularizers did not help trial {picked}: with all of them off its config scores val_loss "
            f"{off.val_loss:.4g}, {-off.bought:.4g} lower than with them on (the ablation's table); what it gains "
            f"over other trials comes from its other settings (learning rate, capacity, epochs), not from "
            f"regularization")


def _still_improving(study: Any) -> str | None:
    """The best trial peaked at the last epoch it trained in most of its splits, neither stopped early nor
    pruned: it was still improving, and more epochs would likely have made it better."""
    if (best := _single_best(study)) is None:
        return None
    records = best.user_attrs.get("splits") or []
    at_end = peaked_at_end(records)
    if not at_end:
        return None
    return (f"note: the best trial ({best.number}) peaked at its last epoch in {len(at_end)} of its {len(records)} "
            f"split(s): it was still improving when training ended; raise train.epochs (with "
            f"train.early_stopping, each split then stops where it peaks)")


# Failures that are not the settings' own, in words: the trial is closed or queued again, not wrong.


def test_looks(study: Any) -> str:
    """What the study's record of looks at its test rows says (search/reproduction/looks.py writes it): the
    morning review shows the test score `search reproduce` measured, and how often the rows were looked at."""
    from search.studies.looks import looks_from_other_studies

    every = [look for look in study.user_attrs.get("test_looks", []) if isinstance(look, dict)]
    looks = [look for look in every if not look.get("rows")]  # others were at the rows of data that changed
    elsewhere = (f" (and {len(every) - len(looks)} at the test rows of data changed since, "
                 f"--allow-data-change)") if len(every) > len(looks) else ""
    # Another study holding out the same rows (same data and seed, an ablation, an exported config) looked at
    # them too: a new study's "looked at 1 time" read as a fresh test set.
    others = looks_from_other_studies(study) if hasattr(study, "_storage") else []
    if others:
        names = ", ".join(f"'{name}'" for name in sorted({look["study"] for look in others}))
        elsewhere += f" ({len(others)} of them by study {names}, which holds out the same rows)"
        looks = sorted(looks + others, key=lambda look: str(look.get("time", "")))
    if not looks:
        return (f"test rows: not looked at yet{elsewhere}; `search reproduce {study.study_name}` retrains the "
                f"picked config on every development row and tests it once")
    last = looks[-1]
    loss = last.get("test_loss")
    score = f"test loss {loss:.4g}" if isinstance(loss, (int, float)) else "its test loss was not recorded"
    ensemble = f" (an ensemble of {last['ensemble']})" if int(last.get("ensemble", 1) or 1) > 1 else ""
    again = ("; every look after the first makes the test score less of a test, as a choice made on it "
             "is fitted to these rows") if len(looks) > 1 else ""
    of = f" of study '{last['study']}'" if last.get("study") else ""
    return (f"test rows: looked at {len(looks)} time(s){elsewhere}; the last, {last.get('time', '')}, of trial "
            f"{last.get('trial')}{of}{ensemble}: {score}{again}")
