"""Where split models live on disk, and writing them so a crash never leaves a half file in place."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def trial_dir(home: Path, study: str, trial: int) -> Path:
    return Path(home) / "checkpoints" / study / f"trial_{trial:05d}"


def split_path(home: Path, study: str, trial: int, split: int) -> Path:
    return trial_dir(home, study, trial) / f"split_{split:02d}.keras"


def save_atomic(model: Any, path: Path) -> Path:
    """Save to a temporary name in the same folder, then rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def remove_trial(home: Path, study: str, trial: int) -> None:
    shutil.rmtree(trial_dir(home, study, trial), ignore_errors=True)


def load_model(path: Path) -> Any:
    """Load a saved split or final model; the harness's own layers are registered first."""
    import keras

    from search.models import layers  # noqa: F401  (registration happens at import)

    return keras.models.load_model(path)
