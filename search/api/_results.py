"""What the API hands back: a completed trial with its fixed config and models, and a run's outcome."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.api._split_models import taking_raw_rows
from search.errors import StudyError
from search.space import Space

from search._deferred import DeferredModule

if TYPE_CHECKING:
    import keras
    import optuna

    from search.reproduction import ablation as _ablation
else:  # what the annotations name, imported when typing.get_type_hints evaluates them
    keras, optuna = DeferredModule("keras"), DeferredModule("optuna")
    _ablation = DeferredModule("search.reproduction.ablation")


@dataclass(frozen=True)
class TrialResult:
    """A completed trial: its score, its config with every value fixed, and where its models are.

    Attributes:
        study: the Optuna study it belongs to.
        number: the trial's number.
        value: the mean over splits of its best validation (data) loss; ``value_std`` their spread.
        params: the searched values, by Optuna's names (``model.units``).
        config: the trial's config, every value fixed, as ``search best --export`` writes it.
        home: the folder of the stores (its split checkpoints are under it).
    """

    study: "optuna.Study"
    number: int
    value: float                 # mean over splits of the best validation (data) loss
    value_std: float
    params: dict[str, Any]
    config: Space                # the trial's config, every value fixed, as `search best --export` writes
    home: Path

    def __repr__(self) -> str:  # the dataclass's own printed the whole space and the Study object
        return (f"TrialResult(study={self.study.study_name!r}, number={self.number}, value={self.value:.4g} "
                f"± {self.value_std:.2g}, params={self.params!r})")

    @property
    def metrics(self) -> dict[str, float]:
        """Its summary over the splits, by name: ``val_loss_mean``/``_std``, the task metric's
        (``val_accuracy_mean`` or ``val_mae_mean``, and ``_std``), ``best_epoch_mean``, ``penalty_mean``,
        ``splits_done``, and ``n_params``/``latency_ms`` where measured."""
        from search.runner.results import is_summary_metric

        attrs = self.study.trials[self.number].user_attrs
        return {key: float(value) for key, value in attrs.items() if isinstance(value, (int, float))
                and not isinstance(value, bool) and is_summary_metric(key)}

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """The settings the builder and training got, by section: ``{"model": {"units": 44, "l2": 0.0, ...},
        "train": {"learning_rate": ..., ...}}``. Where ``params`` holds Optuna's names (``model.units``, and
        ``model.l2.on`` for a setting searched with ``or_off``), these are the values as used, an off
        setting at its off value."""
        from search.space import nest

        return nest(self.config.leaves())

    @property
    def classes(self) -> list[Any]:
        """The class labels in the order of the split models' outputs (a binary model's one output is the
        probability of the second), as the data holds them (``0``, ``'yes'``), as the final model's
        ``model_io`` keeps them (as text for a study that an earlier version ran); empty for regression."""
        summary = self.study.user_attrs.get("data_summary", {})
        return list(summary.get("labels") or summary.get("classes", {}))

    def split_models(self, scaled_input: bool = False) -> list["keras.Model"]:
        """The trial's split models (best-epoch weights), loaded from their checkpoints, in split order.

        Each takes raw rows, as the data holds them: its own split's scaler (fitted on that split's
        training rows, as in the search) and any fill of missing values are layers in front of it, as
        in the final model. ``scaled_input=True``: the checkpoints as trained, which take rows already
        scaled by their split's scaler.

        Raises:
            StudyError: a checkpoint was removed (only the best ``keep_checkpoints`` trials keep theirs).
            DataError: the data is no longer what the study ran on (the scalers would be other ones).
        """
        from search.runner import checkpoints

        records = self.study.trials[self.number].user_attrs.get("splits", [])
        paths = []
        for record in records:
            path = checkpoints.split_path(self.home, self.study.study_name, self.number, int(record["split"]))
            if not path.is_file():
                raise StudyError(f"the checkpoint of trial {self.number}'s split {record['split']} is not on this "
                                 f"disk ({path}: only the best study.keep_checkpoints trials keep theirs); "
                                 f"search.reproduce({self.study.study_name!r}, trial={self.number}) retrains them")
            paths.append(path)
        models = [checkpoints.load_model(path) for path in paths]
        if scaled_input or not models:
            return models
        return taking_raw_rows(self.study, self.config, [int(r["split"]) for r in records], models)


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` leaves: the Optuna study, its picked trial, and the ablation table when it ran.

    Attributes:
        study: the Optuna study (all its trials, also those of earlier runs).
        best: the picked trial (the one-standard-error pick of a two-objective study); None before any
            trial completed.
        ablation: one :class:`search.AblationRow` per variant, once the budget is spent and
            ``study.ablation`` is on.
        stopped_by: the signal that stopped the run before its budget ("SIGTERM"), "study.stop() in a callback"
            where one of ``callbacks=`` stopped it, "" where nothing did.
        budget_spent: whether the study has its ``study.n_trials`` finished trials; False after a ``timeout``,
            an ``n_trials`` limit or a stop, where a later run continues the study.
    """

    study: "optuna.Study"
    best: TrialResult | None
    ablation: list["_ablation.AblationRow"] = field(default_factory=list)
    # The signal that stopped the run before its budget ("SIGTERM"), "" where it ran to its end; Ctrl-C
    # (SIGINT) raises KeyboardInterrupt instead, once the run has stopped and stored what finished.
    stopped_by: str = ""

    @property
    def budget_spent(self) -> bool:
        # A timeout left stopped_by "", which read as "ran to its end" with 1 of 6 trials done.
        from search.studies.lifecycle import finished_count

        budget = self.study.user_attrs.get("budget")
        return isinstance(budget, int) and finished_count(self.study) >= budget

    def __repr__(self) -> str:
        states: dict[str, int] = {}
        for t in self.study.get_trials(deepcopy=False):
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        counted = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        return (f"RunResult(study={self.study.study_name!r} ({counted or 'no trials'}), best={self.best!r}, "
                f"ablation={len(self.ablation)} row(s)" + (f", stopped_by={self.stopped_by!r}" if self.stopped_by
                                                           else "") + ")")


def trial_result(study: Any, trial: Any, config: Space, home: Path) -> TrialResult:
    return TrialResult(study, trial.number, float(trial.values[0]), float(trial.user_attrs.get("val_loss_std", 0.0)),
                       dict(trial.params), config, home)


def best_or_none(study: Any, options: Any) -> TrialResult | None:
    from search.reproduction import targets
    from search.tracking import default_tracking_uri

    from search.studies.lifecycle import pick_trial

    try:
        picked = pick_trial(study, "auto")  # the one_se pick of a two-objective study, as `search best` marks
    except StudyError:
        return None
    uri = options.tracking_uri or default_tracking_uri(Path(options.home))
    config, _ = targets.trial_config(study, picked, uri)
    return trial_result(study, picked, config, Path(options.home))
