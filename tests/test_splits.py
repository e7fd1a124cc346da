"""The validation plan: split counts, no overlap, no test rows, time order, groups, seeds, stratification;
and scalers fitted on training rows only (directly, and spied on inside a real short study)."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, merge, run_cli
from search.data import Dataset, load, split_test
from search.space import validate
from search.splits import Split, plan

FEATURES = ["a", "b", "gid", "stamp"]  # feature columns, in file order (g, t and label are not features)


def _frame(n_per_class: tuple[int, ...] = (30, 30, 30), n_groups: int = 15, seed: int = 0) -> pd.DataFrame:
    """Rows with unique features; ``gid`` repeats the group and ``stamp`` the time, so both can be read
    back from the feature matrix the pipeline produced. The file is in random time order."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    n = len(labels)
    groups = rng.permutation(np.arange(n) % n_groups)
    times = rng.permutation(n) * 10 + 5
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "gid": groups.astype(float),
                         "stamp": times.astype(float), "label": rng.permutation(labels), "g": groups, "t": times})


def _prepare(tmp_path: Path, frame: pd.DataFrame, data: dict[str, Any] | None = None,
             validation: dict[str, Any] | None = None, seed: int = 0, plan_seed: int | None = None
             ) -> tuple[Dataset, np.ndarray, np.ndarray, list[Split]]:
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    space = validate(merge(TINY, {"study": {"seed": seed},
                                  "data": {"source": f"csv:{csv}", "target": "label", **(data or {})},
                                  "validation": validation or {}}))
    dataset = load(space.data)
    time_ordered = space.validation.scheme == "time_series" or dataset.has_order
    dev, test = split_test(dataset, space.data.test_size, seed, time_ordered)
    return dataset, dev, test, plan(space.validation, dataset, dev, seed if plan_seed is None else plan_seed)


def _col(dataset: Dataset, name: str) -> np.ndarray:
    return dataset.X[:, FEATURES.index(name)]


SCHEMES = {
    "holdout": ({"scheme": "holdout", "fraction": 0.25}, {}, 1),
    "kfold": ({"scheme": "kfold", "k": 4}, {}, 4),
    "iterated_kfold": ({"scheme": "iterated_kfold", "k": 3, "repeats": 2}, {}, 6),
    "group_kfold": ({"scheme": "group_kfold", "k": 3}, {"group": "g"}, 3),
    "time_series": ({"scheme": "time_series", "k": 4}, {"order": "t"}, 4),
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_each_scheme_gives_its_splits_without_overlap_or_test_rows(scheme: str, tmp_path: Path) -> None:
    validation, data, n_splits = SCHEMES[scheme]
    dataset, dev, test, splits = _prepare(tmp_path, _frame(), data, validation)
    n = len(dataset.X)
    assert n == 90
    assert len(splits) == n_splits
    assert [s.index for s in splits] == list(range(n_splits))
    # dev and test partition the rows
    assert len(np.intersect1d(dev, test)) == 0 and len(dev) + len(test) == n and len(test) == 18
    for s in splits:
        assert len(s.train) > 0 and len(s.val) > 0
        assert len(np.intersect1d(s.train, s.val)) == 0
        assert len(np.intersect1d(s.train, test)) == 0 and len(np.intersect1d(s.val, test)) == 0
        assert set(s.train) | set(s.val) <= set(dev)
    if scheme == "iterated_kfold":
        assert [s.repeat for s in splits] == [0, 0, 0, 1, 1, 1]


def test_kfold_validation_folds_partition_the_development_rows(tmp_path: Path) -> None:
    _, dev, test, splits = _prepare(tmp_path, _frame(), validation={"scheme": "kfold", "k": 4})
    vals = np.concatenate([s.val for s in splits])
    assert len(vals) == len(np.unique(vals))  # folds are disjoint
    assert np.array_equal(np.sort(vals), dev)
    for s in splits:  # each fold trains on every other development row
        assert np.array_equal(np.sort(np.concatenate([s.train, s.val])), dev)


def test_time_series_sorts_by_order_looks_forward_and_tests_on_the_latest_rows(tmp_path: Path) -> None:
    frame = _frame()
    assert not frame["t"].is_monotonic_increasing  # the file is out of time order, so the sort matters
    dataset, dev, test, splits = _prepare(tmp_path, frame, {"order": "t"}, {"scheme": "time_series", "k": 4})
    stamps = _col(dataset, "stamp")
    assert dataset.has_order
    assert np.all(np.diff(stamps) > 0)  # rows are in time order
    assert np.array_equal(test, np.arange(len(dev), len(dataset.X)))
    assert stamps[test].min() > stamps[dev].max()  # the test rows are the latest
    assert np.array_equal(np.sort(stamps[test]), np.sort(frame["stamp"].to_numpy())[-len(test):])
    for s in splits:
        assert s.train.max() < s.val.min()
        assert stamps[s.train].max() < stamps[s.val].min()
    # an expanding window: every later split trains on more of the past
    assert all(len(a.train) < len(b.train) for a, b in zip(splits, splits[1:]))


def test_an_unshuffled_hold_out_of_time_ordered_rows_validates_on_the_latest(tmp_path: Path) -> None:
    """It was refused as ignoring data.order; it takes the last rows, which the order makes the latest."""
    dataset, dev, test, splits = _prepare(tmp_path, _frame(), {"order": "t"},
                                          {"scheme": "holdout", "fraction": 0.25, "shuffle": False})
    stamps = _col(dataset, "stamp")
    (split,) = splits
    assert stamps[split.train].max() < stamps[split.val].min() < stamps[split.val].max() < stamps[test].min()


def test_dates_written_as_text_are_put_in_time_order_not_alphabetical_order(tmp_path: Path) -> None:
    """``12/31/2022`` sorts after ``01/05/2024`` as text: the held-out rows must still be the latest."""
    frame = _frame()
    days = pd.Timestamp("2022-01-01") + pd.to_timedelta(frame["t"] * 3, unit="D")  # about 2022 to 2024
    frame["t"] = days.dt.strftime("%m/%d/%Y")
    assert not frame.sort_values("t")["stamp"].is_monotonic_increasing  # alphabetical order is not time order
    dataset, dev, test, splits = _prepare(tmp_path, frame, {"order": "t"}, {"scheme": "time_series", "k": 4})
    stamps = _col(dataset, "stamp")
    assert np.all(np.diff(stamps) > 0)
    assert stamps[test].min() > stamps[dev].max()
    assert any("read as dates (%m/%d/%Y)" in note for note in dataset.notes)


def test_group_kfold_keeps_groups_whole_and_the_test_split_holds_out_whole_groups(tmp_path: Path) -> None:
    dataset, dev, test, splits = _prepare(tmp_path, _frame(), {"group": "g"}, {"scheme": "group_kfold", "k": 3})
    gid = _col(dataset, "gid")  # the group as read back from the rows themselves
    assert np.array_equal(gid, dataset.groups.astype(float))
    assert not set(gid[test]) & set(gid[dev])
    assert len(set(gid[test])) >= 2
    for s in splits:
        assert not set(gid[s.train]) & set(gid[s.val])
    seen = np.concatenate([s.val for s in splits])
    assert np.array_equal(np.sort(seen), dev)


def test_iterated_kfold_reshuffles_every_repeat(tmp_path: Path) -> None:
    _, dev, _, splits = _prepare(tmp_path, _frame(), validation={"scheme": "iterated_kfold", "k": 3, "repeats": 2})
    by_repeat = [[frozenset(s.val.tolist()) for s in splits if s.repeat == r] for r in (0, 1)]
    for folds in by_repeat:  # each repeat is a full k-fold of the development rows
        assert sorted(i for f in folds for i in f) == dev.tolist()
    assert not set(by_repeat[0]) & set(by_repeat[1])


def _same(a: list[Split], b: list[Split]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x.train, y.train) and np.array_equal(x.val, y.val)
                                    for x, y in zip(a, b))


