"""Image data, the cnn family, augmentation and DropConnect, with real Keras layers and a real study."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import run_cli
from search import data, space as spaces
from search.runner import checkpoints
from search.runner import session
from search.demo_data import write_shapes
from search.errors import DataError

AUGMENTATIONS = {"augment_rotation": 30.0, "augment_width_shift": 0.2, "augment_height_shift": 0.2,
                 "augment_shear": 20.0, "augment_zoom": 0.2, "augment_flip": True, "augment_contrast": 0.5}


def _images(n: int = 4, size: int = 9, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, channels)).astype(np.float32)


@pytest.mark.parametrize("setting", sorted(AUGMENTATIONS))
def test_augmentation_changes_training_inputs_and_leaves_inference_inputs_bit_identical(setting):
    from search.models.layers import Augment
    from search.models._params import augment_settings, AUGMENT_PARAMS

    import keras

    keras.utils.set_random_seed(0)
    settings = {key: spec.default for key, spec in AUGMENT_PARAMS.items()} | {setting: AUGMENTATIONS[setting]}
    layer = Augment(**augment_settings(settings))
    x = _images(16)
    assert not np.allclose(np.asarray(layer(x, training=True)), x), f"{setting} did not change training inputs"
    for inference in (layer(x, training=False), layer(x)):  # a bare call (no flag) is inference too
        assert np.array_equal(np.asarray(inference), x)


def test_the_cnn_model_augments_only_while_training():
    import keras

    from search.models import Head, build

    keras.utils.set_random_seed(0)
    model = build({"family": "cnn", **_cnn_settings(AUGMENTATIONS)}, (9, 9, 1), Head("multiclass", 3))
    plain = build({"family": "cnn", **_cnn_settings({})}, (9, 9, 1), Head("multiclass", 3))
    plain.set_weights(model.get_weights())
    x = _images(8)
    # Inference: exactly the un-augmented network's predictions, however the model is called.
    assert np.array_equal(model.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert np.array_equal(np.asarray(model(x)), np.asarray(plain(x)))
    probe = keras.Model(model.input, model.get_layer("augment").output)
    assert not np.allclose(np.asarray(probe(x, training=True)), x)
    # With augmentation off the layer is left out, so the model holds only Keras' own layers and loads
    # with plain Keras where this package is not imported.
    assert "augment" not in [layer.name for layer in plain.layers]
    assert all(type(layer).__module__.startswith("keras") for layer in plain.layers)


def _cnn_settings(overrides):
    from search.models import cnn

    return {key: spec.default for key, spec in cnn.PARAMS.items()} | {"blocks": 1, "filters": 4,
                                                                      "dense_units": 8} | overrides


def test_centered_shear_keeps_the_middle_row_and_slides_the_others():
    from search.models.layers import RandomCenteredShear

    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, :, 3:6, 0] = 1.0  # a vertical bar through the centre
    out = np.asarray(RandomCenteredShear(30.0, fill_mode="constant", seed=1)(np.repeat(x, 16, 0), training=True))
    assert np.array_equal(out[:, 4], np.repeat(x, 16, 0)[:, 4]), "the centre row moved"
    assert not np.allclose(out[:, 0], x[:, 0]) and not np.allclose(out[:, 8], x[:, 8])
    # Top and bottom rows slide in opposite directions: a shear, not a shift.
    cols = np.arange(9)
    top = (out[:, 0, :, 0] * cols).sum(1) / out[:, 0, :, 0].sum(1)
    bottom = (out[:, 8, :, 0] * cols).sum(1) / out[:, 8, :, 0].sum(1)
    assert np.allclose(top - 4, -(bottom - 4), atol=0.3)


def test_dropconnect_masks_weights_in_training_and_uses_full_weights_at_inference():
    import keras

    from search.models.layers import DropConnectDense

    keras.utils.set_random_seed(0)
    rate, n_in, n_out = 0.4, 30, 40
    layer = DropConnectDense(n_out, rate=rate)
    eye = np.eye(n_in, dtype=np.float32)  # row i of the output is row i of the (masked) kernel, plus bias
    layer(eye)
    layer.bias.assign(np.linspace(-1, 1, n_out).astype(np.float32))
    kernel, bias = np.asarray(layer.kernel), np.asarray(layer.bias)
    assert np.array_equal(np.asarray(layer(eye)), eye @ kernel + bias)
    assert np.array_equal(np.asarray(layer(eye, training=False)), eye @ kernel + bias)
    seen = []
    for _ in range(2):
        effective = np.asarray(layer(eye, training=True)) - bias
        dropped = np.isclose(effective, 0.0, atol=1e-7)
        # Every weight is either dropped or kept and scaled by 1 / (1 - rate).
        np.testing.assert_allclose(effective[~dropped], kernel[~dropped] / (1 - rate), rtol=1e-5, atol=1e-6)
        assert abs(dropped.mean() - rate) < 0.06
        seen.append(dropped)
    assert not np.array_equal(*seen), "the same mask was drawn twice"


# ---------------------------------------------------------------------------------------------
# Image folders


def _section(tmp_path, folder, **extra):
    space = spaces.validate({"study": {"name": "x"}, "data": {"source": f"images:{folder}", **extra}},
                            source=str(tmp_path / "space.yaml"))
    return space.data


def test_an_image_folder_loads_as_pixels_in_unit_range(tmp_path):
    write_shapes(tmp_path / "shapes", per_class=4, size=12)
    section = _section(tmp_path, tmp_path / "shapes")
    assert section.preprocess == "none"  # images are not standardized unless the file says so
    ds = data.load(section)
    assert ds.X.shape == (12, 12, 12, 3) and ds.X.dtype == np.float32
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0 and ds.X.max() > 0.4
    assert ds.classes == ["circle", "square", "triangle"] and np.bincount(ds.y).tolist() == [4, 4, 4]
    grey = data.load(_section(tmp_path, tmp_path / "shapes", color_mode="grayscale"))
    assert grey.X.shape == (12, 12, 12, 1)
    # Colour made grey as the files were read is said, with a count and the first files; nothing else was.
    assert any(n.startswith("12 image(s) of ") and "were made grey (data.color_mode: grayscale)" in n
               for n in grey.notes), grey.notes
    assert not any("were made" in n or "were resized" in n for n in ds.notes), ds.notes


def test_mixed_sizes_are_refused_unless_an_image_size_is_given(tmp_path):
    write_shapes(tmp_path / "mixed", per_class=3, sizes=(16, 20))
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, tmp_path / "mixed"))
    assert err.value.field == "data.image_size" and "_001.png" in str(err.value)
    ds = data.load(_section(tmp_path, tmp_path / "mixed", image_size=[10, 14]))
    assert ds.X.shape == (9, 10, 14, 3)
    # Stretched to the size asked for: said with the count and the sizes they came in (it was done unsaid).
    assert "9 of the 9 images were resized to data.image_size 10x14 (height x width), stretched where their " \
           "shape differs, from 16-20 x 16-20 pixels" in ds.notes, ds.notes


def test_a_corrupt_image_is_named_or_skipped_with_a_count(tmp_path, capsys):
    write_shapes(tmp_path / "shapes", per_class=4, size=12)
    bad = tmp_path / "shapes" / "square" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, tmp_path / "shapes"))
    assert str(bad) in str(err.value) and "skip_bad_images" in str(err.value)
    ds = data.load(_section(tmp_path, tmp_path / "shapes", skip_bad_images=True))
    assert len(ds.X) == 12 and ds.images_skipped == [str(bad)]
    assert ds.summary()["images_skipped"] == 1
    # The terminal names them (five, then how many more), not only their count.
    for k in range(6):
        (bad.parent / f"broken_{k}.png").write_bytes(bad.read_bytes())
    from search.api import announce

    space = spaces.validate({"study": {"name": "bad"}, "data": {"source": f"images:{tmp_path / 'shapes'}",
                                                                "skip_bad_images": True},
                             "validation": {"scheme": "holdout", "fraction": 0.5}, "model": {"family": "cnn"}})
    capsys.readouterr()
    announce(session.prepare_rows(space), quiet=True)
    err = capsys.readouterr().err
    assert "skipped 7 unreadable image(s)" in err and "broken_3.png" in err and "and 2 more" in err


def test_an_empty_class_folder_is_refused_and_the_cli_exits_2_before_any_store(tmp_path, home, capsys):
    write_shapes(tmp_path / "shapes", per_class=3, size=12)
    (tmp_path / "shapes" / "hexagon").mkdir()
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, tmp_path / "shapes"))
    assert "hexagon" in str(err.value)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "empty"}, "data": {"source": f"images:{tmp_path / 'shapes'}"},
                                    "model": {"family": "cnn"}}))
    assert run_cli("run", path, "--home", home) == 2
    assert "hexagon" in capsys.readouterr().err and not home.exists()


def test_npz_images_and_digits_as_images(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "im.npz", X=pixels, y=np.arange(20) % 2)
    space = spaces.validate({"study": {"name": "x"}, "data": {"source": f"npz:{tmp_path / 'im.npz'}",
                                                              "as_images": True}})
    ds = data.load(space.data)
    assert ds.X.shape == (20, 6, 5, 1) and np.allclose(ds.X[..., 0], pixels / 255.0)
    digits = spaces.validate({"study": {"name": "x"}, "data": {"source": "sklearn:digits", "as_images": True}})
    assert data.load(digits.data, None).X.shape[1:] == (8, 8, 1)
    # digits' 0-16 stored as uint8 reach the model at 0-0.063 of white: said, with the white level to divide by.
    from sklearn.datasets import load_digits

    np.savez(tmp_path / "dim.npz", X=load_digits().images[:40].astype(np.uint8), y=np.arange(40) % 2)
    dim = spaces.validate({"study": {"name": "x"}, "data": {"source": f"npz:{tmp_path / 'dim.npz'}",
                                                            "as_images": True}})
    assert any("the brightest pixel of X is 0.0627 of white" in w for w in data.load(dim.data).warnings)
    np.savez(tmp_path / "f16.npz", X=load_digits().images[:40], y=np.arange(40) % 2)
    with pytest.raises(DataError, match="X / 16 if 16 is white"):
        data.load(spaces.validate({"study": {"name": "x"}, "data": {"source": f"npz:{tmp_path / 'f16.npz'}",
                                                                    "as_images": True}}).data)


def test_a_cnn_on_flat_rows_is_refused_before_training(write_space, home, capsys):
    path = write_space({"model": {"family": "cnn", "dropout": None, "layers": None, "units": None}})
    assert run_cli("run", path, "--home", home) == 2
    err = capsys.readouterr().err
    assert "model.family" in err and "as_images" in err and not home.exists()
    # Four axes, channels first: read as 3 px high with 16 channels and trained without a word.
    np.savez(home.parent / "chw.npz", X=np.random.default_rng(0).random((30, 3, 16, 16)), y=np.arange(30) % 2)
    path = write_space({"data": {"source": f"npz:{home.parent / 'chw.npz'}"},
                        "model": {"family": "cnn", "dropout": None, "layers": None, "units": None}})
    assert run_cli("check", path) == 2
    err = capsys.readouterr().err
    assert "field 'data.as_images': the cnn family takes images, and these rows of shape (3, 16, 16) are not " \
           "marked as images" in err and not home.exists()


# ---------------------------------------------------------------------------------------------
# A cnn study end to end


@pytest.fixture(scope="module")
def cnn_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn")
    home, path = tmp / "mlruns", tmp / "cnn.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": "digits-cnn", "seed": 1, "n_trials": 2},
        "data": {"source": "sklearn:digits", "as_images": True, "test_size": 0.5},
        "validation": {"scheme": "kfold", "k": 2},
        "model": {"family": "cnn", "blocks": 2, "filters": 8, "dense_units": 16,
                  "dropconnect": {"float": [0.0, 0.3]}, "augment_rotation": {"float": [0.0, 15.0]},
                  "augment_shear": {"float": [5.0, 15.0], "or_off": True}, "augment_flip": {"choice": [False, True]}},
        "train": {"epochs": 2, "batch_size": 64, "early_stopping": 0, "learning_rate": 0.01},
    }))
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    return {"home": home, "path": path,
            "study": optuna.load_study(study_name="digits-cnn", storage=f"sqlite:///{home / 'optuna.db'}")}


def test_a_cnn_study_runs_with_the_augmentation_free_baseline_first(cnn_study):
    trials = cnn_study["study"].trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    base = trials[0].params
    assert base["model.augment_rotation"] == 0 and base["model.augment_shear.on"] is False
    assert base["model.augment_flip"] is False and base["model.dropconnect"] == 0


def test_the_fold_ensemble_of_saved_cnn_checkpoints_predicts_the_test_rows(cnn_study):
    """What `reproduce` does with a trial's split models: load each .keras file, average predictions."""
    space = spaces.load(cnn_study["path"])
    prepared = session.prepare(space)
    ds, trial = prepared.dataset, cnn_study["study"].best_trial
    folder = cnn_study["home"] / "checkpoints" / "digits-cnn" / f"trial_{trial.number:05d}"
    models = [checkpoints.load_model(p) for p in sorted(folder.glob("split_*.keras"))]
    assert len(models) == 2
    X_test, y_test = ds.X[prepared.test_idx], ds.y[prepared.test_idx]
    for model, split in zip(models, prepared.splits):
        loss = model.evaluate(ds.X[split.val], ds.y[split.val], verbose=0, batch_size=len(split.val))[0]
        assert loss == pytest.approx(trial.user_attrs["splits"][split.index]["best_val_loss"], rel=1e-4)
    mean = np.mean([m.predict(X_test, verbose=0) for m in models], axis=0)
    assert (mean.argmax(1) == y_test).mean() > 0.2  # 10 classes, 2 epochs: chance is 0.1


