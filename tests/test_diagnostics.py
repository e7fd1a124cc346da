"""The overfitting diagnostics on constructed learning curves: gap, best epoch, onset, and the fit rule."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from search.review import diagnostics as dx
from search import review

EPOCHS = 30
CHANCE = math.log(3)  # three balanced classes


def _overfits_at(onset: int, epochs: int = EPOCHS, seed: int = 0) -> dict[str, list[float]]:
    """Training loss falls all along; validation loss falls to `onset`, then climbs."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    loss = 1.0 * np.exp(-0.12 * e) + 0.02
    falling = 0.30 + 0.6 * np.exp(-0.3 * e)
    val = np.where(e <= onset, falling, falling[onset - 1] + 0.01 * (e - onset))
    # A wobble too small to move the minimum away from `onset`, as in a real run.
    val = val + rng.uniform(-0.001, 0.001, epochs) * (e < onset - 3)
    return {"loss": loss.tolist(), "val_loss": val.tolist()}


def _flat_high(epochs: int = EPOCHS) -> dict[str, list[float]]:
    e = np.arange(1, epochs + 1)
    return {"loss": (CHANCE + 0.02 * np.exp(-0.1 * e)).tolist(),
            "val_loss": (CHANCE + 0.01 + 0.01 * np.exp(-0.1 * e)).tolist()}


def _healthy(epochs: int = EPOCHS, seed: int = 0) -> dict[str, list[float]]:
    """Both losses fall and level off; validation wobbles a little on its plateau but never climbs."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, epochs + 1)
    loss = 0.9 * np.exp(-0.2 * e) + 0.10
    val = (0.9 * np.exp(-0.2 * e) + 0.16) * (1 + rng.uniform(-0.005, 0.005, epochs))
    return {"loss": loss.tolist(), "val_loss": val.tolist()}


def test_a_curve_that_overfits_at_epoch_12_is_tagged_overfit_with_onset_12():
    h = _overfits_at(12)
    d = dx.diagnose_split(h["loss"], h["val_loss"], reference=CHANCE)
    assert d.fit == "overfit"
    assert d.onset == 12
    assert d.best_epoch == 12
    assert d.gap == pytest.approx(h["val_loss"][11] - h["loss"][11])
    trial = dx.diagnose_trial({0: h}, reference=CHANCE)
    assert (trial.fit, trial.onset, trial.overfit_splits) == ("overfit", 12, 1)
    assert trial.metrics()["overfit_onset"] == 12 and trial.metrics()["split_0/overfit_onset"] == 12


def test_a_flat_high_curve_is_underfit():
    h = _flat_high()
    d = dx.diagnose_split(h["loss"], h["val_loss"], reference=CHANCE)
    assert (d.fit, d.onset) == ("underfit", None)
    assert dx.diagnose_trial({0: h, 1: _flat_high()}, reference=CHANCE).fit == "underfit"


def test_a_healthy_curve_is_good():
    for seed in range(5):
        h = _healthy(seed=seed)
        d = dx.diagnose_split(h["loss"], h["val_loss"], reference=CHANCE)
        assert (d.fit, d.onset) == ("good", None), seed
        assert d.gap > 0


def test_onset_needs_patience_epochs_of_rise_while_training_loss_falls():
    h = _overfits_at(12)
    # The rise is cut short: two rising epochs, then validation comes back below epoch 12's value.
    blip = list(h["val_loss"][:14]) + [h["val_loss"][11] - 0.001 * i for i in range(1, EPOCHS - 13)]
    assert dx.overfit_onset(h["loss"], blip, patience=3) is None
    assert dx.overfit_onset(h["loss"], blip, patience=2) == 12
    # Validation climbs but so does training loss: divergence, not overfitting.
    rising_train = list(h["loss"][:12]) + [h["loss"][11] + 0.05 * i for i in range(1, EPOCHS - 11)]
    assert dx.overfit_onset(rising_train, h["val_loss"]) is None
    # A rise smaller than the tolerance on a plateau is noise.
    plateau = [0.5] * 10 + [0.5 + 0.001 * i for i in range(1, 6)]
    assert dx.overfit_onset([1.0 - 0.01 * i for i in range(15)], plateau) is None


def test_without_a_reference_nothing_is_called_underfit():
    h = _flat_high()
    assert dx.diagnose_split(h["loss"], h["val_loss"], reference=None).fit == "good"


def test_the_trial_takes_the_most_common_split_fit_and_ties_go_to_overfit():
    trial = dx.diagnose_trial({0: _overfits_at(10), 1: _overfits_at(14), 2: _healthy()}, reference=CHANCE)
    assert trial.fit == "overfit" and trial.onset == 12 and trial.overfit_splits == 2
    assert [s.fit for s in trial.splits] == ["overfit", "overfit", "good"]
    tie = dx.diagnose_trial({0: _overfits_at(10), 1: _healthy()}, reference=CHANCE)
    assert tie.fit == "overfit"
    mostly_good = dx.diagnose_trial({0: _overfits_at(10), 1: _healthy(), 2: _healthy(seed=1)}, reference=CHANCE)
    assert mostly_good.fit == "good" and mostly_good.onset is None and mostly_good.overfit_splits == 1


def test_a_curve_with_no_finite_validation_loss_is_underfit():
    d = dx.diagnose_split([math.nan] * 3, [math.inf] * 3, reference=CHANCE)
    assert d.fit == "underfit" and d.best_epoch == 0


def test_chance_loss_is_the_prior_cross_entropy_or_the_target_variance():
    assert dx.chance_loss(np.array([0, 1, 2] * 10), "multiclass") == pytest.approx(math.log(3))
    assert dx.chance_loss(np.array([0, 0, 0, 1]), "binary") == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert dx.chance_loss(np.array([1.0, 3.0]), "regression") == pytest.approx(1.0)


def test_a_split_that_stopped_counts_in_the_mean_curve_with_its_best_epoch():
    """The mean of the splits still training dropped once the harder ones stopped early: the best trial's
    dot in the before/after figure sat at half its score. A stopped split keeps its best epoch's weights."""
    curves = {0: {"val_loss": [0.9, 0.5, 0.4, 0.3], "loss": [1.0, 0.6, 0.4, 0.2]},
              1: {"val_loss": [1.0, 0.8, 0.9], "loss": [1.2, 0.9, 0.7]},  # stopped after epoch 3, best at 2
              2: {"val_loss": [0.9, 0.7, 0.6, 0.5], "loss": [1.1, 0.8, 0.6, 0.5]}}
    val = dx.mean_curve(curves, "val_loss")
    assert val == pytest.approx([0.9333333, 0.6666667, 0.6333333, 0.5333333])
    assert min(val) >= np.mean([0.3, 0.8, 0.5]) - 1e-9, "no point below the mean of the splits' best losses"
    assert dx.mean_curve(curves, "loss")[3] == pytest.approx((0.2 + 0.9 + 0.5) / 3)
    assert dx.mean_curve({0: {"loss": [3.0, 2.0]}, 1: {"loss": [1.0]}}, "loss") == pytest.approx([2.0, 1.5])