@pytest.mark.parametrize("scheme", ["holdout", "kfold", "iterated_kfold", "group_kfold"])
def test_same_seed_same_splits_other_seed_other_splits(scheme: str, tmp_path: Path) -> None:
    validation, data, _ = SCHEMES[scheme]
    frame = _frame()
    _, dev0, test0, first = _prepare(tmp_path, frame, data, validation, seed=0)
    _, dev0b, test0b, again = _prepare(tmp_path, frame, data, validation, seed=0)
    _, dev1, test1, other = _prepare(tmp_path, frame, data, validation, seed=1)
    assert np.array_equal(test0, test0b) and np.array_equal(dev0, dev0b) and _same(first, again)
    assert not np.array_equal(test0, test1)
    assert not _same(first, other)
    # the plan itself follows the seed, also over the same development rows
    _, dev_same, _, replanned = _prepare(tmp_path, frame, data, validation, seed=0, plan_seed=1)
    assert np.array_equal(dev_same, dev0) and not _same(first, replanned)


def test_time_series_splits_do_not_depend_on_the_seed(tmp_path: Path) -> None:
    validation, data, _ = SCHEMES["time_series"]
    _, _, test0, first = _prepare(tmp_path, _frame(), data, validation, seed=0)
    _, _, test1, other = _prepare(tmp_path, _frame(), data, validation, seed=1)
    assert np.array_equal(test0, test1) and _same(first, other)


def _worst_deviation(dataset: Dataset, dev: np.ndarray, splits: list[Split]) -> float:
    """Largest gap, in rows, between a fold's class count and the class's share of the development rows."""
    k = len(splits)
    dev_counts = np.bincount(dataset.y[dev], minlength=len(dataset.classes))
    return max(float(np.abs(np.bincount(dataset.y[s.val], minlength=len(dataset.classes)) - dev_counts / k).max())
               for s in splits)


