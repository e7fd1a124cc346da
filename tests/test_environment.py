"""The environment in real processes: two runs at once on a fresh home, library names planted beside the
space file and in the working folder, every command on a two-objective study, and a password-bearing
PostgreSQL URL that must not reach any store or file.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import TINY, merge, run_cli
from search.cli import UNEXPECTED

ROOT = Path(__file__).resolve().parents[1]
FAST = {"validation": {"scheme": "kfold", "k": 2}, "train": {"epochs": 1}}


def _space(folder: Path, overrides: dict, name: str = "space.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(merge(TINY, merge(FAST, overrides)), sort_keys=False))
    return path


def _search(*args: object, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ""}  # as a user runs it: the package from the venv, not ../tests,
    env.pop("SEARCH_FIGURES", None)  # and the figures drawn (conftest.py turns them off for the others)
    return subprocess.Popen([sys.executable, "-m", "search", *map(str, args)], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_runs_started_at_once_on_a_fresh_home_both_finish(tmp_path: Path) -> None:
    """MLflow creates its SQLite schema on first use; two processes doing it at once used to collide."""
    space = _space(tmp_path, {"study": {"name": "race", "n_trials": 2}})
    home = tmp_path / "fresh"
    procs = [_search("run", space, "--home", home, "--n-trials", "1", "--quiet", cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
        assert "Traceback" not in out and UNEXPECTED not in out
    study = optuna.load_study(study_name="race", storage=f"sqlite:///{home / 'optuna.db'}")
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE"]
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(f"sqlite:///{home / 'mlflow.db'}").search_runs(
        [MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_experiment_by_name("race").experiment_id])
    assert sorted(r.data.tags.get("search.kind") for r in runs) == ["study", "trial", "trial"]
    # MLflow's own Default experiment pointed at <working folder>/mlruns/0, outside this home.
    default = MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_experiment("0")
    assert default.artifact_location == (home / "artifacts" / "0").resolve().as_uri(), default.artifact_location


POISON = "raise RuntimeError('POISONED {name}: this file was imported in place of the library')\n"
BUILDER = '''\
import numpy as np
import pandas as pd
import sklearn
import yaml
import keras

REGULARIZERS = {"note": "read through sys.modules[build.__module__]"}


def build(settings, input_shape, n_outputs):
    assert np.__file__.endswith("__init__.py") and hasattr(pd, "DataFrame") and hasattr(sklearn, "__version__")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(int(settings.get("width", 4)), activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
'''


def test_library_names_beside_the_space_or_in_the_working_folder_are_never_imported(tmp_path: Path) -> None:
    project, cwd = tmp_path / "project", tmp_path / "work"
    for folder in (project, cwd):
        folder.mkdir()
        for name in ("numpy", "pandas", "sklearn", "yaml", "keras", "optuna", "mlflow"):
            (folder / f"{name}.py").write_text(POISON.format(name=name))
    (project / "my_models.py").write_text(BUILDER)
    space = _space(project, {"study": {"name": "own", "n_trials": 1},
                             "model": {"family": "python:my_models:build", "width": {"choice": [3, 5]},
                                       "layers": None, "units": None, "dropout": None}})
    proc = _search("run", space, "--home", tmp_path / "home", "--quiet", cwd=cwd)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "POISONED" not in out and "Traceback" not in out
    assert not [p for p in sys.path if p and Path(p).resolve() in (project.resolve(), cwd.resolve())]

    # In this process too: the builder is its own module, found by path, and nothing was put on sys.path.
    from search.models import load_custom_builder

    before = list(sys.path)
    build = load_custom_builder("python:my_models:build", project)
    assert sys.path == before
    assert build.__module__.startswith("_search_user_builder_")
    assert sys.modules[build.__module__].REGULARIZERS["note"].startswith("read through")
    assert Path(sys.modules[build.__module__].__file__) == (project / "my_models.py").resolve()


def test_every_command_works_on_a_two_objective_study(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from search.studies.lifecycle import pick_trial

    space = _space(tmp_path, {"study": {"name": "pair", "n_trials": 2, "objectives": ["val_loss", "params"]},
                              "model": {"units": {"choice": [2, 16]}}})
    home = tmp_path / "home"
    assert run_cli("run", space, "--home", home, "--quiet") == 0
    study = optuna.load_study(study_name="pair", storage=f"sqlite:///{home / 'optuna.db'}")
    picked = pick_trial(study, "auto")
    capsys.readouterr()
    for argv in (["status", "pair"], ["best", "pair"], ["best", "pair", "--export", tmp_path / "pick.yaml"],
                 ["report", "pair", "--out", tmp_path / "pair.html"], ["reproduce", "pair", "--epochs", "1"],
                 ["ablate", "pair"]):
        code = run_cli(*argv, "--home", home)
        out, err = capsys.readouterr()
        assert code == 0, (argv, out, err)
        assert "Traceback" not in out + err and UNEXPECTED not in out + err
        if argv[0] == "reproduce":  # the study's own pick, not Optuna's best_trial
            assert f"reproducing trial {picked.number} of study 'pair'" in out
        if argv[0] == "ablate":
            assert f"ablation of trial {picked.number}" in out or f"(trial {picked.number}, val_loss" in out
    exported = (tmp_path / "pick.yaml").read_text()
    assert f"# Trial {picked.number} of study 'pair'" in exported
    assert yaml.safe_load(exported)["study"]["seed_trial"] == picked.number
    assert (tmp_path / "pair.html").stat().st_size > 1000
    page = (tmp_path / "pair.html").read_text()
    assert "<h2>Pareto front</h2>" in page and f"{picked.number}  " in page and "← one_se pick" in page


PG_URL = os.environ.get("SEARCH_TEST_POSTGRES_URL")


@pytest.mark.skipif(not PG_URL, reason="SEARCH_TEST_POSTGRES_URL is not set (CI sets it; see README)")
def test_a_database_password_reaches_no_store_and_no_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Trust auth accepts any password, so the URL can carry one that the run must keep to itself."""
    import psycopg
    from sqlalchemy.engine import make_url

    password = f"s3/cret-{uuid.uuid4().hex[:10]}"  # a slash, written raw: SQLAlchemy accepts it, a pattern missed it
    name = f"search_secret_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    pg = make_url(PG_URL)
    url = f"postgresql://{pg.username or 'postgres'}:{password}@{pg.host}:{pg.port or 5432}/{name}"
    assert make_url(url).password == password
    try:
        space = _space(tmp_path, {"study": {"name": "secret", "n_trials": 1}})
        home = tmp_path / "home"
        assert run_cli("run", space, "--home", home, "--storage", url) == 0
        assert run_cli("best", "secret", "--storage", url, "--home", home, "--export", home / "best.yaml") == 0
        assert run_cli("report", "secret", "--storage", url, "--home", home, "--out", home / "r.html") == 0
        printed = "".join(capsys.readouterr())
        assert password not in printed
        assert "wrote" in printed and "val_loss" in printed

        leaks = [p for p in home.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
        assert not leaks, leaks  # mlflow.db (params, tags, notes), artifacts, checkpoints, report, export
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("secret").experiment_id])
        assert runs and any("storage" in r.data.tags for r in runs)
        for r in runs:
            assert password not in repr(r.data.params) + repr(r.data.tags)
        study = optuna.load_study(study_name="secret", storage=url)
        attrs = [study.user_attrs] + [(t.user_attrs, t.system_attrs, t.params) for t in study.trials]
        assert password not in repr(attrs)
        with psycopg.connect(make_url(url).set(password=None).render_as_string(), autocommit=True) as db:
            tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            for table in tables:  # every row of every table of the Optuna storage, as text
                rows = db.execute(f'SELECT t::text FROM "{table}" t').fetchall()
                assert not [r for r in rows if password in r[0]], table
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_REPORTER = """
import sys
if sys.argv[1] == "mlflow-first":
    import mlflow
    from mlflow.telemetry.client import get_telemetry_client
    assert get_telemetry_client() is not None, "premise: MLflow starts its reporter on import"
    from search import tracking
    tracking.quiet_mlflow()  # what every tracker does when it is made
else:
    import search, mlflow
    from mlflow.telemetry.client import get_telemetry_client
print("reporter:", get_telemetry_client())
"""


