"""Figures for reviewing a study: learning curves, the before/after picture, Optuna's plots.

Every function returns PNG bytes (or HTML text), so the MLflow tracker and the HTML report share
them. Matplotlib is imported lazily with the Agg backend (no display, no GUI toolkit); learning curves
use ``Figure`` directly rather than pyplot, which is faster and keeps no global state between trials.
"""
from __future__ import annotations

import io
import math
import warnings
from typing import Any, Mapping, Sequence

from search.review import diagnostics

Histories = Mapping[int, Mapping[str, Sequence[float]]]

DPI = 80
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_BASELINE_COLOR, _BEST_COLOR = "#d62728", "#1f77b4"


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, tight: bool = False) -> bytes:
    # A tight bounding box costs a second layout pass (twice the time): our own figures are laid out to
    # fit their fixed size instead, and only Optuna's, drawn rarely, get it.
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _epochs(values: Sequence[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def _clean(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def learning_curves(histories: Histories, diagnosis: diagnostics.TrialDiagnosis, title: str) -> bytes:
    """Training (solid) and validation (dashed) loss per split; best epoch dotted, overfit onset marked."""
    from matplotlib.lines import Line2D

    fig = _figure()
    ax = fig.add_subplot()
    by_split = {s.split: s for s in diagnosis.splits}
    for i, (k, h) in enumerate(sorted(histories.items())):
        color = _COLORS[i % len(_COLORS)]
        loss, val = _clean(h.get("loss", [])), _clean(h.get("val_loss", []))
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
                for i, k in enumerate(sorted(histories))][:6]
    ax.legend(handles=handles, fontsize=7, ncol=2, loc="upper right")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}  [fit: {diagnosis.fit}]", fontsize=9)
    ax.grid(alpha=0.3)
    return _png(fig)


def before_after(best: tuple[str, Histories, diagnostics.TrialDiagnosis],
                 baseline: tuple[str, Histories, diagnostics.TrialDiagnosis] | None) -> bytes:
    """The best trial's mean curves against the unregularized baseline's: how far regularization moved
    the point where validation loss turns up."""
    fig = _figure(7.0, 4.4)
    ax = fig.add_subplot()
    same = baseline is not None and baseline[0] == best[0]
    runs = [(best, _BEST_COLOR)]
    if baseline is not None and not same:
        runs.insert(0, (baseline, _BASELINE_COLOR))
    for (name, histories, diagnosis), color in runs:
        loss = diagnostics.mean_curve(histories, "loss")
        val = diagnostics.mean_curve(histories, "val_loss")
        ax.plot(_epochs(loss), loss, color=color, lw=1.5, label=f"{name}: training")
        ax.plot(_epochs(val), val, color=color, lw=1.5, ls="--", label=f"{name}: validation")
        finite = [(v, e) for e, v in enumerate(val, start=1) if math.isfinite(v)]
        if finite:
            v, e = min(finite)
            ax.plot([e], [v], "o", color=color, ms=7)
        if diagnosis.onset is not None:
            ax.axvline(diagnosis.onset, color=color, ls=":", lw=1.2,
                       label=f"{name}: overfit onset (epoch {diagnosis.onset})")
    if baseline is None:
        title = "best trial (no finished baseline to compare with)"
    elif same:
        title = "the baseline (trial 0) is the best trial so far"
    else:
        title = "best trial vs the baseline (mean over splits)"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
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
            fig = np.atleast_1d(axes).flat[0].figure
            try:
                if fig.axes and any(ax.has_data() for ax in fig.axes):
                    out[name] = _png(fig, tight=True)
            finally:
                plt.close(fig)
    return out


def optuna_html(study: Any, seed: int = 0) -> str | None:
    """The same plots as Optuna's interactive plotly figures, in one self-contained HTML page (plotly.js
    is embedded: it opens offline). None when plotly is not installed."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        return None
    try:
        return _optuna_html(study, seed)
    finally:
        _forget_fanova_caches()


def _optuna_html(study: Any, seed: int) -> str | None:
    import optuna.visualization as ov

    parts = []
    first = True
    for name, args in _optuna_calls(study, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fig = getattr(ov, f"plot_{name}")(study, **args)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue
        if not fig.data:
            continue
        parts.append(f"<h2>{name.replace('_', ' ')}</h2>" +
                     fig.to_html(full_html=False, include_plotlyjs=True if first else False))
        first = False
    if not parts:
        return None
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Optuna</title></head><body>"
            + "".join(parts) + "</body></html>")


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
    calls: list[tuple[str, dict[str, Any]]] = [("optimization_history", {})]
    searched = {name for t in complete for name in t.params}
    if len(complete) >= 2 and searched:
        # Seeded, so the same study always shows the same importances.
        calls.append(("param_importances", {"evaluator": FanovaImportanceEvaluator(seed=seed)}))
        calls.append(("parallel_coordinate", {}))
        calls.append(("slice", {}))
    return calls


def ablation_bars(labels: Sequence[str], bought: Sequence[float], errors: Sequence[float], title: str) -> bytes:
    """What each regularizer bought: the rise of the validation loss when it is switched off, ± its error."""
    fig = _figure(7.0, 0.6 * len(labels) + 1.6)
    ax = fig.add_subplot()
    y = list(range(len(labels)))
    errs = [e if math.isfinite(e) else 0.0 for e in errors]
    ax.barh(y, bought, xerr=errs, color=[_BEST_COLOR if b > 0 else _BASELINE_COLOR for b in bought], capsize=4)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("validation loss bought (switched off − on), mean over splits")
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.3, right=0.97, bottom=0.6 / (0.6 * len(labels) + 1.6) + 0.15, top=0.85)
    return _png(fig)
