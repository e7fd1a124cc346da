"""The phased workflow's answer, in its own words: baseline to beat, smallest capacity that overfits, what
regularization bought there, and the final test.

Built from the Optuna storage alone (phase 0's losses, each trial's ``phase``, the pick, the ablation table
and the record of test looks are all study or trial attributes), so the terminal, ``search report`` and
the MLflow parent run say the same thing, with or without a tracking server.
"""
from __future__ import annotations

import html
import math
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from search._numbers import sig
from search.workflow import common_sense
from search.workflow.phases import PHASE0_ATTR, PHASE_ATTR, PICK_ATTR, settings_text
from search._redact import redact

_PHASE_COLORS = {1: "#1f77b4", 2: "#ff7f0e"}


@dataclass
class PhaseRow:
    phase: int
    trials: int = 0          # finished: complete or pruned
    complete: int = 0
    overfit: int = 0         # complete trials the fit rule calls overfit
    best_trial: int | None = None
    best_value: float = math.nan


@dataclass
class Answer:
    study: str
    baseline: dict[str, Any] | None
    rows: list[PhaseRow]
    pick: dict[str, Any] | None
    best: Any                                           # the best complete trial, or None
    ablation_trial: int | None = None
    ablation_rows: list[Any] = field(default_factory=list)
    look: dict[str, Any] | None = None                  # the last look at the test rows
    n_looks: int = 0


def summarize(study: Any) -> Answer:
    from search.reproduction import ablation

    rows = {p: PhaseRow(p) for p in (1, 2)}
    best = None
    for t in study.get_trials(deepcopy=False):
        row = rows.get(t.user_attrs.get(PHASE_ATTR))
        if row is None or t.state.name not in ("COMPLETE", "PRUNED"):
            continue
        row.trials += 1
        if t.state.name != "COMPLETE" or not t.values:
            continue
        row.complete += 1
        row.overfit += t.user_attrs.get("fit") == "overfit"
        if not t.values[0] >= row.best_value:  # also when best_value is still nan
            row.best_trial, row.best_value = t.number, float(t.values[0])
        if best is None or t.values[0] < best.values[0]:
            best = t
    picked, ablation_rows = ablation.stored_rows(study)
    looks = [look for look in study.user_attrs.get("test_looks", []) if isinstance(look, dict)]
    return Answer(study.study_name, study.user_attrs.get(PHASE0_ATTR), list(rows.values()),
                  study.user_attrs.get(PICK_ATTR), best, picked, ablation_rows, looks[-1] if looks else None,
                  len(looks))


def lines(answer: Answer) -> list[tuple[str, str]]:
    """(label, sentence) pairs: the answer as the terminal prints it and the report lists it."""
    out: list[tuple[str, str]] = []
    base = answer.baseline
    if base:
        out.append(("baseline to beat", f"{common_sense.text(base)} ({base['loss']}, no network, mean over the same "
                                         f"{base['n_splits']} splits)"))
    phase1, phase2 = answer.rows
    if answer.pick is None and phase1.trials == 0:
        out.append(("capacity", "phase 1 skipped: the space searches no capacity setting"
                    if phase2.trials else "no trial finished yet"))
    elif answer.pick is None:
        out.append(("capacity", f"phase 1 still running: {phase1.trials} trial(s) finished, "
                                f"{phase1.overfit} clearly overfit"))
    elif answer.pick["why"] == "overfit":
        size = f", {int(answer.pick['n_params']):,} parameters" if answer.pick.get("n_params") else ""
        out.append(("smallest capacity that overfits", f"trial {answer.pick['trial']} "
                    f"({settings_text(answer.pick['capacity'])}{size}), after {answer.pick['phase1_finished']} "
                    f"phase-1 trial(s) with every regularizer off"))
    else:
        out.append(("smallest capacity that overfits", f"none found in {answer.pick['phase1_finished']} phase-1 "
                    f"trial(s); phase 2 regularized the best one, trial {answer.pick['trial']} "
                    f"({settings_text(answer.pick['capacity'])}); widen the capacity ranges to find one"))
    if answer.best is not None:
        value, versus = float(answer.best.values[0]), common_sense.best(base) if base else math.nan
        against = ""
        if math.isfinite(versus):
            against = (f", {100 * (1 - value / versus):.0f} % below the better baseline ({versus:.4g})"
                       if value < versus else f": it does NOT beat the better baseline ({versus:.4g})")
        phase = answer.best.user_attrs.get(PHASE_ATTR, "?")
        out.append(("best network", f"trial {answer.best.number} (phase {phase}), validation loss "
                                    f"{value:.4g}{against}"))
    out.append(("what regularization bought", _bought(answer)))
    if answer.look is not None and "test_loss" in answer.look:
        out.append(("final test", f"trial {answer.look['trial']} retrained and tested once: test loss "
                                  f"{answer.look['test_loss']:.4g} (look {answer.n_looks} at the test rows)"))
    elif answer.look is not None:  # recorded before looks kept their loss: it is on the reproduce run in MLflow
        out.append(("final test", f"trial {answer.look['trial']} was tested (look {answer.n_looks} at the test "
                                  f"rows); its test loss is on its reproduce run in MLflow"))
    else:
        out.append(("final test", f"none yet: `search reproduce {answer.study}` retrains the pick and tests it once"))
    return out


