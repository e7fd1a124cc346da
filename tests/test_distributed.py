"""Many workers, one study: real PostgreSQL storage and a real `mlflow server` on loopback.

PostgreSQL comes from $SEARCH_TEST_POSTGRES_URL (set by .ci/run); without it these tests skip.
Each worker acts as a separate host through SEARCH_HOSTNAME, so a dead one is only found by heartbeat.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("SEARCH_TEST_POSTGRES_URL")
PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"  # trust auth accepts it; it must never show up anywhere

pytestmark = pytest.mark.skipif(not PG_URL, reason="SEARCH_TEST_POSTGRES_URL is not set (CI sets it; see README)")


def _database_url(name: str, password: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL).set(database=name)
    if password:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def databases():
    import psycopg

    names = {"optuna": f"search_optuna_{uuid.uuid4().hex[:8]}", "mlflow": f"search_mlflow_{uuid.uuid4().hex[:8]}"}
    admin = psycopg.connect(PG_URL, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{names["optuna"]}"')
        cur.execute(f'CREATE DATABASE "{names["mlflow"]}" TEMPLATE "{_migrated_mlflow_template(admin)}"')
    yield {k: _database_url(v) for k, v in names.items()} | {"optuna_pw": _database_url(names["optuna"], PASSWORD)}
    with admin.cursor() as cur:
        for name in names.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _migrated_mlflow_template(admin) -> str:
    """A PostgreSQL database holding MLflow's schema, made once per MLflow version on this server and copied
    (CREATE DATABASE ... TEMPLATE) for each module: its migrations took the server 12 s of the fixture each
    time. A new database's own migrations are tested by test_two_hosts_starting_on_a_new_mlflow_database."""
    import mlflow

    template = "search_tests_mlflow_" + mlflow.__version__.replace(".", "_")
    with admin.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(7316)")  # one xdist worker makes it, any other waits
        try:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if cur.fetchone() is None:
                making = template + "_making"
                cur.execute(f'DROP DATABASE IF EXISTS "{making}" WITH (FORCE)')  # left by a run cut short
                cur.execute(f'CREATE DATABASE "{making}"')
                code = ("import sys\nfrom mlflow.tracking import MlflowClient\n"
                        "MlflowClient(tracking_uri=sys.argv[1]).search_experiments()")
                subprocess.run([sys.executable, "-c", code, _database_url(making)], check=True, capture_output=True,
                               timeout=300)
                cur.execute(f'ALTER DATABASE "{making}" RENAME TO "{template}"')
        finally:
            cur.execute("SELECT pg_advisory_unlock(7316)")
    return template


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory):
    artifacts = tmp_path_factory.mktemp("server-artifacts")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("server-log") / "mlflow.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", databases["mlflow"],
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            # No job runner (GenAI jobs no worker starts): its 7 huey consumer processes cost
                            # 25 s of CPU beside the workers, and the server answered later.
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                                 "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
        time.sleep(0.5)
    yield {"url": url, "artifacts": artifacts}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _env(host: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), SEARCH_HOSTNAME=host, TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3", SEARCH_FIGURES="off")  # test_review draws
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _worker(space: Path, host: str, storage: str, tracking: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--storage", storage,
                             "--tracking-uri", tracking, "--home", str(space.parent / f"home-{host}"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(host))


def _command_lines_while(procs: list[subprocess.Popen]) -> dict[int, str]:
    """pid → command lines (one per line) of every process started under ``procs``, read from /proc until they all
    end. Read again each pass: a worker just forked still shows its parent's line until it execs its own."""
    seen: dict[int, str] = {}

    def watch() -> None:
        while any(p.poll() is None for p in procs):
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                    pid = int(entry.name)
                    if " -m search " in line and line not in seen.get(pid, ""):
                        seen[pid] = seen.get(pid, "") + line + "\n"
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    return seen


def _space(tmp_path: Path, name: str, **study) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "study": {"name": name, "seed": 0, "ablation": False, **study},
        "data": {"source": "sklearn:iris"},
        "validation": {"scheme": "holdout", "fraction": 0.3},
        "model": {"family": "mlp", "layers": 1, "units": {"int": [4, 32]}, "dropout": {"float": [0.0, 0.5]}},
        "train": {"epochs": 3, "batch_size": 16, "early_stopping": 0},
    }))
    return path