def test_stratified_kfold_keeps_class_proportions_within_one_row(tmp_path: Path) -> None:
    frame = _frame((50, 30, 10))
    dataset, dev, _, splits = _prepare(tmp_path, frame, validation={"scheme": "kfold", "k": 4})
    assert _worst_deviation(dataset, dev, splits) <= 1.0
    # the test rows are stratified too
    _, _, test, _ = _prepare(tmp_path, frame, validation={"scheme": "kfold", "k": 4})
    assert abs(np.bincount(dataset.y[test]) - np.array([50, 30, 10]) * len(test) / 90).max() <= 1.0
    # the check has teeth: the same data, unstratified, misses it
    dataset, dev, _, plain = _prepare(tmp_path, frame, validation={"scheme": "kfold", "k": 4, "stratify": False})
    assert _worst_deviation(dataset, dev, plain) > 1.0


# ---------------------------------------------------------------------------------------------
# Leakage: a scaler sees only the training rows of its split.


def test_fit_transform_standardizes_on_the_training_rows_only() -> None:
    from search.preprocess import fit_transform

    rng = np.random.default_rng(3)
    X_train = rng.normal(5.0, 3.0, size=(40, 3))
    X_val = rng.normal(5.0, 3.0, size=(10, 3))
    X_val[:, 0] += 1000.0  # far away: fitting on all rows would shift and stretch the training part
    Xt, Xv = fit_transform("standardize", X_train, X_val)
    np.testing.assert_allclose(Xt.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(Xt.std(axis=0), 1.0, atol=1e-5)
    assert Xv[:, 0].min() > 100  # the validation rows were transformed with the training statistics
    everything = np.concatenate([X_train, X_val])
    leaked = (X_train - everything.mean(axis=0)) / everything.std(axis=0)
    assert abs(leaked[:, 0].mean()) > 0.1  # what a leaking fit would have produced instead

    Mt, Mv = fit_transform("minmax", X_train, X_val)
    assert np.allclose(Mt.min(axis=0), 0.0) and np.allclose(Mt.max(axis=0), 1.0)
    assert Mv[:, 0].min() > 10


def test_missing_values_are_filled_from_the_training_rows_and_the_saved_layers_do_the_same(tmp_path: Path) -> None:
    """data.missing: each split fills with its training rows' median; a saved model fills raw rows alike."""
    import keras

    from search.preprocess import apply, as_layers, fit, fit_transform
    from search.runner import checkpoints

    X_train = np.array([[1.0, np.nan], [2.0, 10.0], [np.nan, 30.0], [100.0, 20.0]])
    X_val = np.array([[np.nan, np.nan], [-500.0, 1000.0]])  # its own values must not move the fill
    Tt, Tv = fit_transform("none", X_train, X_val, missing="median")
    assert Tv[0].tolist() == [2.0, 20.0]  # the training rows' medians, not the validation rows'
    assert not np.isnan(Tt).any() and Tt[2, 0] == 2.0
    assert fit_transform("none", X_train, X_val, missing="mean")[1][0].tolist() == pytest.approx([103 / 3, 20.0])
    scaler = fit("standardize", X_train, "median")
    expected = apply(scaler, X_val)
    inputs = keras.Input((2,))
    x = inputs
    for layer in as_layers(scaler, (2,)):
        x = layer(x)
    keras.Model(inputs, x).save(tmp_path / "m.keras")
    loaded = checkpoints.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(X_val.astype(np.float32), verbose=0), expected, atol=1e-5)
    # Nothing of this package in the file: it loads with plain keras where `search` is not installed.
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = archive.read("config.json").decode()
    assert "search" not in config, config


def test_the_final_model_says_what_it_takes_and_what_its_output_means() -> None:
    from search.reproduction.served import model_io

    binary = Dataset(X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]), task="binary", classes=["benign", "malignant"],
                     feature_names=["radius", "texture"])
    io = model_io(binary, "diagnosis")
    assert io["inputs"]["features"] == ["radius", "texture"] and io["classes"] == ["benign", "malignant"]
    assert "the probability of class 'malignant'" in io["output"]
    multi = Dataset(X=np.zeros((3, 2)), y=np.array([0, 1, 2]), task="multiclass", classes=[np.int64(3), 5, 7])
    assert model_io(multi, None)["classes"] == [3, 5, 7] and "3 probabilities" in model_io(multi, None)["output"]
    regression = Dataset(X=np.zeros((3, 2)), y=np.zeros(3), task="regression")
    assert "the target 'price' in its own units" in model_io(regression, "price")["output"]
    # Images: how to prepare them, which the model does not do itself (a uint8 image was classified wrongly).
    folder = Dataset(X=np.zeros((2, 16, 16, 3)), y=np.array([0, 1]), task="binary", classes=["a", "b"],
                     source="images:shapes")
    taken = model_io(folder, None)["inputs"]["as"]
    assert "16x16 pixels, RGB, pixel values in [0, 1] (8-bit values / 255)" in taken and "image_size" in taken
    digits = Dataset(X=np.zeros((2, 8, 8, 1)), y=np.array([0, 1]), task="binary", classes=[0, 1],
                     source="sklearn:digits")
    assert model_io(digits, None)["inputs"]["as"].endswith("load_digits().images / 16")


