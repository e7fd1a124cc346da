"""Image files as people keep them: transparent PNGs, phone photos, stray files, mixed sizes and empty folders;
and the final model's inputs prepared from reproduce.json's words alone. Real files written with Pillow."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from conftest import run_cli
from search import data, space as spaces
from search.errors import DataError


def _section(tmp_path, folder, **extra):
    return spaces.validate({"study": {"name": "x"}, "data": {"source": f"images:{folder}", **extra}},
                           source=str(tmp_path / "space.yaml")).data


def _classes(root, per_class=4, size=16, classes=("dot", "bar"), seed=0):
    """Opaque RGB images: class ``dot`` a bright square, ``bar`` a bright bar, on noise of their own."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            pixels[4:12, 6:10] = 230 if k % 2 else 0
            pixels[6:10, 4:12] += 150
            Image.fromarray(pixels).save(root / label / f"{i:02d}.png")


def _transparent(hidden: int, size=16):
    """A dark dot on a transparent ground whose hidden colour is ``hidden``: two of them look the same."""
    from PIL import Image

    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., :3] = hidden
    pixels[5:11, 5:11] = (40, 60, 200, 255)
    pixels[4, 4:12] = (40, 60, 200, 128)  # a half-transparent edge, blended with the ground
    return Image.fromarray(pixels, "RGBA")


def test_transparent_images_are_flattened_onto_white_and_seen_as_the_same_image(tmp_path):
    """Alpha was dropped: two files that look alike (transparent pixels holding black in one, white in the other)
    became training images 239/255 apart, and neither de-duplication nor the fingerprint saw them as one."""
    from PIL import Image

    root = tmp_path / "pics"
    _classes(root)
    _transparent(0).save(root / "dot" / "black_ground.png")
    _transparent(255).save(root / "dot" / "white_ground.png")
    ds = data.load(_section(tmp_path, root))
    (note,) = [n for n in ds.notes if "transparency" in n]
    assert note.startswith("2 image(s) have transparency: flattened onto white") and "black_ground.png" in note
    assert ds.duplicates_dropped == 1  # the two are one image
    (row,) = [k for k, name in enumerate(ds.rows) if name.endswith("_ground.png")]
    assert np.array_equal(ds.X[row, 0, 0], [1.0, 1.0, 1.0])  # the ground is white
    assert np.allclose(ds.X[row, 4, 6], [(40 * 128 + 255 * 127) / 255 / 255, (60 * 128 + 255 * 127) / 255 / 255,
                                         (200 * 128 + 255 * 127) / 255 / 255], atol=1 / 255)
    # The study's fingerprint is of the flattened pixels: the hidden colour alone changes nothing.
    (root / "dot" / "white_ground.png").unlink()
    one = data.load(_section(tmp_path, root)).fingerprint
    _transparent(120).save(root / "dot" / "black_ground.png")
    assert data.load(_section(tmp_path, root)).fingerprint == one
    # Grey and palette files with transparency too; an RGBA file of opaque pixels is no news, and
    # color_mode: rgba keeps the alpha channel as stored.
    grey = np.zeros((16, 16, 2), np.uint8)
    grey[5:11, 5:11] = (90, 255)
    Image.fromarray(grey, "LA").save(root / "bar" / "grey.png")
    palette = _transparent(0).convert("RGB").convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    palette.save(root / "bar" / "palette.gif", transparency=palette.getpixel((0, 0)))
    Image.fromarray(np.full((16, 16, 4), 255, np.uint8), "RGBA").save(root / "bar" / "opaque.png")
    ds = data.load(_section(tmp_path, root, color_mode="grayscale"))
    (note,) = [n for n in ds.notes if "transparency" in n]
    assert note.startswith("3 image(s) have transparency") and "opaque.png" not in note
    for name in ("bar/grey.png", "bar/palette.gif", "dot/black_ground.png"):
        assert ds.X[list(ds.rows).index(name), 0, 0, 0] == 1.0, name
    kept = data.load(_section(tmp_path, root, color_mode="rgba"))
    assert not [n for n in kept.notes if "transparency" in n]
    hidden = kept.X[list(kept.rows).index("dot/black_ground.png"), 0, 0]
    assert hidden.tolist() == pytest.approx([120 / 255] * 3 + [0.0])