def _runs(tracking: str, name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(name)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_four_workers_on_two_hosts_share_one_study(databases, mlflow_server, tmp_path):
    space = _space(tmp_path, "fleet", n_trials=6, keep_checkpoints=2)
    storage, tracking = databases["optuna_pw"], mlflow_server["url"]
    hosts = [_worker(space, host, storage, tracking, "--workers", "2") for host in ("host-a", "host-b")]
    seen = _command_lines_while(hosts)
    outputs = [p.communicate(timeout=400) for p in hosts]
    for p, (out, err) in zip(hosts, outputs):
        assert p.returncode == 0, err

    study = optuna.load_study(study_name="fleet", storage=databases["optuna"])
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 6
    assert {t.user_attrs["worker"]["host"] for t in finished} == {"host-a", "host-b"}

    client, runs = _runs(tracking, "fleet")
    trial_runs = {int(r.data.tags["optuna.trial_number"]): r for r in runs if r.data.tags.get("search.kind") == "trial"}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parents = [r for r in runs if r.data.tags.get("search.kind") == "study"]
    assert len(parents) == 1, "two hosts starting at once must share one parent run"
    assert {r.data.tags.get("mlflow.parentRunId") for r in trial_runs.values()} == {parents[0].info.run_id}
    for t in finished:
        assert trial_runs[t.number].info.status == "FINISHED"
        assert trial_runs[t.number].data.tags["pruned"] == str(t.state.name == "PRUNED").lower()

    # The best trials' split models sit in the server's artifact store and come back through it.
    best = study.best_trial
    local = client.download_artifacts(trial_runs[best.number].info.run_id, "checkpoints", str(tmp_path / "dl"))
    assert sorted(p.name for p in Path(local).iterdir()) == ["split_00.keras"]
    stored = [r for r in runs if r.data.tags.get("search.checkpoints") == "stored"]
    table = sorted((t.number, t.state.name, t.values, trial_runs[t.number].data.tags.get("search.checkpoints"),
                    trial_runs[t.number].data.tags.get("search.checkpoints_note")) for t in finished)
    assert len(stored) == 2, f"only the best keep_checkpoints trials keep models on the server: {table}"
    assert {int(r.data.tags["optuna.trial_number"]) for r in stored} == \
        {t.number for t in sorted((t for t in finished if t.state.name == "COMPLETE"),
                                  key=lambda t: t.values[0])[:2]}, \
        table
    for number, run in trial_runs.items():  # "removed" means gone from the server's store, not only tagged
        if run.data.tags.get("search.checkpoints") == "removed":
            assert "search.checkpoints_note" not in run.data.tags, table
            assert client.list_artifacts(run.info.run_id, "checkpoints") == [], number

    # The password never reaches MLflow or any output.
    texts = [out + err for out, err in outputs]
    for r in runs:
        texts += list(r.data.params.values()) + list(r.data.tags.values())
        for artifact in ("space.yaml", "config/resolved.yaml"):
            try:
                texts.append(Path(client.download_artifacts(r.info.run_id, artifact, str(tmp_path / "a"))).read_text())
            except Exception:
                pass
    assert any("***@" in t for t in texts), "the redacted storage URL should be recorded"
    assert not [t for t in texts if PASSWORD in t]
    # Nor a worker's command line, which any user of the machine reads (the hosts' own are the test's doing).
    # (A worker's pid first shows its host's line, between fork and exec: only its own lines are its.)
    workers = {pid: [line for line in lines.splitlines() if "--worker-index" in line] for pid, lines in seen.items()}
    workers = {pid: lines for pid, lines in workers.items() if lines}
    assert len(workers) >= 4 and not [line for lines in workers.values() for line in lines if PASSWORD in line], \
        workers


def test_a_killed_worker_is_failed_by_heartbeat_and_its_trial_retried(databases, mlflow_server, tmp_path):
    space = _space(tmp_path, "heartbeat", n_trials=3, baseline=False)
    storage, tracking = databases["optuna"], mlflow_server["url"]
    slow = yaml.safe_load(space.read_text())
    slow["train"]["epochs"] = 200  # so the first worker is surely mid-trial when it dies
    slow["validation"] = {"scheme": "kfold", "k": 3}
    space.write_text(yaml.safe_dump(slow))
    victim_proc = _worker(space, "host-a", storage, tracking, "--heartbeat", "2")
    deadline = time.monotonic() + 180
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and victim_proc.poll() is None
        try:
            running = optuna.load_study(study_name="heartbeat", storage=storage).get_trials(
                states=(optuna.trial.TrialState.RUNNING,))
            # Sampled already: killed before it has settings, a trial has nothing to retry.
            victim = next((t for t in running if t.params), None)
        except KeyError:
            pass
        time.sleep(0.5)
    victim_proc.send_signal(signal.SIGKILL)
    victim_proc.wait()

    fixed = yaml.safe_load(space.read_text())
    fixed["train"]["epochs"] = 3
    fixed_path = tmp_path / "heartbeat-b.yaml"
    fixed_path.write_text(yaml.safe_dump(fixed))
    rescuer = _worker(fixed_path, "host-b", storage, tracking, "--heartbeat", "2")
    out, err = rescuer.communicate(timeout=300)
    assert rescuer.returncode == 0, err

    study = optuna.load_study(study_name="heartbeat", storage=storage)
    assert study.trials[victim.number].state.name == "FAIL"
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retried) == 1 and retried[0].params == study.trials[victim.number].params != {}
    # With the seeds it trained with, as a retry after a dead process on this host (Optuna's own retry kept none).
    assert retried[0].user_attrs["seed_trial"] == victim.number
    assert retried[0].state.name == "COMPLETE" and retried[0].user_attrs["worker"]["host"] == "host-b"
    _, runs = _runs(tracking, "heartbeat")
    victim_run = [r for r in runs if r.data.tags.get("optuna.trial_number") == str(victim.number)]
    assert victim_run and victim_run[0].info.status == "FAILED"