@pytest.mark.parametrize("params, baseline, name", [
    ({"model.dropout": 0.3111, "model.l2.on": True, "model.l2": 0.000312, "train.learning_rate": 0.0042},
     False, "t007 dropout=0.31 l2=3.1e-4 learning_rate=4.2e-3"),
    ({"model.dropout": 0.25, "model.l2.on": False, "model.units": 128, "model.batchnorm": True},
     False, "t007 dropout=0.25 l2=off units=128 batchnorm=true"),
    ({"model.dropout": 0.0}, True, "t007 baseline"),
    ({"model.l2": 0.01, "train.l2": 0.5}, False, "t007 model.l2=0.01 train.l2=0.5"),
])
def test_run_names_say_what_differs(params, baseline, name):
    assert review.trial_label(7, params, baseline) == name


def test_importance_figures_leave_no_fanova_forest_behind():
    """Optuna's fANOVA trees memoize in class-level caches; a figure refresh per trial must not pile them up."""
    import gc

    import optuna
    from optuna.importance._fanova._tree import _FanovaTree

    from search.review import figures

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("a", 0, 1) ** 2 + 0.1 * t.suggest_float("b", 0, 1), n_trials=12)
    pngs = figures.optuna_pngs(study)
    assert "param_importances" in pngs and pngs["param_importances"].startswith(b"\x89PNG")
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, _FanovaTree)]


