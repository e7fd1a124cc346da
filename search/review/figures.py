"""Figures for reviewing a study: learning curves, the before/after picture, Optuna's plots.

Every function returns PNG bytes, so the MLflow tracker and the HTML report share
them. Matplotlib is imported lazily with the Agg backend (no display, no GUI toolkit); learning curves
use ``Figure`` directly rather than pyplot, which is faster; one such figure is kept and redrawn for
every trial (see ``_curves_axes``).
"""
from __future__ import annotations

import io
import math
import threading
import warnings
from typing import Any, Mapping, Sequence

from search.review import diagnostics

Histories = Mapping[int, Mapping[str, Sequence[float]]]

# 10 x 6 inches at 100 DPI: 1000 x 600 px, fonts of 11-13 pt stay legible when MLflow shows a figure
# inline at its column width.
DPI = 100
WIDTH, HEIGHT = 10.0, 6.0
FONT = 11
# Characters of a title line at FONT + 1 across a figure WIDTH wide, from the axes' left edge.
TITLE_CHARACTERS = 95
# Complete trials needed before parameter importances mean anything (fANOVA on fewer is noise).
MIN_TRIALS_FOR_IMPORTANCES = 5
OBJECTIVE_NAME = "validation loss (mean over splits)"
# A loss axis turns logarithmic when its values span more than this ratio.
_LOG_SPAN = 30.0
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_BASELINE_COLOR, _BEST_COLOR = "#d62728", "#1f77b4"


def _figure(width: float = WIDTH, height: float = HEIGHT) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _loss_axes(fig: Any, title: str) -> Any:
    """Axes for losses per epoch: integer epoch ticks, room on the right for a legend outside the curves."""
    from matplotlib.ticker import MaxNLocator

    fig.subplots_adjust(left=0.08, right=0.74, top=0.91, bottom=0.1)
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("loss", fontsize=FONT)
    _title(ax, title)
    ax.tick_params(labelsize=FONT - 1)
    ax.grid(alpha=0.3)
    return ax


