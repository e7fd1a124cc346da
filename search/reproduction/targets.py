"""Which trial to reproduce (``search best``, ``search reproduce``), and its config with every value fixed.

A trial is found by number, by its MLflow run id, from an exported config, or as the study's best. Its
config comes from the trial's own MLflow record when the tracking store has it, and is otherwise rebuilt
from the space stored with the study and the trial's parameters.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from search import space as spaces
from search.errors import SpaceError, StudyError
from search.space import SEED_TRIAL_ATTR, Space


@dataclass
class Target:
    """What to reproduce: a completed trial of a study and its config with every value fixed."""

    study: Any
    trial: Any
    space: Space
    origin: str  # where the config came from, for the report
    # Settings in which a --config file differs from its seed_trial's own config: then it is a new
    # configuration, judged on its own split models, never passed off as that trial.
    changed: list[str] = field(default_factory=list)

    @property
    def seed_trial(self) -> int:
        return self.trial.number if self.space.study.seed_trial is None else self.space.study.seed_trial



def study_named_by(name: str) -> str:
    """The study a STUDY argument names: itself, or, for a space file (``spaces/x.yaml``, as `search run` took),
    the name in its ``study.name``; a user who typed the file they ran was told no study had that name."""
    if not isinstance(name, str) or not name.lower().endswith((".yaml", ".yml")):
        return name
    path = Path(name)
    if not path.is_file():
        raise StudyError(f"'{name}' is neither a study in this storage nor a space file here", field="STUDY",
                         expected="a study's name (study.name of the space file) or the path of its space file")
    try:  # only its name is needed: a space file whose data is gone, or half-written, still names its study
        raw = spaces.parse_yaml(path.read_text(encoding="utf-8", errors="replace"))
    except Exception:
        raw = None
    study = raw.get("study") if isinstance(raw, dict) else None
    if isinstance(study, dict) and isinstance(study.get("name"), str) and study["name"].strip():
        return study["name"]
    return spaces.load(path).study.name  # its error names what is wrong with the file


def load_study(storage_url: str, name: str, writes: str | None = None, flag: str = "--storage") -> Any:
    """Open study ``name`` of an existing store, creating nothing; ``writes`` says what the caller writes
    (then a read-only store is refused), None when it only reads."""
    import optuna

    from search import stores
    from search.studies import lifecycle as studies

    if not isinstance(name, str) or not name.strip():  # from Python: None, a number, an empty name
        raise StudyError("a study is named by its name as text (`search status` lists them)", field="study_name",
                         found=f"{type(name).__name__} {name!r}")
    name, given = study_named_by(name), name
    owner, dot, variant = name.partition(".ablation.")
    if dot:  # its table and figure are read through the study it belongs to
        raise StudyError(f"'{name}' is the ablation of study '{owner}' (its variants as trials), not a study of "
                         f"its own", field="STUDY", expected=f"'{owner}': `search status {owner}` and `search report "
                         f"{owner}` show its ablation, `search ablate {owner} --trial {variant.lstrip('t0') or 0}` "
                         f"runs or continues it")
    storage = studies.make_storage(stores.reading_url(storage_url, flag, writes=writes))
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        every = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        names = [n for n in every if ".ablation." not in n]  # a study's own ablation variants are not the user's
        named = f" (the name {given} gives)" if given != name else ""
        raise StudyError(f"no study named '{name}'{named} in this storage{spaces.did_you_mean(name, names)}",
                         field="STUDY",
                         expected="one of " + (", ".join(names) or "(none yet)")) from None


def locate(study: Any, tracking_uri: str, trial: int | None = None, run_id: str | None = None,
           config: Path | None = None) -> Target:
    """The trial to reproduce: by number, by its MLflow run id, from a fixed config file, or the best one."""
    if config is not None:
        if not Path(config).is_file():  # said as the space file's absence, the option went unnamed
            raise SpaceError("the config file does not exist", source=str(config), field="--config",
                             expected="a file `search best STUDY --export FILE` wrote")
        space = spaces.load(config)
        if space.distributions():
            raise SpaceError("a config to reproduce must fix every value; `search best --export FILE` writes "
                             "one", source=str(config), field=next(iter(space.distributions())))
        seed = study.user_attrs.get("seed")
        if isinstance(seed, int) and space.study.seed != seed:
            import re

            head = re.match(r"# Trial \d+ of study '([^']+)'", Path(config).read_text(errors="replace"))
            made = f" (it was exported from study '{head.group(1)}')" if head else ""
            raise SpaceError(f"the config is not one of study '{study.study_name}'{made}: its study seed is "
                             f"{space.study.seed}, the study's {seed}, and the seed chooses the held-out test rows and "
                             f"the splits", source=str(config), field="study.seed",
                             expected=f"a config exported from '{study.study_name}' (`search best "
                             f"{study.study_name} --export FILE`), or reproduce the study it came from")
        if space.study.seed_trial is None:
            raise SpaceError("the config does not say which trial it repeats", source=str(config),
                             field="study.seed_trial", expected=f"the number of a completed trial of "
                             f"'{study.study_name}' (`search best --export` writes it)")
        frozen = _config_trial(study, space.study.seed_trial, config)
        own, _ = trial_config(study, frozen, tracking_uri)
        mine, theirs = space.leaves(), own.leaves()
        # The exported file names the builder and the weights by their full paths: the same files.
        mine.update({f"model.{key}": value for key, value in model_files(space).items()})
        theirs.update({f"model.{key}": value for key, value in model_files(own).items()})
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        origin = f"the file {config}" + (f", a NEW configuration: it differs from trial {frozen.number} in "
                                         + ", ".join(changed) if changed else "")
        return Target(study, frozen, space, origin, changed)
    if run_id is not None:
        number = _trial_of_run(study, tracking_uri, run_id)
        frozen = _completed(study, number, "--run-id")
    elif trial is not None:
        frozen = _completed(study, trial, "--trial")
    else:
        # The project's rule, not study.best_trial, which a two-objective study does not have: the
        # lowest loss, or the one-standard-error pick on the Pareto front (search.studies.lifecycle.pick_trial).
        from search.studies.lifecycle import pick_trial

        frozen = _completed(study, pick_trial(study, "auto").number, "--trial")
    space, origin = trial_config(study, frozen, tracking_uri)
    return Target(study, frozen, space, origin)


def trial_config(study: Any, trial: Any, tracking_uri: str | None) -> tuple[Space, str]:
    """A trial's config with every value fixed, as ``search run`` accepts it.

    The trial's own MLflow record (``config/resolved.yaml``) is exact even when the space file changed
    between runs of the study; without it (another tracking store, a deleted run) the config is rebuilt
    from the study's stored space and the trial's parameters, the same way the record was made.
    """
    where = Path(study.user_attrs["space_path"]) if study.user_attrs.get("space_path") else None
    run_id = trial.user_attrs.get("mlflow_run_id")
    if run_id and tracking_uri:
        text = _mlflow_text(tracking_uri, run_id, "config/resolved.yaml")
        if text is not None:
            recorded = _space_from_text(text, where, f"MLflow run {run_id}")
            # Records written before seeds_of named the trial's own number even where the study replays
            # another trial's seeds: the study's own space says which seeds its trials trained with.
            replays = replayed_trial(study)
            if replays is not None:
                recorded.study.seed_trial = replays
            return recorded, f"MLflow run {run_id}"
    from search.studies import space_versions

    own = space_versions.of_trial(study, trial)
    stored = own if own is not None else study.user_attrs.get("space_yaml")
    if stored is None:
        raise StudyError(f"cannot rebuild trial {trial.number}'s config: its MLflow run is not in this tracking "
                         f"store and the study holds no space (it predates `search best`)", field="--tracking-uri")
    import optuna

    from search.workflow.phases import space_of_trial

    space = _space_from_text(stored, where, f"study '{study.study_name}'")
    # A phased trial did not search what its phase held fixed: those values are its own attributes.
    settings = space_of_trial(space, trial).sample(optuna.trial.FixedTrial(trial.params, trial.number))
    resolved = space.resolve(settings, name=f"{space.study.name}-t{trial.number:03d}", n_trials=1,
                             baseline=False, seed_trial=space.study.seeds_of(trial.number, trial.user_attrs))
    if own is not None:
        return resolved, f"the study's space as trial {trial.number} ran with it, and the trial's parameters"
    # A trial from before the versions were kept: the latest file's fixed values may not be the ones it ran with.
    return resolved, (f"the study's latest space and trial {trial.number}'s parameters; settings the file fixed "
                      f"and changed since this trial ran are the latest file's, not the trial's")


def replayed_trial(study: Any) -> int | None:
    """The trial whose seeds every trial of ``study`` trains with, when the study was started from an
    exported config (its space's ``study.seed_trial``); None for a study that searched."""
    stored = study.user_attrs.get("space_yaml")
    if not stored:
        return None
    try:
        value = (spaces.parse_yaml(stored).get("study") or {}).get("seed_trial")
    except Exception:  # a space stored by an older version: it searched
        return None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def with_full_paths(space: Space, read: dict[str, str] | None = None) -> dict[str, Any]:
    """The space as data, with the files it names by a relative path (data, test rows, the builder's
    module) given as the absolute paths they were found at, so that the config runs from any folder.
    ``read``: the data files the study recorded reading (``data_files``), which win over a search from
    this process's working folder, where a file of the same name may be another one."""
    from search import models

    raw = space.as_data(exclude_none=True)
    bases = [Path.cwd()] + ([space.path.parent] if space.path else [])
    for key in ("source", "test"):
        kind, sep, rest = str(raw["data"].get(key) or "").partition(":")
        if sep and kind in ("csv", "npz", "images") and not Path(rest).expanduser().is_absolute():
            recorded = [Path(read[key])] if read and read.get(key) else []
            found = next((p for p in [*recorded, *(b / rest for b in bases)] if p.exists()), None)
            if found is not None:
                raw["data"][key] = f"{kind}:{found.resolve()}"
    raw["model"]["family"] = models.builder_by_path(raw["model"].get("family", ""),
                                                    space.path.parent if space.path else None)
    weights = raw["model"].get("weights")
    if isinstance(weights, str) and weights and not Path(weights).expanduser().is_absolute():
        found = next((b / weights for b in bases if (b / weights).is_file()), None)  # as the transfer family looks
        if found is not None:
            raw["model"]["weights"] = str(found.resolve())
    return raw


def model_files(space: Space) -> dict[str, Any]:
    """The model settings that name a file (the builder, the weights), by their full paths: how an exported
    config names them, so one config is recognised whether it came from the study or from its export."""
    full = with_full_paths(space)["model"]
    return {key: full[key] for key in ("family", "weights") if key in full}


def export(target: Target, path: Path) -> None:
    from search._redact import redact

    values = ", ".join(f"{v:.6g}" for v in target.trial.values)
    header = (f"# Trial {target.trial.number} of study '{target.study.study_name}' with every value fixed "
              f"(value {values}).\n# `search run` on this file repeats the trial; "
              f"`search reproduce {target.study.study_name} --config {path}` retrains and tests it.\n")
    if path.is_file() and not _an_export(path):  # `--export space.yaml` must not cost the user their file
        raise StudyError(f"{path} exists and is not a config this tool exported; it is left as it is: choose "
                         f"another name with --export, or delete it first", field="--export", found=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = spaces.dump_yaml(with_full_paths(target.space, target.study.user_attrs.get("data_files")))
        path.write_text(redact(header + text))
    except OSError as exc:
        raise StudyError(f"cannot write {path} ({exc.strerror or exc})", field="--export") from None


def _an_export(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == b"# Trial "
    except OSError:
        return False


def _config_trial(study: Any, seed_trial: int, config: Path) -> Any:
    """The trial of ``study`` an exported config repeats. Its ``seed_trial`` names the seeds, which is the
    trial's number, except in a study that replays a trial of another (started from an exported config):
    there every trial trains with the replayed trial's seeds, so the config names it by those."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if seed_trial == replayed_trial(study) and complete:
        return complete[0]
    # A trial queued again after a stop or a crash trains with the seeds of the one it repeats, which is
    # the number its export names; the repeat is the trial that completed.
    named = next((t for t in complete if t.number == seed_trial), None)
    repeat = next((t for t in complete if t.user_attrs.get(SEED_TRIAL_ATTR) == seed_trial), None)
    if named is None and repeat is not None:
        return repeat
    return _completed(study, seed_trial, f"{config}: study.seed_trial")


def _completed(study: Any, number: Any, field_name: str) -> Any:
    if isinstance(number, str) and number.strip().isdigit():  # "3" from a notebook, as the command takes it
        number = int(number)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    found = trials.get(number)
    if found is None or found.state.name != "COMPLETE" or not found.user_attrs.get("splits"):
        done = [n for n, t in trials.items() if t.state.name == "COMPLETE"]
        words = {"FAIL": "failed", "RUNNING": "still running", "WAITING": "waiting to run"}
        state = "does not exist" if found is None else words.get(found.state.name, found.state.name.lower())
        if not done:
            raise StudyError(f"study '{study.study_name}' has no completed trial (trial {number} {state}); "
                             f"`search status {study.study_name}` shows why its trials ended", field=field_name)
        raise StudyError(f"trial {number} of study '{study.study_name}' {state}", field=field_name,
                         expected="a completed trial: " + ", ".join(map(str, done)))
    return found


def _trial_of_run(study: Any, tracking_uri: str, run_id: str) -> int:
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except Exception:  # MlflowException: unknown run id
        raise StudyError("no such MLflow run in this tracking store", field="--run-id", found=run_id) from None
    tags = run.data.tags
    if tags.get("search.kind") != "trial" or tags.get("optuna.study_name") != study.study_name:
        raise StudyError(f"this MLflow run is not a trial of study '{study.study_name}'", field="--run-id",
                         found=f"{run_id} ({tags.get('search.kind', '?')} of {tags.get('optuna.study_name', '?')})")
    return int(tags["optuna.trial_number"])


def _mlflow_text(tracking_uri: str, run_id: str, path: str) -> str | None:
    from mlflow.tracking import MlflowClient

    from search.stores import tracking_readable
    from search.tracking import quiet_mlflow

    if not tracking_readable(tracking_uri):
        return None
    quiet_mlflow()
    try:
        with _no_progress_bar(), tempfile.TemporaryDirectory() as tmp:
            local = MlflowClient(tracking_uri=tracking_uri).download_artifacts(run_id, path, tmp)
            return Path(local).read_text()
    except Exception:  # not in this store, or the artifact is gone: the caller falls back
        return None


class _no_progress_bar:
    """MLflow draws a download progress bar on stderr; ours is a command line tool with its own output."""

    def __enter__(self) -> None:
        import os

        self._was = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

    def __exit__(self, *exc: Any) -> None:
        import os

        if self._was is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = self._was


def _space_from_text(text: str, where: Path | None, source: str) -> Space:
    # `where` is the original space file, so relative data paths and builder modules resolve as they did.
    return spaces.validate(spaces.parse_yaml(text), source=source, path=where)
