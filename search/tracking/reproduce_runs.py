"""MLflow runs of `search reproduce`: test metrics, provenance and the final model in two forms.

Kept apart from the study tracker: a reproduce run is written once, at the end, by a different command.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

from search._redact import redact
from search.tracking import _pyfunc_loader, param_text, quiet_mlflow, experiment_id

_log = logging.getLogger("search")


def log_reproduction(tracking_uri: str, home: Path, study_name: str, *, run_name: str, parent_run_id: str | None,
                     tags: dict[str, Any], params: dict[str, Any], metrics: dict[str, float],
                     texts: dict[str, str], model: Any, columns: list[str] | None = None,
                     outputs: list[str] | None = None, one_hot: dict[str, list[str]] | None = None,
                     fills: bool = True, pixel_max: float | None = None, started: float | None = None) -> str:
    """One finished ``reproduce`` run in the study's experiment, nested under the study's run when it exists.

    Holds the test metrics, the final model as an MLflow Keras model (``model/``, loadable with
    ``mlflow.keras.load_model("runs:/<id>/model")``) and as a plain ``final_model.keras`` file. A table's
    model takes float64 rows, so that ``mlflow.pyfunc.load_model(...).predict(frame)`` takes a pandas
    DataFrame of raw rows as read; with ``columns`` (the features, in the model's order) it takes them by
    name, so a frame whose columns come in another order is reordered, and one missing a column refused;
    ``outputs`` names the columns of the frame it gives (the classes, or the target): _with_own_loader.
    With ``one_hot`` (each category column's values, as data.categorical: one_hot encoded them) the pyfunc
    form takes the category columns raw and encodes them itself; the Keras form takes them encoded.
    ``fills``: the model fills missing values (data.missing); without, its pyfunc form refuses them by name.
    ``pixel_max``: an image model's largest training pixel value, which its pyfunc form holds images to.
    ``started``: when the reproduction began (seconds since the epoch), the run's start: made at the end, its
    duration in the UI was the logging's, 0.9 s of a 15 s command.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = experiment_id(client, tracking_uri, home, study_name)
    run_tags = {"search.kind": "reproduce", "optuna.study_name": study_name, **tags}
    if parent_run_id and _run_is_active(client, parent_run_id):
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment, run_name=run_name, start_time=int(started * 1000) if started else None,
                            tags={k: redact(str(v))[:5000] for k, v in run_tags.items()})
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in params.items()])
        for name, text in texts.items():
            client.log_text(run_id, redact(text), name)
        model_id = _log_keras_model(client, run_id, model, columns, outputs, one_hot or {}, fills, pixel_max,
                                    experiment=experiment, params=params)
        # With the model's id, the test metrics show on its page and in the experiment's Models tab too.
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0, model_id=model_id)
                                          for k, v in metrics.items() if math.isfinite(v)])
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    if "mlflow.parentRunId" in run_tags and "test_looks" in tags:
        # The study's own run says its test rows were looked at, and by which run: its reviewer read only the
        # child's tag, and could take the study for one whose test rows are untouched.
        from mlflow.entities import RunTag

        try:
            client.log_batch(str(parent_run_id), tags=[RunTag("test_looks", str(tags["test_looks"])),
                                                       RunTag("search.latest_reproduce_run", run_id)])
        except Exception as exc:  # the reproduce run holds it all the same
            _log.warning("could not mark the study's run as looked at: %s", redact(exc))
    return run_id


def check_register_name(name: Any) -> None:
    """MLflow's rule for a registered model's name, checked before anything trains: a name it refuses after the
    final model was trained would have cost a look at the test rows for nothing."""
    from search.errors import UserError

    if not isinstance(name, str) or not name.strip() or "/" in name or ":" in name or name.strip(".") == "":
        raise UserError("MLflow's model registry takes a name that is not empty and holds no '/' or ':'",
                        field="--register", expected="a name such as digits-mlp", found=name)