def _finish_loss_axes(ax: Any, values: Sequence[float], **legend: Any) -> None:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > _LOG_SPAN:
        ax.set_yscale("log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=FONT - 1, **legend)


def _png(fig: Any, tight: bool = False) -> bytes:
    # A tight bounding box costs a second layout pass (twice the time): our own figures are laid out to
    # fit their fixed size instead, and only Optuna's, drawn rarely, get it.
    buf = io.BytesIO()
    # Fast zlib level: a line plot's PNG grows by a few kB and encodes in a fifth of the time.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None,
                pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _epochs(values: Sequence[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def learning_curves(histories: Histories, diagnosis: diagnostics.TrialDiagnosis, title: str,
                    fit: str | None = None) -> bytes:
    """Training (solid) and validation (dashed) loss per split; best epoch dotted, overfit onset marked.

    ``fit``: the trial's label when it differs from the curves' diagnosis (``n/a`` for a pruned trial).
    """
    from matplotlib.lines import Line2D

    with _CURVES_LOCK:
        fig, ax = _curves_axes(f"{title}  [fit: {fit or diagnosis.fit}]")
        values: list[float] = []
        by_split = {s.split: s for s in diagnosis.splits}
        for i, (k, h) in enumerate(sorted(histories.items())):
            color = _COLORS[i % len(_COLORS)]
            loss, val = _clean(h.get("loss", [])), _clean(h.get("val_loss", []))
            values += loss + val
            ax.plot(_epochs(loss), loss, color=color, lw=1.2)
            ax.plot(_epochs(val), val, color=color, lw=1.2, ls="--")
            d = by_split.get(k)
            if d is not None and d.best_epoch:
                ax.plot([d.best_epoch], [d.best_val_loss], "o", color=color, ms=6)
            if d is not None and d.onset is not None:
                ax.axvline(d.onset, color=color, ls=":", lw=1)
        handles = [Line2D([], [], color="k", lw=1.2, label="training"),
                   Line2D([], [], color="k", lw=1.2, ls="--", label="validation"),
                   Line2D([], [], color="k", marker="o", ls="", label="best epoch"),
                   Line2D([], [], color="k", ls=":", label="overfit onset")]
        handles += [Line2D([], [], color=_COLORS[i % len(_COLORS)], lw=3, label=f"split {k}")
                    for i, k in enumerate(sorted(histories))][:10]
        _finish_loss_axes(ax, values, handles=handles)
        return _png(fig)


# One figure for every trial's learning curves, its curves replaced each time: building a figure and
# its axes (ticks, spines, labels) was half the cost of drawing one, and one is drawn per trial.
_CURVES_LOCK = threading.Lock()
_curves: tuple[Any, Any] | None = None


def _curves_axes(title: str) -> tuple[Any, Any]:
    """The learning-curve figure and axes, emptied of the previous trial's curves, with this title."""
    global _curves
    if _curves is None:
        fig = _figure()
        _curves = fig, _loss_axes(fig, title)
        return _curves
    fig, ax = _curves
    for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
        artist.remove()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_yscale("linear")
    ax.relim()  # the previous trial's data limits must not widen this one's axes
    _title(ax, title)
    return fig, ax


def _title(ax: Any, title: str) -> None:
    """A title from the axes' left edge, wrapped to the figure's width: a run's name centred over the axes ran
    past both edges of the figure and lost its start, the trial's number ("03 layers=1 ..." for t003)."""
    import textwrap

    lines = textwrap.wrap(title, width=TITLE_CHARACTERS, break_on_hyphens=False) or [""]
    ax.set_title("\n".join(lines[:2]) + (" ..." if len(lines) > 2 else ""), fontsize=FONT + 1, loc="left")


def before_after(best: tuple[str, Histories, diagnostics.TrialDiagnosis],
                 baseline: tuple[str, Histories, diagnostics.TrialDiagnosis] | None) -> bytes:
    """The best trial's mean curves against the unregularized baseline's: how far regularization moved
    the point where validation loss turns up."""
    if baseline is None:
        title = "best trial (no finished baseline to compare with)"
    elif baseline[0] == best[0]:
        title = "the baseline (trial 0) is the best trial so far"
    else:
        title = "best trial vs the baseline (mean over splits)"
    fig = _figure()
    ax = _loss_axes(fig, title)
    values: list[float] = []
    same = baseline is not None and baseline[0] == best[0]
    runs = [(best, _BEST_COLOR)]
    if baseline is not None and not same:
        runs.insert(0, (baseline, _BASELINE_COLOR))
    for (name, histories, diagnosis), color in runs:
        short = name.split(" ", 1)[0] + (" (best)" if color == _BEST_COLOR else " (baseline)")
        loss = diagnostics.mean_curve(histories, "loss")
        val = diagnostics.mean_curve(histories, "val_loss")
        values += loss + val
        ax.plot(_epochs(loss), loss, color=color, lw=1.8, label=f"{short}: training")
        ax.plot(_epochs(val), val, color=color, lw=1.8, ls="--", label=f"{short}: validation")
        finite = [(v, e) for e, v in enumerate(val, start=1) if math.isfinite(v)]
        if finite:
            v, e = min(finite)
            ax.plot([e], [v], "o", color=color, ms=7)
        if diagnosis.onset is not None:
            ax.axvline(diagnosis.onset, color=color, ls=":", lw=1.2,
                       label=f"{short}: overfit onset (epoch {diagnosis.onset})")
    _finish_loss_axes(ax, values)
    return _png(fig)


def intermediate_values(curves: Sequence[tuple[str, str, Sequence[float]]], split: int = 0) -> bytes:
    """Every trial's validation loss per epoch on one split (the same rows in every trial), by outcome.

    ``curves``: (trial label, state, values). What Optuna's intermediate-values plot would show, per
    epoch: the objective reports ``split * 10000 + epoch`` steps, which squash Optuna's own plot.
    """
    fig = _figure()
    ax = _loss_axes(fig, f"validation loss per epoch, split {split}, every trial")
    values: list[float] = []
    styles = {"best": dict(color=_BEST_COLOR, lw=2.4, zorder=3), "complete": dict(color="#2ca02c", lw=1.0, alpha=0.7),
              "pruned": dict(color="#7f7f7f", lw=1.0, alpha=0.6, ls="--"),
              "baseline": dict(color=_BASELINE_COLOR, lw=1.8, zorder=2)}
    shown: set[str] = set()
    for label, state, curve in curves:
        curve = _clean(curve)
        values += curve
        kind = state if state in styles else "complete"
        name = label if kind in ("best", "baseline") else kind
        ax.plot(_epochs(curve), curve, label=None if name in shown else name, **styles[kind])
        shown.add(name)
    _finish_loss_axes(ax, values)
    return _png(fig)


# -- Optuna's plots ---------------------------------------------------------------------------------
OPTUNA_PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")


def optuna_pngs(study: Any, seed: int = 0) -> dict[str, bytes]:
    """Optuna's matplotlib figures for the study; a plot with nothing to show is left out."""
    try:
        return _optuna_pngs(study, seed)
    finally:
        _forget_fanova_caches()


def _optuna_pngs(study: Any, seed: int) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from optuna.visualization import matplotlib as ovm

    out: dict[str, bytes] = {}
    for name, args in _optuna_calls(study, seed):
        # rc_context: Optuna switches matplotlib to its "ggplot" style, which must not outlive the call.
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # ExperimentalWarning, and "no trials" notices
            try:
                axes = getattr(ovm, f"plot_{name}")(study, **args)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. too few trials for importances
            fig = _styled(np.atleast_1d(axes).flat[0].figure, name)
            try:
                if fig.axes and any(ax.has_data() for ax in fig.axes):
                    fig.tight_layout()  # within the full size: a tight bounding box would crop it smaller
                    out[name] = _png(fig)
            finally:
                plt.close(fig)
    return out


def _styled(fig: Any, name: str) -> Any:
    """An Optuna figure at the report's size and fonts."""
    fig.set_size_inches(WIDTH, HEIGHT)
    if name == "optimization_history":  # trial numbers: 0.5 and 2.5 were ticks on a few trials' axis
        from matplotlib.ticker import MaxNLocator

        fig.axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in fig.axes:
        ax.title.set_fontsize(FONT + 2)
        ax.xaxis.label.set_fontsize(FONT)
        ax.yaxis.label.set_fontsize(FONT)
        ax.tick_params(labelsize=FONT - 1)
    return fig


def _forget_fanova_caches() -> None:
    """Empty the memo tables of Optuna's fANOVA trees.

    ``_FanovaTree`` memoizes per (tree, node) in class-level ``lru_cache(maxsize=None)`` tables that are
    never cleared, so every importance plot would keep its whole forest alive: about 0.5 MB per refresh
    over a night of trials.
    """
    try:
        from optuna.importance._fanova._tree import _FanovaTree
    except ImportError:  # a later Optuna moved it; nothing of ours to clean
        return
    for attr in vars(_FanovaTree).values():
        target = attr.fget if isinstance(attr, property) else attr
        clear = getattr(target, "cache_clear", None)
        if clear is not None:
            clear()


def _optuna_calls(study: Any, seed: int) -> list[tuple[str, dict[str, Any]]]:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    named = {"target_name": OBJECTIVE_NAME}  # not Optuna's "Objective Value"
    calls: list[tuple[str, dict[str, Any]]] = [("optimization_history", dict(named))]
    searched = {name for t in complete for name in t.params}
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCES and searched:
        # Seeded, so the same study always shows the same importances.
        calls.append(("param_importances", {"evaluator": FanovaImportanceEvaluator(seed=seed), **named}))
    if len(complete) >= 2 and searched:
        calls.append(("parallel_coordinate", dict(named)))
        calls.append(("slice", dict(named)))
    return calls


def ablation_bars(labels: Sequence[str], bought: Sequence[float], errors: Sequence[float], title: str) -> bytes:
    """What each regularizer bought: the rise of the validation loss when it is switched off, ± two standard
    errors, the margin the notes judge by: ± one drew a bar clear of zero that the note called no change."""
    fig = _figure(7.0, 0.6 * len(labels) + 1.6)
    ax = fig.add_subplot()
    y = list(range(len(labels)))
    errs = [2 * e if math.isfinite(e) else 0.0 for e in errors]
    ax.barh(y, bought, xerr=errs, color=[_BEST_COLOR if b > 0 else _BASELINE_COLOR for b in bought], capsize=4)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("validation loss bought (switched off − on), mean over splits ± 2 standard errors")
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.3, right=0.97, bottom=0.6 / (0.6 * len(labels) + 1.6) + 0.15, top=0.85)
    return _png(fig)
