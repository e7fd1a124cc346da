"""Small local inputs for the image spaces and tests: a folder of drawn shapes, a backbone weights file.

``python -m search.demo_data [DIR]`` writes ``DIR/shapes/<class>/*.png`` and
``DIR/mobilenet_v2_035.weights.h5`` (default DIR: ``data``), which ``spaces/shapes_transfer.yaml`` reads.
The weights are the backbone's *seeded random initialisation*, not ImageNet's: enough to exercise the
transfer family offline; for real transfer learning save ImageNet weights as the README says.
"""
from __future__ import annotations

import sys
from typing import Any
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")


def write_shapes(root: Path, per_class: int = 40, size: int = 32, seed: int = 0,
                 sizes: tuple[int, ...] | None = None) -> Path:
    """Draw ``per_class`` images of each shape, at random places, scales and colours, with a little noise.

    ``sizes`` cycles image sizes (for mixed-size folders); by default every image is ``size``×``size``.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    root = Path(root)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            side = sizes[i % len(sizes)] if sizes else size
            image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 60, 3)))
            draw = ImageDraw.Draw(image)
            r = rng.uniform(0.2, 0.4) * side
            cx, cy = rng.uniform(r, side - r, 2)
            colour = tuple(int(v) for v in rng.integers(120, 256, 3))
            if shape == "circle":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif shape == "square":
                draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (side, side, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / shape / f"{shape}_{i:03d}.png")
    return root


def write_backbone_weights(path: Path, backbone: str = "MobileNetV2", alpha: float = 0.35, seed: int = 0,
                           calibrate_on: Path | None = None) -> Path:
    """Save a ``keras.applications`` backbone's seeded initial weights (no top) to ``path`` (.weights.h5).

    With ``calibrate_on`` (an image folder), the BatchNormalization statistics are set from one pass over
    its images, so that activations keep a usable scale all the way down (at initialisation they shrink
    by orders of magnitude per block, and a frozen backbone would hand the head features near zero).
    """
    import keras

    keras.utils.set_random_seed(seed)
    kwargs = {"alpha": alpha} if "MobileNet" in backbone else {}
    model = getattr(keras.applications, backbone)(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                  **kwargs)
    if calibrate_on is not None:
        _calibrate(model, backbone, calibrate_on)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path))
    return Path(path)


def _calibrate(model: Any, backbone: str, folder: Path) -> None:
    import keras
    from PIL import Image

    from search.models.transfer import BACKBONES

    files = sorted(Path(folder).rglob("*.png"))
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((32, 32)), dtype=np.float32) for f in files])
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the moving statistics become this one batch's statistics
    model(getattr(keras.applications, BACKBONES[backbone]).preprocess_input(images), training=True)


def _main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m search.demo_data", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default="data", type=Path,
                        help="where to write shapes/ and the weights file (default: data)")
    out = parser.parse_args(argv).dir
    write_shapes(out / "shapes")
    write_backbone_weights(out / "mobilenet_v2_035.weights.h5", calibrate_on=out / "shapes")
    print(f"wrote {out / 'shapes'} and {out / 'mobilenet_v2_035.weights.h5'}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
