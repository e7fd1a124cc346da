"""Where MLflow keeps a study: the tracking URI, the experiment, stored checkpoints, MLflow's own noise."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

PARENT_RUN_ATTR = "mlflow_parent_run_id"
CHECKPOINT_ARTIFACTS = "checkpoints"
RUN_ID_ATTR = "mlflow_run_id"
# MLflow 3's UI opens an experiment in GenAI mode (traces) unless it is marked as model training.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# A view of the runs table stored with the experiment (MLflow's "shared view"): `search ui` opens it,
# so trials come ranked by validation loss with the reviewer's columns shown, without configuration.
VIEW_KEY = "search"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
_log = logging.getLogger("search")


def review_view(metric: str, task: str = "") -> str:
    """The runs-table view: sorted by ``val_loss_mean``, the columns a reviewer reads first (a binary task's
    ROC AUC too); the test columns last, apart from the validation ones, filled on the reproduce runs only."""
    auc = ("val_roc_auc_mean",) if task == "binary" else ()
    columns = [f"metrics.`{m}`" for m in ("val_loss_mean", "val_loss_std", f"val_{metric}_mean", *auc,
                                          "penalty_mean", "gap_mean")]
    columns += ["tags.`fit`", "tags.`still_improving`", "tags.`pruned`", "metrics.`test_loss`",
                f"metrics.`test_{metric}`", "tags.`test_looks`", "attributes.`Duration`"]
    return json.dumps({"orderByKey": "metrics.`val_loss_mean`", "orderByAsc": True, "selectedColumns": columns,
                       "columnOrder": columns})


def default_tracking_uri(home: Path) -> str:
    return f"sqlite:///{(Path(home) / 'mlflow.db').resolve()}"


def new_local_store(uri: str, home: Path) -> None:
    """Create a new SQLite tracking store whose ``Default`` experiment keeps its artifacts in the home.

    MLflow gives the ``Default`` experiment of a store it creates the working directory's ``mlruns/0``:
    a run logged without an experiment (a notebook's own ``mlflow.start_run`` on this store) would write
    into whatever folder the command was started from, beside or inside another home.

    MLflow makes a store by running its every schema migration, about 1.3 s of CPU; a process that makes
    several (a notebook's studies in new homes, the test suite) makes the first that way, in a folder of its
    own, and the others from that one's schema (:func:`_from_template`), in a few milliseconds.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from search.stores import sqlite_path

    artifacts = (Path(home) / "artifacts").resolve().as_uri()
    path = sqlite_path(uri)
    if path is not None:
        try:
            if _from_template(path, artifacts):
                return
        except Exception as exc:  # sqlite3.Error, OSError, or an MLflow that made the template otherwise
            _log.debug("the tracking store is made by MLflow's migrations: %s", exc)
    SqlAlchemyStore(uri, artifacts)


_TEMPLATE: dict[str, list[str]] = {}  # MLflow's version -> a new store's SQL, made once per process


def _template() -> list[str]:
    import sqlite3
    import tempfile
    from contextlib import closing

    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    if mlflow.__version__ not in _TEMPLATE:
        with tempfile.TemporaryDirectory(prefix="search-store-") as tmp:
            made = SqlAlchemyStore(f"sqlite:///{Path(tmp) / 'mlflow.db'}", Path(tmp).as_uri())
            made.engine.dispose()
            with closing(sqlite3.connect(Path(tmp) / "mlflow.db")) as conn:
                _TEMPLATE[mlflow.__version__] = [s for s in conn.iterdump()
                                                 if s not in ("BEGIN TRANSACTION;", "COMMIT;")]
    return _TEMPLATE[mlflow.__version__]


def _from_template(path: Path, artifacts: str) -> bool:
    """Write a new store's schema and rows into the SQLite file ``path`` (made, empty, a moment ago), with its
    ``Default`` experiment's artifacts in ``artifacts``; in one transaction, and only where the file is still
    empty: another process that made the store first keeps it. True where the store is there now."""
    import contextlib
    import sqlite3
    import time
    from contextlib import closing

    statements = _template()
    with closing(sqlite3.connect(path, timeout=60, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]:
                conn.execute("ROLLBACK")
                return True
            for statement in statements:
                conn.execute(statement)
            now = int(time.time() * 1000)
            updated = conn.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                                   "last_update_time = ? WHERE experiment_id = 0", (f"{artifacts}/0", now, now))
            if updated.rowcount != 1:
                raise sqlite3.DatabaseError("the template has no Default experiment")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # not begun, or already undone by SQLite
                conn.execute("ROLLBACK")
            raise
    return True


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def experiment_id(client: Any, uri: str, home: Path, name: str) -> str:
    """The study's experiment, created (artifacts under ``<home>/artifacts`` for a local store) or restored."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made by an older version
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if not is_server(uri) and not uri.startswith("databricks"):
        location = (Path(home) / "artifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another process created it a moment ago (RESOURCE_ALREADY_EXISTS)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def fetch_checkpoint(tracking_uri: str, run_id: str, dest: Path) -> bool:
    """Download one split model a worker stored on the tracking server to ``dest``; False if it has none."""
    import shutil
    import tempfile

    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = MlflowClient(tracking_uri=tracking_uri).download_artifacts(
                run_id, f"{CHECKPOINT_ARTIFACTS}/{dest.name}", tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(local, dest)
        return True
    except Exception:  # not stored (fell out of the top K) or unreachable: the caller retrains
        return False




def end_run(client: Any, run_id: str, status: str, name: str) -> None:
    """Rename and close a run in one write to the store.

    MLflow's ``update_run`` reads the run back before writing its name, and ``set_terminated`` writes
    again: three round trips per trial on the side thread, whose Python time the training thread shares.
    """
    import time

    from mlflow.entities import RunStatus

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if store is None or not hasattr(store, "update_run_info"):  # an MLflow whose client moved: its own calls
        client.update_run(run_id, name=name)
        client.set_terminated(run_id, status=status)
        return
    store.update_run_info(run_id, run_status=RunStatus.from_string(status), end_time=int(time.time() * 1000),
                          run_name=name)


def quiet_mlflow() -> None:
    import mlflow  # noqa: F401  first: its import configures its loggers at INFO again (a new home's schema lines)

    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _no_telemetry()


def _no_telemetry() -> None:
    """Drop MLflow's usage reporter where MLflow was imported before ``search`` turned it off (search/__init__.py)."""
    try:
        from mlflow.telemetry.client import get_telemetry_client, set_telemetry_client
        from mlflow.telemetry.utils import is_telemetry_disabled
    except ImportError:  # an MLflow without one
        return
    # A user who set MLFLOW_DISABLE_TELEMETRY=false keeps the reporter they asked for.
    if get_telemetry_client() is not None and is_telemetry_disabled():
        set_telemetry_client()  # with the variable set, it drops the reporter



def forget_artifact_repo(run_id: str) -> None:
    """Drop MLflow's cached artifact repository of a finished trial run.

    MLflow keeps one per run (up to 1024, each with its own upload queue and thread pool); a finished
    trial's run gets no more artifacts in the usual case, and MLflow makes a new one if it does.
    """
    try:
        from mlflow.tracking._tracking_service import utils
    except ImportError:
        return
    cache = getattr(utils, "_artifact_repos_cache", None)
    if isinstance(cache, dict):
        cache.pop(run_id, None)

