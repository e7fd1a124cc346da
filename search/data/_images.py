"""Image folders in the flow_from_directory layout: ``<dir>/<class>/<image>``, decoded once per study.

Pixels come out as float32 in [0, 1] with shape (n, height, width, channels); the class is the name of
the subfolder an image sits in (at any depth below it).
"""
from __future__ import annotations

import math
import os
import unicodedata
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
# Folders a zip or a file manager leaves beside the classes: never a class.
NOT_CLASSES = {"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"}
# Pillow's modes of more than 8 bits per pixel, and the value that is full white in each.
_DEEP = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def read_folder(root: Path, section: Any, where: str, min_classes: int = 2,
                field: str = "data.source") -> tuple[np.ndarray, np.ndarray, list[Path], list[str], list[str]]:
    """Return ``(X, class names, skipped files, notes, each row's file relative to the folder)``; a bad image
    is an error unless ``skip_bad_images``."""
    from PIL import Image

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and d.name not in NOT_CLASSES)
    if len(classes) < min_classes:
        loose = [f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES]
        # Images straight in the folder have no class to learn: the class is the name of their subfolder.
        also = (f" (it holds {len(loose)} image file(s) directly, e.g. {sorted(loose)[0]}: move each class's "
                f"images into a subfolder named after the class)" if loose else "")
        raise DataError(f"{root} must hold one subfolder per class, at least {min_classes}{also}", source=where,
                        field=field, expected="<dir>/<class>/<image files>",
                        found=[d.name for d in classes])
    _distinct_folders(classes, where, field)
    _not_a_split_folder(root, classes, where, field)
    _one_folder_per_name(classes, where, field)
    size = tuple(section.image_size) if section.image_size else None
    listing = [(folder, _image_files(folder)) for folder in classes]
    _fits_in_memory(root, listing, size, section.color_mode, where)
    X: np.ndarray | None = None  # filled in place: the pixels are held once, never as a list and a stack
    count = 0
    labels: list[str] = []
    names: list[str] = []
    skipped: list[Path] = []
    large: list[tuple[int, Path]] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for folder, files in listing:
        decoded = 0
        for file in files:
            try:
                array = _decode(Image, file, MODES[section.color_mode], size, large)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                if section.skip_bad_images:
                    skipped.append(file)
                    continue
                raise DataError(f"cannot read the image {file} ({exc}); fix or remove it, or set "
                                f"data.skip_bad_images: true to skip unreadable files", source=where,
                                field="data.source") from None
            if first is None or X is None:
                first = (file, array.shape)
                X = np.empty((sum(len(f) for _, f in listing), *array.shape), np.float32)
            elif array.shape != first[1]:
                raise DataError(f"images differ in size: {first[0]} is {_hw(first[1])} but {file} is "
                                f"{_hw(array.shape)}", source=where, field="data.image_size",
                                expected="[height, width] to resize every image to")
            X[count] = array
            count += 1
            labels.append(unicodedata.normalize("NFC", folder.name))  # macOS writes names decomposed
            names.append(file.relative_to(root).as_posix())
            decoded += 1
        if decoded == 0:
            what = "readable images" if files else "images (" + ", ".join(sorted(SUFFIXES)) + ")"
            raise DataError(f"the class folder {folder} holds no {what}; remove the folder or add images",
                            source=where, field="data.source")
    assert X is not None  # every class decoded at least one image
    notes = _left_out(root, classes)
    if large:
        pixels, biggest = max(large)
        notes.append(f"{len(large)} image(s) of {root} have more pixels than Pillow's guard against decompression "
                     f"bombs ({Image.MAX_IMAGE_PIXELS:,}); the largest is {biggest} ({pixels:,} pixels). Each is "
                     f"decoded whole{' before it is resized to data.image_size' if size else ''}")
    return (X if count == len(X) else X[:count].copy()), np.asarray(labels), skipped, notes, names


# Files a camera, a file manager or an OS leaves among photos that are never images.
_HOUSEKEEPING = {"thumbs.db", "desktop.ini", ".ds_store", "icon\r"}


