"""``search ui``: it prints the study's URL only once the server answers, the URL loads, and a signal to
``search ui`` leaves no server or worker behind; the MLflow UI itself, read in headless Chromium, lands
on the runs table of trials in model-training mode.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _browser import Page, find_chromium
from conftest import run_cli

URL = re.compile(r"MLflow UI ready: (http://\S+)")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny finished study: its home holds the Optuna and MLflow stores."""
    import yaml

    from conftest import TINY, merge

    tmp = tmp_path_factory.mktemp("ui")
    path, home = tmp / "space.yaml", tmp / "mlruns"
    path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": "viewed", "n_trials": 2}}), sort_keys=False))
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Nothing listens there: a new server could bind it (a closed connection's TIME_WAIT aside)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            return True
        except OSError:
            return False


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, process group, state) of every live process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def _descendants(pid: int) -> set[int]:
    procs, found, frontier = _processes(), set(), {pid}
    while frontier:
        frontier = {p for p, (parent, _, _) in procs.items() if parent in frontier} - found
        found |= frontier
    return found


class _UI:
    """`search ui` started as a user would, its output read line by line until the URL appears."""

    def __init__(self, home: Path, *args: str) -> None:
        self.port = _free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "search", "ui", *args, "--home", str(home),
                                      "--port", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []

    def url(self, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                pytest.fail("search ui ended before printing its URL:\n" + "".join(self.lines))
            self.lines.append(line)
            match = URL.search(line)
            if match:
                return match.group(1)
        pytest.fail("search ui printed no URL in time:\n" + "".join(self.lines))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=60)
            self.lines += self.proc.stdout.readlines()
            return code
        finally:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def served(finished):
    """One `search ui` for the module (a server start costs a worker 20 s); the last test stops it."""
    ui = _UI(finished, "viewed")
    try:
        ui.url_seen = ui.url()
        yield ui
    finally:  # the last test stopped it, unless it was not selected: stop it as that test does
        if ui.proc.poll() is None:
            ui.stop()


def test_ui_prints_the_study_url_once_it_answers(served):
    ui = served
    url = ui.url_seen
    # Printed only when the server answers: no retry needed for the page or the study's experiment.
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read().lower()
    experiment = re.search(r"#/experiments/(\d+)/runs\?workflowType=machine_learning", url)
    assert experiment, url
    assert any("starting the MLflow UI" in line for line in ui.lines)
    server = _descendants(ui.proc.pid)
    assert server, "search ui started no server process"
    # The store's URL is not on a command line (any user reads those), and the server calls nothing outside.
    root = next(p for p in server if _processes().get(p, (0,))[0] == ui.proc.pid)
    assert "--backend-store-uri" not in Path(f"/proc/{root}/cmdline").read_bytes().decode(errors="replace")
    env = dict(v.split("=", 1) for v in Path(f"/proc/{root}/environ").read_bytes().decode().split("\0") if "=" in v)
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("mlflow.db")
    assert (env["MLFLOW_MODEL_CATALOG_URI"], env["MLFLOW_ENABLE_AI_GATEWAY"]) == ("", "false")
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_ui_without_a_study_opens_the_most_recent_and_an_unknown_study_is_a_user_error(finished, capsys):
    from search import ui
    from search.tracking import default_tracking_uri

    uri = default_tracking_uri(finished)
    assert ui.find_experiment(uri, None) == ui.find_experiment(uri, "viewed") != "0"
    assert ui.experiment_url("http://h:1", "7") == ("http://h:1/#/experiments/7/runs?workflowType=machine_learning"
                                                   "&viewStateShareKey=search")
    assert run_cli("ui", "nope", "--home", finished, "--port", str(_free_port())) == 2
    err = capsys.readouterr().err
    assert "no MLflow experiment named 'nope'" in err and "viewed" in err and "Traceback" not in err
    # A port another server listens on: its "ready" answer, and a link to its store, were taken for this study's.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert run_cli("ui", "viewed", "--home", finished, "--port", str(port)) == 2
    err = capsys.readouterr().err
    assert f"field '--port': port {port} on 127.0.0.1 is taken" in err and "MLflow UI ready" not in err, err


def test_a_page_loads_requests_in_parallel_get_no_server_error(served):
    """MLflow's server imported its optional auth module inside a runs search (and, without Flask-WTF, failed to,
    on every search); a request beside it found the module half made: a 500 and 200 lines of traceback in the
    terminal on a page's first load (CI, 98d1716)."""
    from concurrent.futures import ThreadPoolExecutor

    ui = served
    base = ui.url_seen.split("/search/")[0]
    experiment = re.search(r"#/experiments/(\d+)/", ui.url_seen).group(1)
    search_body = f'{{"experiment_ids": ["{experiment}"], "max_results": 5}}'.encode()

    def call(path: str) -> int:
        data = search_body if path.endswith("runs/search") else None
        request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    # The assistant asked without pause while runs are searched, as a page's first load does (the first search
    # is the one that imported the module, slowly).
    searched = threading.Event()

    def ask() -> list[int]:
        codes = []
        while not searched.is_set():
            codes += [call("/ajax-api/3.0/mlflow/assistant/config"), call("/ajax-api/3.0/mlflow/assistant/providers")]
        return codes

    with ThreadPoolExecutor(4) as pool:
        asking = [pool.submit(ask) for _ in range(3)]
        try:
            searches = [call("/ajax-api/2.0/mlflow/runs/search") for _ in range(3)]
        finally:
            searched.set()
        asked = [code for future in asking for code in future.result()]
    assert searches == [200] * 3 and asked and set(asked) == {200}, (searches, sorted(set(asked)))


