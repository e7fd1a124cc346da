"""What each regularizer of the picked trial bought: the same config with its regularizers switched off.

The picked trial differs from the baseline in capacity and learning rate as much as in its regularizers,
so "x % lower than the baseline" does not say what regularization bought. The ablation holds everything
else fixed: the picked config with *all* its regularizers off, and with each one off alone, trained on the
same splits with the same seeds (``study.seed_trial`` is the picked trial), so the difference on split k
is paired and split difficulty cancels. Augmentation settings are switched off together, as one
regularizer. The variants run as trials of a study of their own, ``<study>.ablation.t<trial>``, in the
same storage (one per ablated trial: a study continued later may pick another, whose variants are other
configs): resumable like any study, logged to MLflow like any trial, and costing at most
(regularizers + 1) trials. The table is copied to the main study's user attributes, so the report
needs no MLflow.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from search._numbers import sig
from search.space import Space, nest
from search._redact import redact
from search.review import verdicts

SUFFIX = ".ablation"
ATTR = "ablation"         # the table, on the main study
ALL_OFF = verdicts.ALL_OFF  # "all regularizers": the row the review reads


@dataclass
class Variant:
    label: str                 # what is switched off: a setting, "augmentation", or ALL_OFF
    params: dict[str, Any]     # the ablation study's parameters for it


@dataclass
class AblationRow:
    """One variant of the picked trial's config with regularizers switched off, against the picked config.

    Attributes:
        label: which regularizers are off ("all", or one setting's name: "dropout", "l2", "augmentation").
        val_loss: the variant's validation loss, the mean over splits.
        bought: the mean over splits of (variant - picked): the validation loss the switched-off regularizers
            bought (above 0: they helped).
        bought_se: the standard error of that paired mean (nan with one split).
        n_splits: the splits the variant ran.
        trial: the variant's trial number in the ablation's own study.
    """

    label: str
    val_loss: float            # the variant's mean over splits
    bought: float              # mean over splits of (variant - picked): the validation loss it bought
    bought_se: float           # standard error of that paired mean (nan with one split)
    n_splits: int
    trial: int                 # the ablation study's trial

    def line(self) -> str:
        spread = f" ± {sig(self.bought_se)}" if math.isfinite(self.bought_se) else " (one split: no spread)"
        return f"  {self.label:<24} off: val_loss {self.val_loss:.4g}, bought {self.bought:+.4g}{spread}"


def _group(name: str) -> str:
    key = name.split(".", 1)[1]
    return "augmentation" if key.startswith("augment_") else key


def plan(resolved: Space, picked_number: int, study_name: str) -> tuple[Space, list[Variant]]:
    """The ablation study's space and its variants, from the picked trial's fully resolved config.

    Each regularizer the picked config uses becomes a two-valued choice (its value, its off value);
    everything else stays fixed. Nothing to ablate gives no variants.
    """
    leaves = resolved.leaves()
    offs = {name: off for name, off in resolved.regularizers().items() if name in leaves and leaves[name] != off
            and not (isinstance(leaves[name], (int, float)) and not isinstance(leaves[name], bool)
                     and isinstance(off, (int, float)) and float(leaves[name]) == float(off))}
    groups: dict[str, list[str]] = {}
    for name in offs:
        groups.setdefault(_group(name), []).append(name)
    settings = nest({k: v for k, v in leaves.items()})
    for name, off in offs.items():
        section, _, key = name.partition(".")
        settings[section][key] = {"choice": [leaves[name], off]}
    if resolved.is_custom and resolved.model.get("regularizers") is not None:
        settings["model"]["regularizers"] = resolved.model["regularizers"]
    on = {name: leaves[name] for name in offs}
    variants = []
    if groups:
        variants.append(Variant(ALL_OFF, {name: offs[name] for name in offs}))
    if len(groups) > 1:
        for label, names in groups.items():
            variants.append(Variant(label, {**on, **{n: offs[n] for n in names}}))
    space = resolved.resolve(settings, name=study_name_for(study_name, picked_number), n_trials=max(1, len(variants)),
                             baseline=False,
                             seed_trial=resolved.study.seeds_of(picked_number), pruner="none", split_pruner="none",
                             keep_checkpoints=1, ablation=False)
    return space, variants


def study_name_for(study_name: str, picked_number: int) -> str:
    """The ablation study of one trial; a name past the 100 characters a study name may have is shortened,
    and a digest of the whole name keeps it apart from others."""
    import hashlib

    suffix = f"{SUFFIX}.t{picked_number:05d}"
    if len(study_name) + len(suffix) <= 100:
        return study_name + suffix
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:8]
    return f"{study_name[:100 - len(suffix) - 9]}-{digest}{suffix}"  # 100 characters


def table(picked: Any, ablation_study: Any) -> list[AblationRow]:
    """Paired differences per split between each finished variant and the picked trial."""
    mine = {s["split"]: float(s["best_val_loss"]) for s in picked.user_attrs.get("splits", [])}
    rows = []
    for t in ablation_study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or "ablation" not in t.user_attrs:
            continue
        theirs = {s["split"]: float(s["best_val_loss"]) for s in t.user_attrs.get("splits", [])}
        shared = sorted(set(mine) & set(theirs))
        if not shared:
            continue
        diffs = np.array([theirs[k] - mine[k] for k in shared])
        se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.nan
        rows.append(AblationRow(t.user_attrs["ablation"], float(np.mean([theirs[k] for k in shared])),
                                float(np.mean(diffs)), se, len(shared), t.number))
    rows.sort(key=lambda r: (r.label != ALL_OFF, -r.bought))
    return rows


def format_table(picked: Any, rows: list[AblationRow]) -> str:
    if not rows:
        return f"ablation of trial {picked.number}: nothing to ablate (it uses no regularizer)"
    head = (f"what regularization bought (trial {picked.number}, val_loss {picked.values[0]:.4g}; the same config "
            f"with regularizers switched off, same splits and seeds; bought = val_loss off - val_loss on, "
            f"mean over splits ± its paired standard error):")
    hurt = verdicts.ablation_note(picked.number, rows)
    return "\n".join([head] + [r.line() for r in rows] + ([hurt] if hurt else []))


def run(study: Any, picked: Any, resolved: Space, options: Any, out: TextIO | None = None) -> list[AblationRow]:
    """Run (or continue) the ablation of ``picked``; store and return the table.

    ``options`` is a :class:`search.runner.session.RunOptions` for the same stores as the study.
    """
    from search.runner import session

    out = out or sys.stdout
    space, variants = plan(resolved, picked.number, study.study_name)
    if not variants:
        print(format_table(picked, []), file=out)
        own = picked.number == _picked(study)
        study.set_user_attr(ATTR if own else f"{ATTR}.t{picked.number:05d}", {"trial": picked.number, "rows": []})
        return []
    prepared = session.prepare(space, threads=options.threads)
    # Scaled as the ablated trial was: a study made before one-hot columns passed the scaler keeps them scaled,
    # and the ablation's own study is made with that (no marker), so its variants compare with the trial.
    prepared.dataset.follow_study(study.user_attrs)
    for key in ("data_fingerprint", "test_fingerprint", "splits_fingerprint"):
        if study.user_attrs.get(key) not in (None, prepared.attrs()[key]):
            from search.errors import StudyError

            raise StudyError(f"cannot ablate trial {picked.number}: the data or splits differ from the study's "
                             f"({key})", field="data.source")
    print(f"\nablation of trial {picked.number}: {len(variants)} variant(s) with regularizers switched off, "
          f"as study '{space.study.name}'", file=out)
    done = _finished(study, space.study.name)
    if done is not None and {v.label for v in variants} <= {t.user_attrs.get("ablation") for t in done.trials
                                                           if t.state.name == "COMPLETE"}:
        return _stored(study, picked, done, options, out, len(variants))  # asked again: nothing to train
    queue = [(v.params, {"ablation": v.label}) for v in variants]
    from search.review.display import command

    again = f"{command('ablate', study.study_name, options)} --trial {picked.number}"
    run_options = session.RunOptions(home=options.home, storage=options.storage, tracking_uri=options.tracking_uri,
                                     threads=options.threads, quiet=True, heartbeat=options.heartbeat,
                                     figures=options.figures,
                                     continue_command=again, queue=queue, warn_changed_settings=False,
                                     listeners_optional=True)
    outcome = session.run(prepared, run_options, _listeners(prepared, run_options, space), out=out)
    if outcome.error is not None:
        raise outcome.error
    if outcome.stopped_by:  # a table of the variants that happened to finish would read as the answer
        print(f"ablation of trial {picked.number}: stopped by {outcome.stopped_by} before its variants finished; "
              f"`{again}` continues it", file=out)
        raise AblationStopped(outcome.stopped_by)
    return _stored(study, picked, outcome.study, options, out, len(variants))


def _listeners(prepared: Any, options: Any, space: Space) -> list[Any]:
    """The variants' diagnosis and, where MLflow can be opened, its tracker. MLflow is a side channel here as in
    the run: a store that fails (its artifacts folder read-only) is a warning, and the variants still train,
    their results and the table kept in the Optuna storage."""
    from search import tracking
    from search.review.trial_fit import TrialDiagnosis

    listeners: list[Any] = [TrialDiagnosis.of(prepared)]
    try:
        listeners.append(tracking.make_tracker(prepared, options, space.to_yaml()))
    except Exception as exc:
        print(f"warning: the ablation is not logged to MLflow ({type(exc).__name__}: {redact(str(exc))[:600]}); "
              f"its variants train all the same, and their results and the table are kept in the Optuna storage",
              file=sys.stderr)
    return listeners


class AblationStopped(Exception):
    """A stop signal ended the ablation before its variants finished; nothing was stored as its table."""


def _stored(study: Any, picked: Any, ablation_study: Any, options: Any, out: TextIO,
            expected: int) -> list[AblationRow]:
    rows = table(picked, ablation_study)
    if not rows and expected:
        # Another process (a second terminal, another host) holds the variants: its table is the answer, and an
        # empty one stored here would read as "no regularizer" and could replace it.
        print(f"ablation of trial {picked.number}: its {expected} variant(s) are trained by another process; "
              f"`search ablate {study.study_name}` prints the table once they finish", file=out)
        return []
    # The study's own table is its pick's, which the review shows; another trial's (search ablate --trial)
    # is kept beside it and logged to that trial's MLflow run, so it never takes the pick's place.
    own = picked.number == _picked(study)
    study.set_user_attr(ATTR if own else f"{ATTR}.t{picked.number:05d}",
                        {"trial": picked.number, "study": ablation_study.study_name, "rows": [asdict(r) for r in rows]})
    print(format_table(picked, rows), file=out)
    _log(study, picked, rows, options, own, ablation_study)
    return rows


def _picked(study: Any) -> int | None:
    from search.studies.lifecycle import picked_number  # Optuna, imported when a study is at hand

    return picked_number(study)


def _finished(study: Any, name: str) -> Any:
    """The ablation study of that name in the main study's storage, or None when there is none yet."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=study._storage)
    except KeyError:
        return None


def _log(study: Any, picked: Any, rows: list[AblationRow], options: Any, own: bool = True,
         ablation_study: Any = None) -> None:
    """The table, its metrics and a figure on the study's MLflow parent run (``own``: the study's pick), else
    on the picked trial's own run, and the table on the ablation's own parent run; a side channel, never
    fatal."""
    from search import tracking
    from search.review import figures

    parent = study.user_attrs.get(tracking.PARENT_RUN_ATTR) if own else picked.user_attrs.get(tracking.RUN_ID_ATTR)
    if not parent or not rows:
        return
    try:
        import tempfile

        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        tracking.quiet_mlflow()
        client = MlflowClient(tracking_uri=options.tracking_uri or tracking.default_tracking_uri(options.home))
        now = int(time.time() * 1000)
        metrics = []
        for r in rows:
            key = "ablation_" + r.label.replace(" ", "_")
            metrics.append(Metric(f"{key}_bought", r.bought, now, picked.number))
            if math.isfinite(r.bought_se):
                metrics.append(Metric(f"{key}_bought_se", r.bought_se, now, picked.number))
        # The study's run names its ablation's experiment, which held the variants' runs unreferenced.
        pointer = [RunTag("search.ablation_study", ablation_study.study_name)] if own and ablation_study else []
        client.log_batch(parent, metrics=metrics, tags=pointer)
        with tempfile.TemporaryDirectory(prefix="search-ablation-") as tmp:
            if tracking.figures_wanted(options.figures):
                (Path(tmp) / "ablation.png").write_bytes(figures.ablation_bars(
                    [r.label for r in rows], [r.bought for r in rows], [r.bought_se for r in rows],
                    f"what regularization bought (trial {picked.number})"))
            (Path(tmp) / "ablation.txt").write_text(format_table(picked, rows) + "\n", encoding="utf-8")
            client.log_artifacts(parent, tmp, "study" if own else "ablation")
            variants_run = ablation_study.user_attrs.get(tracking.PARENT_RUN_ATTR) if ablation_study else None
            if variants_run:  # the ablation's own experiment reads as what it is: this table, not a search
                client.log_artifacts(variants_run, tmp, "study")
        if own and (note := tracking.verdict_note(study)) is not None:
            client.set_tag(parent, "mlflow.note.content", note)  # now with this table's note, not an earlier best's
    except Exception as exc:  # the table is in the Optuna storage already
        print(f"warning: could not log the ablation to MLflow ({type(exc).__name__}: {redact(str(exc))[:200]})",
              file=sys.stderr)


def stored_rows(study: Any) -> tuple[int | None, list[AblationRow]]:
    """The table last stored with the study: (picked trial, rows)."""
    stored = study.user_attrs.get(ATTR) or {}
    return stored.get("trial"), [AblationRow(**r) for r in stored.get("rows", [])]

