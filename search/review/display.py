"""What the terminal shows: live progress during a run and tables of trials read from storage."""
from __future__ import annotations

import math
import os
import shlex
import sys
import time
from typing import Any, Callable, Sequence, TextIO

from search._numbers import sig, stamp
from search.review._baseline_gap import fixed_differences, within_noise
from search.runner.results import SplitResult, TrialListener, TrialOutcome, settings_of
from search.studies import space_versions


class Progress(TrialListener):
    """One live status line on a terminal; one line per split and per trial otherwise (logs, CI)."""

    def __init__(self, budget: int, stream: TextIO | None = None, quiet: bool = False,
                 header: Callable[[Any], list[str]] | None = None) -> None:
        self.budget, self.stream, self.quiet = budget, stream or sys.stderr, quiet
        self._header = header  # the run's plan, printed when the study opens (``header_lines``)
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.best: tuple[float, int] | None = None
        self.trial, self.split, self.n_splits, self.done = -1, 0, 0, 0
        self._last_draw = 0.0
        self._started, self._done_at_start = time.monotonic(), 0

    def header(self, lines: list[str]) -> None:
        """The run's plan, before the first trial line."""
        self._print("\n".join(lines) + "\n")

    def on_study_open(self, study: Any) -> None:
        first = self._header is not None
        self.seed_from(study)
        if first and self._header is not None:  # told twice by the study's creator; the plan once
            lines, self._header = self._header(study), None
            self.header(lines)

    def seed_from(self, study: Any) -> None:
        self.done, self.best = _finished_and_best(study.get_trials(deepcopy=False))
        self._done_at_start = self.done
        self._started = time.monotonic()

    def on_trial_start(self, trial: Any, settings: dict[str, dict[str, Any]]) -> None:
        self.trial = trial.number

    def on_split_start(self, trial: Any, split: int, n_splits: int) -> None:
        self.split, self.n_splits = split, n_splits

    def on_epoch(self, trial: Any, split: int, epoch: int, logs: dict[str, float]) -> None:
        if self.live and not self.quiet and time.monotonic() - self._last_draw > 0.2:
            self._last_draw = time.monotonic()
            line = (f"trial {self.done + 1}/{self.budget} (#{self.trial})  "
                    f"split {split} ({split + 1}/{self.n_splits})  epoch {epoch}  "
                    f"val_loss {logs.get('val_loss', math.nan):.4g}  best {self._best_text()}")
            self.stream.write("\r\033[K" + line)
            self.stream.flush()

    def on_split_end(self, trial: Any, result: SplitResult) -> None:
        if not self.live and not self.quiet:
            # Numbered from 0, as the pruning reasons, checkpoints (split_00.keras) and MLflow number them.
            where = f"split {result.split} ({result.split + 1}/{self.n_splits})"
            if result.diverged or not math.isfinite(result.best_val_loss):
                self._print(f"  trial #{trial.number} {where}: no finite validation loss (diverged at epoch "
                            f"{result.epochs_run})")
                return
            cut = " before the stop" if result.stop_reason == "stopped" else ""
            self._print(f"  trial #{trial.number} {where}: best val_loss {result.best_val_loss:.4g} at epoch "
                        f"{result.best_epoch} of the {result.epochs_run} trained{cut}")

    def on_trial_end(self, trial: Any, outcome: TrialOutcome) -> None:
        mark, counted = "", outcome.state in ("complete", "pruned")
        self._catch_up(trial, outcome)
        if outcome.state == "complete":
            self.done += 1
            if self.best is None or outcome.value < self.best[0]:
                self.best, mark = (outcome.value, trial.number), "  ← best so far"
            # One split has no spread to show: "± 0" would read as a measured one.
            spread = f" ± {sig(outcome.value_std)}" if len(outcome.splits) > 1 else ""
            text = f"val_loss {outcome.value:.4g}{spread}, {outcome.metric_name} {outcome.metric_mean:.4g}"
        elif outcome.state == "pruned":
            self.done += 1
            text = outcome.reason
        else:
            text = outcome.reason
        if not self.quiet:
            from search._redact import redact

            # A failed or interrupted trial is not one of the budget's: numbered as the last counted one, it
            # repeated that number.
            which = (f"trial {self.done}/{self.budget} (#{trial.number})" if counted else
                     f"trial #{trial.number} (not counted: {self.done}/{self.budget} done)")
            self._print(redact(f"{stamp()} {which} {outcome.state}: {text}{mark}  "
                               f"({self._clock()})"))

    def _catch_up(self, trial: Any, outcome: TrialOutcome) -> None:
        """Count what other runs on the study finished since (another terminal, another host): a second
        ``search run`` numbered its trials and judged "best so far" by its own trials only."""
        study = getattr(trial, "study", None)
        if study is None:
            return
        others = [t for t in outcome.stored_trials(study) if t.number != trial.number]  # the listeners' one read
        done, best = _finished_and_best(others)
        self.done = max(self.done, done)
        if best is not None and (self.best is None or best[0] < self.best[0]):
            self.best = best

    def _clock(self) -> str:
        """Elapsed in this run, and the time left at this run's pace (this process's trials only)."""
        elapsed = time.monotonic() - self._started
        done, left = self.done - self._done_at_start, max(self.budget - self.done, 0)
        text = f"elapsed {_duration(elapsed)}"
        if done and left:
            text += f", ~{_duration(elapsed / done * left)} left for {left} trial{'s' if left > 1 else ''}"
        return text

    def _best_text(self) -> str:
        return "-" if self.best is None else f"{self.best[0]:.4g} (#{self.best[1]})"

    def _print(self, line: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        self.stream.flush()


def _finished_and_best(trials: Sequence[Any]) -> tuple[int, tuple[float, int] | None]:
    """How many trials count toward the budget, and the lowest complete loss with its trial's number."""
    from search.studies.lifecycle import count_finished

    complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
    best = min(complete, key=lambda t: t.values[0], default=None)
    return count_finished(trials), None if best is None else (best.values[0], best.number)


def summary_table(study: Any, top: int = 10) -> str:
    """The best trials against the baseline; for a multi-objective study, its Pareto front."""
    if len(study.directions) > 1:
        return format_pareto(study, top)
    return format_table(trial_rows(study, top))


def format_pareto(study: Any, top: int | None = None) -> str:
    """The Pareto front (no other trial has both a lower loss and a lower second objective), by loss: its
    ``top`` lowest-loss points and the pick, wherever it stands."""
    from search.errors import StudyError
    from search.studies.lifecycle import pick_trial

    front = sorted(study.best_trials, key=lambda t: (t.values[0], t.number))
    if not front:
        return "no completed trials yet"
    second = study.user_attrs.get("objectives", ["val_loss", "second"])[-1]
    try:
        picked = pick_trial(study, "one_se").number
    except StudyError:
        picked = None
    lines = [["trial", "val_loss", "± std", second, "splits"]]
    shown = front if top is None else [t for i, t in enumerate(front) if i < top or t.number == picked]
    for t in shown:
        label = f"{t.number}" + (" (baseline)" if t.user_attrs.get("baseline") else "") + \
            ("  ← one_se pick" if t.number == picked else "")
        lines.append([label, f"{t.values[0]:.4g}", sig(t.user_attrs.get('val_loss_std', math.nan)),
                      _fmt(int(t.values[1]) if second == "params" else float(t.values[1])),
                      f"{int(t.user_attrs.get('splits_done', 0))}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    if len(shown) < len(front):
        out.append(f"({len(shown)} of the front's {len(front)} trials shown; --top shows more)")
    out.insert(0, f"Pareto front of val_loss and {second} ({len(front)} of "
                  f"{sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == 'COMPLETE')} complete "
                  f"trials); one_se pick: the smallest {second} within one standard error of the lowest loss")
    return "\n".join(out)


def trial_rows(study: Any, top: int = 10) -> list[dict[str, Any]]:
    """The best completed trials, plus the baseline when it is not among them."""
    # values[0], the loss: a two-objective study's trials have no single .value.
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    trials.sort(key=lambda t: t.values[0])
    chosen = trials[:top]
    baseline = next((t for t in trials if t.user_attrs.get("baseline")), None)
    if baseline is not None and baseline not in chosen:
        chosen.append(baseline)
    sampled = {name for t in trials for name in t.params}
    held = space_versions.held_by_version(study)  # a space file edited between runs: each trial's own values
    columns = sampled | {name for values in held.values() for name in values}
    rows = []
    for rank, t in enumerate(chosen, start=1):
        metric_key = next((k for k in t.user_attrs if k.startswith("val_") and k.endswith("_mean")
                           and k != "val_loss_mean"), None)
        rows.append({"rank": trials.index(t) + 1, "trial": t.number, "value": t.values[0],
                     # One split has no spread: its std of 0 read as a certain score.
                     "std": t.user_attrs.get("val_loss_std", math.nan) if len(t.user_attrs.get("splits", [])) != 1
                     else math.nan,
                     "metric": (metric_key[4:-5] if metric_key else "metric"),
                     "metric_value": t.user_attrs.get(metric_key, math.nan) if metric_key else math.nan,
                     "baseline": bool(t.user_attrs.get("baseline")),
                     # A binary task's ranking beside its loss (fraud, churn): read per trial, not at the test only.
                     "roc_auc": t.user_attrs.get("val_roc_auc_mean", math.nan),
                     "average_precision": t.user_attrs.get("val_average_precision_mean", math.nan),
                     "balanced_accuracy": t.user_attrs.get("val_balanced_accuracy_mean", math.nan),
                     "params": {**held.get(t.number, {}), **settings_of(t, columns)},
                     "unregularized": bool(t.user_attrs.get("unregularized", True)),
                     "kept_on": t.user_attrs.get("kept_on"), "n_splits": len(t.user_attrs.get("splits", []))})
    if baseline is not None and chosen and chosen[0] is not baseline:
        rows[0]["fixed_differ"] = fixed_differences(study, baseline, chosen[0], sampled)
        rows[0]["held_only"] = columns - sampled  # said by fixed_differ, as an edit, not as a searched difference
    if rows:
        rows[0]["ablated"] = (study.user_attrs.get("ablation") or {}).get("trial") == rows[0]["trial"]
        rows[0]["imbalanced"] = imbalanced(study)
    return rows


def imbalanced(study: Any, ratio: float = 1.5) -> bool:
    """Whether the development rows' largest class has ``ratio`` times the rows of its smallest: there accuracy
    rewards the large class, and the table shows balanced accuracy beside it (the mean of each class's recall)."""
    classes = (study.user_attrs.get("data_summary") or {}).get("classes") or {}
    counts = [int(rows[0]) for rows in classes.values() if rows and rows[0]]
    return len(counts) > 1 and max(counts) >= ratio * min(counts)


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no completed trials yet"
    metric = rows[0]["metric"]
    param_names = sorted({k for r in rows for k in r["params"] if not k.endswith(".on")})
    auc = any(math.isfinite(r.get("roc_auc", math.nan)) for r in rows)
    balanced = bool(rows[0].get("imbalanced")) and any(math.isfinite(r.get("balanced_accuracy", math.nan))
                                                       for r in rows)
    # Where the positives are few, ROC AUC stays high while most of what is flagged is wrong: PR AUC beside it.
    pr_auc = auc and balanced and any(math.isfinite(r.get("average_precision", math.nan)) for r in rows)
    header = ["rank", "trial", "val_loss", "± std", metric] + (["bal_acc"] if balanced else []) + \
        (["roc_auc"] if auc else []) + (["pr_auc"] if pr_auc else []) + [_short(p) for p in param_names]
    lines = [header]
    for r in rows:
        label = f"{r['trial']}" + (" (baseline)" if r["baseline"] else "")
        params = [_cell(r["params"].get(p, "off" if f"{p}.on" in r["params"] else "")) for p in param_names]
        extra = [f"{r.get(name, math.nan):.4g}" for name, shown in (("balanced_accuracy", balanced),
                                                                       ("roc_auc", auc),
                                                                       ("average_precision", pr_auc)) if shown]
        lines.append([str(r["rank"]), label, f"{r['value']:.4g}", "-" if math.isnan(r["std"]) else sig(r['std']),
                      f"{r['metric_value']:.4g}"] + extra + params)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    headline = headline_lines(rows)
    return "\n".join(out + (["", *headline] if headline else []))


def headline_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The best trial against the baseline, with what the gap may not be read as (noise, other settings, an
    edit of the space); the first line, then each caveat in parentheses, indented."""
    if not rows:
        return []
    metric, out = rows[0]["metric"], []
    param_names = sorted({k for r in rows for k in r["params"] if not k.endswith(".on")})
    best, base = rows[0], next((r for r in rows if r["baseline"]), None)
    if base is not None and best is not base:
        gain = (base["value"] - best["value"]) / base["value"] * 100 if base["value"] else math.nan
        kept = base.get("kept_on") or {}
        what = ("the unregularized baseline" if base.get("unregularized", True) else
                "the baseline (searched regularizers off; fixed on as the file says: "
                + ", ".join(f"{k.removeprefix('model.')}={_fmt(v)}" for k, v in kept.items()) + ")" if kept else
                "the baseline (each range at its default, else its middle: this custom family declares no "
                "regularizers in model.regularizers)")
        out.append(f"best trial {best['trial']} vs {what} (trial {base['trial']}): "
                   f"val_loss {best['value']:.4g} vs {base['value']:.4g} ({gain:.1f}% lower), "
                   f"{metric} {best['metric_value']:.4g} vs {base['metric_value']:.4g}")
        if noise := within_noise(best, base):
            out.append(noise)
        # The gap was read as what regularization bought, where the two also differ in capacity or learning rate.
        # A regularizer is off in the baseline (0, false, none, or switched off with or_off): not counted here.
        others = [_short(p) for p in param_names if f"{p}.on" not in base["params"]
                  and p not in best.get("held_only", ())
                  and base["params"].get(p) not in (0, 0.0, False, None, "none", "off", "")
                  and best["params"].get(p) != base["params"].get(p)]
        if others:
            # Once its ablation has run, sending the reader to run it reads as if it had not.
            alone = (f"its ablation's table says what the regularizers alone bought trial {best['trial']}"
                     if best.get("ablated") else "`search ablate` measures what the regularizers alone buy")
            out.append(f"  (the two also differ in {', '.join(others[:6])}{', ...' if len(others) > 6 else ''}: "
                       f"the gap is all of it together; {alone})")
        if fixed := best.get("fixed_differ"):
            out.append(f"  (the space file was edited between them: trial {best['trial']} ran with "
                       f"{'; '.join(fixed[:6])}{'; ...' if len(fixed) > 6 else ''}, from the baseline's value to "
                       f"its own)")
    return out


def format_counts(counts: dict[str, int], budget: int | None = None) -> str:
    parts = [f"{state} {n}" for state, n in sorted(counts.items())]
    done = counts.get("complete", 0) + counts.get("pruned", 0)
    head = f"{done}/{budget} finished" if budget else f"{done} finished"
    return head + ("  (" + ", ".join(parts) + ")" if parts else "")


def pruned_summary(study: Any) -> str:
    """Why trials were pruned, from their reasons: ``7 pruned: 5 within split 0 at epochs 5-8, 2 across splits``.

    Empty when none was. A pruned trial's val_loss covers the splits it finished only, so it is never
    ranked with the complete trials; this line is where it is accounted for.
    """
    from search.review import prune_where

    pruned = [t for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED"]
    if not pruned:
        return ""
    within: dict[int, list[int]] = {}
    across, diverged, fused, other = [], [], [], 0
    for t in pruned:
        kind, split, epoch, _ = prune_where(str(t.user_attrs.get("reason", "")))
        if kind == "within":
            within.setdefault(split, []).append(epoch)
        elif kind == "fused":  # every split at once: "split" holds how many
            fused.append(epoch)
        elif kind == "across":
            across.append(split)
        elif kind == "diverged":
            diverged.append(split)
        else:
            other += 1
    parts = []
    for split, epochs in sorted(within.items()):
        lo, hi = min(epochs), max(epochs)
        parts.append(f"{len(epochs)} within split {split} at epoch{'s' if lo != hi else ''} "
                     f"{lo if lo == hi else f'{lo}-{hi}'}")
    if fused:
        lo, hi = min(fused), max(fused)
        parts.append(f"{len(fused)} at epoch{'s' if lo != hi else ''} {lo if lo == hi else f'{lo}-{hi}'} (all "
                     f"splits trained together, worse than the pruner lets through)")
    if across:
        parts.append(f"{len(across)} across splits (after {'/'.join(str(n) for n in sorted(set(across)))} "
                     f"finished split{'s' if max(across) > 1 else ''}, worse than the best trial on each)")
    if diverged:
        parts.append(f"{len(diverged)} diverged (non-finite loss)")
    if other:
        parts.append(f"{other} for other reasons")
    return f"{len(pruned)} pruned: " + ", ".join(parts)


_NOT_THE_SETTINGS = {"over_budget": "over the budget (closed before training)", "disk_full": "disk full (queued again)",
                     "interrupted": "stopped (queued again)", "lost_process": "lost their process (queued again)",
                     "silent": "went silent (heartbeat; queued again)",
                     "lost_storage": "cut short by a storage outage (queued again)"}


def failed_summary(study: Any) -> str:
    """Why trials failed: ``5 failed: 4 × ValueError: ..., 1 stopped (queued again)``; empty when none did."""
    from collections import Counter

    from search.errors import FailureKind

    failed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    if not failed:
        return ""
    reasons: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for t in failed:
        kind = FailureKind.of(t)
        if kind is FailureKind.BAD_SETTINGS:
            reasons[first_line(t.user_attrs.get("reason", "no reason recorded"))] += 1
        else:
            others[_NOT_THE_SETTINGS.get(kind.value, kind.value)] += 1
    parts = [f"{n} × {reason}" for reason, n in reasons.most_common(3)]
    rest = sum(reasons.values()) - sum(n for _, n in reasons.most_common(3))
    if rest:
        parts.append(f"{rest} for {len(reasons) - 3} other reason(s)")
    parts += [f"{n} {words}" for words, n in others.items()]
    return f"{len(failed)} failed: " + "; ".join(parts)


def first_line(text: str, limit: int = 160) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else "no reason recorded"
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _short(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else name


def _cell(value: Any) -> str:
    """A setting in the ranked table: a switch reads off/on, as a regularizer a phase held off already does
    (batchnorm showed 'off' in phase 1's rows and 'False' in phase 2's, one column apart from itself)."""
    return ("on" if value else "off") if isinstance(value, bool) else _fmt(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def header_lines(prepared: Any, options: Any, storage_url: str, tracking_uri: str, finished: int,
                 budget: int) -> list[str]:
    """What a run is about to do, and where its results go (passwords redacted)."""
    from pathlib import Path

    from search import review
    from search._redact import redact

    space, attrs = prepared.space, prepared.attrs()
    validation = dict(review.describe(space, attrs))["Validation"]
    limits = [f"{budget} trials in all, {finished} finished"]
    if options.n_trials:
        left = max(0, budget - finished)
        limits.append(f"at most {options.n_trials} now" if options.n_trials <= left else
                      f"{left} now (of the {options.n_trials} asked for: the budget leaves {left})")
    if options.timeout:
        limits.append(f"no new trial after {_duration(options.timeout)}")
    if space.study.enqueue and not finished:
        limits.append(f"{len(space.study.enqueue)} config(s) from study.enqueue tried first"
                      + (", after the baseline" if space.study.baseline else ""))
    elif space.study.enqueue:  # a continued study ran its entries already; only those added since are queued
        limits.append("study.enqueue's entries each queued once (those added since the last run first)")
    pruner = "none: two objectives" if space.study.multi_objective else space.study.pruner
    return [f"study       {space.study.name}  (sampler {space.study.sampler}, pruner {pruner}, "
            f"seed {space.study.seed})",
            f"data        {space.data.source}: {attrs['rows']} rows, task {attrs['task']}, {attrs['test_rows']} "
            f"held out for the final test",
            f"validation  {validation}",
            f"budget      {', '.join(limits)}",
            f"storage     {redact(storage_url)}",
            f"results     {Path(options.home).resolve()}  (MLflow: {redact(tracking_uri)})",
            f"watch       {command('ui', space.study.name, options)}"]


def next_steps(study: str, options: Any, builder_here: str | None = None, looks: int = 0) -> str:
    """What to do after a run. ``builder_here``: the model is a function only this process has (a notebook's),
    which the command cannot import, so the Python call reproduces it. ``looks``: the test rows were looked at
    so often already ("test it once" read as a first look after three)."""
    once = "test it once" if not looks else f"look at the test rows again (look {looks + 1}, no unbiased test)"
    again = f"{command('reproduce', study, options)}   retrain the best config, {once}"
    if builder_here:
        stores = ", ".join(f"{key}={str(value)!r}" for key, value in (
            ("home", options.home if str(options.home) != "mlruns" else None),
            ("storage", _hidden(options.storage)), ("tracking_uri", _hidden(options.tracking_uri))) if value)
        # Passed again: another process (a new notebook kernel) has no builder registered under that name.
        handed = f", builder={builder_here}" if builder_here.isidentifier() else ""
        again = (f"search.reproduce({study!r}{', ' + stores if stores else ''}{handed})   in Python where "
                 f"{builder_here} is defined: retrain the best config, {once} (the command cannot "
                 f"import a builder defined in a notebook, a script or a function)")
    urls = ((options.storage, "--storage", "SEARCH_STORAGE"),
            (options.tracking_uri, "--tracking-uri", "MLFLOW_TRACKING_URI"))
    hidden = [(flag, variable) for url, flag, variable in urls
              if url and _hidden(url) != url and url != os.environ.get(variable)]
    pasted = ("\n  (a password is shown as ***, so these do not run as printed: put the full URL in $"
              + " and $".join(v for _, v in hidden) + " and leave " + " and ".join(f for f, _ in hidden)
              + " out)") if hidden else ""
    return ("next steps:\n"
            f"  {command('ui', study, options)}          the MLflow UI on the study's runs\n"
            f"  {command('report', study, options)}      the review as one HTML file\n"
            f"  {again}{pasted}")


def _hidden(url: str | None) -> str | None:
    from search._redact import redact

    return redact(url) if url else None


def command(verb: str, study: str, options: Any) -> str:
    """The ``search`` command line for a verb on this study's stores (credentials hidden; a URL taken from
    its environment variable is left to it)."""
    from search._redact import flag_words

    parts = ["search", verb, study]
    if str(options.home) != "mlruns":
        parts += ["--home", str(options.home)]
    if verb != "ui":
        parts += flag_words("--storage", options.storage, "SEARCH_STORAGE")
    parts += flag_words("--tracking-uri", options.tracking_uri, "MLFLOW_TRACKING_URI")
    return shlex.join(parts)  # pasted into a shell as printed: a home with spaces
