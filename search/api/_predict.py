"""Predictions of a study's final model for new rows: what ``best_estimator_.predict`` is to a search CV.

The final model is the one `search reproduce` logged to MLflow: the latest reproduce run of the study's best
trial (a runner-up reproduced since to look at it is not the model to ship), else the latest of any trial, said,
or the run named. Its pyfunc form takes raw rows by column name, text categories as text and missing values as
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
    (the class, as rows.csv gives it), or ``predicted`` (the value) for regression. ``attrs``: ``predicted``
    (those columns), ``run_id`` and ``trial`` (the model's), ``model`` (a line that says which model it is),
    ``score`` (the scores against the rows' target column, where they hold it; else "")."""
    import sys
    import warnings

    import pandas as pd

    from search.reproduction.targets import study_named_by

    name = study_named_by(study_name)
    rows, positional = _taken(rows)
    if isinstance(rows, (str, os.PathLike)) and Path(rows).is_dir():
        raise DataError("is a folder; search predict reads a CSV file of rows, and a study trained on images "
                        "predicts from Python: search.predict(study, images) with an array of images prepared as "
                        "the final model's reproduce.json says under 'model'", source=str(rows), field="INPUT")
    if not isinstance(rows, (pd.DataFrame, np.ndarray)) and not Path(rows).is_file():  # before the model loads
        from search.data import read_rows

        read_rows(Path(rows), [])
    run_id, trial, said = _final_run(name, tracking_uri, run_id)
    model, io = _load(run_id, tracking_uri)
    shape = io.get("inputs", {}).get("shape") or []
    if "features" not in io.get("inputs", {}) and len(shape) != 1:
        if isinstance(rows, np.ndarray) and rows.ndim >= 3:  # images, prepared as reproduce.json says
            try:
                out = np.asarray(model.predict(rows), dtype=np.float64)
            except ValueError as exc:  # the loader's refusal: pixels out of range, the wrong size
                raise DataError(str(exc), field="INPUT") from None
            result = _with_predictions(pd.DataFrame(index=pd.RangeIndex(len(rows))), io, out)
            result.attrs.update(run_id=run_id, trial=trial, model=said, score="")
            return result
        raise StudyError(f"the final model of study '{name}' takes images, not a table's rows: in Python, "
                         f"search.predict('{name}', images) with an array of images (n, height, width, channels) "
                         f"prepared as reproduce.json says under 'model' ({io.get('inputs', {}).get('as', '')}), "
                         f"or mlflow.pyfunc.load_model('runs:/{run_id}/model')", field="INPUT")
    if isinstance(rows, np.ndarray) and rows.ndim >= 3:
        from search.errors import ArgumentError

        raise ArgumentError(f"the final model of study '{name}' takes a table's rows (a DataFrame, a 2-D array or a "
                            f"CSV file's path), and this array has {rows.ndim} dimensions", field="INPUT",
                            found=f"shape {rows.shape}")
    if "features" not in io["inputs"]:  # trained on arrays (search.run's x): its columns have no names
        return _by_position(name, rows, int(shape[0]), model, io, run_id, trial, said)
    if positional:
        raise DataError(f"the rows are an array, whose columns have no names, and the final model of study "
                        f"'{name}' takes columns by name; pass a DataFrame: pd.DataFrame(rows, columns=[...])",
                        field="INPUT", expected=", ".join(map(repr, io["inputs"]["features"][:8]))
                        + (", ..." if len(io["inputs"]["features"]) > 8 else ""), found="an array")
    one_hot = io["inputs"].get("one_hot") or {}
    from search.tracking._pyfunc_loader import encoded_names

    encoded = set(encoded_names(one_hot))  # an empty cell's column is 'region=(empty)', no column of the rows
    raw = [c for c in io["inputs"]["features"] if c not in encoded] + list(one_hot)  # as the pyfunc form takes them
    if isinstance(rows, pd.DataFrame):
        frame = rows
    else:  # read as the training file was: a BOM, semicolons and decimal commas, Excel's sep= line
        from search.data import read_rows

        frame, notes = read_rows(Path(rows), raw, io.get("target"))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    missing = [c for c in raw if c not in frame.columns]
    if missing:
        raise DataError(f"the rows lack column(s) the final model of study '{name}' takes",
                        source=str(rows) if not isinstance(rows, pd.DataFrame) else None, field="columns",
                        expected=", ".join(map(repr, missing[:8])) + (", ..." if len(missing) > 8 else ""),
                        found=", ".join(map(repr, list(frame.columns)[:8]))
                        + (f", ... ({len(frame.columns)} columns)" if len(frame.columns) > 8 else ""))
    _said_filled(frame[[c for c in raw if c not in one_hot]], io, sys.stderr)  # a category's gap is its own
    with warnings.catch_warnings(record=True) as heard:  # said as the run says its warnings, not as file:line
        warnings.simplefilter("always")
        try:
            out = np.asarray(model.predict(frame[raw]), dtype=np.float64)  # the other columns are the caller's
        except ValueError as exc:  # the model's loader refusing the rows (missing or unreadable values)
            raise DataError(str(exc), source=str(rows) if not isinstance(rows, pd.DataFrame) else None,
                            field="rows") from None
    for warning in heard:
        if issubclass(warning.category, UserWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    result = _with_predictions(frame, io, out)
    result.attrs.update(run_id=run_id, trial=trial, model=said, score=_score(frame, io, out))
    return result


def _said_filled(frame: "pd.DataFrame", io: dict[str, Any], err: Any) -> None:
    """Missing values a model trained with data.missing: mean (or median) fills: said, with their columns, where
    they were predicted on without a word (a whole column left empty gave every row the same prediction)."""
    fill = str(io.get("inputs", {}).get("missing", ""))
    if not fill.startswith("filled"):
        return
    blank = frame.isna() | frame.apply(lambda c: c.map(lambda v: isinstance(v, str) and not v.strip()))
    counts = {str(c): int(n) for c, n in blank.sum().items() if n}
    if counts:
        rows = int(blank.any(axis=1).sum())
        print(f"note: {rows} of the {len(frame)} rows have missing values ("
              + ", ".join(f"'{c}' {n}" for c, n in list(counts.items())[:6]) + (", ..." if len(counts) > 6 else "")
              + f"), {fill}, as in training", file=err)


def _taken(rows: Any) -> tuple[Any, bool]:
    """The rows as a frame or a path, and whether they came as an array (columns by position). A frame's column
    names are read as text, as search.run read them for training (a frame of pd.DataFrame(array) has 0, 1, ...)."""
    import pandas as pd

    from search.errors import ArgumentError

    if isinstance(rows, pd.DataFrame):
        if any(not isinstance(c, str) for c in rows.columns):
            rows = rows.copy()
            rows.columns = [str(c) for c in rows.columns]
        return rows, False
    if isinstance(rows, (str, os.PathLike)):
        return rows, False
    if isinstance(rows, np.ndarray) and rows.ndim >= 3 and rows.dtype.kind in "uif":
        return rows, True  # images, for a model trained on them (checked once the model is known)
    if isinstance(rows, (np.ndarray, list, tuple)):
        array = np.asarray(rows, dtype=object)
        if array.ndim == 2:
            return pd.DataFrame(array.tolist(), columns=[str(k) for k in range(array.shape[1])]), True
        raise ArgumentError(f"rows is a table: a DataFrame, a 2-D array (one row per line) or a CSV file's path; "
                            f"this array has {array.ndim} dimension(s)" + ("; one row is rows.reshape(1, -1)"
                                                                             if array.ndim == 1 else ""),
                            field="INPUT", found=f"shape {array.shape}")
    hint = "; one row of a Series is rows.to_frame().T" if isinstance(rows, pd.Series) else ""
    raise ArgumentError(f"rows is a DataFrame, a 2-D array or a CSV file's path{hint}", field="INPUT",
                        found=type(rows).__name__)


def _by_position(name: str, rows: Any, width: int, model: Any, io: dict[str, Any], run_id: str, trial: int | None,
                 said: str) -> "pd.DataFrame":
    """Predictions of a model trained on arrays: its columns have no names, so the rows' columns are taken in
    their order, all of them."""
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        frame = rows
    else:
        from search.data import read_rows

        frame, _ = read_rows(Path(rows), [])
    if frame.shape[1] != width:
        raise DataError(f"the final model of study '{name}' was trained on arrays of {width} columns, taken by "
                        f"position (they have no names), and the rows have {frame.shape[1]}",
                        source=None if isinstance(rows, pd.DataFrame) else str(rows), field="INPUT",
                        expected=f"{width} columns", found=f"{frame.shape[1]}")
    try:
        values = frame.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the rows hold a value that is not a number ({exc}); the final model of study '{name}' "
                        f"takes numbers", field="INPUT") from None
    result = _with_predictions(frame, io, np.asarray(model.predict(values), dtype=np.float64))
    result.attrs.update(run_id=run_id, trial=trial, model=said, score="")
    return result