def test_a_reproduced_image_model_is_served_images_of_any_number_type(cnn_study, capsys, tmp_path):
    """The pyfunc form had a float32 tensor signature that refused an image / 255.0 (float64), and a model
    with augmentation or DropConnect loaded only after
    `import search.models.layers`: its own loader, shipped in the model, imports the layers."""
    import mlflow.artifacts
    import mlflow.pyfunc

    home = cnn_study["home"]
    assert cnn_study["study"].trials[1].params["model.augment_rotation"] > 0  # the model holds our layers
    assert run_cli("reproduce", "digits-cnn", "--home", home, "--trial", "1", "--epochs", "1") == 0
    run_id = re.search(r"MLflow run (\w+): model at", capsys.readouterr().out).group(1)
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    try:
        served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    finally:
        mlflow.set_tracking_uri(None)
    pixels = np.asarray(__import__("sklearn.datasets").datasets.load_digits().images[:4, :, :, None]) / 16.0
    expected = np.asarray(served.predict(pixels.astype(np.float32)))
    assert expected.shape == (4, 10)
    np.testing.assert_allclose(np.asarray(served.predict(pixels)), expected, rtol=1e-5)
    # Pixels as stored (0-16 here, 0-255 in a PNG) gave one class with full confidence; other shapes met
    # TensorFlow's own errors. Both are refused in words.
    with pytest.raises(ValueError, match=r"pixel values up to 16, but the model was trained on pixel values in "
                                         r"\[0, 1\]"):
        served.predict(pixels * 16)
    with pytest.raises(ValueError, match=r"images of shape \(8, 8, 1\): the model takes a batch of shape "
                                         r"\(n, 8, 8, 1\).*leading axis of a batch"):
        served.predict(pixels[0])
    with pytest.raises(ValueError, match="grey images need their channel axis"):
        served.predict(pixels[..., 0])
    # search.predict takes the images too (it refused a 4-D array as "no table", and a flat one as "images");
    # a folder given to `search predict` was "the file of rows does not exist".
    import search

    predicted = search.predict("digits-cnn", pixels, run_id=run_id, home=home)
    np.testing.assert_allclose(predicted[[f"p({c})" for c in range(10)]].to_numpy(), expected, rtol=1e-5)
    assert list(predicted["predicted"]) == [str(c) for c in expected.argmax(axis=1)]
    with pytest.raises(search.DataError, match=r"pixel values up to 16"):
        search.predict("digits-cnn", pixels * 16, run_id=run_id, home=home)
    with pytest.raises(search.StudyError, match=r"takes images, not a table's rows: in Python, search.predict"):
        search.predict("digits-cnn", pixels.reshape(4, -1), run_id=run_id, home=home)
    capsys.readouterr()
    assert run_cli("predict", "digits-cnn", tmp_path, "--home", home) == 2
    assert f"{tmp_path}: field 'INPUT': is a folder; search predict reads a CSV file of rows" in capsys.readouterr().err
    # Where this package is not installed: the layers come from the model's own code folder.
    code = ("import sys, json, numpy as np; sys.modules['search'] = None; import mlflow.pyfunc; "
            f"m = mlflow.pyfunc.load_model({local!r}); "
            f"print(json.dumps(np.asarray(m.predict(np.load({str(tmp_path / 'x.npy')!r}))).tolist()))")
    np.save(tmp_path / "x.npy", pixels)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.asarray(json.loads(out.stdout.strip().splitlines()[-1])), expected, rtol=1e-5)


