"""``search ui``: the MLflow UI on the project's tracking store, opened on a study's runs.

The server runs as a child in its own process group, so that a signal to ``search ui`` reaches the
server and every worker it started, and nothing is left serving once ``search ui`` has returned.
The direct URL is printed only once the server answers: a URL that does not load yet looks broken.
The server's output is relayed through ``search ui``'s standard error, and what it says after it was told to
stop is held back: a Ctrl-C while the browser's requests are in flight made uvicorn print the tracebacks of the
requests it cancelled. Held-back lines are shown only where the server then ends abnormally.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
import urllib.request
from typing import Any, TextIO

from search._redact import redact
from search.errors import StudyError
from search.tracking import VIEW_KEY

# MLflow 3.17's UI picks GenAI or model-training mode from this URL parameter (else from what the
# browser last used, GenAI by default); the experiment's mlflow.experimentKind tag is not consulted.
_MODE = "workflowType=machine_learning"
# The view `search run` stores with the experiment: trials ranked by validation loss, its columns shown.
_VIEW = f"viewStateShareKey={VIEW_KEY}"
# The server's own outbound calls, off: its AI gateway fetches a model catalog from github.com when the
# UI asks for it, its job runner schedules online scoring, and it reports usage unless told not to.
# Nothing a search does may reach the network; a user who set one of these themselves is obeyed.
_OFFLINE = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_MODEL_CATALOG_URI": "", "MLFLOW_ENABLE_AI_GATEWAY": "false",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# MLflow's UI keeps the mode under this key of the browser's local storage, and reads it on every page that
# has no workflowType parameter: a run's page, reached by a click in the runs table, opened in GenAI mode.
_MODE_KEY = "mlflow.workflowType_v1"
# A page of our own on the server (`search ui` runs MLflow's app with it added, where this package is
# installed as MLflow's app "search-ui"): it stores model-training mode in the browser, then opens the URL
# after its '#', MLflow's own page.
START_PATH = "/search/model-training"
_START_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>MLflow UI</title></head><body><script>"
               f"try {{ localStorage.setItem({_MODE_KEY!r}, JSON.stringify('machine_learning')); }} catch (e) {{}}"
               "location.replace('/' + location.hash);</script></body></html>")
APP_NAME = "search-ui"  # the entry point in pyproject.toml's [project.entry-points."mlflow.app"]
START_TIMEOUT = 180.0   # seconds; a cold `mlflow server` imports a lot before it listens
STOP_TIMEOUT = 15.0     # then SIGKILL for the group


def experiment_url(base: str, experiment_id: str | None) -> str:
    """The page of the experiment's runs, in model-training mode, ranked by validation loss."""
    if experiment_id is None:
        return f"{base}/#/experiments?{_MODE}"
    return f"{base}/#/experiments/{experiment_id}/runs?{_MODE}&{_VIEW}"


def find_experiment(tracking_uri: str, study: str | None) -> str | None:
    """The id of ``study``'s experiment, or with no study that of the study run last (None: no study yet)."""
    from mlflow.tracking import MlflowClient

    from search.tracking import quiet_mlflow

    quiet_mlflow()
    client = MlflowClient(tracking_uri=tracking_uri)
    if study is not None:
        exp = client.get_experiment_by_name(study)
        if exp is None or exp.lifecycle_stage != "active":
            names = [e.name for e in client.search_experiments() if e.name != "Default"]
            raise StudyError(f"no MLflow experiment named '{study}' in this tracking store", field="STUDY",
                             expected="one of " + (", ".join(names) or "(none yet: run `search run` first)"))
        return exp.experiment_id
    # The study last run, not the experiment last made: an ablation is a study of its own, made after its
    # study's trials, and a continued study keeps the experiment it made first.
    every = [e for e in client.search_experiments(order_by=["creation_time DESC"]) if e.name != "Default"]
    ours = [e for e in every if ".ablation." not in e.name] or every
    if not ours:
        return None
    latest = client.search_runs([e.experiment_id for e in ours[:100]], max_results=1,
                                order_by=["attributes.start_time DESC"])
    return latest[0].info.experiment_id if latest else ours[0].experiment_id