def _follow(text: str, file) -> np.ndarray:
    """The final model's input for ``file``, made by doing what ``text`` says with Pillow: each step's code is
    taken from the text as written, in the text's order, and run."""
    from PIL import Image, ImageOps

    steps = re.findall(r"(\d)\. (.*?)(?=; \d\. |$)", text)
    assert [n for n, _ in steps] == ["1", "2", "3", "4", "5"], text
    code = {n: [c.removeprefix("image = ") for c in re.findall(r"`([^`]*)`", step)] for n, step in steps}
    scope = {"Image": Image, "ImageOps": ImageOps, "np": np, "image": Image.open(file)}
    scope["image"].load()
    for n, _ in steps:
        if n == "2":  # "an image with transparency (mode RGBA, LA, PA, or 'transparency' in image.info)"
            assert "(mode RGBA, LA, PA, or 'transparency' in image.info)" in steps[1][1]
            image = scope["image"]
            if not (image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info):
                continue
        assert code[n], f"step {n} names no Pillow call: {dict(steps)[n]}"
        scope["image"] = eval(code[n][0], scope)
    return scope["image"]


def test_the_stored_preparation_followed_with_pillow_gives_the_models_inputs(tmp_path, capsys):
    """The stored words said "resized to 24x24 and converted to RGB": not the EXIF rotation, the order, the
    filter, nor that the aspect ratio is not kept. A user preparing images by them got other predictions."""
    from PIL import Image

    root = tmp_path / "pics"
    _classes(root, per_class=6, size=16)
    phone = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 34, 3), dtype=np.uint8))
    exif = phone.getexif()
    exif[0x0112] = 6  # stored 34 wide and 20 high, shown rotated 90 degrees
    phone.save(root / "dot" / "phone.jpg", exif=exif)
    logo = np.asarray(_transparent(0, size=30).resize((30, 18)))  # another size and shape, with alpha
    Image.fromarray(logo, "RGBA").save(root / "bar" / "logo.png")
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({
        "study": {"name": "follow", "seed": 0, "n_trials": 1},
        "data": {"source": f"images:{root}", "image_size": [12, 14], "test_size": 0.25},
        "validation": {"scheme": "holdout", "fraction": 0.34},
        "model": {"family": "cnn", "blocks": 1, "filters": 4, "dense_units": 8},
        "train": {"epochs": 1, "batch_size": 8, "early_stopping": 0}}))
    home = tmp_path / "mlruns"
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    capsys.readouterr()
    assert run_cli("reproduce", "follow", "--home", home) == 0
    out = capsys.readouterr().out
    run_id = re.search(r"MLflow run (\w+): model at", out).group(1)
    stored = json.loads((home / "artifacts" / run_id / "artifacts" / "reproduce.json").read_text())["model"]
    text = stored["inputs"]["as"]
    assert "ImageOps.exif_transpose" in out and "the aspect ratio is not kept" in out  # printed as stored
    for said in ("exif_transpose", "flattened onto white", "convert('RGB')", "resize((14, 12), "
                 "Image.Resampling.BILINEAR)", "aspect ratio is not kept", "/ 255.0"):
        assert said in text, said
    assert text.index("exif_transpose") < text.index("alpha_composite") < text.index("convert('RGB')") \
        < text.index("resize(") < text.index("/ 255.0")
    ds = data.load(spaces.load(space).data)
    assert ds.X.shape[1:] == (12, 14, 3) and stored["inputs"]["shape"] == [12, 14, 3]
    for name in ("dot/phone.jpg", "bar/logo.png", "dot/00.png"):
        followed = _follow(text, root / name)
        np.testing.assert_allclose(followed, ds.X[list(ds.rows).index(name)], atol=1e-6, err_msg=name)


def test_every_bad_file_of_an_image_folder_is_named_in_one_error(tmp_path):
    """An unreadable file, mixed sizes and an empty class folder were refused one per run: four runs to clear."""
    from PIL import Image

    root = tmp_path / "pics"
    _classes(root, classes=("dot", "bar", "ring"))
    for k in range(5):
        (root / "dot" / f"broken_{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    for k in range(2):
        Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(root / "bar" / f"big_{k}.png")
    (root / "empty").mkdir()
    for name in ("ring/00.png", "ring/01.png", "ring/02.png", "ring/03.png"):
        (root / name).unlink()
    (root / "ring" / "notes.txt").write_text("to do")
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, root))
    said = str(err.value)
    assert said.count("\n") == 0 and "3 problems with the image files" in said
    assert "cannot read 5 images" in said and "broken_0.png" in said and "and 2 more" in said
    assert "skip_bad_images" in said
    assert "images differ in size" in said and "2 images are not 16×16" in said and "12×20" in said
    assert f"the class folder {root / 'empty'} holds no images" in said and "ring holds no images" in said
    assert said.index("cannot read") < said.index("differ in size") < said.index("holds no images")
    # Skipping the unreadable files leaves the other two problems, still together.
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, root, skip_bad_images=True))
    assert "2 problems" in str(err.value) and "cannot read" not in str(err.value)
    # Alone, a problem is said as before, under its own field.
    (root / "empty").rmdir()
    (root / "ring" / "notes.txt").unlink()
    (root / "ring").rmdir()
    with pytest.raises(DataError) as err:
        data.load(_section(tmp_path, root, skip_bad_images=True))
    assert err.value.field == "data.image_size" and "field 'data.image_size': images differ in size: " in str(err.value)