def test_a_worker_with_different_data_is_refused(databases, mlflow_server, tmp_path):
    rows = "a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(60))
    (tmp_path / "rows.csv").write_text(rows)
    space = tmp_path / "drift.yaml"
    space.write_text(yaml.safe_dump({
        "study": {"name": "drift", "n_trials": 1, "ablation": False}, "data": {"source": f"csv:{tmp_path / 'rows.csv'}",
                                                            "target": "label"},
        "validation": {"scheme": "holdout"}, "model": {"family": "mlp", "units": 4},
        "train": {"epochs": 1}}))
    first = _worker(space, "host-a", databases["optuna"], mlflow_server["url"])
    assert first.wait(timeout=300) == 0
    (tmp_path / "rows.csv").write_text(rows.replace("\n5,5,1\n", "\n5,6,1\n"))
    second = _worker(space, "host-b", databases["optuna"], mlflow_server["url"])
    out, err = second.communicate(timeout=120)
    assert second.returncode == 2
    assert "data_fingerprint" in err and "different data" in err and "Traceback" not in err


def test_two_hosts_starting_on_a_new_mlflow_database_both_get_its_schema(tmp_path):
    """Both ran MLflow's migrations on a new PostgreSQL tracking store, and the loser ended with 'duplicate key
    value violates unique constraint' (the home folder's lock holds on one machine only)."""
    import psycopg

    name = f"search_race_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        code = ("import sys\nfrom search.tracking.tracker import _client_once_its_schema_is_made\n"
                "print(len(_client_once_its_schema_is_made(sys.argv[1]).search_experiments()))")
        hosts = [subprocess.Popen([sys.executable, "-c", code, _database_url(name)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=_env(host)) for host in ("host-a", "host-b")]
        done = [p.communicate(timeout=300) for p in hosts]
        assert [p.returncode for p in hosts] == [0, 0], [err[-800:] for _, err in done]
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
