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
    if not space.distributions() and space.study.n_trials > 1 and space.study.seed_trial is not None:
        # An exported config with its budget raised: every trial repeated the same result, without a word.
        out.append(f"study.seed_trial ({space.study.seed_trial}) fixes every trial's seeds and nothing is searched: "
                   f"the {space.study.n_trials} trials train the same config with the same seeds and repeat one "
                   f"result; remove seed_trial to see the spread that seeds alone give, or set study.n_trials: 1")
    if space.validation.scheme == "time_series" and not dataset.has_order:
        out.append(f"validation.scheme: time_series without data.order takes the rows of {space.data.source} in "
                   f"the order they are stored as time order (the test rows are the last ones); name the time "
                   f"column with data.order if the rows are not already in time order")
    if space.study.multi_objective and "pruner" in space.study.model_fields_set and space.study.pruner != "none":
        out.append(f"study.pruner: {space.study.pruner} is not used: a study of two objectives is never pruned "
                   f"(Optuna keeps no intermediate values for several objectives); remove it")
    defaults = type(space.study).model_fields
    moot = [f"study.{key}" for key in ("prune_startup", "prune_warmup", "prune_compare")
            if getattr(space.study, key) != defaults[key].default]
    if moot and space.study.pruner not in ("median", "percentile") and not space.study.multi_objective:
        out.append(f"{', '.join(moot)} {'is' if len(moot) == 1 else 'are'} read by the median and percentile pruners "
                   f"only, and study.pruner is {space.study.pruner}: ignored")
    if space.study.seed_trial is None:  # an exported config writes every setting, the pruners' defaults too
        out += _inert_pruners(space)
    out += _cmaes_at_random(space)
    kept = space.fixed_regularizers() if space.study.baseline and space.declares_regularizers else {}
    if kept:
        out.append("the baseline (trial 0) switches off the searched regularizers only, and the file fixes "
                   + ", ".join(f"{k} = {v}" for k, v in kept.items()) + " on: it is no unregularized baseline; "
                   "search them with or_off (or a range from 0) to measure what they buy")
    if space.is_custom:
        # GridSearchCV's and KerasTuner's habit; a builder may mean a list, so it is said, not refused.
        out += [f"model.{key} = {value} is a list, handed to the builder as one value, not searched; to try each "
                f"value write {{choice: {value}}}" for key, value in space.model.items()
                if isinstance(value, list) and key not in ("regularizers", "capacity") and len(value) > 1
                and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value)]
        # The cnn family's names: a builder's model was shown searching rotations it never applied.
        augments = sorted(key for key in space.model if key.startswith("augment_"))
        if augments:
            out.append(f"{', '.join('model.' + k for k in augments)} {'is' if len(augments) == 1 else 'are'} handed "
                       f"to the builder {space.family} as settings, and nothing else augments its model: its code "
                       f"must apply them (search.models.layers.Augment(rotation=..., ...) does, as in the cnn "
                       f"family), or each value is a trial of the same model")
    weighting = space.train.get("class_weight")
    if isinstance(weighting, dict) and {"none", "balanced"} <= set(map(str, weighting.get("choice") or [])):
        # A stranger's balanced trial ranked last (0.317 against 0.137) at the same ROC AUC as the others.
        out.append("train.class_weight searches none and balanced, but trials are ranked by the plain validation "
                   "loss, which weighting the classes raises on purpose (its probabilities lean toward the rare "
                   "classes): a balanced trial cannot win it on its merits; fix class_weight to one value per study "
                   "and compare the two studies' balanced accuracy and ROC AUC at the test look")
    return out + _rotation_as_a_fraction(space.model) + unused_train_settings(space.train) + \
        repeated_choices(space) + unused_head_settings(space.model)