def _with_predictions(frame: "pd.DataFrame", io: dict[str, Any], out: np.ndarray) -> "pd.DataFrame":
    """The rows with ``p(<class>)`` per class and ``predicted`` beside them (``predicted`` alone for regression);
    ``attrs["predicted"]`` names those columns."""
    from search import scoring

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


def _score(frame: "pd.DataFrame", io: dict[str, Any], out: np.ndarray) -> str:
    """Where the rows hold the target (a labelled hold-out, scikit-learn's ``score(X, y)``), the scores of the
    predictions against it, as the test look prints them; "" where they do not."""
    from collections import Counter

    import pandas as pd

    from search import scoring

    target, task = io.get("target"), io.get("task")
    if not target or target not in frame.columns or task not in ("binary", "multiclass", "regression"):
        return ""
    unknown: Counter[str] = Counter()
    if task == "regression":
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(y)
    else:
        index = {str(c): k for k, c in enumerate(io["classes"])}
        labels = [_label_text(v) for v in frame[target]]
        codes = np.array([index.get(label, -1) for label in labels])
        known, y = codes >= 0, codes
        # Named, as training names labels spelt two ways: 'Churned' or 'stayed ' are left out, not scored as wrong.
        unknown = Counter(label for label, code in zip(labels, codes) if code < 0 and label.strip())
    rows = int(known.sum())
    if not rows:
        return f"the rows' column {target!r} (the target) holds no value the model knows: nothing scored"
    y, pred = y[known], out[known]
    loss = float(np.mean(scoring.row_losses(task, y, pred)))
    metric = scoring.metric(task, y, pred)
    named = "accuracy" if task != "regression" else "mean absolute error"
    more = scoring.scores_text(scoring.more_scores(task, y, pred))
    left = f"; {len(frame) - rows} row(s) without a known target left out" if rows < len(frame) else ""
    if unknown:
        shown = ", ".join(f"{v!r} ({n} row{'s' if n != 1 else ''})" for v, n in unknown.most_common(5))
        left += (f" (labels the model has no class of: {shown}{', ...' if len(unknown) > 5 else ''}; its classes: "
                 f"{', '.join(repr(str(c)) for c in io['classes'][:10])})")
    return (f"the rows hold the target {target!r}: scored on {rows} row(s), loss {loss:.4g}, {named} {metric:.4g}"
            + (f", {more}" if more else "") + left)


