"""The transfer family on a generated shapes folder and a backbone's seeded initial weights in a local file."""
from __future__ import annotations

import re

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import run_cli
from search import data, space as spaces
from search.runner import checkpoints
from search.runner import session
from search.demo_data import write_backbone_weights, write_shapes
from search.errors import SpaceError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer")
    shapes = write_shapes(tmp / "shapes", per_class=12, size=32)
    weights = write_backbone_weights(tmp / "mnv2.weights.h5", "MobileNetV2", alpha=0.35, seed=0,
                                     calibrate_on=shapes)
    return {"tmp": tmp, "shapes": shapes, "weights": weights}


def _settings(files, **overrides):
    from search.models import transfer

    base = {key: spec.default for key, spec in transfer.PARAMS.items()}
    return base | {"backbone": "MobileNetV2", "alpha": 0.35, "weights": str(files["weights"]),
                   "cut_at": "block_2_add", "dense_units": 8} | overrides


def _weights_by_layer(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def _changed(before, after):
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


@pytest.mark.parametrize("unfreeze", [0, 3])
def test_frozen_backbone_weights_stay_and_exactly_the_unfrozen_layers_change(files, unfreeze):
    import keras

    from search.models import Head, build, transfer

    keras.utils.set_random_seed(0)
    ds = data.load(spaces.validate({"study": {"name": "x"}, "data": {"source": f"images:{files['shapes']}"}}).data)
    model = build({"family": "transfer", **_settings(files, unfreeze=unfreeze)}, ds.input_shape,
                  Head("multiclass", 3))
    backbone = model.get_layer("backbone")
    expected = set(transfer.freeze(backbone, unfreeze))  # the same choice build made
    assert len(expected) == unfreeze
    before, head_before = _weights_by_layer(backbone), np.array(model.get_layer("output").get_weights()[0])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(ds.X, ds.y, epochs=1, batch_size=12, verbose=0)
    assert _changed(before, _weights_by_layer(backbone)) == expected
    assert not np.array_equal(head_before, model.get_layer("output").get_weights()[0]), "the head did not train"
    # The file's weights were loaded: a layer untouched by training equals the saved backbone's layer.
    reference = transfer.load_backbone(_settings(files), (32, 32))
    frozen = next(name for name in before if name not in expected)
    assert all(np.array_equal(a, b) for a, b in zip(before[frozen], reference.get_layer(frozen).get_weights()))


def test_a_missing_weights_file_says_how_to_obtain_one(files, tmp_path, home, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "nofile"}, "data": {"source": f"images:{files['shapes']}"},
                                    "model": {"family": "transfer", "backbone": "MobileNetV2", "alpha": 0.35,
                                              "weights": "nowhere/mnv2.weights.h5"}}))
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "model.weights" in err and "nowhere/mnv2.weights.h5" in err
    assert "weights='imagenet', alpha=0.35).save_weights(" in err and "Nothing is downloaded" in err
    assert not home.exists()


def test_an_unknown_cut_layer_is_refused_before_training(files, tmp_path, home, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "badcut"}, "data": {"source": f"images:{files['shapes']}"},
                                    "model": {"family": "transfer", "backbone": "MobileNetV2", "alpha": 0.35,
                                              "weights": str(files["weights"]), "cut_at": "mixed7"}}))
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "model.cut_at" in err and "mixed7" in err and not home.exists()
    with pytest.raises(SpaceError, match="has no layer named 'block_2_ad'; did you mean 'block_2_add'"):
        from search.models import transfer

        transfer.load_backbone(_settings(files, cut_at="block_2_ad"), (32, 32))
    with pytest.raises(SpaceError, match="alpha"):  # weights of another width do not load silently
        from search.models import transfer

        transfer.load_backbone(_settings(files, alpha=0.5), (32, 32))


def test_every_combination_a_trial_may_draw_is_built_before_any_trial(files):
    """A searched cut_at, backbone or weights file was checked at its first value only: a bad choice passed
    `search check` and failed trial after trial once the run had started."""
    from search.models import transfer

    shape = (32, 32, 3)
    searched = _settings(files, cut_at={"choice": ["block_2_add", "block_99_nope"]}, resize={"choice": [0, 48]})
    with pytest.raises(SpaceError) as err:
        transfer.preflight(searched, shape, "none", None, "t.yaml")
    said = str(err.value)
    assert said.startswith("t.yaml: field 'model.cut_at': a trial may draw resize 0, cut_at 'block_99_nope', which "
                           "cannot be built: MobileNetV2 has no layer named 'block_99_nope'"), said
    assert "every combination must work" in said
    alpha = _settings(files, backbone={"choice": ["MobileNetV2", "MobileNet"]})
    with pytest.raises(SpaceError, match="a trial may draw backbone 'MobileNet'"):
        transfer.preflight(alpha, shape, "none", None, "t.yaml")
    assert transfer.preflight(_settings(files, resize={"int": [32, 48]}), shape, "none", None, "t.yaml") == []