@pytest.mark.parametrize("state, value, reason, best, name", [
    ("complete", 0.06261, "", True, "t016 ★ 0.06261 dropout=0.3"),
    ("complete", 0.07, "", False, "t016 0.07 dropout=0.3"),
    ("pruned", math.nan, "pruned in split 0 at epoch 5", False, "t016 pruned s0e5 dropout=0.3"),
    ("pruned", math.nan, "pruned after split 2 of 3: worse than the best trial on every finished split", False,
     "t016 pruned after 2/3 splits dropout=0.3"),
    ("pruned", math.nan, "pruned after 2 of 3 splits: worse than the best trial on every finished split", False,
     "t016 pruned after 2/3 splits dropout=0.3"),
    ("pruned", math.nan, "non-finite loss in split 1 at epoch 2: these settings diverge", False,
     "t016 diverged s1e2 dropout=0.3"),
    ("failed", math.nan, "ValueError: boom", False, "t016 failed dropout=0.3"),
])
def test_finished_run_names_lead_with_the_outcome(state, value, reason, best, name):
    assert review.outcome_label(16, {"model.dropout": 0.3}, False, state, value, reason, best) == name


def test_early_stopping_doing_its_job_is_not_overfitting():
    """The best trial of the issue: a small gap, and the 3 rising epochs early stopping waits before it stops."""
    e = np.arange(1, 11)
    loss = (0.9 * np.exp(-0.3 * e) + 0.25).tolist()
    val = (0.9 * np.exp(-0.3 * e) + 0.29).tolist()
    val += [val[-1] * 1.01, val[-1] * 1.02, val[-1] * 1.03]  # 3 % up: the old onset rule fired here
    loss += [loss[-1] - 0.005 * i for i in (1, 2, 3)]
    assert dx.overfit_onset(loss, val, patience=3) == 10
    d = dx.diagnose_split(loss, val, reference=CHANCE, patience=3)
    assert (d.fit, d.onset, d.best_epoch) == ("good", None, 10)
    assert d.gap == pytest.approx(0.04, abs=1e-9) and 0 < d.rise < dx.OVERFIT_CHANCE_SHARE * CHANCE


def test_a_large_gap_with_validation_drifting_up_through_noise_is_overfit():
    """The baseline of the issue: gap 0.13 at the best epoch, then validation loss climbs, noisily."""
    rng = np.random.default_rng(3)
    e = np.arange(1, 31)
    loss = 0.8 * np.exp(-0.2 * e) + 0.05
    val = np.where(e <= 10, 0.8 * np.exp(-0.2 * e) + 0.15, 0.8 * np.exp(-2.0) + 0.15 + 0.006 * (e - 10))
    val = val + np.where(e > 10, rng.uniform(-0.01, 0.01, 30), 0.0)
    val[9] -= 0.03  # a clear best at epoch 10
    d = dx.diagnose_split(loss.tolist(), val.tolist(), reference=CHANCE)
    assert d.best_epoch == 10 and d.gap == pytest.approx(0.07, abs=1e-6)
    assert (d.fit, d.onset) == ("overfit", 10) and d.rise > max(0.5 * d.gap, 0.05 * CHANCE)


def test_a_pruned_trial_is_not_judged():
    from search.runner.results import SplitResult, TrialOutcome
    from search.tracking import trial_fit

    h = _overfits_at(12)
    diagnosis = dx.diagnose_trial({0: h}, reference=CHANCE)
    split = SplitResult(0, 12, 0.3, 0.9, 20, history=h, stop_reason="stopped")
    assert trial_fit(TrialOutcome(1, "pruned", {}, [split]), diagnosis) == "n/a"
    assert trial_fit(TrialOutcome(1, "complete", {}, [split]), diagnosis) == "overfit"