def _rotation_as_a_fraction(model: dict[str, Any]) -> list[str]:
    """augment_rotation is in degrees (as ImageDataGenerator's rotation_range); a value up to 1 is Keras'
    RandomRotation habit, a fraction of a full turn, and here rotates by at most a degree."""
    value = model.get("augment_rotation")
    if isinstance(value, dict):  # a distribution: its choices, or its range's two ends
        values = value.get("choice") or (value.get("float") or value.get("int") or [])[:2]
    else:
        values = [value]
    top = max((float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), default=0.0)
    if not 0.0 < top <= 1.0:
        return []
    return [f"model.augment_rotation is in degrees, and at most {top:g} rotates the images by at most {top:g} "
            f"degree(s); Keras' RandomRotation({top:g}) would turn them by up to ±{top * 360:g}: for that, write "
            f"{top * 360:g}"]


def _inert_pruners(space: Space) -> list[str]:
    """A pruner asked for that can never act: epochs too few to judge, or splits that finish together."""
    from search.studies.pruning import PRUNE_WARMUP_EPOCHS

    out = []
    epochs = space.train.get("epochs")
    most = max((v for v in (epochs.get("choice") or epochs.get("int") or [])), default=0) \
        if isinstance(epochs, dict) else epochs
    asked = "pruner" in space.study.model_fields_set and space.study.pruner != "none"
    if asked and not space.study.multi_objective and isinstance(most, int) and most <= PRUNE_WARMUP_EPOCHS:
        out.append(f"study.pruner: {space.study.pruner} can prune no trial: no split is judged before epoch "
                   f"{PRUNE_WARMUP_EPOCHS} or at its last epoch, and train.epochs is {most}; train more epochs "
                   f"to let it act")
    if "split_pruner" in space.study.model_fields_set and space.study.split_pruner != "none" \
            and space.train.get("fuse_splits", True) is True:
        out.append(f"study.split_pruner: {space.study.split_pruner} judges a trial between its splits, which are "
                   f"trained together (train.fuse_splits: true) and finish together: it acts only with "
                   f"train.fuse_splits: false")
    return out


def _cmaes_at_random(space: Space) -> list[str]:
    """Settings CMA-ES cannot search: Optuna draws a choice, and a setting that or_off may leave out, at random."""
    if space.study.sampler != "cmaes":
        return []
    drawn = [f"{name} ({'or_off' if dist.get('or_off') else 'choice'})"
             for name, dist in space.distributions().items()
             if dist.get("or_off") or ("choice" in dist and len(dist["choice"]) > 1)]
    if not drawn:
        return []
    searched = len(space.distributions()) - len(drawn)
    return [f"study.sampler: cmaes searches numeric ranges that every trial has; {', '.join(drawn)} "
            f"{'is' if len(drawn) == 1 else 'are'} drawn at random in every trial (Optuna's independent sampler), "
            + ("and nothing else is searched: this study is a random search; use tpe, which learns choices too"
               if not searched else "so what works there is never learned; use tpe, which learns choices too, "
               "or write the setting as a range")]


def unused_head_settings(model: dict[str, Any]) -> list[str]:
    """Settings of the hidden head layer (cnn, transfer) where ``dense_units: 0`` leaves no such layer."""
    from search.space import is_distribution

    units = model.get("dense_units")
    if model.get("family") not in ("cnn", "transfer") or units != 0:
        return []
    moot = [key for key in ("dropconnect", "dense_l2") if is_distribution(model.get(key))
            or model.get(key) not in (None, 0, 0.0)]
    if not moot:
        return []
    return [f"model.{', model.'.join(moot)} {'apply' if len(moot) > 1 else 'applies'} to the hidden head layer, "
            f"and model.dense_units: 0 leaves none: ignored"
            + (", and a search dimension that changes nothing" if any(is_distribution(model.get(k)) for k in moot)
               else "") + "; remove it, or give dense_units some units"]


def repeated_choices(space: Space) -> list[str]:
    """A value listed twice in one choice: a slip that makes the sampler draw it twice as often."""
    from search.space import is_distribution

    out = []
    for name, value in space.leaves().items():
        if not is_distribution(value) or "choice" not in value:
            continue
        seen: list[Any] = []
        twice: list[Any] = []
        for v in value["choice"]:  # by type as well: true == 1 in Python, but they are different choices
            (twice if (type(v), v) in seen else seen).append((type(v), v))
        if twice:
            shown = []
            for _, v in twice:
                if v not in shown:
                    shown.append(v)
            out.append(f"{name} lists {', '.join(map(repr, shown))} more than once in its choices: "
                       f"the sampler draws it as often as it is listed; list each value once")
    return out


