"""Sampler randomness tied to trial numbers, not to processes.

Optuna samplers keep one random stream per process. Two workers (or two hosts) seeded alike would then
propose the same settings, and a continued study would replay its first suggestions. Reseeding every
random stream inside the sampler from ``(study seed, trial number)`` before each trial fixes both, and
keeps a single-process study's sequence a pure function of its seed: trial numbers are unique across
all workers of a study.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState


class TrialSeededSampler(BaseSampler):
    def __init__(self, base: BaseSampler, seed: int) -> None:
        self.base, self.seed = base, seed

    def __str__(self) -> str:
        return f"{self.base} (reseeded per trial from seed {self.seed})"

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
        _reseed(self.base, seed, set())
        self.base.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


def _reseed(obj: Any, seed: int, seen: set[int]) -> None:
    """Seed every random stream reachable from a sampler's attributes (nested samplers included)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for i, value in enumerate(vars(obj).values()):
        child_seed = (seed + 7919 * i) % (2**32)
        if isinstance(value, LazyRandomState):
            value.rng.seed(child_seed)
        elif isinstance(value, np.random.RandomState):
            value.seed(child_seed)
        elif isinstance(value, BaseSampler):
            _reseed(value, child_seed, seen)
