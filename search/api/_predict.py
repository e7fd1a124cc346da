"""Predictions of a study's final model for new rows: what ``best_estimator_.predict`` is to a search CV.

The final model is the one `search reproduce` logged to MLflow (the study's latest reproduce run, or the
one named): its pyfunc form takes raw rows by column name, text categories as text and missing values as
the training rows had them, so the rows given here are read as the training file was.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import DataError, StudyError

if TYPE_CHECKING:
    import pandas as pd


def predict_rows(study_name: str, rows: "pd.DataFrame | str | os.PathLike[str]", tracking_uri: str,
                 run_id: str | None = None) -> "pd.DataFrame":
    """The rows with the final model's predictions beside them: ``p(<class>)`` per class and ``predicted``
    (the class, as rows.csv gives it), or ``predicted`` (the value) for regression."""
    import pandas as pd

    from search import scoring
    from search.reproduction.targets import study_named_by

    name = study_named_by(study_name)
    frame = _read(rows) if not isinstance(rows, pd.DataFrame) else rows
    run_id = run_id or _latest_reproduce_run(name, tracking_uri)
    model, io = _load(run_id, tracking_uri)
    if "features" not in io.get("inputs", {}):
        raise StudyError(f"the final model of study '{name}' takes images, not a table's rows: load it in Python "
                         f"(search.reproduce(...).load_model(), or mlflow.pyfunc.load_model('runs:/{run_id}/model'))",
                         field="INPUT")
    one_hot = io["inputs"].get("one_hot") or {}
    encoded = {f"{column}={value}" for column, values in one_hot.items() for value in values}
    raw = [c for c in io["inputs"]["features"] if c not in encoded] + list(one_hot)  # as the pyfunc form takes them
    missing = [c for c in raw if c not in frame.columns]
    if missing:
        raise DataError(f"the rows lack column(s) the final model of study '{name}' takes",
                        source=str(rows) if not isinstance(rows, pd.DataFrame) else None, field="columns",
                        expected=", ".join(map(repr, missing[:8])) + (", ..." if len(missing) > 8 else ""),
                        found=", ".join(map(repr, list(frame.columns)[:8])))
    out = np.asarray(model.predict(frame[raw]), dtype=np.float64)  # the other columns are the caller's, kept
    result = frame.copy()
    task = io.get("task")
    if task in ("binary", "multiclass"):
        classes = [str(c) for c in io["classes"]]
        probabilities = np.column_stack([1.0 - out[:, 0], out[:, 0]]) if task == "binary" else out
        for k, label in enumerate(classes):
            result[f"p({label})"] = probabilities[:, k]
        result["predicted"] = np.asarray(classes, dtype=object)[scoring.predicted_codes(task, out)]
    else:
        result["predicted"] = out.reshape(-1)
    result.attrs["predicted"] = [c for c in result.columns if c not in frame.columns]
    return result


def _read(path: "str | os.PathLike[str]") -> "pd.DataFrame":
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise DataError("the file of rows to predict does not exist", source=str(file), field="INPUT",
                        expected="a CSV file with a header row, the columns of the training file")
    try:
        return pd.read_csv(file, sep=None, engine="python")  # the separator as the file has it (, ; tab)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the rows to predict as CSV ({exc})", source=str(file), field="INPUT") from None


def _latest_reproduce_run(name: str, tracking_uri: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.kind` = 'reproduce' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise StudyError(f"study '{name}' has no final model in this tracking store yet: `search reproduce {name}` "
                         f"trains it on every development row, looks at the test rows once and logs it",
                         field="STUDY")
    return str(runs[0].info.run_id)


def _load(run_id: str, tracking_uri: str) -> tuple[Any, dict[str, Any]]:
    """The run's pyfunc model and what it takes and gives (reproduce.json's ``model``)."""
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file on the terminal
    with tempfile.TemporaryDirectory() as folder:
        try:
            summary = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/reproduce.json",
                                                               dst_path=folder, tracking_uri=tracking_uri))
            model = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/model", dst_path=folder,
                                                        tracking_uri=tracking_uri)
        except (MlflowException, OSError) as exc:
            raise StudyError(f"cannot read a final model from run {run_id}: it is no reproduce run of this tool in "
                             f"this tracking store ({str(exc).splitlines()[0][:300]})", field="--run-id") from None
        return mlflow.pyfunc.load_model(model), json.loads(summary.read_text()).get("model", {})