def test_figures_are_large_with_integer_epochs_a_legend_outside_and_a_log_axis_for_decades():
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from search.review import figures

    h = _overfits_at(12)
    d = dx.diagnose_trial({0: h}, reference=CHANCE)
    captured = {}
    original = Figure.savefig

    def keep(fig, *args, **kwargs):  # read the real figure as it is saved
        captured["fig"] = fig
        return original(fig, *args, **kwargs)

    Figure.savefig = keep
    try:
        png = figures.before_after(("t016 dropout=0.3", {0: h}, d), ("t000 baseline", {0: _healthy()}, d))
        fig = captured["fig"]
        ax = fig.axes[0]
        legend = ax.get_legend()
        labels = [t.get_text() for t in legend.get_texts()]
        assert "t016 (best): training" in labels and "t000 (baseline): validation" in labels
        fig.canvas.draw()
        box, plot = legend.get_window_extent(), ax.get_window_extent()
        assert box.x0 >= plot.x1, "the legend covers the curves"
        assert all(float(t).is_integer() for t in ax.get_xticks())
        assert ax.get_yscale() == "linear"
        decades = {0: {"loss": [10.0 ** -i for i in range(6)], "val_loss": [10.0 ** -i + 0.001 for i in range(6)]}}
        figures.learning_curves(decades, dx.diagnose_trial(decades), "t001")
        assert captured["fig"].axes[0].get_yscale() == "log"
    finally:
        Figure.savefig = original
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1000, 600) and io.BytesIO(png).read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_rare_class_and_a_study_of_underfit_trials_are_said(tmp_path, capsys):
    """At 5 % positives every trial predicted the majority class, with an accuracy of 95 %, and the run called
    its small gains over the baseline improvements: nothing said accuracy meant little, or that no trial
    learned beyond the base rate."""
    import numpy as np
    import yaml

    from conftest import TINY, merge, run_cli

    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.05).astype(int)
    np.savez(tmp_path / "rare.npz", X=rng.normal(size=(600, 4)), y=y)  # no signal: nothing beyond the base rate
    path = tmp_path / "rare.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "rare", "n_trials": 2},
                                                "data": {"source": f"npz:{tmp_path / 'rare.npz'}"},
                                                "train": {"epochs": 2}})))
    assert run_cli("run", path, "--home", tmp_path / "h", "--quiet") == 0
    said = capsys.readouterr()
    assert re.search(r"class 1 is [3-7]\.\d% of the development rows \(\d+ rows; \d+(-\d+)? in each validation "
                     r"split\): a model that never predicts it can still reach an accuracy of 9\d\.\d%, so accuracy "
                     r"says little",
                     said.err), said.err
    assert "every complete trial (2) is underfit" in said.out
    # No signal to find: more capacity is the last advice, after the features (a noisy table's linear model is
    # no better), and more epochs come first only where the best trial was still improving.
    assert "that the features carry the signal (study.workflow: phased compares with a linear model, which noisy " \
           "data does not beat either) before searching more capacity" in said.out.replace("\n", " ")
    assert "of the chance-level loss, that of always predicting the training rows' class shares" in said.out