def _left_out(root: Path, classes: list[Path]) -> list[str]:
    """Notes on files that are not read: images beside the class folders (no class), and files inside them
    whose kind cannot be decoded (an iPhone's .heic, say), which would otherwise vanish without a word."""
    notes = []
    loose = [f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES]
    if loose:
        notes.append(f"{len(loose)} image file(s) directly in {root} ({', '.join(sorted(loose)[:3])}"
                     f"{', ...' if len(loose) > 3 else ''}) belong to no class folder: left out")
    unread: dict[str, int] = {}
    for folder in classes:
        for f in folder.rglob("*"):
            if (f.is_file() and f.suffix.lower() not in SUFFIXES and f.name.lower() not in _HOUSEKEEPING
                    and not any(part.startswith(".") for part in f.relative_to(folder).parts)):
                unread[f.suffix.lower() or "(no suffix)"] = unread.get(f.suffix.lower() or "(no suffix)", 0) + 1
    if unread:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(unread.items()))
        notes.append(f"files in the class folders of {root} that are not images this reads were left out ({kinds}); "
                     f"convert photos to PNG or JPEG to use them")
    # A link to nothing (an image git-annex or DataLad has not fetched, a moved target) is no file at all.
    broken = sorted(f for folder in classes for f in folder.rglob("*") if f.is_symlink() and not f.exists())
    if broken:
        shown = ", ".join(str(f.relative_to(root)) for f in broken[:3]) + (", ..." if len(broken) > 3 else "")
        notes.append(f"{len(broken)} image link(s) in the class folders of {root} point at nothing and were left "
                     f"out ({shown}); fetch or restore their files (`git annex get`, `datalad get`) to use them")
    return notes


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def _fits_in_memory(root: Path, listing: list[tuple[Path, list[Path]]], size: tuple[int, ...] | None,
                    color_mode: str, where: str) -> None:
    """Refuse, before decoding, a folder whose pixels (float32) could not be held in the memory free now:
    the alternative is the system killing the run minutes later, after most images were decoded."""
    from PIL import Image

    files = [f for _, names in listing for f in names]
    free = available_memory()
    if not files or free is None:
        return
    if size is None:
        try:
            with Image.open(files[0]) as image:  # reads the header only
                width, height = image.size
        except Exception:  # decoding names it properly
            return
    else:
        height, width = int(size[0]), int(size[1])
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
    needed = len(files) * height * width * channels * 4
    if needed <= free:
        return
    side = int(math.sqrt(free / 2 / (len(files) * channels * 4)))
    hint = f"[{side}, {side}]" if side >= 8 else "a smaller image size or fewer images"
    raise DataError(f"the {len(files)} images of {root} would take {_bytes(needed)} as float32 pixels "
                    f"({height}×{width}×{channels} each, as {files[0].name} is), more than the "
                    f"{_bytes(free)} of memory free on this machine", source=where,
                    field="data.image_size", expected=f"a size to shrink every image to as it is read, e.g. {hint}")


