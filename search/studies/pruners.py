"""Pruners by name: the rule inside a split (``study.pruner``) and the rule across splits (``study.split_pruner``).

Steps are ``split * 10000 + epoch`` for epochs and ``split * 10000`` for finished splits
(search/studies/pruning.py). Median and percentile compare the same epoch of the same split in every split.
Successive halving and Hyperband count epochs as their resource, so they judge the first split only
(rungs at 5, 15, 45 ... epochs); Hyperband's ``max_resource`` is the largest epoch count, which its
"auto" setting would misread from the step numbers. Adding a rule is one entry in a table below.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from search.studies import pruning

if TYPE_CHECKING:
    import optuna

    from search.space import Space


def _median(space: "Space") -> Any:
    return pruning.LateMedianRule(space.study.prune_startup, space.study.prune_warmup, profile=_profile(space))


def _percentile(space: "Space") -> Any:
    return pruning.LateMedianRule(space.study.prune_startup, space.study.prune_warmup, percentile=25.0,
                                  profile=_profile(space))


def _profile(space: "Space") -> Any:
    if space.study.prune_compare == "all":
        return None
    return pruning.RegularizationProfile.of_space(space)


def _hyperband(space: "Space") -> Any:
    from optuna.pruners import HyperbandPruner

    warmup = pruning.PRUNE_WARMUP_EPOCHS
    return HyperbandPruner(min_resource=warmup, max_resource=max(_max_epochs(space), warmup), reduction_factor=3)


def _successive_halving(space: "Space") -> Any:
    from optuna.pruners import SuccessiveHalvingPruner

    return SuccessiveHalvingPruner(min_resource=pruning.PRUNE_WARMUP_EPOCHS, reduction_factor=3)


# study.pruner -> factory(space) -> (the rule inside a split, whether it judges the first split only)
WITHIN: dict[str, tuple[Callable[["Space"], Any], bool]] = {
    "median": (_median, False), "percentile": (_percentile, False),
    "hyperband": (_hyperband, True), "successive_halving": (_successive_halving, True),
}
# study.split_pruner -> factory()
ACROSS: dict[str, Callable[[], Any]] = {
    "paired": lambda: pruning.PairedSplitRule(min_splits=2),
    "wilcoxon": lambda: pruning.WilcoxonSplitRule(p_threshold=0.1, min_splits=2),
}


def make_pruner(space: "Space", n_splits: int | None = None) -> "optuna.pruners.BasePruner":
    """The study's pruner: the file's ``pruner`` inside a split, ``split_pruner`` across splits."""
    from optuna.pruners import NopPruner

    if space.study.multi_objective:
        return NopPruner()  # Optuna cannot report or prune in a multi-objective study
    factory, first_split_only = WITHIN.get(space.study.pruner, (None, False))
    across = ACROSS.get(space.study.split_pruner)
    return pruning.SplitPruner(factory(space) if factory else None, across() if across else None,
                               first_split_only=first_split_only, n_splits=n_splits)


def _max_epochs(space: Space) -> int:
    from search.space import is_distribution

    epochs = space.train.get("epochs", 50)
    if is_distribution(epochs):
        return int(max(epochs.get("choice") or epochs.get("int") or [50]))
    return int(epochs)