def test_a_study_on_rows_with_missing_values_trains_on_filled_rows(tmp_path: Path, home: Path) -> None:
    import optuna

    frame = _frame((15, 15, 15)).drop(columns=["g", "t"])
    frame.loc[::4, frame.columns[0]] = np.nan
    frame.to_csv(tmp_path / "holes.csv", index=False)
    path = tmp_path / "holes.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "holes", "n_trials": 1},
                                                "data": {"source": "csv:holes.csv", "target": "label",
                                                         "missing": "median"},
                                                "validation": {"scheme": "kfold", "k": 2}, "train": {"epochs": 2}})))
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    trial = optuna.load_study(study_name="holes", storage=f"sqlite:///{home / 'optuna.db'}").trials[0]
    assert trial.state.name == "COMPLETE" and np.isfinite(trial.value)
    assert all(np.isfinite(s["best_val_loss"]) for s in trial.user_attrs["splits"])


def test_settings_a_scheme_does_not_read_are_named_and_an_ordered_holdout_takes_the_last_rows() -> None:
    from search.errors import SpaceError

    n = 40
    dataset = Dataset(X=np.arange(n, dtype=float).reshape(-1, 1), y=np.arange(n) % 2, task="binary",
                      classes=[0, 1])
    base = {"study": {"name": "s"}, "data": {"source": "sklearn:iris"}}
    ordered = validate({**base, "validation": {"scheme": "holdout", "fraction": 0.25, "shuffle": False}})
    (split,) = plan(ordered.validation, dataset, np.arange(n), seed=0)
    assert split.val.tolist() == list(range(30, 40)) and split.train.tolist() == list(range(30))
    with pytest.raises(SpaceError, match="cannot be stratified"):
        validate({**base, "validation": {"scheme": "holdout", "shuffle": False, "stratify": True}})
    extra = validate({**base, "validation": {"scheme": "holdout", "k": 10, "repeats": 4}})
    plan(extra.validation, dataset, np.arange(n), seed=0)
    assert dataset.warnings == ["validation.k = 10 is not used by scheme holdout: ignored",
                                "validation.repeats = 4 is not used by scheme holdout: ignored (repeats is read "
                                "by scheme iterated_kfold)"]
    # Given at its default, meant for iterated_kfold: said too. A resolved config leaves it out, so a replay
    # does not warn of what its writer never wrote.
    meant = validate({**base, "validation": {"scheme": "kfold", "k": 2, "repeats": 3}})
    dataset.warnings.clear()
    assert len(plan(meant.validation, dataset, np.arange(n), seed=0)) == 2
    assert dataset.warnings == ["validation.repeats = 3 is not used by scheme kfold: ignored (repeats is read by "
                                "scheme iterated_kfold)"]
    plain = validate({**base, "validation": {"scheme": "kfold", "k": 2}})
    assert "repeats" not in yaml.safe_load(plain.to_yaml())["validation"]
    assert yaml.safe_load(meant.to_yaml())["validation"]["repeats"] == 3
    resolved = plain.resolve({"model": dict(plain.model), "train": dict(plain.train)})
    assert "repeats" not in resolved.validation.model_fields_set and "repeats" not in resolved.to_yaml()
    replayed = validate(yaml.safe_load(plain.to_yaml()))
    dataset.warnings.clear()
    plan(replayed.validation, dataset, np.arange(n), seed=0)
    assert dataset.warnings == []
    many = validate({**base, "validation": {"scheme": "iterated_kfold", "k": 5, "repeats": 200}})
    dataset.warnings.clear()
    assert len(plan(many.validation, dataset, np.arange(n), seed=0)) == 1000
    (warning,) = dataset.warnings
    assert "5 × 200: every trial trains 1000 models" in warning
    dataset.warnings.clear()
    plan(validate({**base, "validation": {"scheme": "iterated_kfold", "k": 5, "repeats": 10}}).validation, dataset,
         np.arange(n), seed=0)
    assert dataset.warnings == []


def test_rows_sharing_a_time_are_never_split_between_sides(tmp_path: Path) -> None:
    """20 rows a day for 10 days: the test rows and every validation fold begin on a new day."""
    from search.runner import session

    n = 200
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=n), "day": np.repeat(np.arange(10), 20)[rng.permutation(n)],
                  "y": rng.normal(size=n)}).to_csv(tmp_path / "days.csv", index=False)
    path = tmp_path / "days.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "days"}, "validation": {"scheme": "time_series", "k": 4},
                                    "data": {"source": f"csv:{tmp_path / 'days.csv'}", "target": "y",
                                             "order": "day", "test_size": 0.25}}))
    from search import space as spaces

    prepared = session.prepare(spaces.load(path))
    days = prepared.dataset.periods
    assert not set(days[prepared.dev_idx]) & set(days[prepared.test_idx])
    assert len(prepared.test_idx) == 60 and "the test rows are the latest 60 instead of 50" in prepared.summary.text()
    for split in prepared.splits:
        assert not set(days[split.train]) & set(days[split.val]) and days[split.train].max() < days[split.val].min()
    from search.errors import ValidationSchemeError

    more_folds = yaml.safe_load(path.read_text())
    more_folds["validation"]["k"] = 8
    path.write_text(yaml.safe_dump(more_folds))
    with pytest.raises(ValidationSchemeError,
                       match="cannot split 7 distinct times of data.order: 8 folds need at least 9 of them"):
        session.prepare(spaces.load(path))