def _bytes(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


def available_memory() -> int | None:
    """Bytes of memory free for new allocations (Linux's MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _distinct_folders(classes: list[Path], where: str, field: str) -> None:
    """Two class names for one folder (a symlink, or one class inside another) would read the same images
    under two labels, and de-duplication would then drop them all: refused, naming both."""
    seen: dict[Path, Path] = {}
    for folder in classes:
        real = folder.resolve()
        for other_real, other in seen.items():
            if real == other_real or other_real in real.parents or real in other_real.parents:
                link = folder if folder.is_symlink() else other
                raise DataError(f"the class folders {other} and {folder} are the same images under two class "
                                f"names ({link} is {'a symlink to' if link.is_symlink() else 'inside'} "
                                f"{real if link is folder else other_real}); each class needs a folder of its own",
                                source=where, field=field)
        seen[real] = folder


def _one_folder_per_name(classes: list[Path], where: str, field: str) -> None:
    """Folder names that are one name written two ways (``ñandú`` composed and decomposed, as macOS and
    Linux may each write it) would be read as one class and mix their images: refused, naming both."""
    seen: dict[str, Path] = {}
    for folder in classes:
        name = unicodedata.normalize("NFC", folder.name)
        if name in seen:
            raise DataError(f"the class folders {seen[name]} and {folder} have one name written in two Unicode "
                            f"forms (composed and decomposed accents), which look the same: their images would be "
                            f"one class; rename one of them", source=where, field=field,
                            expected="class folder names that differ", found=name)
        seen[name] = folder


def _not_a_split_folder(root: Path, classes: list[Path], where: str, field: str) -> None:
    """``<dir>/train/<class>`` and ``<dir>/val/<class>``: read as classes "train" and "val", every label wrong."""
    inner = [{d.name for d in c.iterdir() if d.is_dir()} for c in classes]
    direct = [any(f.is_file() and f.suffix.lower() in SUFFIXES for f in c.iterdir()) for c in classes]
    shared = set.intersection(*inner) if inner else set()
    # circle/batch1, square/batch1 is a class kept in batches: only split-like names on top mean splits.
    splits = [c for c in classes if c.name.strip().lower() in _SPLIT_NAMES]
    if len(classes) >= 2 and not any(direct) and len(shared) >= 2 and splits:
        train = next((c for c in splits if c.name.strip().lower().startswith("train")), None)
        test = next((c for c in splits if c.name.strip().lower().startswith("test")), None)
        raise DataError(f"the folders {', '.join(c.name for c in classes)} of {root} each hold the same class "
                        f"folders ({', '.join(sorted(shared)[:5])}): they are splits of the data, not classes",
                        source=where, field=field,
                        expected=f"data.source: images:{root / (train or classes[0]).name} (and data.test: "
                        + (f"images:{root / test.name}" if test is not None else "images:<the test folder>")
                        + ", or leave the test rows to test_size)")


# Names a data set's split folders go by (train/, val/, test/ each holding every class folder).
_SPLIT_NAMES = {"train", "training", "test", "testing", "val", "valid", "validation", "dev", "holdout", "eval",
                "evaluation", "trainval"}


def _decode(image_module: Any, file: Path, mode: str, size: tuple[int, ...] | None,
            large: list[tuple[int, Path]]) -> np.ndarray:
    """One image as float32 in [0, 1], (height, width, channels); upright as its EXIF tag says (phones store
    photos sideways and tag them), 16-bit and float images scaled by their own range, not clipped at 255.
    An image past Pillow's decompression-bomb warning is added to ``large`` (its warning names no file)."""
    from PIL import ImageOps

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", image_module.DecompressionBombWarning)
        opened = image_module.open(file)
    if any(issubclass(w.category, image_module.DecompressionBombWarning) for w in caught):
        large.append((opened.size[0] * opened.size[1], file))
    with opened as image:
        image.load()  # decodes now, so a truncated file fails here and is named
        image = ImageOps.exif_transpose(image)
        depth = image.mode
        full = _DEEP.get(depth)
        if full is None:
            image = image.convert(mode)
        else:
            image = image.convert("F")  # one channel of 32-bit floats: resized without losing depth
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / (255.0 if full is None else full)
    if full is not None:
        if float(array.min(initial=0.0)) < 0.0 or float(array.max(initial=0.0)) > 1.0:
            raise ValueError(f"its {depth} pixels run from {array.min():g} to {array.max():g}, "
                             f"outside the range of {'[0, 1]' if full == 1.0 else '16-bit images'}")
        array = array[..., None]
        if mode != "L":  # a deep grey image, in the colour mode asked for
            array = np.repeat(array, 3, axis=-1)
            if mode == "RGBA":
                array = np.concatenate([array, np.ones_like(array[..., :1])], axis=-1)
        return array
    return array[..., None] if array.ndim == 2 else array


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]} (width×height)"
