"""Test images that are near copies of development images: the same picture saved again as a JPEG, or one
pixel a grey level brighter. Exact copies are dropped where the data is read; these slip past, and a test
look then scores pictures the model was trained on.

Candidates share an average hash (the picture shrunk to 8 x 8 grey cells, each above or below their mean);
a candidate is a near copy when its pixels differ from the test image's by under ``NEAR`` on average. On
scikit-learn's digits (1,797 images of 8 x 8; 360 stratified test rows against 1,437 development rows, seed
0) no pair comes under it: the closest test image to any development image differs by 0.026 on average,
over three times ``NEAR``. What it does not catch, measured on a stranger's folder of drawn arrows and
circles: a copy saved again as a JPEG of quality 95 differs from its PNG by 0.017 to 0.027 on average (a
correlation of 0.991 to 0.997), as much as two distinct circles of that folder (0.996): no threshold on
the pixels tells those apart, so such copies are left to the user.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# Mean absolute pixel difference (pixels in [0, 1]) under which two images are one picture: two grey levels.
NEAR = 2 / 255
# Development images compared with each test image at most, of those that share its hash: a folder of blank
# frames shares one hash, and comparing all of them would cost what training does.
_CANDIDATES = 64
_SHOWN = 3


def _hashes(X: np.ndarray) -> list[bytes]:
    grey = X.reshape(len(X), X.shape[1], X.shape[2], -1).mean(axis=-1)
    rows = np.array_split(np.arange(grey.shape[1]), min(8, grey.shape[1]))
    cols = np.array_split(np.arange(grey.shape[2]), min(8, grey.shape[2]))
    cells = np.stack([np.stack([grey[:, r][:, :, c].mean(axis=(1, 2)) for c in cols], axis=1) for r in rows],
                     axis=1)
    bits = cells > cells.reshape(len(X), -1).mean(axis=1)[:, None, None]
    return [np.packbits(b).tobytes() for b in bits]


def near_copies(X: np.ndarray, dev_idx: np.ndarray, test_idx: np.ndarray,
                names: Any = None) -> list[tuple[int, int, float]]:
    """(test row, development row, mean absolute difference) for each test image with a near copy among the
    development images (the closest one), in test row order. Images only: ``X`` of shape (n, h, w[, c])."""
    if X.ndim < 3 or not len(test_idx) or not len(dev_idx):
        return []
    hashes = _hashes(np.asarray(X, dtype=np.float32))
    by_hash: dict[bytes, list[int]] = {}
    for d in dev_idx:
        by_hash.setdefault(hashes[int(d)], []).append(int(d))
    found = []
    for t in test_idx:
        candidates = by_hash.get(hashes[int(t)], [])[:_CANDIDATES]
        if not candidates:
            continue
        gaps = np.abs(np.asarray(X[candidates], dtype=np.float32) - np.asarray(X[int(t)], dtype=np.float32))
        distance = gaps.reshape(len(candidates), -1).mean(axis=1)
        closest = int(np.argmin(distance))
        if distance[closest] < NEAR:
            found.append((int(t), candidates[closest], float(distance[closest])))
    return found


def warning(dataset: Any, dev_idx: np.ndarray, test_idx: np.ndarray) -> list[str]:
    """The near copies said as a warning, naming the first few pairs by file (or row)."""
    pairs = near_copies(dataset.X, dev_idx, test_idx)
    if not pairs:
        return []
    rows = dataset.rows

    def name(i: int) -> str:
        if rows is None or len(rows) <= i:
            return f"row {i}"
        return repr(str(rows[i])) if isinstance(rows[i], str) else f"row {rows[i]}"  # a file, or an array's row

    shown = "; ".join(f"test {name(t)} and development {name(d)}" for t, d, _ in pairs[:_SHOWN])
    more = f"; and {len(pairs) - _SHOWN} more" if len(pairs) > _SHOWN else ""
    return [f"{len(pairs)} of the {len(test_idx)} test image(s) are near copies of development images (under "
            f"{NEAR * 255:.0f} grey levels apart on average: the same picture saved again, or barely edited): "
            f"{shown}{more}. The trials train on those pictures, so the test look scores them as seen and flatters "
            f"the model; remove one of each pair from the data (or move both to the same side)"]
