"""Pruning inside a split and across splits, what a pruned trial keeps, and the baseline trial 0."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli
from search import space as spaces
from search.review.display import pruned_summary
from search.studies import lifecycle as studies
from search.studies import pruning
from search.studies.pruning import PairedSplitRule, SplitPruner, epoch_step, split_step


def _study(home, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'optuna.db'}")


def _runs(home, name):
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(name)
    return client, {int(r.data.tags["optuna.trial_number"]): r
                    for r in client.search_runs([exp.experiment_id], "tags.`search.kind` = 'trial'")}


# -- real training -----------------------------------------------------------------------------


def test_absurd_learning_rate_is_pruned_and_keeps_what_it_measured(write_space, home, capsys):
    # The across-split rule acts between splits trained one after another; fused splits finish together,
    # so it has nothing left to save there (test_fused.py covers that path).
    overrides = {"study": {"name": "absurd", "n_trials": 1, "pruner": "none"},
                 "train": {"epochs": 6, "learning_rate": {"choice": [0.05, 1.0e-6]}, "fuse_splits": False}}
    path = write_space(overrides)
    assert run_cli("run", path, "--home", home, "--quiet") == 0  # trial 0: the baseline, lr 0.05
    _study(home, "absurd").enqueue_trial({"train.learning_rate": 1.0e-6, "model.dropout": 0.0})
    path = write_space({**overrides, "study": {**overrides["study"], "n_trials": 2}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0

    good, absurd = _study(home, "absurd").trials
    assert good.state.name == "COMPLETE" and absurd.state.name == "PRUNED"
    assert "after 2 of 3 splits" in absurd.user_attrs["reason"]
    # Optuna keeps the finished splits: their scores at the split steps, their curves at the epoch steps.
    measured = [s["best_val_loss"] for s in absurd.user_attrs["splits"]]
    assert len(measured) == 2
    assert [absurd.intermediate_values[split_step(k)] for k in (0, 1)] == pytest.approx(measured)
    assert all(epoch_step(k, e) in absurd.intermediate_values for k in (0, 1) for e in range(1, 7))
    assert split_step(2) not in absurd.intermediate_values
    assert absurd.user_attrs["splits_done"] == 2
    assert absurd.user_attrs["val_loss_mean"] == pytest.approx(np.mean(measured))
    assert all(m > g + 0.1 for m, g in zip(measured, [s["best_val_loss"] for s in good.user_attrs["splits"]]))

    client, runs = _runs(home, "absurd")
    run = runs[1]
    assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "PRUNED"
    assert run.data.tags["pruned"] == "true" and run.data.tags["best"] == "false"
    assert run.info.run_name.startswith("t001 pruned after 2/3 splits")
    # Not judged (fit n/a): no gap_mean or overfit_splits of 0 that read as a judgement.
    assert run.data.tags["fit"] == "n/a" and not {"gap_mean", "overfit_splits"} & set(run.data.metrics)
    assert runs[0].info.run_name.startswith("t000 ★ ") and runs[0].data.tags["best"] == "true"
    # search status and search best account for it, and say why.
    capsys.readouterr()
    assert run_cli("status", "absurd", "--home", home) == 0
    assert run_cli("best", "absurd", "--home", home) == 0
    out = capsys.readouterr().out
    assert out.count("1 pruned: 1 across splits (after 2 finished splits, worse than the best trial on each)") == 2
    assert run.data.metrics["splits_done"] == 2
    assert run.data.metrics["val_loss_mean"] == pytest.approx(np.mean(measured))
    curve = client.get_metric_history(run.info.run_id, "split_1/val_loss")
    assert sorted(m.step for m in curve) == list(range(1, 7))
    assert "split_2/val_loss" not in run.data.metrics
    assert runs[0].info.status == "FINISHED"


def test_trial_zero_is_the_baseline_with_every_regularizer_off(write_space, home):
    import keras

    path = write_space({"study": {"name": "base", "n_trials": 1},
                        "model": {"units": {"int": [4, 16], "default": 8}, "dropout": {"float": [0.0, 0.5]},
                                  "l1": {"float": [0.0, 0.01]},
                                  "l2": {"float": [1.0e-5, 1.0e-2], "log": True, "or_off": True},
                                  "batchnorm": {"choice": [True, False]}},
                        "train": {"optimizer": "adamw", "weight_decay": {"float": [0.0, 0.01]},
                                  "learning_rate": {"float": [1.0e-3, 1.0e-1], "log": True}}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trial = _study(home, "base").trials[0]
    assert trial.number == 0 and trial.user_attrs["baseline"] is True and trial.state.name == "COMPLETE"
    assert trial.params == {"model.units": 8, "model.dropout": 0.0, "model.l1": 0.0, "model.l2.on": False,
                            "model.batchnorm": False, "train.weight_decay": 0.0,
                            "train.learning_rate": pytest.approx(math.sqrt(1e-3 * 1e-1))}
    _, runs = _runs(home, "base")
    assert runs[0].data.tags["search.baseline"] == "true" and runs[0].data.params["model.l2"] == "0.0"
    # The trained model itself carries no regularizer.
    model = keras.models.load_model(home / "checkpoints" / "base" / "trial_00000" / "split_00.keras")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Dropout" not in kinds and "BatchNormalization" not in kinds
    assert all(layer.get_config().get("kernel_regularizer") is None for layer in model.layers)


# -- the pruner on stored values (real Optuna storage, no training) ------------------------------


def _storage(tmp_path):
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def _add_complete(study, curves: list[list[float]], scores: list[float]) -> None:
    values = {epoch_step(k, e): v for k, curve in enumerate(curves) for e, v in enumerate(curve, start=1)}
    values.update({split_step(k): s for k, s in enumerate(scores)})
    study.add_trial(optuna.trial.create_trial(value=float(np.mean(scores)), intermediate_values=values))


def _running(study, values: dict[int, float]):
    trial = study.ask()
    for step, value in values.items():
        trial.report(value, step)
    return study._storage.get_trial(trial._trial_id)


def test_within_split_pruner_compares_only_the_current_split(tmp_path):
    study = optuna.create_study(storage=_storage(tmp_path))
    _add_complete(study, [[1.0] * 6, [1.0] * 6, [1.0] * 6], [1.0, 1.0, 1.0])
    # Split 0 went very well, then split 1 is far worse than the other trial's split 1.
    trial = _running(study, {**{epoch_step(0, e): 0.1 for e in range(1, 7)}, split_step(0): 0.1,
                             **{epoch_step(1, e): 5.0 for e in range(1, 7)}})
    median = optuna.pruners.MedianPruner(n_startup_trials=1)
    assert SplitPruner(median, None).prune(study, trial)
    # Optuna's median pruner alone takes the best value over every step, split 0's 0.1, and keeps it.
    assert not median.prune(study, trial)
    # Resource-based pruners judge split 0 only.
    assert not SplitPruner(median, None, first_split_only=True).prune(study, trial)


def test_across_split_rule_stops_only_a_trial_worse_on_every_finished_split(tmp_path):
    study = optuna.create_study(storage=_storage(tmp_path))
    _add_complete(study, [[0.5], [0.5], [0.5]], [0.30, 0.34, 0.32])
    pruner = SplitPruner(None, PairedSplitRule(min_splits=2), n_splits=3)

    def judge(scores):
        return pruner.prune(study, _running(study, {split_step(k): s for k, s in enumerate(scores)}))

    assert judge([0.60, 0.65])            # worse on both splits by far more than the best trial's spread
    assert not judge([0.60])              # one split is not evidence
    assert not judge([0.60, 0.33])        # as good as the best on split 1
    assert not judge([0.31, 0.35])        # worse, but within the best trial's split-to-split spread
    assert not judge([0.9, 0.9, 0.9])     # the last split: nothing left to save
    # An epoch step never reaches the across rule, a split step never reaches the within rule.
    assert not pruner.prune(study, _running(study, {split_step(0): 0.9, split_step(1): 0.9,
                                                    epoch_step(2, 1): 0.9}))


def test_make_pruner_gives_resource_pruners_epochs_of_the_first_split(write_space):
    space = spaces.load(write_space({"study": {"pruner": "hyperband"}, "train": {"epochs": 30}}))
    pruner = studies.make_pruner(space, n_splits=3)
    assert isinstance(pruner, SplitPruner) and pruner.first_split_only and pruner.n_splits == 3
    assert pruner.within._min_resource == pruning.PRUNE_WARMUP_EPOCHS
    assert pruner.within._max_resource == 30  # not the 20030 that "auto" would read from the steps
    median = studies.make_pruner(spaces.load(write_space({"study": {"pruner": "median"}})), n_splits=3)
    assert not median.first_split_only and isinstance(median.across, PairedSplitRule)
    multi = spaces.load(write_space({"study": {"objectives": ["val_loss", "params"]}}))
    assert isinstance(studies.make_pruner(multi), optuna.pruners.NopPruner)


def test_pruned_trials_are_summed_up_by_where_they_were_pruned():
    study = optuna.create_study()
    reasons = ["pruned in split 0 at epoch 5", "pruned in split 0 at epoch 8", "pruned in split 0 at epoch 6",
               "pruned in split 1 at epoch 7", "pruned after 2 of 3 splits: worse than the best trial",
               "non-finite loss in split 0 at epoch 2: these settings diverge"]
    study.add_trial(optuna.trial.create_trial(value=0.5))
    for reason in reasons:
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"reason": reason}))
    assert pruned_summary(study) == ("6 pruned: 3 within split 0 at epochs 5-8, 1 within split 1 at epoch 7, "
                                     "1 across splits (after 2 finished splits, worse than the best trial on each), "
                                     "1 diverged (non-finite loss)")
    assert pruned_summary(optuna.create_study()) == ""


def test_failed_trials_are_summed_up_by_their_reasons_and_a_failed_baseline_is_named():
    from search.review.display import failed_summary
    from search.review.verdicts import why_ended

    study = optuna.create_study()
    fail = optuna.trial.TrialState.FAIL
    study.add_trial(optuna.trial.create_trial(state=fail, user_attrs={
        "baseline": True, "failure": "bad_settings", "reason": "ValueError: dropout 0 is not allowed\nmore"}))
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(state=fail, user_attrs={
            "failure": "bad_settings", "reason": "ZeroDivisionError: division by zero"}))
    study.add_trial(optuna.trial.create_trial(state=fail, user_attrs={
        "failure": "interrupted", "reason": "stopped by SIGINT in split 0 at epoch 3; queued to run again"}))
    study.add_trial(optuna.trial.create_trial(value=0.5))
    assert failed_summary(study) == ("5 failed: 3 × ZeroDivisionError: division by zero; 1 × ValueError: dropout 0 "
                                     "is not allowed; 1 stopped (queued again)")
    assert why_ended(study)[-1] == ("the baseline (trial 0, every regularizer off) failed: ValueError: dropout 0 is "
                                    "not allowed; the table has no unregularized trial to compare with")
    assert failed_summary(optuna.create_study()) == "" and why_ended(optuna.create_study()) == []


def test_the_late_median_rule_reads_the_study_once_a_second_per_trial_not_every_epoch(tmp_path, monkeypatch):
    from search.studies import pruning

    study = optuna.create_study(storage=_storage(tmp_path))
    for loss in (1.0, 1.1, 1.2, 1.3, 1.4):
        _add_complete(study, [[loss] * 8], [loss])
    reads = []
    real_get_trials = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda *a, **k: reads.append(1) or real_get_trials(*a, **k))
    clock = [1000.0]
    monkeypatch.setattr(pruning.time, "monotonic", lambda: clock[0])
    rule = pruning.LateMedianRule(startup=5, warmup_fraction=0.0)

    def judge(trial, epoch, value):
        return rule.prune(study, pruning._view(trial, {epoch_step(0, epoch): value}))

    first = _running(study, {})
    assert [judge(first, epoch, 1.12) for epoch in (5, 6, 7)] == [False] * 3  # below the median, 1.2
    assert len(reads) == 1                                                   # three epochs, one read
    for _ in range(3):  # another worker completes three much better trials: the median falls to 1.05
        _add_complete(study, [[0.1] * 8], [0.1])
    assert not judge(first, 8, 1.12) and len(reads) == 1  # not seen within the second ...
    clock[0] += pruning.REREAD_SECONDS
    assert judge(first, 8, 1.12) and len(reads) == 2      # ... counted from the next read on
    second = _running(study, {})
    assert judge(second, 5, 1.12) and len(reads) == 3     # a new trial reads at once


class _AlwaysPrune(optuna.pruners.BasePruner):
    """A pruner that says prune at every epoch it is asked about."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize("fused", [True, False])
