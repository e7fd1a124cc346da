"""The PostgreSQL storage cut away mid-trial, through a TCP proxy the test stops and starts again: the worker
waits for it, queues its cut-short trial again and finishes its budget; one that never gets it back ends with
a clear error. PostgreSQL comes from $SEARCH_TEST_POSTGRES_URL; without it these tests skip."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import optuna
import pytest

from conftest import mlflow_store_in
from test_overnight import ROOT, _env

PG_URL = os.environ.get("SEARCH_TEST_POSTGRES_URL")

pytestmark = pytest.mark.skipif(not PG_URL, reason="SEARCH_TEST_POSTGRES_URL is not set (CI sets it; see README)")


class Proxy:
    """Forwards a local port to PostgreSQL; :meth:`stop` cuts every connection and refuses new ones, as a network
    that drops, until :meth:`start` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.port = upstream, 0
        self._server: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self.port, self._server = server.getsockname()[1], server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:  # wakes the thread blocked in accept(): a close alone leaves it accepting on Linux
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed by stop()
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def database():
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"search_outage_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    yield url.render_as_string(hide_password=False), \
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.stop()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _training_trial(con, study: str) -> int | None:
    """The number of a running trial of ``study`` whose reports reached the storage (in batches, every second:
    search/studies/writes.py) and that is far from its last of 600 epochs (cut at its end, a trial is told
    while the storage is away: a case of its own), if there is one."""
    try:
        row = con.execute(
            "SELECT t.number FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
            "WHERE s.study_name = %s AND t.state = 'RUNNING' GROUP BY t.number HAVING max(v.step %% 10000) < 400 "
            "LIMIT 1", (study,)).fetchone()
    except Exception:  # the tables are not made yet
        return None
    return None if row is None else int(row[0])


def test_a_storage_outage_mid_trial_is_waited_out_and_the_trial_run_again(write_space, home, database):
    """The report: with the connection cut for a minute, the worker ended at once (UnboundLocalError from
    Optuna's tell, exit 1) and left its trial RUNNING until someone ran the command again."""
    import psycopg
    from sqlalchemy.engine import make_url

    direct, proxied, proxy = database
    direct_dsn = make_url(direct).set(drivername="postgresql").render_as_string(hide_password=False)
    space = write_space({"study": {"name": "outage", "n_trials": 2, "baseline": False},
                         "validation": {"scheme": "holdout", "fraction": 0.3},
                         "train": {"epochs": 600, "batch_size": 16, "early_stopping": 0}})
    mlflow_store_in(home)
    proc = subprocess.Popen([sys.executable, "-m", "search", "run", str(space), "--home", str(home),
                             "--storage", proxied, "--storage-patience", "5m"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        with psycopg.connect(direct_dsn, autocommit=True) as con:
            cut = None
            while cut is None:  # a trial mid-training, read with one connection every 50 ms: a trial of
                # about a second was over before a load_study under load (a new engine each time) saw it
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                cut = _training_trial(con, "outage")
                time.sleep(0.05)
        proxy.stop()
        time.sleep(4)
        proxy.start()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "storage unreachable while running trial" in err and "retrying for up to 5 min" in err, err
    assert f"trial {cut} was cut short by the storage outage: marked failed and queued again" in err, err
    assert "Traceback" not in err and "UnboundLocalError" not in err, err

    study = optuna.load_study(study_name="outage", storage=direct)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) == 2
    lost = study.trials[cut]
    assert lost.state.name == "FAIL" and lost.user_attrs["failure"] == "lost_storage", lost.user_attrs
    again = [t for t in study.trials if t.user_attrs.get("retry_of") == cut]
    assert len(again) == 1 and again[0].params == lost.params and again[0].state.name in ("COMPLETE", "PRUNED")
    with sqlite3.connect(home / "mlflow.db") as con:  # the cut-short trial's run is closed, not left running
        statuses = dict(con.execute("SELECT name, status FROM runs").fetchall())
    assert "RUNNING" not in statuses.values(), statuses


def test_a_storage_that_stays_away_ends_the_wait_with_one_clear_error(database, capsys):
    from search.errors import StoreTrouble
    from search.runner import _outage
    from search.studies import lifecycle

    _, proxied, proxy = database
    storage = lifecycle.make_storage(proxied, heartbeat=30)
    storage.get_all_studies()
    proxy.stop()
    with pytest.raises(Exception) as cut:
        storage.get_all_studies()
    assert _outage.storage_error(cut.value) is not None

    started = time.monotonic()
    with pytest.raises(StoreTrouble) as failed:
        _outage.wait_for_storage(lambda: _outage.probe(storage), cut.value, "running trial 4", patience=2)
    assert 2 <= time.monotonic() - started < 10
    assert failed.value.exit_code == 1  # not 2: nothing is wrong with the input
    message = str(failed.value)
    assert message.startswith("field '--storage': the Optuna storage did not answer for 2 s") and "\n" not in message
    assert "run the same command" in message
    err = capsys.readouterr().err
    assert "storage unreachable while running trial 4 (OperationalError: " in err and "retrying for up to 2 s" in err
    proxy.start()
    assert _outage.wait_for_storage(lambda: _outage.probe(storage), cut.value, "running trial 4", patience=30)
