"""Rebuild and judge a trial (``search reproduce``); search.targets finds it and its fixed config.

Reproducing a trial:

1. its config is rebuilt with every value fixed and the data, test rows and split plan are checked
   against the study's fingerprints (changed data is refused unless allowed);
2. optionally (``--verify``) its validation is re-run as the search ran it (search.verify);
3. its split models (checkpoints, or re-trained from their seeds when the checkpoints were removed) are
   scored on the test rows: singly for the validation-overfit alarm (search.overfit), and averaged as an
   ensemble;
4. a final model is trained on all development rows for the number of epochs the epoch rule gives, with
   the scaler fit on those rows baked in, and evaluated once on the test rows;
5. everything is logged as a ``reproduce`` run in MLflow (search.reproduce_runs.log_reproduction).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from search import preprocess
from search.runner import checkpoints
from search import scoring
from search.runner import session
from search.errors import DataError, StudyError
from search.space import flatten, nest
from search.reproduction import looks as looks_module
from search.reproduction import rows as rows_module
from search.reproduction import printed, served
from search.reproduction.changes import builder_changed, data_changes
from search.reproduction.epochs import censored_epochs, final_epochs
from search.reproduction.outcome import Report as Report, plain_numbers
from search.reproduction.targets import Target

# The final model's seed is derive_seed(study seed, trial, FINAL_SEED_SPLIT): a split index no plan reaches.
FINAL_SEED_SPLIT = 1_000_000


@dataclass
class Options:
    home: Path = Path("mlruns")
    tracking_uri: str | None = None
    verify: bool = False
    tolerance: float | None = None     # relative; default search.verify.RELATIVE_TOLERANCE
    allow_data_change: bool = False
    epochs: int | None = None          # overrides the epoch rule
    ensemble: int = 1                  # also average the final models of the top N trials (N > 1)
    threads: int | None = None
    register: str | None = None        # a name in MLflow's model registry: the final model becomes its next version


# -- reproducing ------------------------------------------------------------------------------------
def reproduce(target: Target, options: Options, out: TextIO | None = None) -> Report:
    from search.runner import _runtime

    out = out or sys.stdout
    started = time.time()  # the MLflow run is made at the end, when there is something to hold: it began here

    space, trial, study = target.space, target.trial, target.study
    if options.register is not None:  # a name MLflow refuses after training would have cost a test look
        from search.tracking import reproduce_runs

        reproduce_runs.check_register_name(options.register)
    prepared = session.prepare(space, threads=options.threads)  # a builder's check starts TensorFlow
    prepared.dataset.follow_study(study.user_attrs)
    changes = data_changes(study.user_attrs, prepared.attrs())
    if changes and not options.allow_data_change:
        weights = all(c.startswith("model.weights") for c in changes)
        what = "the backbone weights file" if weights else "the data"
        raise DataError(f"{what} differs from what study '{study.study_name}' was run on ("
                        + "; ".join(changes) + f"): its trials and checkpoints belong to the old one. Restore "
                        f"{what}, or pass --allow-data-change to judge the config on the new one",
                        source=str(space.path) if space.path else None,
                        field="model.weights" if weights else "data.source")
    # Copies: a new configuration (--config with changed values) replaces them with its own split results.
    stored = [dict(s) for s in trial.user_attrs["splits"]]
    if any(s["split"] >= len(prepared.splits) for s in stored):
        raise StudyError(f"trial {trial.number} has {len(stored)} splits but the plan now has "
                         f"{len(prepared.splits)}", field="validation")
    what = f"an edited config of trial {trial.number}" if target.changed else f"trial {trial.number}"
    print(f"reproducing {what} of study '{study.study_name}' (config from {target.origin})", file=out)
    builder_now = builder_changed(target)
    if changes:
        print("  the data changed (" + "; ".join(changes) + "); going on as --allow-data-change asks", file=out)
    _runtime.configure(options.threads)
    from search.reproduction import overfit as overfit  # noqa: E402  (TensorFlow loads from here on)
    from search.reproduction import verify

    settings = nest(space.leaves())
    scores: dict[int, SplitScore] = {}
    checks = None
    if options.verify:
        relative = verify.RELATIVE_TOLERANCE if options.tolerance is None else options.tolerance
        retrained: dict[int, Any] = {}
        checks = verify.run(space, settings, prepared.dataset, prepared.splits, stored, target.seed_trial,
                            relative, keep=retrained.__setitem__)
        verify.say(checks, relative, trial.number, out)
        # Scored on the test rows only once every split matched: a failed check looks at nothing.
        scores.update({k: score_split(m, prepared, k) for k, m in retrained.items()})
    split_models = _split_models(target, prepared, settings, stored, scores, options, out, bool(changes))
    from search.review import curves_of

    curves = {k: h.get("val_loss", []) for k, h in curves_of(trial).items()} \
        if not (target.changed or changes) else {}
    # Time-series splits train on ever more of the past: the first ones, scored on test rows far after their
    # validation block, would be judged on a horizon they were never validated at. The last split's model,
    # validated on the block just before the test rows, is the one that comparison is fair to.
    judged = sorted(stored, key=lambda s: int(s["split"]))[-1:] if space.validation.scheme == "time_series" \
        else stored
    alarm = overfit.check([float(s["best_val_loss"]) for s in judged], [scores[s["split"]].val_rows for s in judged],
                          [scores[s["split"]].test_loss for s in judged],
                          [scores[s["split"]].test_rows for s in judged],
                          val_row_index=[prepared.splits[s["split"]].val for s in judged],
                          repeats=space.validation.repeats if space.validation.scheme == "iterated_kfold" else 1,
                          val_labels=[_classes_of(prepared, prepared.splits[s["split"]].val) for s in judged]
                          if prepared.dataset.is_classification else None,
                          test_labels=_classes_of(prepared, prepared.test_idx)
                          if prepared.dataset.is_classification else None,
                          optimism=overfit.epoch_selection_optimism(
                              {int(s["split"]): curves[int(s["split"])] for s in judged if int(s["split"]) in curves},
                              {int(s["split"]): int(s["best_epoch"]) for s in stored}))  # the final model's rule
    # What else can explain a gap: no choice among trials, or test rows later in time than any validation row.
    alarm.trials = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    alarm.time_ordered = space.validation.scheme == "time_series" or prepared.dataset.has_order
    ensemble = np.mean([scores[s["split"]].test_pred for s in stored], axis=0)
    y_test = prepared.dataset.y[prepared.test_idx]
    task = prepared.dataset.task
    epochs, rule = (options.epochs, "the number asked for") if options.epochs else final_epochs(
        stored, prepared.splits, len(prepared.dev_idx), int(settings["train"]["batch_size"]))
    final, test_loss, test_metric, history, pred = _final_model(target, prepared, settings, epochs)
    report = Report(trial.number, epochs, rule, test_loss, test_metric,
                    float(np.mean(scoring.row_losses(task, y_test, ensemble))),
                    scoring.metric(task, y_test, ensemble), study.user_attrs.get("metric", "accuracy"), alarm,
                    split_models, checks, changes)
    report.model_io = served.model_io(prepared.dataset, space.data.target, space.data.missing,
                                      space.data.image_size)
    report.epoch_note = "" if options.epochs else censored_epochs(stored, epochs)
    report.rows_csv = rows_module.table(prepared, pred)
    report.recalls = scoring.recall_by_class(task, y_test, pred, list(prepared.dataset.classes))
    report.class_files = scoring.class_report(task, y_test, pred, list(prepared.dataset.classes))
    report.test_chance_loss = _test_chance_loss(prepared)
    report.class_weighted = prepared.dataset.is_classification and settings["train"].get("class_weight") == "balanced"
    report.model = final
    report.test_scores = scoring.more_scores(task, y_test, pred)
    report.ensemble_scores = scoring.more_scores(task, y_test, ensemble)
    member_configs: list[str] = []
    if options.ensemble > 1:
        members, preds, member_configs = _top_ensemble(target, prepared, options, out)
        averaged = np.mean([pred, *preds], axis=0)
        report.ensemble_trials = [trial.number, *members]
        report.top_ensemble_loss = float(np.mean(scoring.row_losses(task, y_test, averaged)))
        report.top_ensemble_metric = scoring.metric(task, y_test, averaged)
    report.builder_changed = builder_now is not None
    looks = looks_module.record(study, trial.number, _by_full_paths(target, settings, builder_now), epochs,
                              ensemble=len(report.ensemble_trials) or 1, test_loss=report.test_loss,
                              members=member_configs, rows=prepared.attrs().get("test_fingerprint"),
                              scores={f"test_{report.metric_name}": report.test_metric, **report.test_scores,
                                      **({"chance_share": report.test_loss / report.test_chance_loss}
                                         if report.test_chance_loss > 0 else {})})
    report.run_id = _log(target, options, report, prepared, settings, final, history, looks, started)
    from search import tracking

    report.tracking_uri = options.tracking_uri or tracking.default_tracking_uri(options.home)
    if options.register:
        from search.tracking import reproduce_runs

        report.registered = reproduce_runs.register(
            report.tracking_uri, report.run_id, options.register,
            f"study '{study.study_name}', trial {trial.number}, test loss {report.test_loss:.4g}")
    plain_numbers(report)
    printed.print_report(report, looks, out)
    from search.studies.looks import looks_at_other_draws

    if elsewhere := looks_at_other_draws(study):  # a new seed's test rows: "one look" after four at the file
        names = ", ".join(sorted({f"'{look['study']}'" for look in elsewhere}))
        print(f"  note: the same data had {len(elsewhere)} earlier look(s) at other test rows, by study {names} "
              f"(another draw of the test rows): rows seen at those looks may be among this study's development "
              f"rows, so this is no first look at unseen rows", file=out)
    return report


def _top_ensemble(target: Target, prepared: session.Prepared, options: Options,
                  out: TextIO) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Final models of the next best complete trials (their own configs and epoch rules), for averaging."""
    from search import tracking
    from search.reproduction import targets

    study = target.study
    ranked = sorted((t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"
                     and t.values is not None and t.number != target.trial.number and t.user_attrs.get("splits")),
                    key=lambda t: t.values[0])
    members, preds, configs = [], [], []
    uri = options.tracking_uri or tracking.default_tracking_uri(options.home)
    for t in ranked[: options.ensemble - 1]:
        space, origin = targets.trial_config(study, t, uri)
        settings = nest(space.leaves())
        epochs, _ = final_epochs(list(t.user_attrs["splits"]), prepared.splits, len(prepared.dev_idx),
                                 int(settings["train"]["batch_size"]))
        member = Target(study, t, space, origin)
        *_, pred = _final_model(member, prepared, settings, epochs)
        members.append(t.number)
        preds.append(pred)
        configs.append(looks_module.config_hash(_by_full_paths(member, settings)))  # judged on the test rows too
    if len(members) < options.ensemble - 1:
        print(f"  --ensemble {options.ensemble}: the study has only {len(members) + 1} complete trial(s) to "
              f"average", file=out)
    return members, preds, configs


