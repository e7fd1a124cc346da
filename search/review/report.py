"""``search report STUDY``: the study's review as one self-contained HTML file, for sharing outside MLflow.

Figures are embedded as base64 PNGs and the page carries no script; its Content-Security-Policy
forbids every load but inline images and styles, so the file opens the same offline, from a mail
attachment or a file share, and can never reach the network.
"""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from search import review
from search.review import diagnostics, verdicts
from search._redact import redact
from search.errors import StudyError
from search.review import figures

TRIAL_FIGURES = 5   # learning curves of the top trials shown (the baseline is added)
_CAPTIONS = {
    "before_after": "Before/after: the best trial's training (solid) and validation (dashed) loss against the "
                    "baseline's (trial 0: every searched regularizer off), mean over splits; dots mark the best epoch, "
                    "dotted lines where "
                    "validation loss turned up.",
    "optimization_history": "Optuna: the objective of every trial and the best so far.",
    "param_importances": "Optuna: how much of the objective's variation each setting explains (fANOVA).",
    "parallel_coordinate": "Optuna: every complete trial's settings and objective.",
    "slice": "Optuna: the objective against each setting.",
    "intermediate_values": "Every trial's validation loss per epoch on split 0 (the same rows in every trial): "
                           "pruned trials dashed grey, where the pruner stopped them.",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f4f4f4}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