@pytest.mark.parametrize("order", ["search-first", "mlflow-first"])
def test_mlflow_usage_reporting_is_off_in_a_script_that_uses_the_api(order: str) -> None:
    """MLflow 3 sends usage records to its servers unless told not to; a search must not reach the network."""
    quiet = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS")
    env = {k: v for k, v in os.environ.items() if k not in quiet}  # as on a user's machine
    done = subprocess.run([sys.executable, "-c", _REPORTER, order], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reporter: None" in done.stdout, done.stdout


def test_the_program_leaves_at_once_yet_a_profiler_still_gets_its_numbers(write_space, tmp_path):
    """The command skips the interpreter's teardown (search/cli/_exit.py); `python -m cProfile -o` writes its
    file after the program returns, which that early exit would lose, so under a profiler it exits as usual."""
    space, stats = write_space(), tmp_path / "check.prof"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "search", "check", str(space)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0 and "pass every check" in done.stdout, done.stderr
    import pstats

    assert any("search/cli" in key[0] for key in pstats.Stats(str(stats)).stats), "the profile has no search calls"


def test_a_tracking_uri_of_a_server_that_is_not_mlflow_is_refused_before_anything_is_stored(tmp_path):
    """optuna-dashboard's port given as --tracking-uri: an 'unexpected failure' with a page of HTML in it, after
    the study was stored."""
    import http.server
    import threading

    from search import stores
    from search.errors import StudyError

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(StudyError, match=r"answers, but not as an MLflow tracking server \(its REST API gave "
                                             r"HTTP 404, text/html\)") as refused:
            stores.check_url(url, "--tracking-uri", stores.TRACKING)
        assert refused.value.field == "--tracking-uri"
    finally:
        server.shutdown()


def test_mlflows_http_retries_are_bounded_unless_the_user_set_them():
    """A tracking server gone down mid-run cost minutes a request (7 tries, waits doubling from 2 s)."""
    code = ("import os, search, mlflow.environment_variables as e; "
            "print(e.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), e.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(), "
            "e.MLFLOW_HTTP_REQUEST_TIMEOUT.get())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["4", "1", "30"], done.stderr[-500:]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"})
    assert done.stdout.split() == ["9", "1", "30"], done.stderr[-500:]