@dataclass
class SplitScore:
    test_loss: float          # the data loss on the test rows (no weight penalty), like the stored val_loss
    test_pred: np.ndarray
    test_rows: np.ndarray     # per-row test losses
    val_rows: np.ndarray      # per-row losses on the split's own validation rows


def score_split(model: Any, prepared: session.Prepared, k: int) -> SplitScore:
    """A split model sees rows scaled with its own split's scaler, as in training."""
    ds, split = prepared.dataset, prepared.splits[k]
    scaler = preprocess.fit(prepared.space.data.preprocess, ds.X[split.train], prepared.space.data.missing,
                            ds.one_hot_columns, ds.as_is_columns)
    X_val, X_test = preprocess.apply(scaler, ds.X[split.val]), preprocess.apply(scaler, ds.X[prepared.test_idx])
    y_test = ds.y[prepared.test_idx]
    test_pred, val_pred = _predict(model, X_test), _predict(model, X_val)
    test_rows = scoring.row_losses(ds.task, y_test, test_pred)
    return SplitScore(float(np.mean(test_rows)), test_pred, test_rows,
                      scoring.row_losses(ds.task, ds.y[split.val], val_pred))


def _test_chance_loss(prepared: session.Prepared) -> float:
    """The test rows' loss of always predicting the development rows' class shares (their mean): what a model
    that learned nothing scores there, for the test loss to be read against."""
    from types import SimpleNamespace

    from search.review.diagnostics import split_chance_losses

    whole = SimpleNamespace(index=0, train=prepared.dev_idx, val=prepared.test_idx)
    losses = split_chance_losses(prepared.dataset.y, prepared.dataset.task, [whole])
    return losses[0][1] if 0 in losses else math.nan