# -- in a real browser ----------------------------------------------------------------------------------
CHROMIUM = find_chromium()
_TABLE_JS = """(() => {
  const headers = Array.from(document.querySelectorAll('[role=columnheader]')).map(e => e.innerText.trim());
  const rows = Array.from(document.querySelectorAll('[role=row]')).map(e => e.innerText.replace(/\\n/g, ' '));
  return {headers, rows, href: location.href, text: document.body.innerText};
})()"""


def _read_runs_page(url: str, profile: Path, expect: str, timeout: float = 60) -> dict:
    """The runs page as the DOM has it once ``expect`` shows (or the wait runs out), in a wide window."""
    page = Page(CHROMIUM, profile)
    try:
        page.call("Emulation.setDeviceMetricsOverride", width=2400, height=1000, deviceScaleFactor=1, mobile=False)
        page.open(url)
        deadline = time.monotonic() + timeout
        while True:
            state = page.evaluate(_TABLE_JS)
            if expect in state["text"] or time.monotonic() > deadline:
                return state
            time.sleep(0.5)
    finally:
        page.close()


@pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is not installed (Debian: apt-get install "
                    "chromium)")
def test_the_mlflow_ui_lands_on_the_ranked_trials_in_model_training_mode(finished, served, tmp_path):
    import optuna

    study = optuna.load_study(study_name="viewed", storage=f"sqlite:///{finished / 'optuna.db'}")
    best = study.best_trial
    starred = f"t{best.number:03d} ★ {best.value:.4g}"
    url = served.url_seen
    state = _read_runs_page(url, tmp_path / "profile", starred)
    # The same page in GenAI mode, MLflow's default: the check below must tell the two apart.
    genai = _read_runs_page(url.replace("machine_learning", "genai"), tmp_path / "profile-genai", starred,
                            timeout=15)
    assert "/runs" in state["href"], state["href"]
    assert starred in state["text"], state["text"][:2000]
    # Every trial is listed by its outcome name, ranked by validation loss (the parent run, with no loss, last).
    ranked = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    positions = [state["text"].index(f"t{t.number:03d} ") for t in ranked]
    assert positions == sorted(positions)
    for column in ("val_loss_mean", "val_loss_std", "val_accuracy_mean", "penalty_mean", "pruned"):
        assert column in state["headers"], state["headers"]
    # Model-training mode: the experiment's menu is Runs / Models / Traces, without GenAI's sections (which
    # the same page shows when asked for GenAI mode, MLflow's default: the check can tell them apart).
    genai_menu = ("Observability", "Sessions", "Prompts")  # not "Judges": `search ui` turns the AI gateway off
    assert all(f"\n{item}\n" in genai["text"] for item in genai_menu), genai["text"][:500]
    assert not any(f"\n{item}\n" in state["text"] for item in genai_menu), state["text"][:500]
    assert "\nRuns\nModels\n" in state["text"]


def _menu_when_shown(page: Page, url: str, expect: str, timeout: float = 60) -> str:
    # No wait for a load event: from one MLflow page to another only the part after '#' changes, and none fires.
    page.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = page.evaluate("document.body ? document.body.innerText : ''")
        except RuntimeError:  # asked while the page navigates (our page's redirect): asked again
            text = ""
        if expect in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


@pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is not installed (Debian: apt-get install "
                    "chromium)")