def _bought(answer: Answer) -> str:
    from search.reproduction.ablation import ALL_OFF

    if answer.ablation_trial is None:
        return f"no ablation yet: `search ablate {answer.study}` switches the best trial's regularizers off"
    if not answer.ablation_rows:
        return f"trial {answer.ablation_trial} uses no regularizer: nothing to ablate"
    parts = []
    for r in answer.ablation_rows:
        spread = f" ± {sig(r.bought_se)}" if math.isfinite(r.bought_se) else ""
        parts.append(f"{r.label} {r.bought:+.4g}{spread}")
    where = ""
    if answer.pick is not None and answer.best is not None and answer.best.number == answer.ablation_trial:
        where = " at the picked capacity" if answer.best.user_attrs.get(PHASE_ATTR) == 2 else ""
    head = next((r for r in answer.ablation_rows if r.label == ALL_OFF), answer.ablation_rows[0])
    # By the margin the ablation's notes use, two paired standard errors: a gain of +0.0012 ± 0.0032 read as
    # "helped" right below a note that called it nothing measurable.
    noise = 2 * head.bought_se if math.isfinite(head.bought_se) else 0.0
    verdict = ("made no measurable difference" if abs(head.bought) < noise else
               "helped" if head.bought > 0 else "did not help")
    return (f"regularization {verdict}: switched off{where}, trial {answer.ablation_trial}'s validation loss "
            f"changes by " + "; ".join(parts) + " (off − on, mean over splits ± paired standard error)")


def table(answer: Answer) -> list[list[str]]:
    """One row per phase: what it searched, how many trials, its best."""
    head = ["phase", "what it searched", "trials", "complete", "overfit", "best trial", "best val loss"]
    rows = [head]
    if answer.baseline:
        rows.append(["0", "prior and linear model, no network", "-", "-", "-", "-",
                     common_sense.text(answer.baseline)])
    held = (f"capacity held at trial {answer.pick['trial']}'s" if answer.pick else
            "capacity to be held at phase 1's pick" if answer.rows[0].trials else "capacity as in the file")
    what = {1: "capacity and optimizer, regularizers off", 2: f"regularizers and optimizer, {held}"}
    for r in answer.rows:
        rows.append([str(r.phase), what[r.phase], str(r.trials), str(r.complete), str(r.overfit),
                     "-" if r.best_trial is None else str(r.best_trial),
                     "-" if not math.isfinite(r.best_value) else f"{r.best_value:.4g}"])
    return rows


def text(study: Any) -> str:
    answer = summarize(study)
    rows = table(answer)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    body = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([f"the universal workflow, study '{study.study_name}':"]
                     + [f"  {label}: {sentence}" for label, sentence in lines(answer)] + [""] + body)


