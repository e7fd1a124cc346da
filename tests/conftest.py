"""Shared fixtures: tiny space files, a private store folder per test, TensorFlow kept to one thread."""
from __future__ import annotations

import contextlib
import copy
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("SEARCH_STORAGE", None)
# No PNG figures in the tests' runs, in this process and its children (a drawing process and the study figures
# cost each process about 2 s of CPU, each trial 50 ms): the tests of figures ask for them (--figures on,
# figures=True), and test_review.py's runs draw them all.
os.environ["SEARCH_FIGURES"] = "off"

# A study on iris that finishes in seconds: 3 folds, 3 epochs, 8 units.
TINY: dict[str, Any] = {
    "study": {"name": "tiny", "seed": 0, "n_trials": 2, "ablation": False},
    "data": {"source": "sklearn:iris", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 3},
    "model": {"family": "mlp", "layers": 1, "units": 8, "dropout": {"float": [0.0, 0.5]}},
    "train": {"epochs": 3, "batch_size": 32, "early_stopping": 0, "learning_rate": 0.01},
}


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; a value of None removes the key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and not _is_dist(value):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_dist(value: dict[str, Any]) -> bool:
    return any(k in value for k in ("float", "int", "choice"))


@pytest.fixture
def write_space(tmp_path: Path):
    """``write_space(overrides, name="space.yaml")`` → path of a space file based on TINY."""

    def _write(overrides: dict[str, Any] | None = None, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merge(TINY, overrides or {}), sort_keys=False))
        return path

    return _write


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A private stores folder (Optuna SQLite, MLflow SQLite, artifacts, checkpoints)."""
    return tmp_path / "mlruns"


# The empty store the first new MLflow SQLite store of this test process became, copied (set by the patch below).
_MLFLOW_TEMPLATE: list[str] = []


def _new_mlflow_stores_from_a_template() -> None:
    """Give each new MLflow SQLite store of this test process a copy of one store MLflow made here.

    MLflow makes a new store by running its schema migrations one by one: 1.2-1.5 s per store on 2 cores,
    paid by hundreds of tests that each start in a fresh folder. The first new store of the process is made
    by MLflow itself; later ones get a byte-level copy of it (SQLite's backup), which is the store those
    migrations give. Stores made by subprocesses (``search run`` as a command) still run them, unless the
    test hands them one first (:func:`mlflow_store_in`).
    """
    import mlflow.store.db.utils as db_utils

    made_by_mlflow = db_utils._initialize_tables

    def initialize(engine: Any) -> None:
        database = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or not database or database.startswith(("file:", ":memory:")):
            made_by_mlflow(engine)
            return
        if not _MLFLOW_TEMPLATE:
            made_by_mlflow(engine)
            engine.dispose()
            copy = Path(tempfile.mkdtemp(prefix="search-tests-mlflow-")) / "mlflow.db"
            _sqlite_copy(database, copy)
            _MLFLOW_TEMPLATE.append(str(copy))
            return
        _sqlite_copy(_MLFLOW_TEMPLATE[0], database)

    db_utils._initialize_tables = initialize


def _sqlite_copy(source: str | Path, target: str | Path) -> None:
    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


_new_mlflow_stores_from_a_template()


def mlflow_store_in(home: Path) -> Path:
    """Put an empty MLflow store, as MLflow's migrations make it, at ``<home>/mlflow.db`` and return ``home``.

    For a ``search run`` started as a command on a new home, whose own migrations would cost it 1.3 s of CPU
    beside the test's; tests about a home's first run (test_environment.py) leave the home empty.
    """
    if not _MLFLOW_TEMPLATE:
        from mlflow.tracking import MlflowClient

        made = Path(tempfile.mkdtemp(prefix="search-tests-mlflow-")) / "first.db"
        MlflowClient(tracking_uri=f"sqlite:///{made}").search_experiments()  # made by MLflow, copied above
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "mlflow.db").exists():
        _sqlite_copy(_MLFLOW_TEMPLATE[0], home / "mlflow.db")
    return home


def run_cli(*args: str) -> int:
    from search.cli import main

    return main([str(a) for a in args])


# The longest test files (their summed durations on commit 0f82d1b, 2 cores: 167 s down to 24 s), run first.
# pytest-xdist's --dist loadfile hands files out in collection order once its own reordering (most tests
# first, which put these multi-process files last) is off: a long file left for last kept one core busy
# alone for half a minute; started first, the short files fill in beside them.
_LONGEST_FIRST = ["test_distributed.py", "test_worker_stops.py", "test_overnight.py", "test_interruptions.py",
                  "test_reproduce.py", "test_environment.py", "test_fused.py", "test_transfer.py",
                  "test_honest_search.py", "test_api_strangers.py", "test_review.py", "test_continuing.py",
                  "test_worker_deaths.py", "test_end_to_end.py", "test_ui.py", "test_trials.py", "test_images.py",
                  "test_pruning.py", "test_api.py", "test_workflow.py", "test_code_quality.py"]


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist 3.6 and later
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order is kept