def test_a_run_opened_from_the_table_stays_in_model_training_mode(finished, served, tmp_path):
    """MLflow 3.17's UI keeps its mode in the browser: the printed URL's parameter held for that page alone, and a
    click into a trial's run (a link without it) opened the run in GenAI mode, MLflow's default."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{finished / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("viewed").experiment_id
    run = client.search_runs([experiment], "tags.`search.kind` = 'trial'")[0]
    url = served.url_seen
    assert "/search/model-training#/experiments/" in url, url  # the page that stores the mode first
    run_page = f"{url.split('/search/')[0]}/#/experiments/{experiment}/runs/{run.info.run_id}"
    genai_menu = ("Observability", "Sessions", "Prompts")
    fresh = Page(CHROMIUM, tmp_path / "fresh")
    try:  # the same link in a browser that never opened the printed URL: GenAI, so the check can tell them apart
        text = _menu_when_shown(fresh, run_page, "Observability", timeout=30)
        assert any(f"\n{item}\n" in text for item in genai_menu), text[:500]
    finally:
        fresh.close()
    page = Page(CHROMIUM, tmp_path / "profile")
    try:
        _menu_when_shown(page, url, run.info.run_name)
        assert page.evaluate("location.pathname") == "/" and "/runs?workflowType=machine_learning" in \
            page.evaluate("location.hash")
        assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'
        text = _menu_when_shown(page, run_page, "Overview")
        assert not any(f"\n{item}\n" in text for item in genai_menu), text[:500]
    finally:
        page.close()


def test_a_ctrl_c_to_search_ui_leaves_no_server_or_worker_behind_and_no_traceback(served):
    """Last in the module: it stops the shared `search ui`, as Ctrl-C does (it printed the server's forty lines
    of KeyboardInterrupt and CancelledError traceback)."""
    ui = served
    server = _descendants(ui.proc.pid)
    assert server, "search ui started no server process"
    groups = {_processes()[p][1] for p in server if p in _processes()}
    assert ui.stop(signal.SIGINT) == 0
    said = "".join(ui.lines)
    assert "Traceback" not in said and "CancelledError" not in said, said[-2000:]
    # Give the init process a moment to reap what the server's group left; then none may be alive.
    deadline = time.monotonic() + 10
    while True:
        alive = {p: v for p, v in _processes().items() if (p in server or v[1] in groups) and v[2] != "Z"}
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert alive == {}, f"left behind: {alive}"
    assert _port_free(ui.port)


def test_ui_without_a_study_opens_the_study_run_last_never_an_ablation(tmp_path):
    """A continued study keeps its first experiment, and an ablation makes one of its own after its study."""
    import time

    from mlflow.tracking import MlflowClient

    from search import ui

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    studied = client.create_experiment("studied")
    client.create_run(studied)
    time.sleep(0.05)
    client.create_run(client.create_experiment("studied.ablation.t00001"))
    time.sleep(0.05)
    client.create_run(client.create_experiment("other"))
    time.sleep(0.05)
    client.create_run(studied)  # continued this morning
    assert ui.find_experiment(uri, None) == studied


def test_the_server_ends_with_search_ui_however_it_dies(tmp_path):
    """`search ui` killed with -9 left the MLflow server running, holding the port."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import subprocess, sys, time; from search.ui import _ends_with_parent; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True, "
            "preexec_fn=_ends_with_parent()); print(c.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the server outlived `search ui`")


def test_a_ctrl_c_while_the_server_starts_is_a_stop_not_a_taken_port(finished):
    """Ctrl-C before the server answered was said as "the MLflow UI exited with status 0 before answering (is
    port 5140 taken? try --port)", with exit status 1."""
    ui = _UI(finished, "viewed")
    try:
        line = ""
        while "starting the MLflow UI" not in line:
            line = ui.proc.stdout.readline()
            assert line, "search ui ended before starting the server"
        ui.proc.send_signal(signal.SIGINT)
        code = ui.proc.wait(timeout=60)
        said = ui.proc.stdout.read()
    finally:
        if ui.proc.poll() is None:
            ui.proc.kill()
        ui.proc.stdout.close()
    if "MLflow UI ready" in said:
        pytest.skip("the server answered before the signal landed: nothing to judge")
    assert code == 0 and "stopped by SIGINT before the MLflow UI answered" in said, said
    assert "is port" not in said and "Traceback" not in said


_NOISY_SERVER = """
import signal, sys, time
def on_term(signum, frame):
    print("Traceback (most recent call last):\\n  asyncio.exceptions.CancelledError", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("listening", flush=True)
if sys.argv[1] == "crash":
    print("Traceback (most recent call last):\\nOSError: the server's own failure", flush=True)
    sys.exit(3)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["stopped", "crash"])
def test_the_servers_words_after_a_stop_are_held_back_but_a_crashs_are_shown(how):
    """A Ctrl-C while page requests were in flight printed uvicorn's traceback of the requests it cancelled:
    what the server says once it was told to stop is held back, and shown only where it ended abnormally."""
    import io

    from search import ui

    child = subprocess.Popen([sys.executable, "-c", _NOISY_SERVER, how], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    err, heard = io.StringIO(), []
    relay = ui._Relay(child, err, heard)
    try:
        deadline = time.monotonic() + 30
        while "listening" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "listening" in err.getvalue()  # relayed as it came, before any stop
        if how == "stopped":
            heard.append(signal.SIGINT)
            os.killpg(child.pid, signal.SIGTERM)
        code = child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    relay.finish(abnormal=code != 0)
    said = err.getvalue()
    if how == "stopped":
        assert code == 0 and "Traceback" not in said and "CancelledError" not in said, said
    else:
        assert code == 3 and "OSError: the server's own failure" in said, said
