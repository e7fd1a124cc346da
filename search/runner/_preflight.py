"""What a run checks of the machine and the model files before its first trial: the user's builder built
once, the GPUs a setting depends on, the content of a backbone weights file."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from search.space import Space


def weights_fingerprint(space: Space) -> str | None:
    """The content of a backbone weights file (``model.weights``): a file replaced under the same name changes
    every later trial's model, as other data would."""
    given = space.model.get("weights")
    if not isinstance(given, str) or not given:
        return None
    for base in [Path.cwd(), *([space.path.parent] if space.path else [])]:  # as the transfer family looks
        candidate = (base / Path(given).expanduser()).resolve()
        if candidate.is_file():
            stat = candidate.stat()
            return _content_digest(candidate, stat.st_size, stat.st_mtime_ns)
    return None


def builder_code(space: Space) -> str | None:
    """A digest of a custom builder's code (``model.family: python:...`` or a function handed over), without
    its line numbers: a continued study whose builder now does something else is warned about."""
    from search import models

    family = str(space.model.get("family", ""))
    if not family.startswith(models.CUSTOM_PREFIX):
        return None
    try:
        builder = models.load_custom_builder(family, space.path.parent if space.path else None)
    except Exception:  # the family's own check says what is wrong with it
        return None
    return models.builder_fingerprint(builder)


@functools.lru_cache(maxsize=8)
def _content_digest(path: Path, size: int, mtime_ns: int) -> str:
    """A file's content, read once per version of it: a study's attributes are asked for several times."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def gpus(space: Space, threads: int | None) -> int | None:
    """The GPUs TensorFlow sees, asked only where a setting depends on them (starting TensorFlow takes seconds)."""
    mixed = space.train.get("mixed_precision")
    if mixed is not True and not (isinstance(mixed, dict) and True in mixed.get("choice", [])):
        return None
    from search.runner import _runtime

    _runtime.configure(threads)
    return len(_runtime.import_quietly().config.list_physical_devices("GPU"))


def check_builder(space: Space, dataset: Any, threads: int | None, where: str) -> None:
    """The user's builder, built once on the baseline trial's settings (the one a study starts with)."""
    import optuna

    from search import models
    from search.runner import _runtime

    _runtime.configure(threads)
    settings = space.sample(optuna.trial.FixedTrial(space.baseline_params()))
    head = models.Head(dataset.task, dataset.n_outputs)
    try:
        dataset.warnings += models.check_custom_builder(settings["model"], dataset.input_shape, head,
                                                        space.path.parent if space.path else None, where,
                                                        target=dataset.y if dataset.task == "regression" else None)
    finally:
        _runtime.reset_keras()


def class_weights_need_classes(space: Space, dataset: Any, where: str) -> None:
    """``train.class_weight: balanced`` on a regression target: there are no classes to weigh."""
    value = space.train.get("class_weight", "none")
    asked = value.get("choice", []) if isinstance(value, dict) else [value]
    if "balanced" in asked and not dataset.is_classification:
        from search.errors import SpaceError

        raise SpaceError("class weights weigh each class's rows, and a regression target has no classes",
                         source=where, field="train.class_weight", expected="none (or leave it out)",
                         found="balanced")