def plan_warnings(space: Space, split_plan: list[Any], gpus: int | None, dataset: Any = None) -> list[str]:
    """What the split plan and the machine make moot: searched batches larger than a split's training rows, float16
    on a machine without a GPU (``gpus`` None when TensorFlow was not asked)."""
    from search.space import is_distribution

    def values(key: str) -> list[Any]:
        value = space.train.get(key)
        if isinstance(value, dict) and is_distribution(value):
            return list(value.get("choice") or []) or list(value.get("int") or value.get("float") or [])[1:]
        return [value]

    out = []
    rows = min((len(s.train) for s in split_plan), default=0)
    # A fixed batch above the rows is a full-batch epoch, asked for; searched ones above the rows are one value.
    big = [b for b in values("batch_size") if isinstance(b, int) and not isinstance(b, bool) and b > rows > 0]
    if big and is_distribution(space.train.get("batch_size")):
        out.append(f"train.batch_size {', '.join(map(str, big))} is more than the {rows} training rows of the "
                   f"smallest split: each epoch is then one step on all of them, so the searched batch sizes "
                   f"above {rows} all train alike; search batch sizes up to {rows}")
    unseen, rare_only = _classes_only_validated(split_plan, dataset)
    grouped = space.validation.scheme == "group_kfold"
    out += _uneven_splits(split_plan, dataset) if grouped else []
    if grouped and unseen:
        # Whole groups go to one side: too few groups holding a class, not row order, leave a split without it.
        out.append(f"{unseen}: group_kfold puts each group of data.group wholly on one side, and too few groups "
                   f"hold that class to give every split some of it; fewer splits (validation.k), or more groups "
                   f"with rows of every class, let each split train and validate on every class")
    elif rare_only:
        fix = ("fewer splits (validation.k) or longer blocks (validation.val_size)"
               if space.validation.scheme == "time_series" else "fewer splits, or validation.stratify: true")
        out.append(f"{unseen}; such a split's validation loss does not measure that class, "
                   f"and its best epoch is picked without it: {fix} give every block rows of it")
    elif unseen and rare_only is None:
        out.append(unseen)
    elif unseen:
        fix = ("time-series splits keep the rows' order, so check that it is the time order (data.order names "
               "the time column)" if space.validation.scheme == "time_series" else
               "set validation.shuffle: true and validation.stratify: true")
        out.append(f"{unseen}: its validation loss does not measure the classes as the task holds them (splits of "
                   f"rows in the file's order, sorted by class?); {fix}")
    rare = _rare_class(split_plan, dataset)
    if rare:
        out.append(rare)
    if gpus == 0 and True in values("mixed_precision"):
        out.append("train.mixed_precision computes in float16, which is fast on GPUs with tensor cores but slower "
                   "than float32 on a CPU, and TensorFlow sees no GPU here: set it to false on this machine")
    return out


# Below this share of the development rows, a class makes accuracy uninformative: a model that never
# predicts it scores 1 - share, which reads as a good accuracy.
RARE_CLASS_SHARE = 0.10