def test_untrained_backbone_weights_are_warned_about_before_any_trial(files, tmp_path, home, capsys):
    """Weights saved from weights=None passed every check; every image got the same features (spread 1e-5),
    every trial the same predictions, and the only word was "every trial is underfit: train longer"."""
    from search.demo_data import write_backbone_weights

    untrained = write_backbone_weights(tmp_path / "random.weights.h5", "MobileNetV2", alpha=0.35, seed=0)
    # The last pair's file is swapped below: it must be the trained one, at block_6_expand_relu.
    for weights, cut in ((untrained, "block_3_expand_relu"), (files["weights"], "block_1_expand_relu"),
                         (untrained, "block_6_expand_relu"), (files["weights"], "block_6_expand_relu")):
        path = tmp_path / "t.yaml"
        path.write_text(yaml.safe_dump({"study": {"name": "flat"}, "data": {"source": f"images:{files['shapes']}"},
                                        "validation": {"scheme": "holdout"},
                                        "model": {"family": "transfer", "backbone": "MobileNetV2", "alpha": 0.35,
                                                  "weights": str(weights), "cut_at": cut}}))
        assert run_cli("check", path, "--home", home) == 0
        err = capsys.readouterr().err
        said = "the backbone's features hardly vary across" in err
        assert said == (weights == untrained), err
    path.write_text(path.read_text().replace(str(files["weights"]), str(untrained)))
    assert run_cli("check", path, "--home", home) == 0
    err = capsys.readouterr().err
    assert re.search(r"their largest spread at block_6_expand_relu \([0-9.e-]+\) is under 0.01", err), err
    assert "weights='imagenet', alpha=0.35)" in err


def test_unfreezing_more_layers_than_the_cut_backbone_holds_trains_it_whole_and_is_warned_about(files, tmp_path,
                                                                                                 home, capsys):
    """A value past the backbone's weighted layers wrapped round (12 of 10 trained the last 2), without a word."""
    from search.models import transfer

    backbone = transfer.load_backbone(_settings(files), (32, 32))
    n = len(transfer._unfreezable(backbone))
    assert len(transfer.freeze(backbone, n + 2)) == n == len(transfer.freeze(backbone, 10 * n))
    model = {"family": "transfer", "backbone": "MobileNetV2", "alpha": 0.35, "weights": str(files["weights"]),
             "cut_at": "block_2_add", "unfreeze": {"int": [0, 500]}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "deep"}, "data": {"source": f"images:{files['shapes']}"},
                                    "validation": {"scheme": "holdout"}, "model": model}))
    assert run_cli("check", path, "--home", home) == 0
    err = capsys.readouterr().err
    assert "model.unfreeze reaches 500" in err and f"search at most {n}" in err and "block_2_add" in err
    # The highest value drawn counts: a step that stops below the count, or a choice up to it, is fine.
    for fine in ({"int": [0, n + 1], "step": n}, {"choice": [0, n]}, n):
        assert transfer.preflight({**model, "unfreeze": fine}, (32, 32, 3), "none", None, None) == [], fine


def test_a_weights_file_renamed_to_h5_still_loads(files, tmp_path):
    """Keras reads a name ending in .h5 (not .weights.h5) as Keras 2's format: it found "0 saved layers"."""
    import shutil

    from search.models import transfer

    renamed = shutil.copy(files["weights"], tmp_path / "mnv2.h5")
    by_name = transfer.load_backbone(_settings(files, weights=str(renamed)), (32, 32))
    reference = transfer.load_backbone(_settings(files), (32, 32))
    assert all(np.array_equal(a, b) for a, b in zip(by_name.get_weights(), reference.get_weights()))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SpaceError, match="cannot load .*junk.h5"):
        transfer.load_backbone(_settings(files, weights=str(tmp_path / "junk.h5")), (32, 32))


@pytest.fixture(scope="module")
def transfer_study(files):
    tmp = files["tmp"]
    home, path = tmp / "mlruns", tmp / "transfer.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": "shapes-transfer", "seed": 0, "n_trials": 2},
        "data": {"source": f"images:{files['shapes']}", "test_size": 0.25},
        "validation": {"scheme": "holdout", "fraction": 0.33},
        "model": {"family": "transfer", "backbone": "MobileNetV2", "alpha": 0.35, "weights": str(files["weights"]),
                  "cut_at": "block_2_add", "dense_units": 8, "unfreeze": {"int": [0, 2], "default": 0},
                  "dropout": {"float": [0.0, 0.5]}, "dropconnect": {"float": [0.0, 0.5]},
                  "augment_width_shift": {"float": [0.0, 0.2]}},
        "train": {"epochs": 2, "batch_size": 9, "early_stopping": 0, "learning_rate": 0.01},
    }))
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    return {"home": home, "path": path,
            "study": optuna.load_study(study_name="shapes-transfer", storage=f"sqlite:///{home / 'optuna.db'}")}