def _label_text(value: Any) -> str:
    """A target cell as the classes are written (a label 1 read as 1.0 where the column has a gap is "1")."""
    if isinstance(value, float):
        return "" if value != value else (str(int(value)) if value.is_integer() else str(value))
    return str(value)


def _final_run(name: str, tracking_uri: str, run_id: str | None) -> tuple[str, int | None, str]:
    """The reproduce run whose model predicts, its trial, and a line that says which it is and why.

    Not simply the latest: after `search reproduce STUDY --trial 3` to look at a runner-up, the latest is that
    runner-up's, and predictions from it went out without a word. The best trial is the study run's ★ tag.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if run_id is not None:
        try:
            tags = client.get_run(run_id).data.tags
        except Exception:  # not in this store: _load says so
            tags = {}
        trial = _trial_of(tags)
        return run_id, trial, f"the final model of {_which(trial)}, reproduce run {run_id} (--run-id)"
    experiment = client.get_experiment_by_name(name)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.kind` = 'reproduce' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=200)
    if not runs:
        raise _no_final_model(client, name, experiment)
    study_runs = client.search_runs([experiment.experiment_id], "tags.`search.kind` = 'study'", max_results=1)
    best = _int(study_runs[0].data.tags.get("best_trial")) if study_runs else None
    own = [r for r in runs if _trial_of(r.data.tags) == best and r.data.tags.get("search.edited", "false") == "false"]
    chosen = own[0] if own else runs[0]
    trial = _trial_of(chosen.data.tags)
    said = f"the final model of {_which(trial)}, reproduce run {chosen.info.run_id}"
    if own:
        return chosen.info.run_id, trial, said + " (the best trial's latest)"
    if best is not None:
        said += (f": the best trial, {best}, has no final model yet (`search reproduce {name}` trains it), so the "
                 f"latest reproduce run is used")
    return chosen.info.run_id, trial, said


def _no_final_model(client: Any, name: str, experiment: Any) -> StudyError:
    """Why there is no model to predict with, and the step that gets one: `search reproduce` was advised for a
    study name misspelt and for a study with no finished trial, where it then failed in turn."""
    if experiment is None or experiment.lifecycle_stage != "active":
        names = [e.name for e in client.search_experiments(max_results=50)
                 if e.name != "Default" and ".ablation." not in e.name]
        return StudyError(f"no study named '{name}' in this tracking store", field="STUDY",
                          expected="one of " + (", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
                                                if names else "(none yet: `search run` a space file first)"))
    finished = client.search_runs([experiment.experiment_id], "tags.`search.kind` = 'trial' and "
                                  "tags.`optuna.state` = 'COMPLETE'", max_results=1)
    if not finished:
        return StudyError(f"study '{name}' has no finished trial yet, so no final model: `search run` its space file "
                          f"again continues it; then `search reproduce {name}` trains the best trial's config on "
                          f"every development row and logs the model", field="STUDY")
    return StudyError(f"study '{name}' has no final model in this tracking store yet: `search reproduce {name}` "
                      f"trains it on every development row, looks at the test rows once and logs it", field="STUDY")


def _trial_of(tags: dict[str, str]) -> int | None:
    return _int(tags.get("optuna.trial_number"))


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _which(trial: int | None) -> str:
    return f"trial {trial}" if trial is not None else "an unknown trial"


def _load(run_id: str, tracking_uri: str) -> tuple[Any, dict[str, Any]]:
    """The run's pyfunc model and what it takes and gives (reproduce.json's ``model``)."""
    from search._tensorflow import import_quietly

    import_quietly()  # before MLflow imports it for the model: TensorFlow's start-up lines on the terminal
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