def _rare_class(split_plan: list[Any], dataset: Any) -> str | None:
    """A class so rare that accuracy says nothing (a model that never predicts it scores well), named with the
    rows each validation split holds of it, and what the search and the test look measure instead."""
    import numpy as np

    if dataset is None or not dataset.is_classification or not split_plan:
        return None
    dev = np.unique(np.concatenate([np.concatenate([s.train, s.val]) for s in split_plan]))
    counts = np.bincount(dataset.y[dev], minlength=len(dataset.classes))
    share = counts / max(1, counts.sum())
    # Ten balanced classes hold 10 % each: rare is rare against what the class count makes usual.
    rare = [int(k) for k in np.argsort(share, kind="stable") if share[k] < min(RARE_CLASS_SHARE, 0.5 / len(share))]
    if not rare:
        return _uneven_classes(share, counts, dataset.classes)

    def held(k: int) -> str:
        per_split = sorted(int(np.sum(dataset.y[s.val] == k)) for s in split_plan)
        return f"{per_split[0]}" if per_split[0] == per_split[-1] else f"{per_split[0]}-{per_split[-1]}"

    named = ", ".join(f"class {dataset.classes[k]!r} is {share[k]:.1%} of the development rows ({int(counts[k])} "
                      f"rows; {held(k)} in each validation split)" for k in rare)
    them = "it" if len(rare) == 1 else "them"
    return (f"{named}: a model that never predicts {them} can still reach an accuracy of "
            f"{1 - float(share[rare].sum()):.1%}, so accuracy says little about {them}. The search ranks trials by "
            f"the validation loss (cross-entropy), which does reward learning a rare class; compare the best "
            f"trial's loss with the prior's (the study.workflow: phased baselines), and read the balanced accuracy "
            f"and ROC AUC of the test look; train.class_weight: balanced weighs {'its' if len(rare) == 1 else 'their'} "
            f"rows up in training")


def _uneven_classes(share: Any, counts: Any, classes: list[Any]) -> str | None:
    """Two to five classes, none under 10 %, but one under half the share it would have were they even (14 % of
    three image folders beside one of 71 %, the majority 5 times its size) went unsaid. Half the even share is
    the rule that names rare classes where there are more than five; of the bundled sets, whose smallest classes
    hold 33 % (iris), 27 % (wine, three classes), 37 % (breast_cancer, two) and 9.7 % (digits, ten), none is
    named, so no CSV data set that was silent before is warned about unless it is this uneven."""
    import numpy as np

    small = [int(k) for k in np.argsort(share, kind="stable") if share[k] < 0.5 / len(share)]
    if not small:
        return None
    big = int(np.argmax(counts))
    named = ", ".join(f"class {classes[k]!r} is {share[k]:.1%} of the development rows ({int(counts[k])} rows)"
                      for k in small)
    times = counts[big] / counts[small[0]]
    return (f"{named}, under half the {1 / len(share):.1%} each of the {len(share)} classes would hold were they "
            f"even; class {classes[big]!r} holds {times:.1f} times the rows of {classes[small[0]]!r}: "
            f"a model that always predicts {classes[big]!r} reaches an accuracy of {share[big]:.1%}, the mark any "
            f"accuracy here is to be read against; train.class_weight: balanced weighs the classes alike in training")


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


def _classes_only_validated(split_plan: list[Any], dataset: Any) -> tuple[str, bool | None]:
    """The first split whose validation rows hold a class its training rows lack, said as such, or the splits
    that validate on a few classes only; "" if none. True where those lack only rare classes; None where a
    class has too few rows for every split, said with what to do."""
    import numpy as np

    if dataset is None or not dataset.is_classification:
        return "", False
    short = [(split, np.setdiff1d(np.unique(dataset.y[split.val]), np.unique(dataset.y[split.train])))
             for split in split_plan]
    short = [(split, missing) for split, missing in short if len(missing)]
    if short:
        split, missing = short[0]
        names = ", ".join(repr(dataset.classes[int(c)]) for c in missing[:5])
        said = (f"split {split.index} trains on no row of class(es) {names}, which its validation rows hold"
                + (f" ({len(short)} of {len(split_plan)} splits are so)" if len(split_plan) > 1 else ""))
        dev = np.unique(np.concatenate([np.concatenate([s.train, s.val]) for s in split_plan]))
        few = {repr(dataset.classes[int(c)]): int(np.sum(dataset.y[dev] == c)) for c in missing[:5]}
        few = {name: n for name, n in few.items() if n < max(2, len(split_plan))}
        if few:  # stratifying is no way out: it needs as many rows of a class as there are splits
            said += (f"; {', '.join(f'class {name} has {n}' for name, n in few.items())} development row(s), too "
                     f"few for every split to train on: fewer splits (validation.k), more rows of that class, or "
                     f"its rows merged into another class or dropped give every split rows of it")
            return said, None
        return said, False
    # The other way round: validation rows of a few classes only (the last rows of a file sorted by class, or
    # blocks too small to hold a rare class). Every such split is named, not the first alone.
    narrow = []
    for split in split_plan:
        held = np.unique(dataset.y[split.val])
        if len(dataset.classes) > 2 and 2 * len(held) <= len(dataset.classes) or len(held) == 1 < len(dataset.classes):
            narrow.append((split, held))
    if not narrow:
        return "", False
    (split, held), others = narrow[0], [s.index for s, _ in narrow[1:]]
    names = ", ".join(repr(dataset.classes[int(c)]) for c in held[:5])
    which = (f"split {split.index}" if not others else
             f"splits {', '.join(map(str, [split.index, *others[:9]]))}{', ...' if len(others) > 9 else ''} "
             f"({len(narrow)} of {len(split_plan)})")
    shares = np.bincount(dataset.y, minlength=len(dataset.classes)) / len(dataset.y)
    lacking = [int(c) for c in range(len(dataset.classes)) if c not in set(held.tolist())]
    rare = [c for c in lacking if shares[c] < 0.1]
    if rare and len(rare) == len(lacking):  # blocks too small for a rare class, not rows sorted by class
        rare_names = ", ".join(f"{dataset.classes[c]!r} ({shares[c]:.1%} of the rows)" for c in rare[:5])
        return (f"{which} validate{'s' if not others else ''} on rows of class(es) {names} only, with no row of the "
                f"rare class(es) {rare_names}: their validation blocks of about {len(split.val)} rows are too small "
                f"to hold it"), True
    return f"{which} validate{'s' if not others else ''} on rows of class(es) {names} only", False