def test_a_transfer_study_runs_and_its_checkpoints_load_without_the_weights_file(transfer_study, files, tmp_path):
    study = transfer_study["study"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[0].params["model.unfreeze"] == 0 and study.trials[0].params["model.dropout"] == 0
    prepared = session.prepare(spaces.load(transfer_study["path"]))
    ds, trial = prepared.dataset, study.best_trial
    folder = transfer_study["home"] / "checkpoints" / "shapes-transfer" / f"trial_{trial.number:05d}"
    moved = files["weights"].rename(tmp_path / "elsewhere.weights.h5")  # the saved model holds its weights
    try:
        models = [checkpoints.load_model(p) for p in sorted(folder.glob("split_*.keras"))]
    finally:
        moved.rename(files["weights"])
    for model, split in zip(models, prepared.splits):
        loss = model.evaluate(ds.X[split.val], ds.y[split.val], verbose=0, batch_size=len(split.val))[0]
        assert loss == pytest.approx(trial.user_attrs["splits"][split.index]["best_val_loss"], rel=1e-4)
    ensemble = np.mean([m.predict(ds.X[prepared.test_idx], verbose=0) for m in models], axis=0)
    assert ensemble.shape == (len(prepared.test_idx), 3) and np.allclose(ensemble.sum(1), 1, atol=1e-5)


def test_a_transfer_trial_replays_from_its_resolved_config(transfer_study, tmp_path):
    study, home = transfer_study["study"], transfer_study["home"]
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    local = client.download_artifacts(study.trials[1].user_attrs["mlflow_run_id"], "config/resolved.yaml",
                                      str(tmp_path))
    assert run_cli("run", local, "--home", tmp_path / "replay", "--quiet") == 0
    replay = optuna.load_study(study_name=spaces.load(local).study.name,
                               storage=f"sqlite:///{tmp_path / 'replay' / 'optuna.db'}")
    assert replay.trials[0].value == pytest.approx(study.trials[1].value, rel=1e-5)


def test_a_backbone_is_not_handed_four_channel_images():
    """color_mode: rgba passed the check, then every trial failed inside the backbone."""
    from search.errors import SpaceError
    from search.models import transfer

    with pytest.raises(SpaceError, match=r"backbone takes colour images.*\(32, 32, 4\)"):
        transfer.preflight({"family": "transfer"}, (32, 32, 4), "none", None, None)


def test_a_weights_file_replaced_under_its_name_is_not_taken_for_the_same_backbone(transfer_study, files, capsys):
    """Weights of another seed put at the same path had gone unnoticed: the study continued, and reproduce
    judged 'the same config' on another backbone."""
    original = files["weights"].read_bytes()
    write_backbone_weights(files["weights"], "MobileNetV2", alpha=0.35, seed=1)
    try:
        capsys.readouterr()
        assert run_cli("run", transfer_study["path"], "--home", transfer_study["home"], "--n-trials", "1") == 2
        err = capsys.readouterr().err
        assert "field 'model.weights'" in err and "was run with another file at model.weights" in err
        assert run_cli("reproduce", "shapes-transfer", "--home", transfer_study["home"]) == 2
        err = capsys.readouterr().err
        assert "the backbone weights file differs from what study 'shapes-transfer' was run on" in err
    finally:
        files["weights"].write_bytes(original)
    assert len(optuna.load_study(study_name="shapes-transfer",
                                 storage=f"sqlite:///{transfer_study['home'] / 'optuna.db'}").trials) == 2


def test_small_slips_about_weights_and_rotation_are_said_in_words(files, tmp_path, monkeypatch):
    """~ in model.weights was taken as a folder named ~; a folder was 'does not exist'; an empty weights: was
    told to fall back on a default of nothing; augment_rotation: 0.5 (a RandomRotation fraction) ran as half
    a degree without a word."""
    import shutil

    from search import space as spaces
    from search.models import transfer
    from search.runner._space_warnings import space_warnings

    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(files["weights"], tmp_path / "w.weights.h5")
    assert transfer.weights_path(_settings(files, weights="~/w.weights.h5"), None) == tmp_path / "w.weights.h5"
    with pytest.raises(SpaceError, match="is a folder; model.weights names the weights file itself"):
        transfer.weights_path(_settings(files, weights=str(tmp_path)), None)
    with pytest.raises(SpaceError) as err:
        spaces.load({"study": {"name": "w"}, "data": {"source": "sklearn:digits", "as_images": True},
                     "model": {"family": "transfer", "weights": None}})
    assert "give one" in str(err.value) and "remove the line" not in str(err.value)
    space = spaces.load({"study": {"name": "r"}, "data": {"source": "sklearn:digits", "as_images": True},
                         "model": {"family": "cnn", "augment_rotation": {"float": [0.0, 0.5]}}})
    said = [w for w in space_warnings(space, None) if "augment_rotation" in w]
    assert said and "would turn them by up to ±180" in said[0], said
