"""What a valid space may still get wrong without a word, said as warnings before anything trains."""
from __future__ import annotations

from typing import Any

from search.space import Space


def space_warnings(space: Space, dataset: Any) -> list[str]:
    """What a valid space may still get wrong without a word: a search of nothing, time taken from row order."""
    out = []
    # An exported or ablated config fixes every value on purpose (seed_trial says so).
    if not space.distributions() and space.study.n_trials > 1 and space.study.seed_trial is None \
            and space.study.workflow == "joint":
        out.append(f"nothing is searched (no distribution under model or train): all {space.study.n_trials} trials "
                   f"train the same config and differ only by their seeds, so the best trial and its gain over "
                   f"the baseline are seed noise; search a setting ({{float: [low, high]}}, {{choice: [...]}}), or "
                   f"set study.n_trials: 1")
    if space.validation.scheme == "time_series" and not dataset.has_order:
        out.append(f"validation.scheme: time_series without data.order takes the rows of {space.data.source} in "
                   f"the order they are stored as time order (the test rows are the last ones); name the time "
                   f"column with data.order if the rows are not already in time order")
    return out + unused_train_settings(space.train)


# The optimizers that read train.momentum (search/runner/training.py).
_WITH_MOMENTUM = ("sgd", "rmsprop")


def unused_train_settings(train: dict[str, Any]) -> list[str]:
    """Train settings that the rest of the train section makes moot: a momentum no optimizer reads, an
    early-stopping patience no trial is long enough for."""
    from search.space import is_distribution

    def options(value: Any) -> list[Any]:
        return list(value.get("choice", [])) if is_distribution(value) else [value]

    out = []
    momentum, optimizers = train.get("momentum"), options(train.get("optimizer", "adam"))
    if momentum not in (None, 0, 0.0) and not any(o in _WITH_MOMENTUM for o in optimizers):
        searched = "searched" if is_distribution(momentum) else f"= {momentum}"
        out.append(f"train.momentum {searched} is not used by optimizer {', '.join(map(str, optimizers))} (only "
                   f"{' and '.join(_WITH_MOMENTUM)} read it): ignored" + (", and a search dimension that changes "
                   "nothing; remove it, or search optimizer: {choice: [adam, sgd]}" if is_distribution(momentum)
                   else ""))
    patience, epochs = train.get("early_stopping"), train.get("epochs")
    if isinstance(patience, int) and isinstance(epochs, int) and 0 < epochs <= patience:
        out.append(f"train.early_stopping = {patience} is not below train.epochs = {epochs}: no trial can stop early "
                   f"(each keeps its best epoch all the same)")
    return out
