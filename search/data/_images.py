"""Image folders in the flow_from_directory layout: ``<dir>/<class>/<image>``, decoded once per study.

Pixels come out as float32 in [0, 1] with shape (n, height, width, channels); the class is the name of
the subfolder an image sits in (at any depth below it).
"""
from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from search.data._image_pixels import BACKGROUND_NAME, MODES, decode
from search.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
# Folders a zip or a file manager leaves beside the classes: never a class.
NOT_CLASSES = {"__MACOSX", "@eaDir", "$RECYCLE.BIN", "System Volume Information"}


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
    skipped: list[tuple[Path, str]] = []
    large: list[tuple[int, Path]] = []
    transparent: list[Path] = []
    changed: dict[str, list[Any]] = {}  # resized sizes, recoloured files: said in the summary
    # Every bad file and folder is gathered and said at once: refused one at a time, a folder with an unreadable
    # file, mixed sizes and an empty class took four runs to clear.
    bad = _Problems()
    first: tuple[Path, tuple[int, ...]] | None = None
    for folder, files in listing:
        decoded = 0
        for file in files:
            try:
                array = decode(Image, file, MODES[section.color_mode], size, large, transparent, changed)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                (skipped if section.skip_bad_images else bad.unreadable).append((file, str(exc)))
                continue
            decoded += 1
            if first is None or X is None:
                first = (file, array.shape)
                X = np.empty((sum(len(f) for _, f in listing), *array.shape), np.float32)
            elif array.shape != first[1]:
                bad.sizes.append((file, array.shape))
                continue
            X[count] = array
            count += 1
            labels.append(unicodedata.normalize("NFC", folder.name))  # macOS writes names decomposed
            names.append(file.relative_to(root).as_posix())
        if decoded == 0 and (not files or section.skip_bad_images):  # else its unreadable files are named
            bad.empty.append((folder, "readable images" if files else "images (" + ", ".join(sorted(SUFFIXES)) + ")"))
    bad.refuse(first, where)
    assert X is not None  # every class decoded at least one image
    notes = _left_out(root, classes)
    if large:
        pixels, biggest = max(large)
        notes.append(f"{len(large)} image(s) of {root} have more pixels than Pillow's guard against decompression "
                     f"bombs ({Image.MAX_IMAGE_PIXELS:,}); the largest is {biggest} ({pixels:,} pixels). Each is "
                     f"decoded whole{' before it is resized to data.image_size' if size else ''}")
    if transparent:
        notes.append(f"{len(transparent)} image(s) have transparency: flattened onto {BACKGROUND_NAME} ("
                     + ", ".join(f.relative_to(root).as_posix() for f in transparent[:3])
                     + (", ..." if len(transparent) > 3 else "") + "), as the final model's images must be "
                     "(reproduce.json's model.inputs)")
    notes += _changed_notes(root, changed, size, section.color_mode, count)
    return (X if count == len(X) else X[:count].copy()), np.asarray(labels), [f for f, _ in skipped], notes, names


def _changed_notes(root: Path, changed: dict[str, list[Any]], size: tuple[int, ...] | None, color_mode: str,
                   count: int) -> list[str]:
    """What was done to images as they were read, counted: stretched to data.image_size (from which sizes), and
    grey images made colour (or colour made grey) by data.color_mode; both were done without a word."""
    notes = []
    if changed.get("resized") and size is not None:
        sizes = changed["resized"]
        widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
        notes.append(f"{len(sizes)} of the {count} images were resized to data.image_size {size[0]}x{size[1]} "
                     f"(height x width), stretched where their shape differs, from {min(heights)}-{max(heights)} x "
                     f"{min(widths)}-{max(widths)} pixels")
    if changed.get("recoloured"):
        files = changed["recoloured"]
        into = "grey (data.color_mode: grayscale)" if color_mode == "grayscale" else \
            f"colour (data.color_mode: {color_mode})"
        notes.append(f"{len(files)} image(s) of {root} were made {into} as they were read ("
                     + ", ".join(f.relative_to(root).as_posix() for f in files[:3])
                     + (", ..." if len(files) > 3 else "") + ")")
    return notes


