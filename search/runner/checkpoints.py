"""Where split models live on disk, and writing them so a crash never leaves a half file in place."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.runner.results import TrialListener


def trial_dir(home: Path, study: str, trial: int) -> Path:
    return Path(home) / "checkpoints" / study / f"trial_{trial:05d}"


def split_path(home: Path, study: str, trial: int, split: int) -> Path:
    return trial_dir(home, study, trial) / f"split_{split:02d}.keras"


def save_atomic(model: Any, path: Path) -> Path:
    """Save to a temporary name in the same folder, then rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        _prime_keras_skipsets()
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# Keras 3.15 stores each object type's attribute skip set under "saving_attr_skipset_<type>" and looks
# it up under "saving_attr_skiplist_<type>", so every save builds throw-away Layer, Optimizer and Metric
# objects to compute them again: 40 % of saving a small model. A skip set depends only on the type
# (the attributes of a fresh object of it), so it is computed once per process and put where Keras
# looks, again after each clear_session (which empties Keras' per-thread state).
_SKIPSET_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")
_skipsets: dict[str, Any] = {}


def _prime_keras_skipsets() -> None:
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib

        for obj_type in _SKIPSET_TYPES:
            key = f"saving_attr_skiplist_{obj_type}"
            if global_state.get_global_attribute(key) is None:
                if obj_type not in _skipsets:
                    _skipsets[obj_type] = saving_lib.get_attr_skipset(obj_type)
                global_state.set_global_attribute(key, _skipsets[obj_type])
    except Exception:  # Keras' internals moved: it computes them itself, as before
        return


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

    # The harness's own files: a user's builder may hold a Lambda layer, which safe mode refuses to load.
    try:
        return keras.models.load_model(path, safe_mode=False)
    except (TypeError, ValueError) as exc:
        # A layer class the user's notebook or module registered, not defined in this process: Keras' own
        # words are a dump of the whole model's config.
        located = re.search(r"Could not locate (?:class|function) '([^']+)'", str(exc))
        if located is None:
            raise
        name = located.group(1)
        registered = re.search(r"'registered_name': '([^']*\b" + re.escape(name) + r")'", str(exc))
        shown = f"{name!r}" + (f" (registered as {registered.group(1)!r})" if registered and
                               registered.group(1) != name else "")
        raise StudyError(f"the model {path} holds the class {shown}, which is not defined in this process: "
                         f"import the module that defines it, or run the cell that does (with its "
                         f"@keras.saving.register_keras_serializable line), then load again",
                         field="model.family") from None


class CheckpointRetention(TrialListener):
    """Keeps the split checkpoints of the best ``keep`` finished trials only; others go as they fall out.

    The current best trial's model is also in MLflow, so disk holds at most ``keep`` trials' splits.
    """

    def __init__(self, home: Path, keep: int) -> None:
        self.home, self.keep = Path(home), keep

    def on_trial_end(self, trial: Any, outcome: Any) -> None:
        pending = (trial.number, outcome.value) if outcome.state == "complete" else None
        self._sweep(outcome.stored_trials(trial.study), trial.study.study_name, pending, also=trial.number)

    def on_run_end(self, study: Any) -> None:
        # Two workers finishing together each see the other's trial as running and keep it: K + 1.
        # Once told, every trial is finished, so a sweep now settles on exactly K.
        self._sweep(study.get_trials(deepcopy=False), study.study_name, None)

    def _sweep(self, trials: list[Any], study_name: str, pending: tuple[int, float] | None,
               also: int | None = None) -> None:
        from search.studies import lifecycle as studies

        keep = studies.top_trials(trials, self.keep, pending)
        removable = {t.number for t in trials
                     if t.state.name in ("COMPLETE", "PRUNED", "FAIL")} | ({also} if also is not None else set())
        keep_only(self.home, study_name, keep, removable)