def test_held_out_groups_are_a_share_of_the_rows_not_of_the_groups() -> None:
    """One group of 180 rows and ten of 2: test_size 0.2 held out 184 rows by a share of the groups."""
    from search.data import Dataset, split_test

    groups = np.r_[np.zeros(180, int), np.arange(1, 11).repeat(2), np.arange(11, 31).repeat(3)]
    n = len(groups)
    dataset = Dataset(X=np.zeros((n, 2)), y=np.zeros(n, np.float32), task="regression", groups=groups)
    for seed in range(6):
        dev, test = split_test(dataset, 0.2, seed, time_ordered=False)
        assert abs(len(test) - 0.2 * n) <= 3, (seed, len(test))  # 50 of 260, within one small group
        assert not set(groups[dev]) & set(groups[test])  # whole groups
    lopsided = Dataset(X=np.zeros((200, 2)), y=np.zeros(200, np.float32), task="regression",
                       groups=np.r_[np.zeros(180, int), np.arange(1, 11).repeat(2)])
    dev, test = split_test(lopsided, 0.2, 0, time_ordered=False)
    assert len(test) == 20 and "the held-out test rows are 10% of the rows, not test_size 0.2" in lopsided.warnings[0]


def test_scalers_in_a_real_study_fit_only_training_rows(tmp_path: Path, home: Path, monkeypatch) -> None:
    from sklearn.preprocessing import StandardScaler

    from search import space as spaces
    from search.runner import session

    fitted: list[np.ndarray] = []
    real_fit = StandardScaler.fit

    def spy(self, X, *args, **kwargs):
        fitted.append(np.array(X, copy=True))
        return real_fit(self, X, *args, **kwargs)

    monkeypatch.setattr(StandardScaler, "fit", spy)
    frame = _frame((15, 15, 15)).drop(columns=["g", "t"])
    csv = tmp_path / "leak.csv"
    frame.to_csv(csv, index=False)
    path = tmp_path / "leak.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "leak"},
                                                "data": {"source": f"csv:{csv}", "target": "label"},
                                                "validation": {"scheme": "kfold", "k": 3},
                                                "train": {"epochs": 2}})))
    assert run_cli("run", path, "--home", home, "--n-trials", "1", "--quiet") == 0

    prepared = session.prepare(spaces.load(path))
    X = prepared.dataset.X
    splits, test = prepared.splits, prepared.test_idx
    assert len(fitted) == len(splits) == 3  # one fit per split of the one trial, and nothing else

    def rows(a: np.ndarray) -> set[bytes]:
        return {r.tobytes() for r in np.ascontiguousarray(a, dtype=np.float32)}

    matched = set()
    for matrix in fitted:
        hits = [s.index for s in splits if matrix.shape == X[s.train].shape and np.array_equal(matrix, X[s.train])]
        assert len(hits) == 1, "a scaler was fitted on rows that are not one split's training rows"
        matched.add(hits[0])
        split = splits[hits[0]]
        assert not rows(matrix) & rows(X[split.val])
        assert not rows(matrix) & rows(X[test])
    assert matched == {s.index for s in splits}


def test_order_values_with_offsets_numbers_as_text_or_booleans_sort_as_they_mean() -> None:
    from search.data import _times

    notes: list[str] = []
    stamps = _times.time_order(np.array(["2024-01-01T00:00:00+01:00", "2024-01-01T00:00:00+02:00",
                                          "2024-01-01T00:00:00Z"]), "t", "rows", "x.yaml", notes)
    assert list(np.argsort(stamps, kind="stable")) == [1, 0, 2]  # compared as instants, in UTC
    assert list(_times.time_order(np.array(["1", "10", "2"]), "t", "rows", "x.yaml", [])) == [1, 10, 2]
    assert _times.time_order(np.array([True, False]), "t", "rows", "x.yaml", []).dtype == bool


def test_a_fold_count_in_the_hundreds_is_warned_about() -> None:
    """kfold with k: 119 on 150 rows trained 119 models a trial on one-row validation splits without a word."""
    from search import space as spaces
    from search.runner import session

    space = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:iris", "test_size": 0.1},
                             "validation": {"scheme": "kfold", "k": 119, "stratify": False}})
    said = session.prepare(space, threads=1).dataset.warnings
    assert any(w.startswith("validation.k = 119: every trial trains 119 models on splits of about 1 validation")
               for w in said), said