def test_files_that_are_not_images_are_left_out_with_advice_that_fits_them(tmp_path):
    """A notes.txt was told to "convert photos to PNG or JPEG"; a README beside the classes is no news."""
    root = tmp_path / "pics"
    _classes(root)
    for name in ("dot/notes.txt", "dot/labels.csv", "bar/IMG_0001.HEIC", "bar/Thumbs.db", "README.txt",
                 "Thumbs.db", "labels.csv"):
        (root / name).write_bytes(b"\0not an image\0")
    ds = data.load(_section(tmp_path, root))
    assert len(ds.X) == 8
    (photos,) = [n for n in ds.notes if ".heic" in n]
    assert "not images this reads were left out (1 .heic); convert them to PNG or JPEG" in photos
    (others,) = [n for n in ds.notes if ".txt" in n]
    assert "2 file(s) in the class folders of" in others and "are not images (1 .csv, 1 .txt): left out" in others
    assert "convert" not in others
    assert not [n for n in ds.notes if "README" in n or "Thumbs" in n or "directly in" in n]


def test_uneven_and_rare_class_folders_are_warned_about_as_csv_classes_are(tmp_path):
    """Folders of 71 %, 15 % and 14 % got no word: only classes under 10 % were named."""
    from search.runner import session

    def warned(counts: dict[str, int]) -> list[str]:
        root = tmp_path / "-".join(map(str, counts.values()))
        for seed, (label, n) in enumerate(counts.items()):
            _classes(root, per_class=n, size=8, classes=(label,), seed=seed)
        space = tmp_path / "s.yaml"
        space.write_text(yaml.safe_dump({"study": {"name": "uneven"}, "data": {"source": f"images:{root}"},
                                         "validation": {"scheme": "kfold", "k": 2}, "model": {"family": "cnn"}}))
        return [w for w in session.prepare(spaces.load(space)).dataset.warnings if "development rows (" in w]

    (said,) = warned({"circle": 42, "left": 9, "right": 9})
    assert said.startswith("class 'left' is 14.6% of the development rows (7 rows), class 'right' is 14.6%"), said
    assert "under half the 33.3% each of the 3 classes would hold were they even" in said
    assert "class 'circle' holds 4.9 times the rows of 'left'" in said and "class_weight: balanced" in said
    (said,) = warned({"circle": 42, "left": 3, "right": 12})  # under 10 %: the rare-class warning, as for a CSV
    assert "class 'left' is 4.4% of the development rows" in said and "accuracy says little" in said
    assert warned({"circle": 20, "left": 12, "right": 12}) == []


def test_a_test_image_that_is_a_near_copy_of_a_development_image_is_warned_about(tmp_path):
    """A picture saved again a grey level brighter is not an exact copy, so it was kept on both sides of the test
    split without a word: the test look scored pictures the trials had trained on."""
    from PIL import Image

    from search.data import _near_copies
    from search.runner import session

    root = tmp_path / "pics"
    _classes(root, per_class=12, size=16)
    for i in range(12):  # every dot again, one pixel one grey level brighter: whichever side, a pair is split
        pixels = np.asarray(Image.open(root / "dot" / f"{i:02d}.png")).copy()
        pixels[0, 0, 0] = min(255, int(pixels[0, 0, 0]) + 1)
        Image.fromarray(pixels).save(root / "dot" / f"again_{i:02d}.png")
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({"study": {"name": "near"}, "data": {"source": f"images:{root}", "test_size": 0.3},
                                     "validation": {"scheme": "kfold", "k": 2}, "model": {"family": "cnn"}}))
    prepared = session.prepare(spaces.load(space))
    rows = [str(r) for r in prepared.dataset.rows]
    test = {rows[i] for i in prepared.test_idx}
    split = sum(1 for i in range(12) if (f"dot/{i:02d}.png" in test) != (f"dot/again_{i:02d}.png" in test))
    assert split > 0, "the draw split no pair: the check below could not fail"
    (said,) = [w for w in prepared.dataset.warnings if "near copies" in w]
    assert said.startswith(f"{split} of the {len(test)} test image(s) are near copies of development images"), said
    assert "'dot/" in said and "remove one of each pair" in said
    # Distinct pictures are not near copies: none among scikit-learn's digits (the closest pair is 0.026 apart).
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0)[..., None]
    assert _near_copies.near_copies(X, np.arange(360, len(X)), np.arange(360)) == []