def _classes_of(prepared: session.Prepared, rows: np.ndarray) -> np.ndarray:
    """The rows' classes by name (their codes index the dataset's classes)."""
    names = np.empty(len(prepared.dataset.classes), dtype=object)
    names[:] = list(prepared.dataset.classes)
    return names[prepared.dataset.y[rows].astype(int)]


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    # Calling the model directly: `predict` traces a new function per model and input shape, and TensorFlow
    # warns about the retracing.
    return np.concatenate([np.asarray(model(X[i:i + 4096], training=False)) for i in range(0, len(X), 4096)])


def _split_models(target: Target, prepared: session.Prepared, settings: dict[str, dict[str, Any]],
                  stored: list[dict[str, Any]], scores: dict[int, SplitScore], options: Options, out: TextIO,
                  data_changed: bool = False) -> str:
    """Score every split model: already re-trained by --verify, loaded from its checkpoint (on this disk or
    in the tracking server's artifact store), or re-trained.

    On data that changed (--allow-data-change) the checkpoints were trained on the old data's splits, whose
    rows the new test rows may be: they are trained again on the new splits, as a new configuration is.
    """
    from search import tracking
    from search.runner import training

    home, run_id = options.home, target.trial.user_attrs.get("mlflow_run_id")

    verified = [record["split"] for record in stored if record["split"] in scores]
    retrained, loaded, to_train = [], [], []
    for record in stored:
        k = record["split"]
        if k in scores:
            continue
        if target.changed or data_changed:  # trial N's checkpoints are not this config's or this data's models
            to_train.append(record)
            continue
        path = checkpoints.split_path(home, target.study.study_name, target.trial.number, k)
        if not path.is_file() and run_id and options.tracking_uri and tracking.is_server(options.tracking_uri):
            tracking.fetch_checkpoint(options.tracking_uri, run_id, path)
        if path.is_file():
            scores[k] = score_split(checkpoints.load_model(path), prepared, k)
            loaded.append(k)
            continue
        to_train.append(record)
    if to_train:  # together, as the search trained them (a fused branch does not depend on its neighbours)
        chosen = [prepared.splits[record["split"]] for record in to_train]
        seeds = [training.derive_seed(target.space.study.seed, target.seed_trial, split.index) for split in chosen]
        for record, (model, result) in zip(to_train, training.train_splits(target.space, settings,
                                                                           prepared.dataset, chosen, seeds)):
            k = record["split"]
            if target.changed or data_changed:
                record.update(best_val_loss=result.best_val_loss, best_epoch=result.best_epoch)
            scores[k] = score_split(model, prepared, k)
            retrained.append(k)
    if target.changed:
        print(f"  a new configuration: trained its {len(retrained)} split model(s) from trial "
              f"{target.trial.number}'s seeds", file=out)
    elif data_changed and retrained:
        print(f"  the data changed: trained the {len(retrained)} split model(s) again on the new data's splits, "
              f"from trial {target.trial.number}'s seeds (its checkpoints were trained on rows that may now be "
              f"test rows)", file=out)
    elif retrained:
        print(f"  no checkpoint of split(s) {', '.join(map(str, retrained))} is on disk (study.keep_checkpoints "
              f"keeps those of the best {target.space.study.keep_checkpoints} trials, or they were deleted); "
              f"re-trained them from their seeds", file=out)
    if len(loaded) == len(stored):
        return "checkpoints"
    if len(verified) == len(stored):  # the models --verify trained again and compared with the checkpoints
        return "retrained by --verify"
    return "partly retrained" if loaded else "retrained"