def test_a_best_trial_still_improving_at_its_last_epoch_is_said(tmp_path, capsys):
    """Its splits peaked at the last epoch trained, and it was called a good fit without a hint that more
    epochs would have helped (KerasTuner users look for that)."""
    import yaml

    from conftest import run_cli

    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "short", "n_trials": 1, "baseline": False, "ablation": False},
                                    "data": {"source": "sklearn:breast_cancer"},
                                    "validation": {"scheme": "kfold", "k": 3},
                                    "model": {"family": "mlp", "layers": 1, "units": 8},
                                    "train": {"epochs": 6, "learning_rate": 0.01, "early_stopping": 0}}))
    assert run_cli("run", path, "--home", tmp_path / "h", "--quiet", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert re.search(r"note: the best trial \(0\) peaked at its last epoch in [23] of its 3 split\(s\): it was still "
                     r"improving when training ended; raise train.epochs", out), out


def test_ten_balanced_classes_are_not_called_rare():
    """digits holds 9.7-10.1 % of each of its ten classes: a fixed 10 % threshold called one of them rare."""
    import numpy as np

    from search.data import Dataset
    from search.runner._space_warnings import _rare_class
    from search.splits import Split

    y = np.repeat(np.arange(10), [174, 177, 180, 180, 181, 182, 181, 179, 183, 180])
    digits = Dataset(X=np.zeros((len(y), 1)), y=y, task="multiclass", classes=list(range(10)))
    plan = [Split(0, np.arange(0, len(y), 2), np.arange(1, len(y), 2))]
    assert _rare_class(plan, digits) is None
    rare = np.concatenate([y, np.full(3, 10)])  # an eleventh class of 3 rows
    eleven = Dataset(X=np.zeros((len(rare), 1)), y=rare, task="multiclass", classes=list(range(11)))
    said = _rare_class([Split(0, np.arange(0, len(rare), 2), np.arange(1, len(rare), 2))], eleven)
    assert said is not None and said.startswith("class 10 is 0.2% of the development rows (3 rows;")

    # Four classes of which two are under 10 %: both are named (only the rarer one was), the rarer first.
    four = np.repeat(np.arange(4), [100, 90, 9, 5])
    shares = Dataset(X=np.zeros((len(four), 1)), y=four, task="multiclass", classes=["a", "b", "c", "d"])
    said = _rare_class([Split(0, np.arange(0, len(four), 2), np.arange(1, len(four), 2))], shares)
    assert said is not None and said.startswith("class 'd' is 2.5% of the development rows (5 rows;"), said
    assert "class 'c' is 4.4% of the development rows (9 rows;" in said and "never predicts them" in said
    assert "accuracy of 93.1%" in said


def test_a_class_too_rare_for_every_split_is_not_told_to_stratify():
    """A class of 2 rows in 3 folds: stratifying was refused ("stratify: false"), and with it off the warning
    said to set stratify: true, round and round."""
    from search.data import Dataset
    from search.runner._space_warnings import _classes_only_validated
    from search.splits import Split

    y = np.array([0, 1] * 30 + [2, 2])
    data = Dataset(X=np.zeros((len(y), 1)), y=y, task="multiclass", classes=["a", "b", "rare"])
    folds = [np.r_[np.arange(0, 20), 60, 61], np.arange(20, 40), np.arange(40, 60)]
    plan = [Split(k, np.setdiff1d(np.arange(len(y)), val), val) for k, val in enumerate(folds)]
    said, rare_only = _classes_only_validated(plan, data)
    assert rare_only is None and said.startswith("split 0 trains on no row of class(es) 'rare'"), said
    assert "class 'rare' has 2 development row(s), too few for every split to train on: fewer splits" in said
    assert "stratify" not in said


def test_each_split_is_judged_against_its_own_rows_chance_loss():
    """A skewed target: the fold that drew the outliers has several times the variance of the others. A model
    no better than the mean scored under 70 % of the whole data's variance on the quiet fold, and on the
    training rows of the fold that held the outliers out, so it was called good (a stranger's hospital stays:
    best validation MSE 29.2 against a chance-level 29.7)."""
    rng = np.random.default_rng(0)
    y = rng.exponential(3.0, 300)
    y[:6] *= 30  # the outliers, all in the first fold
    folds = [np.arange(0, 100), np.arange(100, 200), np.arange(200, 300)]
    splits = [type("Split", (), {"index": k, "val": val, "train": np.setdiff1d(np.arange(300), val)})()
              for k, val in enumerate(folds)]
    own = dx.split_chance_losses(y, "regression", splits)
    overall = dx.chance_loss(y, "regression")
    # The fold that held the outliers out trains on quiet rows and validates on them.
    quiet_train, outlier_val = own[0]
    assert quiet_train < 0.3 * overall and outlier_val > 2 * overall
    assert own[1][1] == pytest.approx(np.mean((y[100:200] - y[np.r_[0:100, 200:300]].mean()) ** 2))

    def predicting_the_mean(k: int) -> dict[str, list[float]]:  # a network that learned nothing
        train_chance, val_chance = own[k]
        return {"loss": [train_chance * 1.02] * 10, "val_loss": [val_chance * 0.99] * 10}

    histories = {k: predicting_the_mean(k) for k in range(3)}
    assert dx.diagnose_trial(histories, reference=overall).fit == "good"  # the old rule
    judged = dx.diagnose_trial(histories, reference=overall, own=own)
    assert judged.fit == "underfit" and {s.fit for s in judged.splits} == {"underfit"}
    # A model that learned stays good against its own rows too.
    learned = {k: {"loss": [own[k][0] * 0.3] * 10, "val_loss": [own[k][1] * 0.4] * 10} for k in range(3)}
    assert dx.diagnose_trial(learned, reference=overall, own=own).fit == "good"


def test_a_class_the_training_rows_lack_costs_a_finite_chance_loss():
    y = np.array([0, 0, 1, 1, 2, 3, 1])  # class 3 only in the validation rows
    split = type("Split", (), {"index": 0, "train": np.arange(5), "val": np.arange(5, 7)})()
    train, val = dx.split_chance_losses(y, "multiclass", [split])[0]
    assert train == pytest.approx(dx.chance_loss(y[:5], "multiclass"))
    assert val == pytest.approx(-np.mean(np.log([1 / 6, 0.4]))) and math.isfinite(val)
    assert dx.split_references_from_attr({"0": [1.0, 2.0], "x": "bad"}) == {0: (1.0, 2.0)}
    assert dx.split_references_from_attr(None) == {}


def test_a_study_of_models_no_better_than_the_mean_on_a_skewed_target_is_underfit(tmp_path, capsys):
    """Hospital stays with a few stays thirty times the usual: the fold that drew them set the development
    rows' variance, and trials no better than the mean were called good on the other folds. Each split is
    now judged against its own rows, and the study keeps those chance-level losses for its later review."""
    import numpy as np
    import optuna
    import yaml

    from conftest import TINY, merge, run_cli
    from search.studies import lifecycle as studies

    rng = np.random.default_rng(0)
    y = rng.exponential(3.0, 300)
    y[rng.choice(300, 6, replace=False)] *= 30
    np.savez(tmp_path / "stays.npz", X=rng.normal(size=(300, 4)), y=y)  # no signal in the features
    path = tmp_path / "stays.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "stays", "n_trials": 2},
                                                "data": {"source": f"npz:{tmp_path / 'stays.npz'}",
                                                         "task": "regression"},
                                                "train": {"epochs": 20, "early_stopping": 3}})))
    assert run_cli("run", path, "--home", tmp_path / "h", "--quiet") == 0
    said = capsys.readouterr()
    study = optuna.load_study(study_name="stays", storage=studies.make_storage(studies.default_storage(tmp_path / "h")))
    own = dx.split_references_from_attr(study.user_attrs[review.REFERENCES_ATTR])
    assert sorted(own) == [0, 1, 2] and all(min(pair) > 0 for pair in own.values())
    # Against the development rows' one chance-level loss, both were good.
    from search.review import curves_of
    assert {dx.diagnose_trial(curves_of(t), study.user_attrs[review.REFERENCE_ATTR]).fit for t in study.trials} == \
        {"good"}
    assert [t.user_attrs["fit"] for t in study.trials] == ["underfit", "underfit"], said.out
    assert "every complete trial (2) is underfit" in said.out
    # The best loss against chance, as the R² a scikit-learn user reads first: at or below zero here.
    best = study.best_trial.user_attrs["splits"]
    share = np.mean([float(s["best_val_loss"]) / own[int(s["split"])][1] for s in best])
    assert f"the best trial's validation loss is {share:.0%} of the chance-level loss, that of always predicting the " \
           f"training rows' mean (mean over its splits, each on its own rows) (a cross-validated R² of " \
           f"{1 - share:.3g})" in said.out, said.out
    assert share > 0.9
    # Worse than chance is not "near" it (a rare class's study read "stays near" at 427 % of chance).
    assert (f"stays above the loss of predicting the training rows' mean: the best trial's is {share:.0%} of it"
            if share > 1.05 else "stays near the loss of predicting") in said.out, said.out


