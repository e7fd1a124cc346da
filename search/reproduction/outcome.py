"""What ``search reproduce`` hands back: the one look at the test rows, the final model, and where MLflow
keeps it (so a notebook loads it from the study's own tracking store, not from MLflow's default)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from search.reproduction.overfit import OverfitCheck
from search.reproduction.verify import SplitCheck

from search._deferred import DeferredModule

if TYPE_CHECKING:
    import keras
    import mlflow.pyfunc
else:  # what the annotations name, imported when typing.get_type_hints evaluates them
    keras = DeferredModule("keras")
    mlflow = DeferredModule("mlflow")


@dataclass
class Report:
    """The outcome of :func:`search.reproduce`: the picked trial's final model, judged once on the test rows.

    Attributes:
        trial: the reproduced trial's number.
        epochs: the epochs the final model trained; ``epoch_rule`` says where the number came from, and
            ``epoch_note`` where it is a lower bound.
        test_loss, test_metric: the final model's data loss and task metric (``metric_name``: accuracy, mae)
            on the test rows; ``test_scores`` adds RMSE and R², or balanced accuracy and ROC AUC, and
            ``test_chance_loss`` is the loss of always predicting the development rows' class shares (or mean).
        ensemble_loss, ensemble_metric, ensemble_scores: the same for the average of the trial's split models.
        alarm: the validation-overfit check (``alarm.fired``, ``alarm.summary()``).
        split_models: how the split models were had: "checkpoints", "retrained", "partly retrained",
            "retrained by --verify".
        checks: with ``verify=True``, each split's check (``verified`` says whether all matched); else None.
        data_changes: what changed in the data since the study ran (with ``allow_data_change``).
        run_id, tracking_uri: the MLflow run that logged the final model, and the tracking store it is in
            (the study's, ``sqlite:///<home>/mlflow.db`` by default); ``model_uri`` names the logged model,
            ``load_model()`` loads its pyfunc form.
        registered: "<name> version <n>" where ``register=`` asked for it (``registered_uri``: ``models:/<name>/<n>``).
        ensemble_trials, top_ensemble_loss, top_ensemble_metric: with ``ensemble=N``, the averaged trials'
            numbers (this one first) and their average's test loss and metric.
        model_io: what the final model takes and gives (columns, classes).
        model: the final ``keras.Model``, as logged (it takes the encoded columns where ``one_hot`` encoded
            text; the pyfunc form takes the text).
        builder_changed: the builder's code is not the code the trial ran with.
        recalls: the final model's recall and row count by class.
    """

    trial: int
    epochs: int
    epoch_rule: str
    test_loss: float
    test_metric: float
    ensemble_loss: float
    ensemble_metric: float
    metric_name: str
    alarm: OverfitCheck
    split_models: str
    checks: list[SplitCheck] | None = None
    data_changes: list[str] = field(default_factory=list)
    run_id: str = ""
    registered: str = ""
    ensemble_trials: list[int] = field(default_factory=list)
    top_ensemble_loss: float = math.nan
    top_ensemble_metric: float = math.nan
    model_io: dict[str, Any] = field(default_factory=dict)
    test_scores: dict[str, float] = field(default_factory=dict)
    ensemble_scores: dict[str, float] = field(default_factory=dict)
    model: keras.Model | None = field(default=None, repr=False, compare=False)
    builder_changed: bool = False
    epoch_note: str = ""
    rows_csv: str = field(default="", repr=False)  # rows.csv: each row's place and the test predictions
    class_files: dict[str, str] = field(default_factory=dict, repr=False)  # report and confusion matrix
    recalls: dict[str, list[float]] = field(default_factory=dict)
    test_chance_loss: float = math.nan
    # Trained with train.class_weight: balanced: a model that learned nothing then predicts equal shares, not
    # the class shares, and its plain loss is theirs (log of the number of classes).
    class_weighted: bool = False
    tracking_uri: str = ""

    @property
    def verified(self) -> bool | None:
        return None if self.checks is None else all(c.matches for c in self.checks)

    @property
    def model_uri(self) -> str:
        """The logged final model as MLflow names it, ``runs:/<run_id>/model`` (read from ``tracking_uri``)."""
        return f"runs:/{self.run_id}/model" if self.run_id else ""

    @property
    def registered_uri(self) -> str:
        """The registered version as MLflow names it, ``models:/<name>/<version>``; "" where none was."""
        name, _, version = self.registered.rpartition(" version ")
        return f"models:/{name}/{version}" if name else ""

    def load_model(self) -> "mlflow.pyfunc.PyFuncModel":
        """The final model's pyfunc form (it takes a frame's columns by name, text categories as text), read
        from the study's tracking store without changing MLflow's tracking URI for the rest of the process."""
        import tempfile

        import mlflow.artifacts
        import mlflow.pyfunc

        if not self.run_id:
            from search.errors import StudyError

            raise StudyError("this report has no MLflow run: its final model was not logged", field="run_id")
        import os

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file, in a notebook too
        with tempfile.TemporaryDirectory() as folder:  # the model is read into memory; the files are not kept
            local = mlflow.artifacts.download_artifacts(artifact_uri=self.model_uri, dst_path=folder,
                                                        tracking_uri=self.tracking_uri or None)
            return mlflow.pyfunc.load_model(local)

    def __repr__(self) -> str:  # the dataclass's own ran to thousands of characters (rows.csv, every check)
        alarm = "fired" if self.alarm.fired else "quiet"
        verified = "" if self.verified is None else f", verified={self.verified}"
        return (f"Report(trial={self.trial}, epochs={self.epochs}, test_loss={self.test_loss:.4g}, "
                f"{self.metric_name}={self.test_metric:.4g}, alarm={alarm}{verified}, run_id={self.run_id!r}"
                + (f", registered={self.registered!r}" if self.registered else "") + ")")


def plain_numbers(report: Report) -> None:
    """NumPy scalars in the report (``np.float64(0.41)`` in a repr, in a JSON dump) made Python's own, in place."""
    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{f.name: plain(getattr(value, f.name))
                                                 for f in dataclasses.fields(value) if f.init})
        return value

    for item in dataclasses.fields(report):
        if item.name not in ("model", "rows_csv", "class_files"):
            setattr(report, item.name, plain(getattr(report, item.name)))