def test_a_cnn_trial_replays_from_its_resolved_config(cnn_study, tmp_path):
    study, home = cnn_study["study"], cnn_study["home"]
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    run_id = study.trials[1].user_attrs["mlflow_run_id"]
    local = client.download_artifacts(run_id, "config/resolved.yaml", str(tmp_path))
    assert run_cli("run", local, "--home", tmp_path / "replay", "--quiet") == 0
    replay = optuna.load_study(study_name=spaces.load(local).study.name,
                               storage=f"sqlite:///{tmp_path / 'replay' / 'optuna.db'}")
    # Same settings, seeds and rows, augmentation and DropConnect masks included: the same losses.
    assert replay.trials[0].value == pytest.approx(study.trials[1].value, rel=1e-5)


def _folder_space(tmp_path, source, **data_settings):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"study": {"name": "pictures"}, "data": {"source": source, **data_settings},
                                    "validation": {"scheme": "holdout", "fraction": 0.5}, "model": {"family": "cnn"}}))
    return spaces.load(path)


def test_image_files_as_cameras_and_archives_leave_them(tmp_path):
    """16-bit greys keep their depth, phone photos stand upright, macOS names and zip leftovers are no class."""
    import unicodedata

    from PIL import Image

    root = tmp_path / "pics"
    for label in ("cat", unicodedata.normalize("NFD", "café")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            deep = np.full((6, 4), 1000 * (i + 1) + (20000 if label == "cat" else 0), np.uint16)
            Image.fromarray(deep).save(root / label / f"{i}.png")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._0.png").write_bytes(b"\0\5\26\7")
    Image.fromarray(np.zeros((6, 4, 3), np.uint8)).save(root / "cat" / "3.jfif", format="JPEG")
    phone = Image.fromarray(np.full((4, 6, 3), 90, np.uint8))  # stored 6 wide, 4 high, tagged "rotate 90"
    exif = phone.getexif()
    exif[0x0112] = 6
    phone.save(root / "cat" / "phone.jpg", exif=exif)
    dataset = data.load(_folder_space(tmp_path, f"images:{root}", color_mode="grayscale").data)
    assert sorted(dataset.classes) == ["café", "cat"]  # one name, however the file system spelt it
    assert dataset.X.shape == (8, 6, 4, 1)  # the .jfif and the upright phone photo are read
    # Each row names its file (rows.csv of a reproduce run lists them), in the order of the rows.
    assert {unicodedata.normalize("NFC", str(r)) for r in dataset.rows} == \
        {"cat/3.jfif", "cat/phone.jpg", *(f"{c}/{i}.png" for c in ("cat", "café") for i in range(3))}
    phone_row = dataset.X[list(dataset.rows).index("cat/phone.jpg")]
    assert float(phone_row.min()) == float(phone_row.max()) == pytest.approx(90 / 255, abs=2e-3)
    greys = sorted({round(float(v), 4) for v in dataset.X[:, 0, 0, 0]})
    for value in (1000, 3000, 21000, 23000):  # every 16-bit grey at its depth, none clipped to white
        assert any(abs(g - value / 65535) < 1e-4 for g in greys), (value, greys)


def test_a_folder_of_splits_arrays_of_0_255_and_mixed_kinds_are_refused(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / "ds" / split / label).mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "ds" / split / label / "0.png")
    with pytest.raises(DataError, match="each hold the same class folders .cat, dog.: they are splits"):
        data.load(_folder_space(tmp_path, f"images:{tmp_path / 'ds'}").data)
    bright = tmp_path / "bright.npz"
    np.savez(bright, X=np.full((6, 4, 4), 200.0), y=np.arange(6) % 2)
    with pytest.raises(DataError, match=r"runs from 200 to 200.*X / 255.0"):
        data.load(_folder_space(tmp_path, f"npz:{bright}", as_images=True).data)
    ints = tmp_path / "ints.npz"
    np.savez(ints, X=np.arange(6 * 16, dtype=np.int64).reshape(6, 4, 4) + 150, y=np.arange(6) % 2)
    scaled = data.load(_folder_space(tmp_path, f"npz:{ints}", as_images=True).data).X  # int64 0-255: 8-bit
    assert scaled.min() == pytest.approx(150 / 255) and scaled.max() == pytest.approx(245 / 255)
    with pytest.raises(DataError, match="data.test is a npz: source, data.source a images: one"):
        data.load(_folder_space(tmp_path, f"images:{tmp_path / 'ds' / 'train'}", test=f"npz:{ints}").data)