def test_a_trial_is_never_pruned_at_its_last_epoch(write_space, home, fused):
    """Pruning there saves no training and throws a finished result away (seen: pruned at epoch 6 of 6). One
    after another, only the last split's last epoch is that: pruning an earlier split saves the later ones."""
    from search.runner import session
    from search.runner.objective import Objective

    warm = pruning.PRUNE_WARMUP_EPOCHS
    states = []
    for epochs in (warm, warm + 1):  # first judged at the warm-up's end: the last epoch, then one before it
        space = spaces.load(write_space({"study": {"name": f"last{epochs}", "baseline": False},
                                         "validation": {"scheme": "kfold", "k": 2} if fused else
                                         {"scheme": "holdout"},
                                         "train": {"epochs": epochs, "early_stopping": 0, "fuse_splits": fused}}))
        prepared = session.prepare(space, threads=1)
        study = optuna.create_study(pruner=_AlwaysPrune())
        study.optimize(Objective(space, prepared.dataset, prepared.splits, home), n_trials=1)
        states.append(study.trials[0].state.name)
    assert states == ["COMPLETE", "PRUNED"]


def test_a_diverged_split_has_no_best_epoch_in_the_trials_table():
    """A diverged split recorded best epoch 0 (no epoch is 0) beside its infinite loss in `search best --csv`."""
    import csv
    import io
    import math

    from search.review._table import trials_csv

    study = optuna.create_study()
    splits = [{"split": 0, "best_val_loss": math.inf, "best_epoch": 0},
              {"split": 1, "best_val_loss": 0.5, "best_epoch": 3}]
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={"splits": splits}))
    (row,) = csv.DictReader(io.StringIO(trials_csv(study)))
    assert (row["split_0_best_epoch"], row["split_1_best_epoch"]) == ("", "3")


def test_a_pruned_curve_is_said_with_its_loss_and_the_bar_it_missed():
    """'pruned at epoch 5: worse than the pruner lets through' gave neither the split's loss nor the median it
    had to beat, as Optuna's users read 'pruned at step N with value X'."""
    from search.studies.pruning import LateMedianRule, SplitPruner, epoch_step

    study = optuna.create_study()
    for i, value in enumerate([0.30, 0.32, 0.34, 0.36, 0.38]):
        study.add_trial(optuna.trial.create_trial(
            value=value, intermediate_values={epoch_step(0, e): value + 0.1 for e in range(1, 7)},
            user_attrs={"best_epoch_mean": 6.0}))
    pruner = SplitPruner(LateMedianRule(startup=5))
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                      intermediate_values={epoch_step(0, e): 0.9 - 0.01 * e for e in range(1, 7)})
    assert pruner.prune(study, trial)
    assert pruner.verdict == ("its best validation loss on split 0 by epoch 6, 0.84, was above the median of the 5 "
                              "compared complete trials at that epoch, 0.44")