def serve(tracking_uri: str, host: str, port: int, study: str | None = None, out: TextIO | None = None,
          err: TextIO | None = None, start_timeout: float = START_TIMEOUT) -> int:
    """Start the UI, print the study's URL once it answers, and return when the server ends."""
    out, err = out or sys.stdout, err or sys.stderr
    experiment = find_experiment(tracking_uri, study) if _store_exists(tracking_uri) else None
    if study is not None and experiment is None:
        raise StudyError(f"no tracking store at {tracking_uri} yet", field="--home",
                         expected="the folder `search run` wrote to (or --tracking-uri)")
    taken = _port_taken(host, port)
    if taken:
        raise StudyError(f"port {port} on {host} is taken ({taken}): another MLflow UI, or another server, answers "
                         f"there, and a link to it would show its store, not this study's", field="--port",
                         expected="a free port", found=str(port))
    ours = _app_installed()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port), "--workers", "1",
           *(["--app-name", APP_NAME] if ours else [])]
    # The store's URL goes by the environment: on the command line any user of the machine reads its password.
    env = {**_OFFLINE, **os.environ, "MLFLOW_BACKEND_STORE_URI": tracking_uri}
    probe = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    # Heard from before the first word: a Ctrl-C on seeing "starting" is a stop of the server about to start.
    heard: list[int] = []  # a stop asked for while the server starts is no failure of it
    started: list[subprocess.Popen] = []
    previous = {s: signal.signal(s, _forward(started, heard)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        print(f"starting the MLflow UI on {host}:{port} (store: {redact(tracking_uri)})…", file=err, flush=True)
        child = subprocess.Popen(cmd, start_new_session=True, env=env, preexec_fn=_ends_with_parent(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(child)
        relay = _Relay(child, err, heard)
    except BaseException:
        for s, handler in previous.items():
            signal.signal(s, handler)
        raise
    try:
        if heard and child.poll() is None:  # asked before the server could be told
            os.killpg(child.pid, signal.SIGTERM)
        if not _wait_until_ready(probe, child, start_timeout):
            if heard:  # Ctrl-C while it started: said as what it was, not as a port taken (exit status 1)
                if child.poll() is None:
                    _stop(child, signal.SIGTERM)
                relay.finish(abnormal=False)
                print(f"stopped by {signal.Signals(heard[0]).name} before the MLflow UI answered", file=err,
                      flush=True)
                return 0
            if child.poll() is None:
                print(f"error: the MLflow UI did not answer within {start_timeout:.0f} s; stopping it.",
                      file=err, flush=True)
                heard.append(0)  # its last words after this are of the stop, not of why it did not answer
                _stop(child, signal.SIGTERM)
                relay.finish(abnormal=False)
                return 1
            relay.finish(abnormal=True)
            print(f"error: the MLflow UI exited with status {child.returncode} before answering "
                  f"(is port {port} taken? try --port)", file=err, flush=True)
            return 1
        base = f"http://{host}:{port}" if host not in ("0.0.0.0", "::") else probe
        url = experiment_url(base, experiment)
        print(f"MLflow UI ready: {url.replace('/#/', START_PATH + '#/', 1) if ours else url}", file=out, flush=True)
        print("Ctrl-C stops it.", file=err, flush=True)
        code = _wait(child)
        relay.finish(abnormal=code != 0)
        return code
    finally:
        if child.poll() is None:  # an exception on our side: never leave the server behind
            heard.append(0)
            _stop(child, signal.SIGTERM)
        relay.finish(abnormal=False)
        for s, handler in previous.items():
            signal.signal(s, handler)


def mlflow_app() -> Any:
    """MLflow's server app with the page at START_PATH added (MLflow's ``--app-name search-ui`` calls this)."""
    from flask import Response
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app

    _settle_auth_module()
    if "search_model_training" not in flask_app.view_functions:
        flask_app.add_url_rule(START_PATH, "search_model_training",
                               lambda: Response(_START_PAGE, mimetype="text/html"))
    return create_fastapi_app(flask_app)


def _settle_auth_module() -> None:
    """MLflow's server imports its optional auth module inside a runs search, and without Flask-WTF fails to, on
    every search. A request beside one finds it half made in ``sys.modules`` (AttributeError: a 500 and 200 lines
    of traceback on a page's first load). Settled once, before the first request: imported where it can be,
    else marked absent, where each failed import ended anyway."""
    import importlib

    try:
        importlib.import_module("mlflow.server.auth")
    except ImportError:
        sys.modules["mlflow.server.auth"] = None  # type: ignore[assignment]  # "absent": import raises at once


def _app_installed() -> bool:
    """Whether MLflow finds this package's app: an entry point, there once the package is installed with pip
    (a checkout on PYTHONPATH alone has none, and gets MLflow's plain app and a URL that asks for the mode)."""
    from importlib.metadata import entry_points

    return any(e.name == APP_NAME and e.value.startswith(f"{__name__}:") for e in entry_points(group="mlflow.app"))


def _port_taken(host: str, port: int) -> str:
    """Why ``port`` cannot be listened on, or "" where it can: the server started there would exit, and the
    probe would find the server already there ready, a study's link leading to another store."""
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return ""  # an unknown host: the server says so itself
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed one's port is free
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def _store_exists(uri: str) -> bool:
    if uri.startswith("sqlite:///"):
        return os.path.exists(uri.removeprefix("sqlite:///"))
    return True


def _ends_with_parent() -> Any:
    """On Linux, the server is sent SIGTERM when this process dies, however it dies: killed with -9 it left the
    server holding the port. Elsewhere nothing (the signals it is sent are forwarded, as before)."""
    if not sys.platform.startswith("linux"):
        return None

    def ask() -> None:
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    return ask


def _forward(started: list[subprocess.Popen], heard: list[int]) -> Any:
    def handler(signum: int, frame: Any) -> None:
        heard.append(signum)
        # A Ctrl-C reaches the server as SIGTERM, its orderly stop: on SIGINT its workers each print some forty
        # lines of KeyboardInterrupt and CancelledError traceback.
        sent = signal.SIGTERM if signum == signal.SIGINT else signum
        for child in started:
            try:
                os.killpg(child.pid, sent)  # the server and its workers: its own group, nothing else
            except ProcessLookupError:
                pass

    return handler


class _Relay:
    """Copies the server's output to ``err`` line by line until a stop was heard; after that, keeps the last
    lines back, to be shown only where the server's end was not the stop's."""

    KEPT = 40  # lines: enough for one traceback's cause

    def __init__(self, child: subprocess.Popen, err: TextIO, heard: list[int]) -> None:
        self._child, self._err, self._heard = child, err, heard
        self._held: deque[str] = deque(maxlen=self.KEPT)
        self._done = False
        self._thread = threading.Thread(target=self._copy, name="search-ui-relay", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        stream = self._child.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if self._heard:
                self._held.append(line)
                continue
            try:
                self._err.write(redact(line))
                self._err.flush()
            except (OSError, ValueError):  # our own stderr closed: the server's words have nowhere to go
                self._held.append(line)

    def finish(self, abnormal: bool) -> None:
        """After the server ended: the rest of its output read, and shown where it ended ``abnormal``."""
        if self._done:
            return
        self._done = True
        self._thread.join(timeout=5)
        if abnormal and self._held:
            self._err.write("".join(redact(line) for line in self._held))
            self._err.flush()


def _wait_until_ready(url: str, child: subprocess.Popen, timeout: float) -> bool:
    # Straight to the server: an http_proxy in the environment would send the probe out through the proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            with opener.open(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _wait(child: subprocess.Popen) -> int:
    """Wait for the server; after it ends, sweep any worker of its group that outlived it."""
    code = child.wait()
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # The server stopping because it was told to is the normal end of `search ui`.
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM) else code


def _stop(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
        child.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