def _uneven_splits(split_plan: list[Any], dataset: Any) -> list[str]:
    """Group k-fold's validation splits of very different sizes (a group holding most rows): the trial's score is
    the plain mean over splits, so a split of a few rows counts as much as one of hundreds."""
    import numpy as np

    sizes = [len(s.val) for s in split_plan]
    if len(sizes) < 2 or min(sizes) * 4 > max(sizes):
        return []
    largest = ""
    if dataset is not None and dataset.groups is not None:
        dev = np.concatenate([np.concatenate([s.train, s.val]) for s in split_plan])
        ids, counts = np.unique(dataset.groups[np.unique(dev)], return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] * 4 > counts.sum():
            largest = f"; group {ids[top]!r} alone holds {int(counts[top])} of the {int(counts.sum())} development rows"
    return [f"group_kfold's validation splits hold {min(sizes)} to {max(sizes)} rows{largest}: a trial's score is "
            f"the mean over its splits, each counting alike, so the {min(sizes)}-row split weighs as much as the "
            f"{max(sizes)}-row one, and its loss is the noisier; fewer splits (validation.k), or groups of more "
            f"even sizes, give splits that weigh alike"]


def test_class_shift(dataset: Any, dev_idx: Any, test_idx: Any, how: str) -> list[str]:
    """Test rows whose class shares are far from the development rows' (whole groups, the latest rows or a
    provided file are not drawn stratified): the test look then weighs the classes otherwise than the
    validation scores it is compared with. Far: by 10 points and three standard errors of the test share."""
    import numpy as np

    if dataset is None or not dataset.is_classification or not len(test_idx) or not len(dev_idx):
        return []
    k = len(dataset.classes)
    dev = np.bincount(dataset.y[dev_idx], minlength=k) / len(dev_idx)
    test = np.bincount(dataset.y[test_idx], minlength=k) / len(test_idx)
    far = [c for c in range(k) if abs(test[c] - dev[c]) > max(0.1, 3 * np.sqrt(dev[c] * (1 - dev[c]) / len(test_idx)))]
    if not far:
        return []
    shown = "; ".join(f"class {dataset.classes[c]!r} is {test[c]:.1%} of them against {dev[c]:.1%} of the development "
                      f"rows" for c in far[:3])
    return [f"the {len(test_idx)} test rows ({how}) hold the classes in other shares than the development rows: "
            f"{shown}. The test look then weighs the classes otherwise than the validation scores it is compared "
            f"with, and the two differ for that reason alone; read the test look's balanced accuracy beside its "
            f"loss"]
