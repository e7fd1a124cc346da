"""Whether a study may go on with the space file as it now reads: the same objectives, model family, searched
distributions, data, test rows and splits (search/studies/lifecycle.py opens the study and asks here)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from search.errors import ContinuationRefused
from search.space import Space


def _where(space: Space) -> str | None:
    return str(space.path) if space.path else None


def check_continuable(study: Any, space: Space, attrs: dict[str, Any]) -> None:
    """Refuse to continue ``study`` with other objectives, or on data or splits other than ``attrs`` say."""
    stored_objectives = study.user_attrs.get("objectives", ["val_loss"])
    if len(study.directions) != len(space.study.objectives) or stored_objectives != space.study.objectives:
        raise ContinuationRefused(f"study '{space.study.name}' was started with objectives {stored_objectives}; start "
                         f"a new study with --study-name to change them", source=_where(space),
                         field="study.objectives", found=space.study.objectives)
    _same_family(study, space)
    _same_distributions(study, space)
    stored = study.user_attrs
    for key, value in attrs.items():
        if key in stored and stored[key] != value and key.endswith("fingerprint"):
            if key == "weights_fingerprint":
                raise ContinuationRefused(f"study '{space.study.name}' was run with another file at model.weights "
                                          f"({space.model.get('weights')}: its content was {stored[key]}, now "
                                          f"{value}): its trials trained on the backbone the file held then; restore "
                                          f"that file, or start a new study with --study-name", source=_where(space),
                                          field="model.weights")
            changed = _changed_plan(stored.get("space_yaml"), space) if key != "data_fingerprint" else []
            if changed:
                rows = "split" if key == "splits_fingerprint" else "test"
                raise ContinuationRefused(f"study '{space.study.name}' was started with other {rows} rows: "
                                 f"{'; '.join(changed)}; its trials are only comparable on the same rows: restore "
                                 f"the setting, or start a new study with --study-name", source=_where(space),
                                 field=changed[0].split(" ")[0])
            if key == "data_fingerprint" and attrs.get("duplicates_kept_by_auto") and \
                    "duplicates_kept_by_auto" not in stored:
                # Made when data.duplicates defaulted to drop: the same file, read with today's default (auto,
                # which keeps the copies of coarse features), is other rows; said as that, not as other data.
                raise ContinuationRefused(f"study '{space.study.name}' was made when data.duplicates defaulted to "
                                          f"drop, and its rows were read so; data.duplicates: auto, the default now, "
                                          f"keeps this file's copies (its features are coarse): set "
                                          f"data.duplicates: drop to continue the study, or start a new one with "
                                          f"--study-name", source=_where(space), field="data.duplicates")
            read = _changed_reading(stored.get("space_yaml"), space) if key == "data_fingerprint" else []
            if read:  # the file is the same, read another way: blamed on data.source it read as other data
                raise ContinuationRefused(f"study '{space.study.name}' was started with the data read otherwise: "
                                          f"{'; '.join(read)}; its trials are only comparable on the same rows: "
                                          f"restore the setting, or start a new study with --study-name",
                                          source=_where(space), field=read[0].split(" ")[0])
            what = f"different data ({_data_difference(stored, attrs)}; " if key == "data_fingerprint" else \
                "different data or splits ("
            raise ContinuationRefused(f"study '{space.study.name}' was started with {what}{key} is {stored[key]}, "
                                      f"now {value}); start a new study with --study-name, or restore the original "
                                      f"data", source=_where(space), field="data.source")
    _same_column_names(study, space, attrs)


def _data_difference(stored: dict[str, Any], attrs: dict[str, Any]) -> str:
    """What differs between the data a study was made with and the data read now, as far as the stored summary
    tells: the rows, the columns, the classes; else only values (or the rows' order) can differ."""
    def listed(names: list[Any]) -> str:
        return ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")

    parts = []
    if stored.get("rows") is not None and stored.get("rows") != attrs.get("rows"):
        parts.append(f"{stored['rows']} rows then, {attrs.get('rows')} now")
    before, now = stored.get("data_summary") or {}, attrs.get("data_summary") or {}
    old_columns, new_columns = before.get("feature_names") or [], now.get("feature_names") or []
    if old_columns and new_columns and old_columns != new_columns:
        gone, added = [c for c in old_columns if c not in new_columns], [c for c in new_columns if c not in old_columns]
        parts += ([f"column(s) {listed(gone)} gone"] if gone else []) + ([f"column(s) {listed(added)} new"]
                                                                          if added else [])
        if not gone and not added:
            parts.append("the same columns in another order")
    old_classes, new_classes = list(before.get("classes") or {}), list(now.get("classes") or {})
    if old_classes and new_classes and set(old_classes) != set(new_classes):
        parts.append(f"classes {listed(old_classes)} then, {listed(new_classes)} now")
    return "; ".join(parts) or "the same number of rows and the same columns: some values differ, or the rows' order"


def _same_column_names(study: Any, space: Space, attrs: dict[str, Any]) -> None:
    """Refuse a header renamed under the same values (the fingerprint is of the values): two names swapped
    continued without a word, and a final model, which takes its columns by name, would have mixed them up."""
    before = (study.user_attrs.get("data_summary") or {}).get("feature_names") or []
    now = (attrs.get("data_summary") or {}).get("feature_names") or []
    if not before or not now or len(before) != len(now) or before == now:
        return
    changed = [f"'{a}' is now '{b}'" for a, b in zip(before, now) if a != b]
    raise ContinuationRefused(f"study '{space.study.name}' was started with the columns named otherwise: "
                              f"{', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''} (their values are the "
                              f"same); the study's models take their columns by name, so a renamed column would "
                              f"be read as another: restore the header, or start a new study with --study-name",
                              source=_where(space), field="data.source")


# The data settings that change which rows are read, or their values (the file left as it was).
_READING = ("target", "task", "drop", "duplicates", "missing", "categorical", "as_images", "image_size",
            "color_mode", "skip_bad_images")


def _changed_reading(before: str | None, space: Space) -> list[str]:
    """The data settings that read the same file otherwise and differ from the study's stored space."""
    from search.space import parse_yaml

    try:
        old = (parse_yaml(before or "") or {}).get("data") or {}
    except Exception:  # a space stored by an older version: nothing to compare
        return []
    now = space.model_dump(mode="json")["data"]
    defaults = type(space.data).model_validate({"source": space.data.source}).model_dump(mode="json")
    return [f"data.{key} was {_value(old.get(key, defaults.get(key)))}, now {_value(now.get(key))}"
            for key in _READING if old.get(key, defaults.get(key)) != now.get(key)]


def _changed_plan(before: str | None, space: Space) -> list[str]:
    """The settings that choose the test and split rows and differ from the study's stored space."""
    from search.space import parse_yaml

    try:
        old = parse_yaml(before or "") or {}
    except Exception:  # a space stored by an older version: nothing to compare
        return []
    from search.space import ValidationSection

    now = space.model_dump(mode="json")
    # A key the stored file did not write had its default then (stratify: unset, not this file's false).
    defaults = ValidationSection().model_dump(mode="json")
    out = []
    from search.space import SCHEME_READS

    # A setting the new scheme does not read changes none of its splits (k of a hold-out): not said.
    read = {"scheme"} | SCHEME_READS.get(now["validation"]["scheme"], set(now["validation"]))
    # Nor one the old scheme did not read: "validation.repeats was 3" after k-fold, where no one had set it.
    old_scheme = str((old.get("validation") or {}).get("scheme", defaults.get("scheme")))
    read &= {"scheme"} | SCHEME_READS.get(old_scheme, set(now["validation"]))
    for section, key in (("study", "seed"), ("data", "test_size"), ("data", "test"), ("data", "split_column"),
                         ("data", "group"), ("data", "order"),
                         *(("validation", k) for k in now["validation"] if k in read)):
        default = defaults.get(key) if section == "validation" else None
        was, is_now = (old.get(section) or {}).get(key, default), now[section].get(key)
        if was != is_now:
            out.append(f"{section}.{key} was {_value(was)}, now {_value(is_now)}")
    return out


def _same_family(study: Any, space: Space) -> None:
    """Refuse to continue a study with another model family: its trials would be ranked against another kind
    of model. A builder module found by another path, or under its file's path, is the same family."""
    from search.space import parse_yaml

    try:
        before = ((parse_yaml(study.user_attrs.get("space_yaml") or "") or {}).get("model") or {}).get("family")
    except Exception:  # a space stored by an older version: nothing to compare
        return
    if not isinstance(before, str) or _family_key(before) == _family_key(space.family):
        return
    builder = before.rpartition(":")[2] if before.startswith("python:") else ""
    hint = (f"pass the same builder again (search.run(..., builder={builder.split('.')[-1].split('~')[0]})), or "
            if builder and ("__main__" in before or "<locals>" in before) else "use model.family: " + before + ", or ")
    raise ContinuationRefused(f"study '{space.study.name}' was run with model.family {before}, and this run's is "
                     f"{space.family}: its trials would be ranked against another kind of model; {hint}start a "
                     f"new study with --study-name", source=_where(space), field="model.family", found=space.family)


def _same_distributions(study: Any, space: Space) -> None:
    """Optuna cannot continue a parameter whose kind, log scale or choices changed: every later trial would
    fail on it. Refused here, naming the setting, before any trial (a range widened or narrowed is fine)."""
    import optuna

    if space.study.workflow == "phased":  # the phases change what is searched by design
        return
    recorder = _Recorder()
    space.sample(recorder)
    stored: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        stored.update(trial.distributions)
    for name, new in recorder.distributions.items():
        old = stored.get(name)
        if old is None:
            continue
        try:
            optuna.distributions.check_distribution_compatibility(old, new)
        except ValueError:
            setting = name.removesuffix(".on")
            raise ContinuationRefused(f"study '{space.study.name}' searched {setting} as {_shown(old)}, and this file "
                             f"searches it as {_shown(new)}: Optuna cannot continue a setting whose kind, log "
                             f"scale or choices changed (a range may change); restore it, or start a new study "
                             f"with --study-name", source=_where(space), field=setting) from None


class _Recorder:
    """Stands in for a trial to learn the Optuna distribution of every searched setting."""

    def __init__(self) -> None:
        self.distributions: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        from optuna.distributions import CategoricalDistribution

        self.distributions[name] = CategoricalDistribution(choices)
        return choices[-1]  # for or_off's switch: True, so the setting's own range is recorded too

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        from optuna.distributions import IntDistribution

        self.distributions[name] = IntDistribution(low, high, log=log, step=step)
        return low

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> float:
        from optuna.distributions import FloatDistribution

        self.distributions[name] = FloatDistribution(low, high, log=log, step=step)
        return low


def _shown(dist: Any) -> str:
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return "{choice: " + str(list(choices)) + "}"
    kind = "int" if type(dist).__name__ == "IntDistribution" else "float"
    return f"{{{kind}: [{dist.low:g}, {dist.high:g}]{', log: true' if dist.log else ''}}}"


def _family_key(family: str) -> tuple[str, str]:
    if not family.startswith("python:"):
        return family, ""
    module, _, function = family[len("python:"):].rpartition(":")
    return Path(module).stem if module.endswith(".py") else module.rpartition(".")[2], function


def _value(value: Any) -> str:
    return "unset (its default)" if value is None else str(value)