def test_a_time_series_gap_leaves_times_out_and_the_plan_names_each_splits_dates(tmp_path: Path) -> None:
    """A target that looks ahead (a 3-day return) leaks across a split that validates on the next day; and
    the plan said only how many rows each split had, not which days."""
    from search import space as spaces
    from search.errors import ValidationSchemeError
    from search.runner import session

    n = 120
    rng = np.random.default_rng(1)
    days = (pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(n) // 2, unit="D")).strftime("%Y-%m-%d")
    pd.DataFrame({"a": rng.normal(size=n), "day": np.asarray(days)[rng.permutation(n)],
                  "y": rng.normal(size=n)}).to_csv(tmp_path / "days.csv", index=False)
    path = tmp_path / "gap.yaml"
    raw = {"study": {"name": "gap"}, "validation": {"scheme": "time_series", "k": 3, "gap": 4},
           "data": {"source": f"csv:{tmp_path / 'days.csv'}", "target": "y", "order": "day", "test_size": 0.2}}
    path.write_text(yaml.safe_dump(raw))
    prepared = session.prepare(spaces.load(path))
    periods = prepared.dataset.periods
    for split in prepared.splits:  # four whole days between the last training day and the first validated
        assert periods[split.val].min() - periods[split.train].max() == 5
    # And before the test rows: the final model trains on the development rows, which stop a gap earlier.
    assert periods[prepared.test_idx].min() - periods[prepared.dev_idx].max() == 5
    assert not set(prepared.dev_idx) & set(prepared.test_idx) and len(prepared.dev_idx) == 96 - 8
    assert "the last 4 time(s) of data.order of the development rows before the test rows (8 rows)" in \
        prepared.summary.text().replace("\n", " ")
    lines = prepared.summary.text()
    assert "split 0: train 2024-03-01 to 2024-03-" in lines
    first = prepared.splits[0]
    assert (f"split 0: train 2024-03-01 to {prepared.dataset.times[periods[first.train].max()]}, validation "
            f"{prepared.dataset.times[periods[first.val].min()]} to") in lines
    assert prepared.summary.to_dict()["split_times"][2].startswith("split 2: train 2024-03-01 to ")
    # A gap the days cannot hold is refused by name, before anything trains.
    raw["validation"]["gap"] = 40
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationSchemeError, match=re.escape(
            "time_series with k=3 and validation.gap=40 cannot split 48 distinct times of data.order, 40 of them "
            "left out by the gap before the test rows")) as err:
        session.prepare(spaces.load(path))
    # The largest gap that fits counts the times that same gap leaves out before the test rows too.
    assert "expected validation.gap <= 10, found 40" in str(err.value)
    assert err.value.field == "validation.gap"  # k=3 alone fits: the gap is what to change
    raw["validation"]["gap"] = 10
    path.write_text(yaml.safe_dump(raw))
    assert len(session.prepare(spaces.load(path)).splits) == 3
    # Another scheme does not read it, and says so.
    raw["validation"] = {"scheme": "kfold", "k": 3, "gap": 2}
    raw["data"].pop("order")
    raw["data"]["drop"] = ["day"]
    path.write_text(yaml.safe_dump(raw))
    warnings = session.prepare(spaces.load(path)).summary.warnings
    assert any("validation.gap = 2 is not used by scheme kfold" in w for w in warnings)



def test_an_ordered_hold_out_never_cuts_inside_a_time_and_whole_number_times_print_in_full(tmp_path: Path) -> None:
    """A hold-out with shuffle: false put one store's day in training and another's in validation; and
    times written 20230401 were printed as 2.02304e+07, so that two of them read alike."""
    from search import space as spaces
    from search.runner import session

    n = 90  # three stores a day, 30 days written as whole numbers
    rng = np.random.default_rng(2)
    days = 20230401 + np.arange(n) // 3
    pd.DataFrame({"a": rng.normal(size=n), "day": days, "y": rng.normal(size=n)}).to_csv(tmp_path / "d.csv",
                                                                                      index=False)
    path = tmp_path / "hold.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "hold"}, "data": {"source": f"csv:{tmp_path / 'd.csv'}",
                                    "target": "y", "order": "day", "test_size": 0.2},
                                    "validation": {"scheme": "holdout", "fraction": 0.23, "shuffle": False}}))
    prepared = session.prepare(spaces.load(path))
    (split,) = prepared.splits
    periods = prepared.dataset.periods
    assert periods[split.train].max() < periods[split.val].min()  # 0.23 of 72 rows cut inside a day before
    assert "split 0: train 20230401 to 20230418, validation 20230419 to 20230424" in prepared.summary.text()