def register(tracking_uri: str, run_id: str, name: str, description: str) -> str:
    """The run's ``model/`` as the next version of registered model ``name`` (made if new); "<name> version <n>".

    After the run is logged: a refusal leaves the run and its model in place, and says so.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from search.errors import StudyError

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="Final models of `search reproduce`.")
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=run_id, description=description)
    except MlflowException as exc:
        raise StudyError(f"the final model was logged (MLflow run {run_id}) but MLflow refused to register it as "
                         f"'{name}': {redact(exc.message)[:300]}", field="--register", found=name) from None
    return f"{name} version {version.version}"


def _run_is_active(client: Any, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:  # MlflowException: not in this tracking store
        return False


def _log_keras_model(client: Any, run_id: str, model: Any, columns: list[str] | None,
                     outputs: list[str] | None, one_hot: dict[str, list[str]], fills: bool,
                     pixel_max: float | None = None, experiment: str | None = None,
                     params: dict[str, Any] | None = None) -> str | None:
    """Saved locally with the Keras flavour, then uploaded with the client: no global MLflow state, and
    explicit requirements, so MLflow never loads the model again to infer them. Returns the id of the
    LoggedModel made of it (None where the store made none)."""
    import tempfile

    import mlflow.keras
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from search.runner.provenance import versions

    installed = versions()
    requirements = [f"{name}=={installed[name]}" for name in ("keras", "tensorflow", "tensorflow-cpu")
                    if name in installed]
    # Rows of a CSV (a pandas frame, or its .to_numpy()) are float64, which a float32 signature refuses;
    # the model casts them to float32 itself. Image pixels keep float32. (MLflow's Keras flavour takes
    # tensor signatures only: the pyfunc form's inputs are set after saving, _pyfunc_inputs.)
    dtype = np.float64 if len(model.input_shape) == 2 else np.float32
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(dtype), (-1, *model.input_shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *model.output_shape[1:]))]))
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / "final_model.keras"
        model.save(keras_file)
        client.log_artifact(run_id, str(keras_file))
        mlflow.keras.save_model(model, str(Path(tmp) / "model"), signature=signature,
                                pip_requirements=requirements)
        outputs = outputs if outputs and len(outputs) == model.output_shape[-1] else None
        named = _pyfunc_inputs(Path(tmp) / "model", signature, columns, model.input_shape, one_hot, outputs)
        _with_own_loader(Path(tmp) / "model", outputs,
                         {"features": columns, "one_hot": one_hot} if named and one_hot else None,
                         refuses_missing=not fills and len(model.input_shape) == 2,
                         pixel_max=pixel_max if len(model.input_shape) > 2 else None)
        client.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
        return _as_logged_model(client, experiment, run_id, Path(tmp) / "model", params or {}) \
            if experiment is not None else None


def _as_logged_model(client: Any, experiment: str, run_id: str, folder: Path, params: dict[str, Any]) -> str | None:
    """The final model as an MLflow 3 LoggedModel too: the experiment's Models tab, where MLflow 3's UI lists
    models with their metrics and source run, was empty (the model was the run's ``model/`` artifacts only,
    which ``runs:/<id>/model`` keeps loading). A store that makes none (an older server) is no failure."""
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    try:
        logged = client.create_logged_model(experiment, name="final_model", source_run_id=run_id,
                                            params={k: param_text(v) for k, v in params.items()},
                                            tags={"search.kind": "reproduce"})
    except Exception as exc:  # MlflowException, or a server without the LoggedModel API
        _log.warning("the final model is the run's model/ artifacts only (no LoggedModel: %s)", redact(exc))
        return None
    try:
        saved = Model.load(str(folder))
        saved.model_id = logged.model_id
        saved.save(str(folder / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(folder))
        client.finalize_logged_model(logged.model_id, "READY")
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, 0)])
    except Exception as exc:
        with contextlib.suppress(Exception):  # the run's model/ is logged: this copy's failure fails nothing
            client.finalize_logged_model(logged.model_id, "FAILED")
        _log.warning("could not log the final model as a LoggedModel: %s", redact(exc))
        return None
    return str(logged.model_id)


def _pyfunc_inputs(folder: Path, signature: Any, columns: list[str] | None, input_shape: tuple,
                   one_hot: dict[str, list[str]], outputs: list[str] | None = None) -> bool:
    """Give the saved model's generic (pyfunc) form a signature of named columns, or none for rows of numbers;
    True where it names them. A one-hot model's pyfunc form names its category columns, not their encoding,
    and a named one its output columns (``outputs``), as the frame it gives has them.

    MLflow's Keras flavour accepts tensor signatures only, and a tensor signature hands a DataFrame to the
    model by position: a frame whose columns came in another order was silently scored on the wrong
    features. With named columns, MLflow's schema check reorders a frame by name and refuses one missing a
    column before the model sees it. The columns are of MLflow's "any" type: as "double", a frame of the
    very CSV the model was trained on was refused for its whole-number columns ("Can not safely convert
    int64 to float64"); the model itself turns numbers of any type into its float32. Rows trained from
    arrays and images have no names to check, and a tensor signature refused arrays of another number type,
    so their pyfunc form checks no inputs: Keras refuses a row of the wrong shape itself. The Keras flavour
    ignores the signature, so ``mlflow.keras.load_model`` still takes plain arrays.
    """
    from mlflow.models import Model, ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # Images and rows trained from arrays have no names to check; a tensor signature refused them as float64
    # (an image / 255.0) or int: their pyfunc form checks no inputs, and Keras refuses a wrong shape itself.
    named = len(input_shape) == 2 and bool(columns) and len(columns or []) == input_shape[1] \
        and len(set(columns or [])) == len(columns or [])
    if named and one_hot:
        encoded = set(_pyfunc_loader.encoded_names(one_hot))
        columns = [c for c in columns or [] if c not in encoded] + list(one_hot)
    saved = Model.load(str(folder))
    saved.signature = ModelSignature(
        inputs=Schema([ColSpec(AnyType(), str(c)) for c in columns or []]) if named else None,
        outputs=Schema([ColSpec("float", str(c)) for c in outputs]) if named and outputs else signature.outputs)
    saved.save(str(folder / "MLmodel"))
    return named


def _with_own_loader(folder: Path, outputs: list[str] | None, encoding: dict[str, Any] | None = None,
                     refuses_missing: bool = False, pixel_max: float | None = None) -> None:
    """Make the saved model's pyfunc form load through search/tracking/_pyfunc_loader.py, shipped in ``code/``
    with a copy of this package's layers.

    MLflow's Keras loader could not load a model with augmentation, DropConnect or a backbone unless this
    package had been imported first (Keras imports only its own packages' layers), and gave a frame of
    columns 0..n-1, the classes' names only in reproduce.json. The Keras flavour is untouched:
    ``mlflow.keras.load_model`` loads the same file. ``encoding``: the features in the model's order and the
    one-hot values of each category column, with which the loader encodes raw category columns.
    ``refuses_missing``: the model has no fill, so a missing value is refused by name (it gave NaN).
    ``pixel_max``: the training images' largest pixel value; images far beyond it are refused.
    """
    import json
    import shutil

    from mlflow.models import Model

    from search.models import layers

    code = folder / "code"
    code.mkdir()
    shutil.copyfile(_pyfunc_loader.__file__, code / "search_pyfunc_loader.py")
    shutil.copyfile(layers.__file__, code / "search_model_layers.py")
    if outputs or encoding or refuses_missing or pixel_max is not None:
        (folder / _pyfunc_loader.OUTPUTS_FILE).write_text(json.dumps(
            {"columns": [str(c) for c in outputs or []], **({"encoding": encoding} if encoding else {}),
             "refuses_missing": refuses_missing, **({"pixel_max": pixel_max} if pixel_max is not None else {})}),
            encoding="utf-8")
    saved = Model.load(str(folder))
    saved.flavors["python_function"].update(loader_module="search_pyfunc_loader", code="code")
    saved.save(str(folder / "MLmodel"))