def _final_model(target: Target, prepared: session.Prepared, settings: dict[str, dict[str, Any]],
                 epochs: int) -> tuple[Any, float, float, dict[str, list[float]], np.ndarray]:
    """Train on all development rows, bake the scaler in, and look at the test rows once."""
    from search.runner import training
    from search.models import Head

    ds, dev, test = prepared.dataset, prepared.dev_idx, prepared.test_idx
    scaler = preprocess.fit(target.space.data.preprocess, ds.X[dev], target.space.data.missing, ds.one_hot_columns,
                            ds.as_is_columns)
    head = Head.for_rows(ds.task, ds.n_outputs, ds.y[dev])
    seed = training.derive_seed(target.space.study.seed, target.seed_trial, FINAL_SEED_SPLIT)
    core = training.fresh_model(target.space, settings, ds.input_shape, head, seed)
    history = training.fit_epochs(core, preprocess.apply(scaler, ds.X[dev]), ds.y[dev], settings["train"], epochs,
                                  head)
    final = preprocess.taking_raw_rows(core, scaler, ds.input_shape, "final_model")
    training.compile_model(final, settings["train"], head)
    # Its optimizer's slots made now, so that loading the saved file finds the variables it makes itself
    # (Keras warns of "skipping variable loading for optimizer" otherwise).
    final.optimizer.build(final.trainable_variables)
    # The data loss of the predictions, as every validation loss of the search: no weight penalty.
    pred = _predict(final, ds.X[test])
    loss = float(np.mean(scoring.row_losses(ds.task, ds.y[test], pred)))
    return final, loss, scoring.metric(ds.task, ds.y[test], pred), history, pred


def _by_full_paths(target: Target, settings: dict[str, dict[str, Any]],
                   builder_code: str | None = None) -> dict[str, dict[str, Any]]:
    """The settings with the builder and the weights file named by their full paths, as an exported config
    names them: the same config judged again by its exported file counts as the same config. A builder
    whose code changed since the trial makes it another config."""
    from search.reproduction.targets import model_files

    files = {key: value for key, value in model_files(target.space).items() if key in settings["model"]}
    code = {"builder_code": builder_code} if builder_code else {}
    return {**settings, "model": {**settings["model"], **files, **code}, **looks_module.inputs_of(target.space)}