def test_the_plan_names_the_dates_of_a_provided_test_file(tmp_path: Path) -> None:
    """The plan named each split's dates and, for rows of data.test, only the words "data.test": whether
    the test file comes after the development rows, and how far, is read there."""
    from search import space as spaces
    from search.runner import session

    rng = np.random.default_rng(3)

    def frame(first: str, n: int) -> pd.DataFrame:
        days = (pd.Timestamp(first) + pd.to_timedelta(np.arange(n) // 2, unit="D")).strftime("%Y-%m-%d")
        return pd.DataFrame({"a": rng.normal(size=n), "day": days, "y": rng.normal(size=n)})

    frame("2024-01-01", 60).to_csv(tmp_path / "dev.csv", index=False)
    frame("2024-03-10", 20).to_csv(tmp_path / "later.csv", index=False)
    path = tmp_path / "provided.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "provided"}, "validation": {"scheme": "time_series", "k": 3},
                                    "data": {"source": f"csv:{tmp_path / 'dev.csv'}", "test": "csv:later.csv",
                                             "target": "y", "order": "day"}}))
    prepared = session.prepare(spaces.load(path))
    lines = prepared.summary.text()
    assert "test rows: 2024-03-10 to 2024-03-19" in lines, lines
    assert "validation 2024-01-" in lines and "data.test" not in lines.split("test rows: 2024")[1].splitlines()[0]


def test_a_time_series_plan_that_cannot_be_made_is_refused_in_its_own_words_where_more_rows_did_not_help() -> None:
    """TimeSeriesSplit's blocks grow at each multiple of k + 1, so 8 rows fail with k=3 and a gap of 2 where 6
    rows fit: a check of "at least so many rows" let them through to scikit-learn's own message."""
    from search.errors import ValidationSchemeError
    from search.space import ValidationSection

    n = 8
    dataset = Dataset(X=np.arange(n, dtype=float).reshape(-1, 1), y=np.arange(n, dtype=float), task="regression")
    validation = ValidationSection(scheme="time_series", k=3, gap=2)
    with pytest.raises(ValidationSchemeError, match=re.escape(
            "cannot split 8 development rows: each of the 3 validation blocks is 2 of them and the gap 2, which "
            "leaves 0 for the first split's training rows")) as err:
        plan(validation, dataset, np.arange(n), 0)
    assert err.value.field == "validation.gap"
    assert len(plan(validation, dataset, np.arange(6), 0)) == 3
    # An ordered hold-out whose rows share one time has no later rows to validate on: said, not an empty side.
    one_time = Dataset(X=np.zeros((6, 1)), y=np.arange(6, dtype=float), task="regression", has_order=True,
                       periods=np.zeros(6, dtype=int), times=["2024-01-01"])
    with pytest.raises(ValidationSchemeError, match="every development row shares one time of data.order"):
        plan(ValidationSection(scheme="holdout", fraction=0.3, shuffle=False), one_time, np.arange(6), 0)


def test_a_rolling_window_and_a_forecast_horizon_are_counted_in_times(tmp_path: Path) -> None:
    """scikit-learn's TimeSeriesSplit takes max_train_size and test_size; a forecaster's space could not."""
    from search import space as spaces
    from search.errors import ValidationSchemeError
    from search.runner import session

    n = 120
    rng = np.random.default_rng(3)
    days = (pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(n) // 2, unit="D")).strftime("%Y-%m-%d")
    pd.DataFrame({"a": rng.normal(size=n), "day": np.asarray(days), "y": rng.normal(size=n)}).to_csv(
        tmp_path / "days.csv", index=False)
    raw = {"study": {"name": "roll"}, "data": {"source": f"csv:{tmp_path / 'days.csv'}", "target": "y",
                                               "order": "day", "test_size": 0.2},
           "validation": {"scheme": "time_series", "k": 4, "max_train_size": 10, "val_size": 3, "gap": 1}}
    path = tmp_path / "roll.yaml"
    path.write_text(yaml.safe_dump(raw))
    prepared = session.prepare(spaces.load(path))
    periods = prepared.dataset.periods
    for split in prepared.splits:  # two rows a day: a window of 10 days, a block of 3, a day between
        assert len(np.unique(periods[split.train])) == 10 and len(np.unique(periods[split.val])) == 3
        assert periods[split.val].min() - periods[split.train].max() == 2
    assert prepared.splits[-1].val.max() == prepared.dev_idx.max()  # the last block ends at the development rows' end
    raw["validation"]["val_size"] = 40
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationSchemeError, match="each of the 4 validation blocks is 40 of them") as err:
        session.prepare(spaces.load(path))
    assert err.value.field == "validation.val_size" and "validation.val_size <= 11" in str(err.value)



def test_days_missing_from_a_daily_order_are_named(tmp_path: Path) -> None:
    """A week without rows passed in silence, while the gap and the blocks count the days present."""
    from search import space as spaces
    from search.runner import session

    days = pd.date_range("2024-01-01", periods=60, freq="D").delete(range(20, 27))  # a week gone
    rng = np.random.default_rng(4)
    pd.DataFrame({"a": rng.normal(size=len(days)), "day": days.strftime("%Y-%m-%d"),
                  "y": rng.normal(size=len(days))}).to_csv(tmp_path / "d.csv", index=False)
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "d"}, "validation": {"scheme": "time_series", "k": 3},
                                    "data": {"source": f"csv:{tmp_path / 'd.csv'}", "target": "y", "order": "day"}}))
    notes = session.prepare(spaces.load(path)).summary.notes
    assert "data.order 'day': 7 of the 60 days from 2024-01-01 to 2024-02-29 have no row (2024-01-21, 2024-01-22, " \
           "2024-01-23, ...)" in " ".join(notes), notes