dl{display:grid;grid-template-columns:max-content auto;gap:.3em 1em}dt{font-weight:bold}dd{margin:0}
.scroll{overflow-x:auto;max-width:100%}.fit-overfit{color:#b00}.fit-underfit{color:#a60}.fit-good{color:#070}
p.caveat{margin:-.6em 0 .6em 1.5em;color:#555}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def write(study: Any, out: Path, top: int = 10, extra: str = "", flag: str = "--out") -> Path:
    """Build the study's review from its storage and write the HTML file; returns its path.

    ``extra``: more HTML sections, made by outer rooms (the phased workflow's answer); ``flag``: how the caller
    names ``out`` in its messages (the command's option, the API's argument)."""
    from search.review.display import failed_summary, pruned_summary

    attrs = study.user_attrs
    description = list(attrs.get(review.DESCRIPTION_ATTR, ()))
    # Pruned and failed trials are not in the top-trials table: say why here.
    ended = [("Pruned", pruned_summary(study)), ("Failed", failed_summary(study))]
    description += [[label, line] for label, line in ended if line]
    # As the terminal says it below its table: the gap's caveats (noise, other settings) were left out here.
    found = [line.strip() for line in verdicts.verdict(study) if line not in {line for _, line in ended}]
    result = review.build(study.get_trials(deepcopy=False), study.study_name,
                          description, seed=int(attrs.get("seed", 0)),
                          reference=attrs.get(review.REFERENCE_ATTR), top=top,
                          trial_figures=TRIAL_FIGURES, split_references=diagnostics.split_references_from_attr(
                              attrs.get(review.REFERENCES_ATTR)))
    out = Path(out)
    if out.is_file() and not _a_report(out):  # `--out space.yaml` must not cost the user their file
        raise StudyError(f"{out} exists and is not a report this tool wrote; it is left as it is: choose another "
                         f"name with {flag}, or delete it first", field=flag, found=str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sections = _pareto_section(study, top) + _ablation_section(study) + _test_section(study) + extra
        out.write_text(redact(render(result, sections, found)), encoding="utf-8")
    except OSError as exc:  # a read-only working folder, say: the store itself was only read
        raise StudyError(f"cannot write the report {out} ({exc.strerror or exc}); choose another place with "
                         f"{flag}", field=flag) from None
    return out


def _a_report(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b"<title>Study " in head


def _pareto_section(study: Any, top: int) -> str:
    """A two-objective study's Pareto front with the one_se pick marked, as `search best` shows it."""
    from search.review.display import format_pareto

    if len(study.directions) < 2:
        return ""
    return ("<h2>Pareto front</h2><p>No other trial has both a lower validation loss and a lower second "
            "objective than these; <code>search best --export</code> and <code>search reproduce</code> take "
            "the marked one_se pick.</p><div class='scroll'><pre>" + html.escape(format_pareto(study, top))
            + "</pre></div>")


def _ablation_section(study: Any) -> str:
    """What regularization bought, from the table stored with the study (search/reproduction/ablation.py)."""
    # Read as stored (search/reproduction/ablation.py writes it): the review never imports the reproduction.
    stored = study.user_attrs.get("ablation") or {}
    picked, rows = stored.get("trial"), [SimpleNamespace(**r) for r in stored.get("rows", [])]
    if picked is None:
        if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            return "<h2>What regularization bought</h2><p>No ablation: no trial completed.</p>"
        return ("<h2>What regularization bought</h2><p>No ablation yet: <code>search ablate "
                f"{html.escape(study.study_name)}</code> (with the study's <code>--home</code>) runs it.</p>")
    e = html.escape
    head = ("<h2>What regularization bought</h2><p>Trial " + str(picked) + "'s config with its regularizers "
            "switched off (all, then each alone), trained on the same splits with the same seeds. "
            "<em>Bought</em> is the rise of the validation loss when switched off, mean over splits ± the "
            "paired standard error; capacity, learning rate and epochs stay as picked.</p>")
    if not rows:
        return head + "<p>The trial uses no regularizer: nothing to ablate.</p>"
    body = "".join(f"<tr><td>{e(r.label)}</td><td>{r.val_loss:.4g}</td><td>{r.bought:+.4g}</td>"
                   f"<td>{_number(r.bought_se) if r.bought_se == r.bought_se else 'n/a'}</td><td>{r.n_splits}</td></tr>"
                   for r in rows)
    figure = _figure("ablation", figures.ablation_bars([r.label for r in rows], [r.bought for r in rows],
                                                       [r.bought_se for r in rows], f"trial {picked}"),
                     "Validation loss bought by each regularizer (switched off − on), ± paired standard error.")
    hurt = verdicts.ablation_note(int(picked), rows)  # as `search status` and `search best` say it
    return (head + "<div class='scroll'><table><tr><th>switched off</th><th>val loss</th><th>bought</th>"
            "<th>± se</th><th>splits</th></tr>" + body + "</table></div>"
            + (f"<p class='note'>{e(hurt.removeprefix('note: '))}</p>" if hurt else "") + figure)


def _test_section(study: Any) -> str:
    """The looks at the test rows, each with its test loss (search/reproduction/looks.py records them)."""
    from search.review.verdicts import test_looks

    e = html.escape
    looks = [look for look in study.user_attrs.get("test_looks", []) if isinstance(look, dict)]
    rows = "".join(f"<tr><td>{e(str(look.get('time', '')))}</td><td>{e(str(look.get('trial')))}</td>"
                   f"<td>{e(str(look.get('ensemble', 1)))}</td><td>{e(str(look.get('epochs', '')))}</td>"
                   f"<td>{_number(look['test_loss']) if isinstance(look.get('test_loss'), (int, float)) else '-'}"
                   f"</td><td>{e(_look_scores(look))}</td></tr>" for look in looks)
    table = ("<table><tr><th>when (UTC)</th><th>trial</th><th>ensemble</th><th>epochs</th><th>test loss</th>"
             "<th>scores</th></tr>" + rows + "</table>") if looks else ""
    return f"<h2>The test rows</h2><p>{e(test_looks(study))}</p>{table}"


def _look_scores(look: dict[str, Any]) -> str:
    """The scores the terminal printed with a look: its metric, RMSE and R² (against the test rows' own mean)
    or balanced accuracy, and its loss as a share of always predicting the development rows' prior."""
    scores = look.get("scores") or {}
    names = {"rmse": "RMSE", "r2": "R² (vs the test rows' mean)", "balanced_accuracy": "balanced accuracy",
             "roc_auc": "ROC AUC", "average_precision": "PR AUC (average precision)", "chance_share": "loss / chance"}
    return ", ".join(f"{names.get(k, k.removeprefix('test_'))} "
                     + (f"{v:.0%}" if k == "chance_share" else f"{v:.4g}") for k, v in scores.items()) or "-"


def render(result: review.Review, extra: str = "", found: list[str] | None = None) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>Study {e(result.title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Study {e(result.title)}</h1>",
             f"<p>Report written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by <code>search report</code>.</p>"]
    if result.description:
        parts.append("<h2>What was searched, and how it was validated</h2><dl>" +
                     "".join(f"<dt>{e(label)}</dt><dd>{e(text)}</dd>" for label, text in result.description)
                     + "</dl>")
    if found:
        parts.append("<h2>What the search found</h2>" + "".join(
            f"<p class='{'caveat' if line.startswith('(') else 'found'}'>{e(line)}</p>" for line in found))
    parts.append("<h2>Study</h2>" + _metrics_table(result.metrics))
    if result.figures:
        parts.append("<h2>Figures</h2>")
        for name, png in result.figures.items():
            parts.append(_figure(name, png, _CAPTIONS.get(name, name.replace("_", " "))))
    parts += [f"<p class='note'>{e(note)}</p>" for note in result.notes]
    parts.append("<h2>Top trials</h2><div class='scroll'>" + _trials_table(result) + "</div>")
    if extra:
        parts.append(extra)
    if result.trial_figures:
        parts.append("<h2>Learning curves of the top trials</h2><p>Training loss solid, validation loss "
                     "dashed, one colour per split; dots mark each split's best epoch, dotted lines its "
                     "overfit onset.</p>")
        for name, png in result.trial_figures.items():
            parts.append(_figure(name, png, name))
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure data-figure='{html.escape(name, quote=True)}'><img alt='{html.escape(caption, quote=True)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption></figure>")


def _metrics_table(metrics: dict[str, float]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{_number(v)}</td></tr>"
                   for k, v in metrics.items())
    return f"<table>{rows}</table>"


def _trials_table(result: review.Review) -> str:
    if not result.rows:
        return "<p>No completed trials yet.</p>"
    header, *rows = result.table()
    fit = header.index("fit")
    body = ["<tr>" + "".join(f"<td class='fit-{html.escape(c)}'>{html.escape(c)}</td>" if i == fit and c
                             else f"<td>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
            for row in rows]
    return "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>" + "".join(body) + "</table>"


def _number(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:.4g}"
