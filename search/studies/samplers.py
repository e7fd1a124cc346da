"""Samplers by name: one entry per sampler, each seeded from the study seed and reseeded per trial."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from search.errors import StudyError

if TYPE_CHECKING:
    import optuna

    from search.space import Space


def _tpe(seed: int) -> "optuna.samplers.BaseSampler":
    from optuna.samplers import TPESampler

    return TPESampler(seed=seed)


def _random(seed: int) -> "optuna.samplers.BaseSampler":
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


def _cmaes(seed: int) -> "optuna.samplers.BaseSampler":
    from optuna.samplers import CmaEsSampler

    return CmaEsSampler(seed=seed)


def _gp(seed: int) -> "optuna.samplers.BaseSampler":
    try:
        import torch  # noqa: F401
    except ImportError:
        raise StudyError("the gp sampler needs PyTorch, which is not installed: pip install torch, or choose tpe",
                         field="study.sampler", found="gp") from None
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed)


# name -> factory(seed); "grid" is built from the space's grid (below). Adding a sampler is one entry
# here and one in the schema's Literal.
SAMPLERS: dict[str, Callable[[int], "optuna.samplers.BaseSampler"]] = {
    "tpe": _tpe, "random": _random, "cmaes": _cmaes, "gp": _gp,
}


def make_sampler(space: "Space") -> "optuna.samplers.BaseSampler":
    """The study's sampler, seeded from the study seed.

    Every random stream in the sampler is reseeded from (study seed, trial number) before each trial
    (search/studies/_seeding.py): a continued study does not replay its first suggestions, parallel workers on
    any host do not propose the same settings, and one worker's sequence is a function of the seed.
    A grid needs no randomness: its points are queued once, in a seeded order, when the study is created.
    """
    from optuna.samplers import GridSampler

    from search.studies._seeding import TrialSeededSampler

    name, seed = space.study.sampler, space.study.seed
    if name == "grid":
        return GridSampler(space.grid(), seed=seed)
    try:
        base = SAMPLERS[name](seed)
    except StudyError as exc:
        raise StudyError(str(exc).removesuffix("."), source=str(space.path) if space.path else None) from None
    return TrialSeededSampler(base, seed)
