"""Image folders in the flow_from_directory layout: ``<dir>/<class>/<image>``, decoded once per study.

Pixels come out as float32 in [0, 1] with shape (n, height, width, channels); the class is the name of
the subfolder an image sits in (at any depth below it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from search.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}


def read_folder(root: Path, section: Any, where: str, min_classes: int = 2,
                field: str = "data.source") -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Return ``(X, class names, skipped files)``; a bad image is an error unless ``skip_bad_images``."""
    from PIL import Image

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < min_classes:
        raise DataError(f"{root} must hold one subfolder per class, at least {min_classes}", source=where,
                        field=field, expected="<dir>/<class>/<image files>",
                        found=[d.name for d in classes])
    _distinct_folders(classes, where, field)
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
            labels.append(folder.name)
            decoded += 1
        if decoded == 0:
            what = "readable images" if files else "images (" + ", ".join(sorted(SUFFIXES)) + ")"
            raise DataError(f"the class folder {folder} holds no {what}; remove the folder or add images",
                            source=where, field="data.source")
    X = np.stack(pixels).astype(np.float32) / 255.0
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


def _decode(image_module: Any, file: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    with image_module.open(file) as image:
        image.load()  # decodes now, so a truncated file fails here and is named
        image = image.convert(mode)
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]} (width×height)"
