"""Image folders in the flow_from_directory layout: ``<dir>/<class>/<image>``, decoded once per study.

Pixels come out as float32 in [0, 1] with shape (n, height, width, channels); the class is the name of
the subfolder an image sits in (at any depth below it).
"""
from __future__ import annotations

import unicodedata
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
                field: str = "data.source") -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Return ``(X, class names, skipped files)``; a bad image is an error unless ``skip_bad_images``."""
    from PIL import Image

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and d.name not in NOT_CLASSES)
    if len(classes) < min_classes:
        raise DataError(f"{root} must hold one subfolder per class, at least {min_classes}", source=where,
                        field=field, expected="<dir>/<class>/<image files>",
                        found=[d.name for d in classes])
    _distinct_folders(classes, where, field)
    _not_a_split_folder(root, classes, where, field)
    size = tuple(section.image_size) if section.image_size else None
    pixels: list[np.ndarray] = []
    labels: list[str] = []
    skipped: list[Path] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for folder in classes:
        files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                       and not any(part.startswith(".") for part in f.relative_to(folder).parts))
        decoded = 0
        for file in files:
            try:
                array = _decode(Image, file, MODES[section.color_mode], size)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                if section.skip_bad_images:
                    skipped.append(file)
                    continue
                raise DataError(f"cannot read the image {file} ({exc}); fix or remove it, or set "
                                f"data.skip_bad_images: true to skip unreadable files", source=where,
                                field="data.source") from None
            if first is None:
                first = (file, array.shape)
            elif array.shape != first[1]:
                raise DataError(f"images differ in size: {first[0]} is {_hw(first[1])} but {file} is "
                                f"{_hw(array.shape)}", source=where, field="data.image_size",
                                expected="[height, width] to resize every image to")
            pixels.append(array)
            labels.append(unicodedata.normalize("NFC", folder.name))  # macOS writes names decomposed
            decoded += 1
        if decoded == 0:
            what = "readable images" if files else "images (" + ", ".join(sorted(SUFFIXES)) + ")"
            raise DataError(f"the class folder {folder} holds no {what}; remove the folder or add images",
                            source=where, field="data.source")
    X = np.stack(pixels)
    return X, np.asarray(labels), skipped


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


def _not_a_split_folder(root: Path, classes: list[Path], where: str, field: str) -> None:
    """``<dir>/train/<class>`` and ``<dir>/val/<class>``: read as classes "train" and "val", every label wrong."""
    inner = [{d.name for d in c.iterdir() if d.is_dir()} for c in classes]
    direct = [any(f.is_file() and f.suffix.lower() in SUFFIXES for f in c.iterdir()) for c in classes]
    shared = set.intersection(*inner) if inner else set()
    if len(classes) >= 2 and not any(direct) and len(shared) >= 2:
        raise DataError(f"the folders {', '.join(c.name for c in classes)} of {root} each hold the same class "
                        f"folders ({', '.join(sorted(shared)[:5])}): they are splits of the data, not classes",
                        source=where, field=field, expected=f"data.source: images:{root / classes[0].name} "
                        f"(and data.test: images:<the test folder>, or leave the test rows to test_size)")


def _decode(image_module: Any, file: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as float32 in [0, 1], (height, width, channels); upright as its EXIF tag says (phones store
    photos sideways and tag them), 16-bit and float images scaled by their own range, not clipped at 255."""
    from PIL import ImageOps

    with image_module.open(file) as image:
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