def figure(study: Any) -> bytes | None:
    """Validation loss of every complete trial by trial number, coloured by phase; baselines as lines."""
    from search.review.figures import _figure, _png

    points: dict[int, tuple[list[int], list[float]]] = {p: ([], []) for p in (1, 2)}
    for t in study.get_trials(deepcopy=False):
        phase = t.user_attrs.get(PHASE_ATTR)
        if phase in points and t.state.name == "COMPLETE" and t.values and math.isfinite(t.values[0]):
            points[phase][0].append(t.number)
            points[phase][1].append(float(t.values[0]))
    if not any(xs for xs, _ in points.values()):
        return None
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    for phase, (xs, ys) in points.items():
        if xs:
            ax.scatter(xs, ys, s=22, color=_PHASE_COLORS[phase], label=f"phase {phase}")
    values = [y for _, ys in points.values() for y in ys]
    base = study.user_attrs.get(PHASE0_ATTR) or {}
    for name, style in (("linear", "--"), ("prior", ":")):
        level = base.get(name)
        if isinstance(level, (int, float)) and level <= 3 * max(values):  # a far-off prior would flatten the trials
            ax.axhline(level, color="grey", ls=style, lw=1, label=f"phase 0: {name} {level:.3g}")
    pick = study.user_attrs.get(PICK_ATTR)
    if pick:
        ax.axvline(pick["trial"], color="black", lw=0.6, ls="-.", label=f"phase 1 pick: trial {pick['trial']}")
    ax.set_xlabel("trial number")
    ax.set_ylabel("validation loss (mean over splits)")
    ax.set_title(f"study {study.study_name}: validation loss by phase", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9)
    return _png(fig)


def html_section(study: Any) -> str:
    """The report's section; empty for a study that did not use the phased workflow."""
    if study.user_attrs.get(PHASE0_ATTR) is None:
        return ""
    from search.review.report import _figure as embed

    e = html.escape
    answer = summarize(study)
    header, *rows = table(answer)
    parts = ["<h2>The universal workflow</h2><p>Phase 0: a baseline with no network; phase 1: capacity with "
             "every regularizer off until a model clearly overfits; phase 2: regularizers at that capacity.</p>",
             "<dl>" + "".join(f"<dt>{e(label)}</dt><dd>{e(sentence)}</dd>" for label, sentence in lines(answer))
             + "</dl>",
             "<div class='scroll'><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
             + "</table></div>"]
    png = figure(study)
    if png is not None:
        parts.append(embed("workflow", png, "Validation loss of each complete trial by trial number, coloured by "
                           "phase; grey lines: phase 0's baselines; the dash-dotted line marks phase 1's pick."))
    return "".join(parts)


def report_run(study: Any, options: Any, out: TextIO | None = None) -> None:
    """Print the answer at the end of ``search run`` and put it on the study's MLflow parent run."""
    print("\n" + text(study), file=out or sys.stdout)
    _log(study, options)


def _log(study: Any, options: Any) -> None:
    from search import tracking

    parent = study.user_attrs.get(tracking.PARENT_RUN_ATTR)
    if not parent:
        return
    try:
        import tempfile
        from pathlib import Path

        from mlflow.tracking import MlflowClient

        tracking.quiet_mlflow()
        client = MlflowClient(tracking_uri=options.tracking_uri or tracking.default_tracking_uri(options.home))
        with tempfile.TemporaryDirectory(prefix="search-workflow-") as tmp:
            (Path(tmp) / "workflow.txt").write_text(text(study) + "\n", encoding="utf-8")
            if (png := figure(study)) is not None:
                (Path(tmp) / "workflow.png").write_bytes(png)
            client.log_artifacts(parent, tmp, "study")
    except Exception as exc:  # a side channel: the answer is in the Optuna storage and on the terminal
        print(f"warning: could not log the workflow's answer to MLflow "
              f"({type(exc).__name__}: {redact(str(exc))[:200]})", file=sys.stderr)