def _log(target: Target, options: Options, report: Report, prepared: session.Prepared,
         settings: dict[str, dict[str, Any]], final: Any, history: dict[str, list[float]],
         looks: list[dict[str, Any]], started: float | None = None) -> str:
    from search import tracking
    from search.runner import provenance
    from search.tracking import reproduce_runs

    study, trial, metric = target.study, target.trial, report.metric_name
    uri = options.tracking_uri or tracking.default_tracking_uri(options.home)
    tags = {**provenance.record(target.space.path.parent if target.space.path else None),
            **{k: v for k, v in prepared.attrs().items() if k.endswith("fingerprint")},
            "search.source_run_id": trial.user_attrs.get("mlflow_run_id", ""),
            "optuna.trial_number": trial.number, "search.config_from": target.origin,
            "search.edited": ", ".join(target.changed) if target.changed else "false",
            "data_changed": str(bool(report.data_changes)).lower(), "split_models": report.split_models,
            "builder_changed": str(report.builder_changed).lower(),
            "epoch_rule": report.epoch_rule, "overfit_alarm": str(report.alarm.fired).lower(),
            "test_looks": len(looks), "config_hash": looks[-1]["config"],
            "verify": "passed" if report.verified else "not run"}  # a mismatch stopped before anything was logged
    if report.alarm.fired:
        tags["overfit_warning"] = report.alarm.warning()
    metrics = {"test_loss": report.test_loss, f"test_{metric}": report.test_metric,
               **({"test_chance_loss": report.test_chance_loss} if math.isfinite(report.test_chance_loss) else {}),
               "ensemble_test_loss": report.ensemble_loss, f"ensemble_test_{metric}": report.ensemble_metric,
               "final_epochs": float(report.epochs), **report.alarm.metrics(),
               **{f"test_{name}": value for name, value in report.test_scores.items()},
               **{f"ensemble_test_{name}": value for name, value in report.ensemble_scores.items()}}
    if history.get("loss"):
        metrics["final_train_loss"] = history["loss"][-1]
    if history.get("penalty"):
        metrics["final_train_penalty"] = history["penalty"][-1]
    if report.ensemble_trials:
        metrics[f"top{len(report.ensemble_trials)}_ensemble_test_loss"] = report.top_ensemble_loss
        metrics[f"top{len(report.ensemble_trials)}_ensemble_test_{metric}"] = report.top_ensemble_metric
        tags["ensemble_trials"] = ",".join(map(str, report.ensemble_trials))
    if report.checks:
        metrics["verify_max_abs_diff"] = max(abs(c.loss - c.stored_loss) for c in report.checks)
    summary = {"trial": trial.number, "epochs": report.epochs, "epoch_rule": report.epoch_rule,
               **({"epoch_note": report.epoch_note} if report.epoch_note else {}),
               **({"recall_by_class": report.recalls} if report.recalls else {}),
               "metrics": metrics, "split_models": report.split_models, "data_changes": report.data_changes,
               "verify": None if report.checks is None else [vars(c) for c in report.checks],
               "model": report.model_io}
    params = {**flatten(settings), "final.epochs": report.epochs, "final.seed_trial": target.seed_trial}
    # An edited config is not the trial: its run says so by name, and by tag for a search of the runs.
    return reproduce_runs.log_reproduction(
        uri, options.home, study.study_name,
        # The test score leads, as the outcome leads a trial's name: the runs table showed "-" in every column
        # of a reproduce run, whose score is a test score, not one of the validation columns.
        run_name=f"reproduce t{trial.number:03d} test {report.test_loss:.4g} (look {len(looks)})"
                 + (" (edited config)" if target.changed else ""),
        parent_run_id=study.user_attrs.get(tracking.PARENT_RUN_ATTR), tags=tags, params=params, metrics=metrics,
        texts={"config/resolved.yaml": target.space.to_yaml(),
               "reproduce.json": json.dumps(summary, indent=2, default=float), "rows.csv": report.rows_csv,
               **report.class_files},
        model=final, started=started,
        columns=report.model_io.get("inputs", {}).get("features"), outputs=served.output_names(report.model_io),
        one_hot=report.model_io.get("inputs", {}).get("one_hot"), fills=target.space.data.missing != "refuse",
        pixel_max=float(np.max(prepared.dataset.X[prepared.dev_idx])) if prepared.dataset.X.ndim > 2 else None)
