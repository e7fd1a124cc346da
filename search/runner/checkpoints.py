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


def trials_on_disk(home: Path, study: str) -> list[int]:
    root = Path(home) / "checkpoints" / study
    if not root.is_dir():
        return []
    return sorted(int(p.name.removeprefix("trial_")) for p in root.glob("trial_*") if p.name[6:].isdigit())


def keep_only(home: Path, study: str, keep: set[int], removable: set[int]) -> list[int]:
    """Delete the checkpoints of trials in ``removable`` that are not in ``keep``; return their numbers."""
    removed = [n for n in trials_on_disk(home, study) if n in removable and n not in keep]
    for number in removed:
        remove_trial(home, study, number)
    return removed


def load_model(path: Path) -> Any:
    """Load a saved split or final model; the harness's own layers are registered first."""
    import keras

    from search.models import layers  # noqa: F401  (registration happens at import)

    return keras.models.load_model(path)