class _Problems:
    """What is wrong with the files of an image folder, said together in one error (the first few of each kind,
    with counts), in the words each was said in alone."""

    SHOWN = 3

    def __init__(self) -> None:
        self.unreadable: list[tuple[Path, str]] = []
        self.sizes: list[tuple[Path, tuple[int, ...]]] = []
        self.empty: list[tuple[Path, str]] = []

    def refuse(self, first: tuple[Path, tuple[int, ...]] | None, where: str) -> None:
        parts: list[str] = []
        fields: list[str] = []
        if self.unreadable:
            if len(self.unreadable) == 1:
                parts.append(f"cannot read the image {self.unreadable[0][0]} ({self.unreadable[0][1]}); fix or "
                             f"remove it")
            else:
                parts.append(f"cannot read {len(self.unreadable)} images: " + "; ".join(
                    f"{f} ({why})" for f, why in self.unreadable[:self.SHOWN]) + self._more(self.unreadable)
                    + "; fix or remove them")
            parts[-1] += ", or set data.skip_bad_images: true to skip unreadable files"
            fields.append("data.source")
        if self.sizes and first is not None:
            file, shape = self.sizes[0]
            others = ""
            if len(self.sizes) > 1:
                others = (f" ({len(self.sizes)} images are not {_hw(first[1])}: " + ", ".join(
                    f"{f.name} {_hw(s)}" for f, s in self.sizes[:self.SHOWN]) + self._more(self.sizes) + ")")
            parts.append(f"images differ in size: {first[0]} is {_hw(first[1])} but {file} is {_hw(shape)}{others}; "
                         f"set data.image_size: [height, width] to resize every image to")
            fields.append("data.image_size")
        if self.empty:
            parts.append("; ".join(f"the class folder {folder} holds no {what}" for folder, what in
                                   self.empty[:self.SHOWN]) + self._more(self.empty)
                         + f"; remove the folder{'s' if len(self.empty) > 1 else ''} or add images")
            fields.append("data.source")
        if not parts:
            return
        said = parts[0] if len(parts) == 1 else f"{len(parts)} problems with the image files: " + \
            " ".join(f"({k}) {p};" for k, p in enumerate(parts, 1)).rstrip(";")
        raise DataError(said, source=where, field=fields[0] if len(set(fields)) == 1 else "data.source")

    def _more(self, items: list[Any]) -> str:
        return f", and {len(items) - self.SHOWN} more" if len(items) > self.SHOWN else ""


# Files a camera, a file manager or an OS leaves among photos that are never images.
_HOUSEKEEPING = {"thumbs.db", "desktop.ini", ".ds_store", "icon\r"}


# Photos of kinds Pillow does not decode (phones' HEIC, AVIF, JPEG XL, cameras' raw files, vector drawings):
# images the user meant to train on, so the note says how to get them read.
_PHOTOS = {".heic", ".heif", ".avif", ".jxl", ".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf", ".rw2",
           ".raf", ".srw", ".pef", ".svg", ".psd", ".jp2"}


def _left_out(root: Path, classes: list[Path]) -> list[str]:
    """Notes on files that are not read: images beside the class folders (no class), photos inside them of a kind
    that cannot be decoded (an iPhone's .heic, say), which would otherwise vanish without a word, and files that
    are no images at all (notes.txt). Files directly in ``root`` that are no images (README.txt, a labels.csv)
    describe the data set and are passed over silently, as housekeeping files (Thumbs.db) are everywhere."""
    notes = []
    loose = [f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES | _PHOTOS]
    if loose:
        notes.append(f"{len(loose)} image file(s) directly in {root} ({', '.join(sorted(loose)[:3])}"
                     f"{', ...' if len(loose) > 3 else ''}) belong to no class folder: left out")
    photos: dict[str, int] = {}
    others: dict[str, int] = {}
    for folder in classes:
        for f in folder.rglob("*"):
            if (f.is_file() and f.suffix.lower() not in SUFFIXES and f.name.lower() not in _HOUSEKEEPING
                    and not any(part.startswith(".") for part in f.relative_to(folder).parts)):
                kind = photos if f.suffix.lower() in _PHOTOS else others
                kind[f.suffix.lower() or "(no suffix)"] = kind.get(f.suffix.lower() or "(no suffix)", 0) + 1
    if photos:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(photos.items()))
        notes.append(f"files in the class folders of {root} that are not images this reads were left out ({kinds}); "
                     f"convert them to PNG or JPEG to use them")
    if others:
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(others.items()))
        notes.append(f"{sum(others.values())} file(s) in the class folders of {root} are not images ({kinds}): "
                     f"left out")
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


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[0]} (width×height)"
