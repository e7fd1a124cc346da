"""One image file as the pixels a model is trained on, and the same steps said in words for whoever prepares
images for the final model without this package (reproduce.json's ``model.inputs.as``).

The steps, in order: upright by the EXIF orientation, transparency flattened onto white, converted to the
colour mode, resized (stretched) with bilinear filtering, scaled to [0, 1]. :func:`decode` does them and
:func:`preparation` says them; tests/test_image_files.py follows the words with Pillow and gets the same pixels.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
# Pillow's modes of more than 8 bits per pixel, and the value that is full white in each.
_DEEP = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
# Whether a Pillow mode is grey (True) or colour (False); palette images are either, and are left out.
_GREY = {"1": True, "L": True, "LA": True, "I": True, "F": True, "I;16": True, "RGB": False, "RGBA": False,
         "CMYK": False, "YCbCr": False, "LAB": False, "HSV": False}
# Where an image is transparent, its colour channels hold whatever the program that saved it left there (black
# in one file, white in another that looks the same): dropping the alpha channel made the two differ by 239/255
# on average. Flattened onto one fixed colour, they are one image. White, because that is what such an image
# is seen on where people look at it (a web page, a document, a file manager's preview), and so what its
# label was given for; a transparent icon or cut-out is drawn dark on a light ground far more often than not.
BACKGROUND = (255, 255, 255, 255)
BACKGROUND_NAME = "white"
# Pillow's modes that carry an alpha channel; a palette or a single colour may be transparent as well
# (``transparency`` in the image's info), as GIFs and some PNGs are.
_ALPHA = {"RGBA", "LA", "PA", "RGBa", "La"}


def decode(image_module: Any, file: Path, mode: str, size: tuple[int, ...] | None,
           large: list[tuple[int, Path]], transparent: list[Path],
           changed: dict[str, list[Any]] | None = None) -> np.ndarray:
    """One image as float32 in [0, 1], (height, width, channels); upright as its EXIF tag says (phones store
    photos sideways and tag them), transparency flattened onto :data:`BACKGROUND` unless ``mode`` keeps alpha
    (the file is then added to ``transparent``), 16-bit and float images scaled by their own range, not
    clipped at 255. An image past Pillow's decompression-bomb warning is added to ``large`` (its warning
    names no file). ``changed`` gathers, for the data summary, the sizes of images resized ("resized") and
    the files of grey images made colour or colour images made grey ("recoloured")."""
    from PIL import ImageOps

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", image_module.DecompressionBombWarning)
        opened = image_module.open(file)
    if any(issubclass(w.category, image_module.DecompressionBombWarning) for w in caught):
        large.append((opened.size[0] * opened.size[1], file))
    with opened as image:
        image.load()  # decodes now, so a truncated file fails here and is named
        image = ImageOps.exif_transpose(image)
        if mode != "RGBA" and image.mode not in _DEEP and has_transparency(image):
            image, seen = flatten(image_module, image)
            if seen:
                transparent.append(file)
        depth = image.mode
        full = _DEEP.get(depth)
        grey = _GREY.get(depth.split(";")[0])
        if changed is not None and grey is not None and grey != (mode in ("L", "LA")):
            changed.setdefault("recoloured", []).append(file)
        if changed is not None and size is not None and image.size != (size[1], size[0]):
            changed.setdefault("resized", []).append(image.size)
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


def has_transparency(image: Any) -> bool:
    return image.mode in _ALPHA or "transparency" in image.info


def flatten(image_module: Any, image: Any) -> tuple[Any, bool]:
    """``image`` laid over :data:`BACKGROUND` (Pillow's alpha_composite, 8 bits exact), as an RGBA image that
    is opaque, and whether any pixel of it was less than opaque (an RGBA file of opaque pixels is no news)."""
    rgba = image.convert("RGBA")
    seen = rgba.getchannel("A").getextrema()[0] < 255
    return image_module.alpha_composite(image_module.new("RGBA", rgba.size, BACKGROUND), rgba), seen


def preparation(height: int, width: int, color_mode: str, resized: bool) -> str:
    """The steps :func:`decode` takes, in its order and with Pillow's own calls (in backticks), for the final
    model's inputs: followed as written, they give the training pixels (a user who resized before converting,
    with another filter, or kept the aspect ratio, got other predictions)."""
    mode = MODES[color_mode]
    grey = {"RGB": "3 channels", "RGBA": "3 channels and an opaque alpha"}.get(mode, "one channel")
    resize = f"`image = image.resize(({width}, {height}), Image.Resampling.BILINEAR)`"
    size = (f"resized to {height}x{width} (data.image_size): {resize}, stretched to that size (the aspect ratio is "
            f"not kept, nothing is cropped or padded)" if resized else
            f"not resized: the folder's were all {height}x{width} (data.image_size was not set); a file of another "
            f"size must be brought to it as data.image_size would: {resize}, stretched (the aspect ratio is not kept)")
    alpha = ("2. transparency kept: no flattening (data.color_mode: rgba), so a transparent pixel keeps the "
             "colour its file stores" if mode == "RGBA" else
             f"2. an image with transparency (mode RGBA, LA, PA, or 'transparency' in image.info) flattened onto "
             f"{BACKGROUND_NAME}: `image = Image.alpha_composite(Image.new('RGBA', image.size, {BACKGROUND}), "
             f"image.convert('RGBA'))`")
    return (f"each file read with Pillow (`image = Image.open(path)`) and prepared as the training images were, in "
            f"this order: 1. turned upright by its EXIF orientation: `image = ImageOps.exif_transpose(image)`; "
            f"{alpha}; 3. converted: `image = image.convert('{mode}')` (a 16-bit or float grey image instead "
            f"`image.convert('F')`, later divided by 65535 (float: as it is), its grey repeated to {grey}); "
            f"4. {size}; 5. as float32 divided by 255: `np.asarray(image, dtype=np.float32) / 255.0`"
            + (", with a channel axis added: `[..., None]`" if mode == "L" else ""))