def test_images_past_pillows_bomb_guard_are_named_and_a_folder_too_large_for_memory_is_refused(tmp_path,
                                                                                               monkeypatch):
    from PIL import Image

    from search.data import _images

    write_shapes(tmp_path / "shapes", per_class=3, size=24)  # 576 pixels each
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # warns past 400, refuses past 800
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")  # Pillow's own warning, which names no file, is not shown
        dataset = data.load(_section(tmp_path, tmp_path / "shapes"))
    assert dataset.X.shape == (9, 24, 24, 3)
    (note,) = [n for n in dataset.notes if "decompression" in n]
    assert "9 image(s)" in note and "_00" in note and "576 pixels" in note
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    needed = 9 * 24 * 24 * 3 * 4
    monkeypatch.setattr(_images, "available_memory", lambda: needed - 1)
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, tmp_path / "shapes"))
    assert err.value.field == "data.image_size" and "9 images" in str(err.value)
    assert "24×24×3 each" in str(err.value) and "e.g. [16, 16]" in str(err.value)
    # Shrunk as they are read, they fit.
    assert data.load(_section(tmp_path, tmp_path / "shapes", image_size=[16, 16])).X.shape == (9, 16, 16, 3)


def test_the_printed_line_says_how_images_were_prepared_as_they_were():
    """It said "resized to data.image_size" for a folder read without one, and "as data.as_images read the
    npz" of floats the API was given as they were."""
    from types import SimpleNamespace

    from search.reproduction import served

    def io(source: str, image_size=None) -> str:
        ds = SimpleNamespace(feature_names=None, input_shape=(32, 32, 3), source=source, task="binary",
                             classes=np.array(["a", "b"]), labels=["a", "b"])
        return served.model_io(ds, None, image_size=image_size)["inputs"]["as"]

    assert "not resized: the folder's were all 32x32 (data.image_size was not set)" in io("images:pics")
    assert "resized to 32x32 (data.image_size): `image = image.resize((32, 32), Image.Resampling.BILINEAR)`" \
        in io("images:pics", image_size=(32, 32))
    assert "unsigned integers divided by their type's maximum (uint8 / 255) and floats as given" in io("npz:x.npz")


def test_augment_settings_of_a_builder_are_said_to_be_the_builders_to_apply(tmp_path):
    """A builder ignoring augment_rotation was shown searching rotations: no Augment layer in any checkpoint."""
    from search.runner._space_warnings import space_warnings

    (tmp_path / "mynet.py").write_text(
        "import keras\n\ndef build(settings, input_shape, n_outputs):\n"
        "    inputs = keras.Input(shape=input_shape)\n"
        "    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))\n"
        "    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation='softmax')(x))\n")
    space = spaces.load({"study": {"name": "aug"}, "data": {"source": "sklearn:digits", "as_images": True},
                         "model": {"family": f"python:{tmp_path / 'mynet.py'}:build",
                                   "augment_rotation": {"float": [0.0, 20.0]}}})
    said = [w for w in space_warnings(space, data.load(space.data)) if "augment_rotation" in w]
    assert said and "nothing else augments its model" in said[0], said