def test_iso_dates_get_no_note_about_a_day_past_the_12th():
    """ISO dates up to the 31st were told 'no day past the 12th tells it from ISO8601': two names of one
    reading, not two readings."""
    import pandas as pd

    from search.data import _times

    for days in (pd.date_range("2024-01-01", periods=40).strftime("%Y-%m-%d"),
                 pd.date_range("2024-01-01", periods=40, tz="UTC").strftime("%Y-%m-%dT%H:%M:%S%z")):
        notes: list[str] = []
        _times.time_order(np.asarray(days, dtype=object), "t", "f.csv", "f.csv", notes)
        assert len(notes) == 1 and "12th" not in notes[0], notes


def test_a_category_value_no_training_row_of_a_split_holds_reads_zero_in_its_validation_rows(tmp_path: Path) -> None:
    """The one-hot vocabulary is the development rows': a value only one fold's validation rows hold was a
    column that fold's model never saw set, and its rows were scored through the column's untrained weights.
    Such a row now reads 0 in that column, as a data.test file's unseen value does, in training and in the
    split model that takes raw rows."""
    import keras
    import optuna

    from search import preprocess
    from search.runner import fused

    frame = _frame((20, 20, 20)).drop(columns=["g", "t"])
    frame["city"] = np.where(np.arange(len(frame)) % 2, "Berlin", "Paris")
    frame.loc[frame.index[7], "city"] = "Rome"  # one row: in one fold's validation rows, or in the test rows
    dataset, dev, test, splits = _prepare(tmp_path, frame, {"categorical": "one_hot"}, {"scheme": "kfold", "k": 3})
    assert dataset.feature_names is not None
    rome = dataset.feature_names.index("city=Rome")
    assert dataset.one_hot_columns == [dataset.feature_names.index(f"city={c}") for c in ("Berlin", "Paris", "Rome")]
    held = [s for s in splits if dataset.X[s.val, rome].any()]
    assert len(held) == 1, "the Rome row is a development row, in one fold's validation rows"
    split, columns = held[0], dataset.one_hot_columns
    X_train, X_val = preprocess.fit_transform("standardize", dataset.X[split.train], dataset.X[split.val],
                                              categories=columns)
    assert not X_train[:, rome].any() and not X_val[:, rome].any()
    berlin = dataset.feature_names.index("city=Berlin")
    assert len(set(np.round(X_val[:, berlin], 5))) == 2, "a value the training rows hold is scaled as before"
    # Without the one-hot columns named, the Rome row reads 1 in a column every training row has 0 in.
    assert preprocess.fit_transform("standardize", dataset.X[split.train], dataset.X[split.val])[1][:, rome].any()
    # The split model on raw rows does the same.
    scaler = preprocess.fit("standardize", dataset.X[split.train], categories=columns)
    identity = keras.Sequential([keras.Input((dataset.X.shape[1],)), keras.layers.Identity()])
    raw = preprocess.taking_raw_rows(identity, scaler, dataset.input_shape, "split")
    np.testing.assert_allclose(raw.predict(dataset.X[split.val], verbose=0), X_val, rtol=1e-5, atol=1e-6)
    # And the rows a trial's fused branch trains and validates on.
    space = validate(merge(TINY, {"data": {"source": f"csv:{tmp_path / 'data.csv'}", "target": "label",
                                           "categorical": "one_hot"}}))
    settings = space.sample(optuna.trial.FixedTrial({"model.dropout": 0.0}))
    branch = fused._branch(space, settings, dataset, split, seed=0)
    assert not np.asarray(branch.data[2])[:, rome].any()
    # One-hot columns pass the scaler as their 0 and 1: standardized, a category few training rows hold became an
    # input of 25 where set (a stranger's missing port: 0.012 against 0.219 for the usual one).
    kept = preprocess.fit_transform("standardize", dataset.X[split.train], dataset.X[split.val], categories=columns,
                                    as_is=dataset.as_is_columns)[1]
    assert set(np.unique(kept[:, columns])) <= {0.0, 1.0} and kept[:, berlin].any()
    np.testing.assert_array_equal(np.asarray(branch.data[2])[:, columns], kept[:, columns])
    assert not np.allclose(kept[:, 0], dataset.X[split.val, 0]), "other columns are standardized as before"
    # Min-max too, for a column set in every training row (it mapped 1 to 0 there and 0 to -1 elsewhere).
    every = np.zeros((6, 2), dtype=np.float32)
    every[:, 0], every[1:, 1] = 1.0, 1.0
    scaler = preprocess.fit("minmax", every[:3], categories=[0, 1], as_is=[0, 1])
    np.testing.assert_array_equal(preprocess.apply(scaler, every), every)
    # A study made before keeps its scaled one-hot columns: its checkpoints were trained on them.
    dataset.follow_study({})
    assert dataset.as_is_columns == [] and dataset.one_hot_scaled
    dataset.follow_study({"one_hot_as_is": True})
    assert dataset.as_is_columns == columns