def test_a_class_weighted_trial_is_judged_against_equal_shares(tmp_path, capsys):
    """Trained with class_weight: balanced (the rare-class warning's advice), a model leaves the class shares on
    purpose: against them a stranger's trials of validation ROC AUC 0.92 were called underfit and "worse than
    chance, learned nothing". A model that learned nothing, weighted alike, predicts equal shares."""
    import optuna
    import yaml

    from conftest import TINY, merge, run_cli
    from search.review import verdicts
    from search.studies import lifecycle as studies

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=400) > 1.6).astype(int)  # about 7 % positives, learnable
    np.savez(tmp_path / "rare.npz", X=X, y=y)
    path = tmp_path / "rare.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "rare", "n_trials": 1, "baseline": False},
                                                "data": {"source": f"npz:{tmp_path / 'rare.npz'}"},
                                                "train": {"epochs": 30, "class_weight": "balanced",
                                                          "learning_rate": 0.02}})))
    assert run_cli("run", path, "--home", tmp_path / "h", "--quiet") == 0
    said = capsys.readouterr().out
    study = optuna.load_study(study_name="rare", storage=studies.make_storage(studies.default_storage(tmp_path / "h")))
    best = study.best_trial
    assert best.user_attrs[dx.CLASS_WEIGHTED_ATTR] is True
    equal = math.log(2)
    line = verdicts.against_chance(study)
    assert line is not None and f"{best.value / equal:.0%} of the chance-level loss" in line, line
    assert "equal shares of the classes (the best trial is class-weighted" in line and line in said
    # It learned (its weighted loss is below equal shares'), so no "worse than chance" and no underfit tag, though
    # its plain loss is above the class shares' (0.25 here) as weighting makes it.
    assert best.value < 0.7 * equal and not line.startswith("warning") and best.user_attrs["fit"] != "underfit"
