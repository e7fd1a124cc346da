"""Reviewing a study: per-trial learning curves and diagnostics, study figures refreshed as better trials
arrive, the parent run's description, the HTML report rendered in headless Chromium, and the runs and
figures seen through a real `mlflow server` on loopback.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from _browser import Page, find_chromium
from conftest import run_cli
from search import review, space as spaces, tracking
from search.runner import session
from search.studies import lifecycle as studies
from search.runner.objective import Objective

PNG = b"\x89PNG\r\n\x1a\n"
# Three complete trials: too few for parameter importances (the study says so in study/notes.md instead).
STUDY_FIGURES = {"before_after", "optimization_history", "intermediate_values", "parallel_coordinate", "slice"}
EPOCHS = 8
# Trial 0, the baseline, learns slowly at the default learning rate; trial 1 is queued to be clearly
# better, trial 2 clearly worse than trial 1.
SPACE = {
    "study": {"name": "review", "seed": 0, "n_trials": 3},
    "data": {"source": "sklearn:iris", "test_size": 0.2},
    "validation": {"scheme": "kfold", "k": 2},
    "model": {"family": "mlp", "layers": 1, "units": 8, "dropout": {"float": [0.0, 0.5]}},
    "train": {"epochs": EPOCHS, "batch_size": 16, "early_stopping": 0,
              "learning_rate": {"float": [1e-3, 5e-2], "log": True, "default": 1e-3}},
}
BETTER = {"model.dropout": 0.1, "train.learning_rate": 0.05}
WORSE = {"model.dropout": 0.5, "train.learning_rate": 0.001}


def _parent_state(client, run_id: str, folder: Path) -> dict:
    """The parent run's review tags and a fingerprint of its before/after figure, as they are now."""
    run = client.get_run(run_id)
    state = {"trials": run.data.tags.get("review.trials"), "best": run.data.tags.get("review.best_trial"),
             "figure": None}
    if any(a.path == "study/before_after.png" for a in client.list_artifacts(run_id, "study")):
        folder.mkdir(parents=True)
        local = client.download_artifacts(run_id, "study/before_after.png", str(folder))
        state["figure"] = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """Three trials run one at a time through the real tracker, the parent run read after each."""
    tmp = tmp_path_factory.mktemp("review")
    home, path = tmp / "mlruns", tmp / "review.yaml"
    path.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    space = spaces.load(path)
    prepared = session.prepare(space)
    storage_url = studies.default_storage(home)
    study = studies.open_study(space, studies.make_storage(storage_url), prepared.attrs())
    tracker = tracking.make_tracker(prepared, session.RunOptions(home=home, storage=storage_url, figures=True),
                                    path.read_text())
    # Redraw on every better trial whatever it costs, and never merely because N trials went by.
    tracker.review_share, tracker.refresh_every = 1.0, 1000
    parent = tracker.start(study)
    study.enqueue_trial(BETTER)
    study.enqueue_trial(WORSE)
    objective = Objective(space, prepared.dataset, prepared.splits, home, [tracker])
    after = []
    for i in range(3):
        study.optimize(objective, n_trials=1)
        tracker.flush()  # MLflow's writes are made on a side thread while the next trial trains
        after.append(_parent_state(tracker.client, parent, tmp / f"after{i}"))
    tracker.finish()
    return {"home": home, "study": study, "client": tracker.client, "parent": parent, "after": after,
            "final": _parent_state(tracker.client, parent, tmp / "final"), "tmp": tmp}


def _trial_runs(client, parent: str) -> dict[int, object]:
    exp = client.get_run(parent).info.experiment_id
    runs = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}'")
    return {int(r.data.tags["optuna.trial_number"]): r for r in runs}


def test_every_finished_trial_has_learning_curves_diagnostics_and_a_readable_name(reviewed):
    client, study = reviewed["client"], reviewed["study"]
    runs = _trial_runs(client, reviewed["parent"])
    assert sorted(runs) == [0, 1, 2]
    for t in study.trials:
        run = runs[t.number]
        assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/learning_curves.png"]
        local = client.download_artifacts(run.info.run_id, "figures/learning_curves.png",
                                          str(reviewed["tmp"] / f"curves{t.number}"))
        assert Path(local).read_bytes()[:8] == PNG
        assert run.data.tags["fit"] == t.user_attrs["fit"] in ("underfit", "good", "overfit")
        # Whether most splits peaked at their last epoch, the cap: a trial cut off by train.epochs, beside its fit.
        at_end = [s["best_epoch"] == s["epochs_run"] == EPOCHS for s in t.user_attrs["splits"]]
        assert run.data.tags["still_improving"] == str(sum(at_end) * 2 > len(at_end)).lower()
        for name in ("gap_mean", "split_0/gap", "split_1/gap", "split_0/best_epoch", "overfit_splits"):
            assert name in run.data.metrics, name
        curves = t.user_attrs[review.CURVES_ATTR]
        assert sorted(curves) == ["0", "1"] and all(len(c["val_loss"]) == EPOCHS for c in curves.values())
        best_epoch = run.data.metrics["split_0/best_epoch"]
        val, loss = curves["0"]["val_loss"], curves["0"]["loss"]
        assert run.data.metrics["split_0/gap"] == pytest.approx(val[int(best_epoch) - 1] - loss[int(best_epoch) - 1],
                                                                rel=1e-3, abs=1e-4)
    # Names lead with the outcome; the ★ and the best tag moved from trial 0 to trial 1 when it won.
    values = {t.number: f"{t.value:.4g}" for t in study.trials}
    assert runs[0].info.run_name == f"t000 {values[0]} baseline"
    assert runs[1].info.run_name == f"t001 ★ {values[1]} dropout=0.1 learning_rate=0.05"
    assert runs[2].info.run_name == f"t002 {values[2]} dropout=0.5 learning_rate=1e-3"
    assert [runs[n].data.tags["best"] for n in (0, 1, 2)] == ["false", "true", "false"]
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.tags["pruned"] == "false"
        for name in ("val_loss_mean", "val_loss_std", "val_accuracy_mean", "penalty_mean"):
            assert name in run.data.metrics, name
    # The baseline barely moves from chance level in 8 epochs at its learning rate: the rule says so.
    assert runs[0].data.tags["fit"] == "underfit"


def test_study_figures_are_drawn_and_refreshed_when_a_better_trial_arrives(reviewed):
    first, better, worse = reviewed["after"]
    assert reviewed["study"].best_trial.number == 1
    assert (first["trials"], first["best"]) == ("1", "0") and first["figure"]
    assert (better["trials"], better["best"]) == ("2", "1")
    assert better["figure"] != first["figure"], "the before/after figure was not redrawn for the better trial"
    # A worse trial is not worth a redraw; the end of the run redraws once more with every trial.
    assert worse == better
    final = reviewed["final"]
    assert (final["trials"], final["best"]) == ("3", "1")
    client, parent = reviewed["client"], reviewed["parent"]
    names = {a.path for a in client.list_artifacts(parent, "study")}
    assert {f"study/{n}.png" for n in STUDY_FIGURES} <= names
    assert {"study/notes.md", "study/top_trials.csv", "study/top_trials.md"} <= names
    # No 4.6 MB optuna.html; no importances from 3 trials, and a sentence saying why.
    assert "study/optuna.html" not in names and "study/param_importances.png" not in names
    folder = reviewed["tmp"] / "table"
    folder.mkdir()
    table = Path(client.download_artifacts(parent, "study/top_trials.csv", str(folder))).read_text().splitlines()
    assert table[0].startswith("rank,trial,name,val_loss,val_loss_std,val_accuracy,fit,gap,overfit_onset,"
                               "best_epoch_mean,still_improving")
    # A trial cut off by train.epochs is marked in the table, not only by its run's tag.
    column = table[0].split(",").index("still_improving")
    tagged = {str(n): run.data.tags["still_improving"] for n, run in _trial_runs(client, parent).items()}
    assert {row.split(",")[1]: row.split(",")[column] == "yes" for row in table[1:]} == \
        {n: v == "true" for n, v in tagged.items()}
    ranked = [row.split(",")[1] for row in table[1:]]
    assert ranked[0] == "1" and sorted(ranked) == ["0", "1", "2"]
    notes = Path(client.download_artifacts(parent, "study/notes.md", str(folder))).read_text()
    assert "No parameter importances yet: 3 complete trial(s)" in notes
    # Readable: at least 1000 x 600 px (the PNG header's width and height).
    for name in STUDY_FIGURES:
        png = Path(client.download_artifacts(parent, f"study/{name}.png", str(folder))).read_bytes()
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 1000 and height >= 600, (name, width, height)


def test_the_study_notes_are_rewritten_when_the_importances_arrive(reviewed, tmp_path):
    """MLflow only ever replaces an artifact: a notes.md written once ("no importances yet") stayed beside
    the importances figure drawn later, unless every refresh writes it again."""
    from search.review.figures import MIN_TRIALS_FOR_IMPORTANCES

    home = tmp_path / "mlruns"
    copy = optuna.create_study(study_name="notes")
    copy.add_trials(reviewed["study"].trials)
    tracker = tracking.MlflowTracker(tracking.default_tracking_uri(home), home, spaces.validate(SPACE), "", {})
    parent = tracker.start(copy)

    def notes(name: str) -> str:
        return Path(tracker.client.download_artifacts(parent, "study/notes.md", str(tmp_path / name))).read_text()

    tracker.refresh_study(copy.get_trials())
    assert "No parameter importances yet" in notes("young")
    first = copy.trials[1]
    for i in range(MIN_TRIALS_FOR_IMPORTANCES):  # more complete trials, at other settings and losses
        copy.add_trial(optuna.trial.create_trial(
            params={"model.dropout": 0.05 * i, "train.learning_rate": 0.002 * (i + 1)},
            distributions=first.distributions, value=first.value * (1.1 + 0.1 * i), user_attrs=first.user_attrs))
    tracker.refresh_study(copy.get_trials())
    tracker.finish()
    names = {a.path for a in tracker.client.list_artifacts(parent, "study")}
    assert "study/param_importances.png" in names
    assert "No parameter importances yet" not in notes("grown")


def test_parent_run_describes_the_study_and_carries_study_metrics(reviewed):
    run = reviewed["client"].get_run(reviewed["parent"])
    note = run.data.tags["mlflow.note.content"]
    for text in ("Searched", "model.dropout float [0, 0.5]", "train.learning_rate log-float [1e-3, 0.05]",
                 "2-fold cross-validation (stratified, shuffled)", "held out", "trial 0 is the unregularized baseline"):
        assert text in note, text
    # Settings that apply to a k-fold study only, and no "None" strings.
    params = run.data.params
    assert params["validation.k"] == "2" and params["validation.stratify"] == "True"
    assert "validation.repeats" not in params and "validation.fraction" not in params
    assert "None" not in params.values()
    # MLflow 3's UI opens this experiment as model training, not as a GenAI app.
    experiment = reviewed["client"].get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    m = run.data.metrics
    assert m["trials_complete"] == 3 and m["trials_pruned"] == 0 and m["trials_failed"] == 0
    study = reviewed["study"]
    assert m["best_value"] == pytest.approx(study.best_value)
    assert m["baseline_value"] == pytest.approx(study.trials[0].value)
    assert m["improvement_vs_baseline_pct"] == pytest.approx(
        (study.trials[0].value - study.best_value) / study.trials[0].value * 100)
    # Its noise beside it: two standard errors of the two means over their 2 splits, as a share of the baseline's.
    best, base = study.best_trial, study.trials[0]
    band = 2 * np.hypot(best.user_attrs["val_loss_std"] / np.sqrt(2), base.user_attrs["val_loss_std"] / np.sqrt(2))
    assert m["improvement_vs_baseline_noise_pct"] == pytest.approx(band / base.value * 100)
    # The gain over the baseline with what the terminal says of it (noise, other settings): the run showed the
    # bare percentage, where the terminal called the same gap noise.
    from search.review.verdicts import verdict

    found = verdict(study)
    assert any(line.startswith("best trial") for line in found), found
    assert "**What the search found**" in note and all(line.strip() in note for line in found), note


def test_the_report_says_what_the_terminal_says_below_its_table(report, reviewed):
    import html

    from search.review.verdicts import verdict

    text, found = report.read_text(), verdict(reviewed["study"])
    assert "<h2>What the search found</h2>" in text
    assert all(html.escape(line.strip()) in text for line in found if not line.startswith(("pruned", "failed"))), found


@pytest.fixture(scope="module")
def report(reviewed):
    out = reviewed["tmp"] / "shared" / "review.html"
    assert run_cli("report", "review", "--home", reviewed["home"], "--out", out) == 0
    return out


def test_report_is_one_self_contained_file(report):
    text = report.read_text()
    assert text.count("<img ") == text.count("src='data:image/png;base64,")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "default-src 'none'" in text
    for name in STUDY_FIGURES:
        assert f"data-figure='{name}'" in text
    assert "t001 dropout=0.1 learning_rate=0.05" in text and "Top trials" in text


def test_report_for_an_unknown_study_is_a_user_error(reviewed, capsys):
    assert run_cli("report", "nope", "--home", reviewed["home"], "--out", reviewed["tmp"] / "x.html") == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert not (reviewed["tmp"] / "x.html").exists()


# -- in a real browser ----------------------------------------------------------------------------------
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is not installed (Debian: "
                                    "apt-get install chromium; .ci/run installs it)")
_FIGURES_JS = """Array.from(document.querySelectorAll('figure')).map(f => {
  const img = f.querySelector('img'); const box = img ? img.getBoundingClientRect() : {width: 0, height: 0};
  return {name: f.dataset.figure, loaded: !!img && img.complete && img.naturalWidth > 0,
          width: box.width, height: box.height, visible: !!img && getComputedStyle(img).visibility === 'visible'};
})"""


def _render(path: Path, profile: Path) -> tuple[list[dict], list[str], list[str]]:
    page = Page(CHROMIUM, profile)
    try:
        page.open(path.resolve().as_uri())
        figures = page.evaluate(_FIGURES_JS)
        return figures, page.problems(), page.requested_urls()
    finally:
        page.close()


@needs_chromium
def test_report_renders_in_chromium_with_every_figure_and_no_console_error(report, tmp_path):
    figures, problems, urls = _render(report, tmp_path / "profile")
    assert problems == []
    assert all(u.startswith(("file:", "data:")) for u in urls), [u[:80] for u in urls]
    names = [f["name"] for f in figures]
    assert STUDY_FIGURES <= set(names)
    assert "t001 dropout=0.1 learning_rate=0.05" in names and "t000 baseline" in names
    assert len(figures) == report.read_text().count("<figure")
    broken = [f for f in figures if not (f["loaded"] and f["width"] > 100 and f["height"] > 100 and f["visible"])]
    assert broken == []


@needs_chromium
def test_the_browser_check_catches_a_broken_figure_and_a_blocked_load(report, tmp_path):
    """The render test above can fail: a corrupt image and an external script are both reported."""
    text = report.read_text()
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = text[:start] + "AAAA" + text[start + 4000:]
    broken = broken.replace("</body>", "<script src='http://127.0.0.1:9/x.js'></script></body>")
    bad = tmp_path / "bad.html"
    bad.write_text(broken)
    figures, problems, _ = _render(bad, tmp_path / "profile")
    assert not figures[0]["loaded"]
    assert problems, "a script blocked by the page's security policy left no console error"


# -- through a real MLflow server -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
                             str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            # No job runner (GenAI jobs this review never starts): its consumer processes
                            # made the server answer 4-8 s later on 2 cores.
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                                 "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started, nothing else
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _rest(url: str, endpoint: str, body: dict | None = None, **query: str) -> dict:
    full = f"{url}{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_mlflow_server_lists_the_nested_trial_runs_and_their_figures(mlflow_server, write_space, home):
    path = write_space({"study": {"name": "served", "n_trials": 2}, "validation": {"k": 2}})
    assert run_cli("run", path, "--home", home, "--tracking-uri", mlflow_server, "--quiet",
                   "--figures", "on") == 0
    exp = _rest(mlflow_server, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="served")["experiment"]
    search = "/api/2.0/mlflow/runs/search"
    parents = _rest(mlflow_server, search, {"experiment_ids": [exp["experiment_id"]],
                                            "filter": "tags.`search.kind` = 'study'"})["runs"]
    assert len(parents) == 1
    parent = parents[0]["info"]
    children = _rest(mlflow_server, search, {"experiment_ids": [exp["experiment_id"]],
                                             "filter": f"tags.mlflow.parentRunId = '{parent['run_id']}'"})["runs"]
    assert sorted(r["info"]["run_name"].split()[0] for r in children) == ["t000", "t001"]
    study = optuna.load_study(study_name="served", storage=f"sqlite:///{home / 'optuna.db'}")
    assert {r["info"]["run_id"] for r in children} == {t.user_attrs["mlflow_run_id"] for t in study.trials}
    listing = "/api/2.0/mlflow/artifacts/list"
    for child in children:
        files = _rest(mlflow_server, listing, run_id=child["info"]["run_id"], path="figures").get("files", [])
        assert [f["path"] for f in files] == ["figures/learning_curves.png"]
        assert any(t["key"] == "fit" for t in child["data"]["tags"])
    files = {f["path"] for f in _rest(mlflow_server, listing, run_id=parent["run_id"], path="study")["files"]}
    assert {f"study/{n}.png" for n in STUDY_FIGURES} <= files
    # And the figure itself comes back through the server's artifact proxy.
    root = parent["artifact_uri"].removeprefix("mlflow-artifacts:")
    with urllib.request.urlopen(f"{mlflow_server}/api/2.0/mlflow-artifacts/artifacts{root}/study/before_after.png",
                                timeout=30) as response:
        assert response.read()[:8] == PNG


def test_workers_on_one_machine_split_the_time_for_study_figures(tmp_path):
    """Each of N local workers redraws the same study figures: each gets 1/N of the review's share."""
    from search import cli
    from search.cli import _commands

    path = tmp_path / "share.yaml"
    path.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    prepared = session.prepare(spaces.load(path))
    parser = cli.build_parser()
    parent = parser.parse_args(["run", str(path), "--home", str(tmp_path / "mlruns"), "--workers", "4"])
    worker = parser.parse_args([*_commands._worker_argv(parent), "--worker-index", "1"])  # as `--workers 4` starts it
    alone = tracking.make_tracker(prepared, session.RunOptions(home=tmp_path / "mlruns"), "")
    four = tracking.make_tracker(prepared, _commands._run_options(worker), "")
    assert alone.review_share > 0
    assert four.review_share == pytest.approx(alone.review_share / 4)


def test_split_curves_reach_mlflow_as_the_next_split_starts_and_all_of_them_with_the_trials_end(tmp_path):
    """One split after another, a long trial shows each finished split's curves while the next trains;
    trained together, every split's curves go in the trial's closing batch. Either way all are there."""
    from search.runner.results import TrialListener

    class Peek(TrialListener):  # told after the tracker, as the run orders its listeners
        def __init__(self, tracker) -> None:
            self.tracker, self.at_split_1 = tracker, None

        def on_split_start(self, trial, split, n_splits) -> None:
            if split == 1:
                self.tracker.flush()
                run = self.tracker.client.get_run(self.tracker._runs[trial.number])
                self.at_split_1 = (run.info.status, set(run.data.metrics))

    for fused in (False, True):
        spec = {**SPACE, "study": {**SPACE["study"], "name": f"curves-{fused}", "n_trials": 1},
                "train": {**SPACE["train"], "fuse_splits": fused}}
        path = tmp_path / f"{fused}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        space = spaces.load(path)
        prepared = session.prepare(space)
        home = tmp_path / "mlruns"
        study = studies.open_study(space, studies.make_storage(studies.default_storage(home)), prepared.attrs())
        tracker = tracking.make_tracker(prepared, session.RunOptions(home=home), "")
        parent = tracker.start(study)
        peek = Peek(tracker)
        study.optimize(Objective(space, prepared.dataset, prepared.splits, home, [tracker, peek]), n_trials=1)
        tracker.finish()
        status, during = peek.at_split_1
        assert status == "RUNNING"
        curves = {f"split_0/{name}" for name in ("loss", "val_loss", "best_val_loss")}
        if fused:
            assert not during & curves  # no split has finished when all start together
        else:
            assert curves <= during and not any(k.startswith("split_1/") for k in during)
        run = _trial_runs(tracker.client, parent)[0]
        assert run.info.status == "FINISHED" and run.info.end_time and run.info.run_name.startswith("t000")
        for k in (0, 1):
            history = tracker.client.get_metric_history(run.info.run_id, f"split_{k}/val_loss")
            assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert "val_loss_mean" in run.data.metrics


def _started_tracker(tmp_path: Path, name: str):
    """A study of SPACE named ``name`` under tmp_path and its started MLflow tracker."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**SPACE, "study": {**SPACE["study"], "name": name}}, sort_keys=False))
    space = spaces.load(path)
    prepared = session.prepare(space)
    home = tmp_path / "mlruns"
    study = studies.open_study(space, studies.make_storage(studies.default_storage(home)), prepared.attrs())
    tracker = tracking.make_tracker(prepared, session.RunOptions(home=home), "")
    tracker.start(study)
    return study, tracker


def test_a_trials_summary_goes_with_its_tags_and_refused_curves_do_not_keep_its_run_open(tmp_path):
    """Another worker moving the ★ reads a run's `best` tag and `val_loss_mean` together, so they go in
    one batch; the curves follow in batches MLflow takes (at most 1000 metrics); a store that refuses
    them still gets the run renamed and closed."""
    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    study, tracker = _started_tracker(tmp_path, "close")
    now = int(time.time() * 1000)
    curves = [Metric(f"split_{k}/val_loss", 1 / e, now, e) for k in range(3) for e in range(1, 401)]
    calls, refuse = [], []
    real = tracker.client.log_batch

    def observed(run_id, metrics=(), params=(), tags=(), **kwargs):
        calls.append(([m.key for m in metrics], [t.key for t in tags]))
        if refuse and any(m.key.startswith("split_") for m in metrics):
            raise MlflowException("the store refused these metrics")
        return real(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    tracker.client.log_batch = observed
    for refused in (False, True):
        refuse[:] = [True] if refused else []
        calls.clear()
        run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
        close = (study, 0, run_id, [Metric("val_loss_mean", 0.5, now, 0)], curves, [RunTag("best", "false")],
                 f"t000 closed {refused}", False, 0.5, "complete", None)
        if refused:
            with pytest.raises(MlflowException):
                tracker._close_trial_run(*close)
        else:
            tracker._close_trial_run(*close)
            assert sum(len(keys) for keys, _ in calls[1:]) == 1200
        assert calls[0] == (["val_loss_mean"], ["best"])
        assert all(len(keys) <= 1000 for keys, _ in calls)
        run = tracker.client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.end_time and run.info.run_name == f"t000 closed {refused}"
        assert run.data.metrics["val_loss_mean"] == 0.5 and run.data.tags["best"] == "false"
    tracker.finish()


def test_a_trials_end_waits_for_a_drawing_process_that_fell_behind_but_not_for_one_that_stopped(tmp_path,
                                                                                                monkeypatch):
    """Where more workers than cores keep every core busy, a drawing process's figures can pile up. With
    MAX_FIGURES_WAITING waiting, a trial's end waits for one, so figures never lag by hours, but for no
    longer than FIGURES_PATIENCE, so a drawing process that stopped answering holds up no trial."""
    import threading

    from search.review import diagnostics
    from search.runner.results import SplitResult, TrialOutcome
    from search.tracking import _review

    study, tracker = _started_tracker(tmp_path, "behind")
    trial = study.ask()
    run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
    histories = {k: {"loss": [1 / (e + 1) for e in range(EPOCHS)], "val_loss": [1.1 / (e + 1) for e in range(EPOCHS)]}
                 for k in range(2)}
    splits = [SplitResult(k, EPOCHS, h["val_loss"][-1], 0.9, EPOCHS, h) for k, h in histories.items()]
    outcome = TrialOutcome(trial.number, "complete", {}, splits=splits, metric_name="accuracy")
    diagnosis = diagnostics.diagnose_trial(histories, 1.1, 5)
    monkeypatch.setattr(_review, "MAX_FIGURES_WAITING", 2)
    gate = threading.Event()
    tracker._drawing.submit(gate.wait)  # the drawing thread is busy until the gate opens
    tracker._log_trial_figure(trial, run_id, outcome, diagnosis)  # one waiting: the trial goes on at once
    ended = threading.Event()

    def third_trials_end() -> None:
        tracker._log_trial_figure(trial, run_id, outcome, diagnosis)
        ended.set()

    waiter = threading.Thread(target=third_trials_end)
    waiter.start()
    assert not ended.wait(2.0)  # held while the figures before it are not drawn
    gate.set()
    assert ended.wait(60)
    waiter.join()
    tracker.flush()
    assert [f.path for f in tracker.client.list_artifacts(run_id, "figures")] == [_review.TRIAL_FIGURE]

    monkeypatch.setattr(_review, "FIGURES_PATIENCE", 0.5)
    stuck = threading.Event()
    tracker._drawing.submit(stuck.wait)
    tracker._drawing.submit(stuck.wait)
    started = time.monotonic()
    tracker._log_trial_figure(trial, run_id, outcome, diagnosis)  # waits 0.5 s, then goes on
    assert 0.4 < time.monotonic() - started < 10
    stuck.set()
    tracker.finish()


def test_the_reports_ablation_section_says_why_there_is_none():
    """A study with no completed trial was told "No ablation yet: search ablate X runs it", which then fails."""
    import optuna

    from search.review import report

    study = optuna.create_study(study_name="none-done")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert "No ablation: no trial completed." in report._ablation_section(study)
    study.add_trial(optuna.trial.create_trial(value=0.5))
    assert "No ablation yet: <code>search ablate none-done</code>" in report._ablation_section(study)


def test_the_verdict_holds_the_ablation_note_of_the_current_best_only():
    """A continued study's new best (trial 1) was described in MLflow under the note of an earlier best's
    ablation (trial 0's), until its own ablation ran; the description was never written again after it."""
    import optuna

    from search.review import verdicts

    study = optuna.create_study(study_name="continued")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    row = {"label": verdicts.ALL_OFF, "val_loss": 0.5001, "bought": 0.0001, "bought_se": 0.01, "n_splits": 3,
           "trial": 0}
    study.set_user_attr("ablation", {"trial": 0, "rows": [row]})
    assert any("trial 0's config scores val_loss 0.5001" in line for line in verdicts.verdict(study))
    study.add_trial(optuna.trial.create_trial(value=0.4))  # the study continued; trial 1 is the best now
    assert not any("ablation" in line or "regularizers off" in line for line in verdicts.verdict(study))


def test_a_best_trial_worse_than_predicting_the_prior_is_warned_about():
    """A stranger's best trial, marked "best so far", was 114 % of the chance-level loss, and that was said as a
    neutral share: no trial had learned anything that held on its validation rows."""
    import optuna

    from search.review import summary, verdicts

    study = optuna.create_study(study_name="worse")
    study.set_user_attr(summary.REFERENCE_ATTR, 0.349)
    study.add_trial(optuna.trial.create_trial(value=0.398, user_attrs={"fit": "overfit"}))
    (line,) = [x for x in verdicts.verdict(study) if "chance-level loss" in x]
    assert line.startswith("warning: the best trial's validation loss is 114% of the chance-level loss") and \
        "worse than that prediction, so no trial learned anything" in line, line
    study.add_trial(optuna.trial.create_trial(value=0.30, user_attrs={"fit": "good"}))
    (line,) = [x for x in verdicts.verdict(study) if "chance-level loss" in x]
    assert line.startswith("the best trial's validation loss is 86% of the chance-level loss"), line


def test_a_command_an_error_suggests_is_given_on_the_stores_of_the_command_that_failed(tmp_path, capsys):
    """"`search status X` shows why its trials ended" was said to a user of --home elsewhere, where it fails."""
    import optuna

    from conftest import run_cli

    home = tmp_path / "elsewhere"
    home.mkdir()
    study = optuna.create_study(study_name="allfail", storage=f"sqlite:///{home / 'optuna.db'}")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"failure": "bad_settings"}))
    capsys.readouterr()
    assert run_cli("reproduce", "allfail", "--home", home) == 2
    assert f"`search status allfail --home {home}` shows why its trials ended" in capsys.readouterr().err


def test_a_run_with_figures_off_draws_nothing_and_still_writes_the_tables_and_notes(write_space, home, tmp_path,
                                                                                     capsys, monkeypatch):
    """`--figures off` ($SEARCH_FIGURES=off): no PNG in any run (each process saved its drawing's ~2 s of CPU),
    while the study's table, notes and metrics are written as always, the ablation's table too, and the
    printed continue command keeps the choice. A value that is neither on nor off is refused, by either way."""
    from mlflow.tracking import MlflowClient

    from search.cli import _commands
    from search.cli._parser import build_parser

    space = write_space({"study": {"name": "plain", "n_trials": 3, "ablation": True}})  # dropout is searched
    assert run_cli("run", space, "--home", home, "--figures", "off") == 0
    assert "ablation of trial" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("plain").experiment_id])
    assert len([r for r in runs if r.data.tags.get("search.kind") == "trial"]) == 3

    def files(run_id: str, path: str = "") -> list[str]:
        found = []
        for a in client.list_artifacts(run_id, path or None):
            found += files(run_id, a.path) if a.is_dir else [a.path]
        return found

    every = [f for r in runs for f in files(r.info.run_id)]
    assert every and not [f for f in every if f.endswith(".png")], every
    parent = next(r for r in runs if r.data.tags.get("search.kind") == "study")
    names = set(files(parent.info.run_id))
    assert {"study/notes.md", "study/top_trials.csv", "study/ablation.txt"} <= names, names
    notes = Path(client.download_artifacts(parent.info.run_id, "study/notes.md", str(tmp_path / "n"))).read_text()
    assert notes.startswith(review.summary.FIGURES_OFF_NOTE), notes
    assert parent.data.metrics["trials_complete"] + parent.data.metrics.get("trials_pruned", 0) == 3

    # The workers of --workers are told it on their command line, or left to the environment they inherit.
    args = build_parser().parse_args(["run", str(space), "--workers", "2", "--figures", "off"])
    assert _commands._worker_argv(args)[-2:] == ["--figures", "off"]
    assert _commands._continue_command(args).endswith(" --figures off")  # as a stopped run prints it
    args = build_parser().parse_args(["run", str(space), "--workers", "2"])
    assert "--figures" not in _commands._worker_argv(args) + _commands._continue_command(args).split()
    monkeypatch.setenv("SEARCH_FIGURES", "OFF")
    assert tracking.figures_wanted(None) is False and tracking.figures_wanted(True) is True
    monkeypatch.setenv("SEARCH_FIGURES", "of")  # refused before the data is read, and nothing is made
    assert run_cli("run", space, "--home", tmp_path / "other") == 2
    assert "field 'SEARCH_FIGURES': " in capsys.readouterr().err and not (tmp_path / "other").exists()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", str(space), "--figures", "no"])
    assert "argument --figures: expected on or off; found 'no'" in capsys.readouterr().err
    import search

    with pytest.raises(search.ArgumentError, match="expected on or off, found 'of'"):
        search.run(space, home=tmp_path / "other")
    monkeypatch.delenv("SEARCH_FIGURES")
    with pytest.raises(search.ArgumentError, match="figures is True, False or None"):
        search.run(space, home=tmp_path / "other", figures="off")
    assert not (tmp_path / "other").exists()


def test_the_optimization_history_counts_trials_in_whole_numbers():
    """Three trials were ticked 0.5, 1.5, 2.5 on the report's trial axis."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import optuna
    from optuna.visualization import matplotlib as ovm

    from search.review.figures import _styled

    study = optuna.create_study()
    for value in (0.9, 0.7, 0.8):
        study.add_trial(optuna.trial.create_trial(value=value))
    import matplotlib.pyplot as plt

    # rc_context, as the report draws it: Optuna switches matplotlib to its ggplot style, which changed the
    # figures later tests of this process drew (test_drawing's PNG of another size).
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning
        fig = _styled(ovm.plot_optimization_history(study).figure, "optimization_history")
        fig.canvas.draw()
        shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
        plt.close(fig)
    assert shown and all(text.lstrip("−-").isdigit() for text in shown), shown


def test_a_run_of_a_finished_study_redraws_the_study_figures_its_last_refresh_failed_to_draw(write_space, home,
                                                                                             capsys):
    """A drawing process that failed at a run's end left the parent run without its figures and tables; running
    the finished study again, which trains nothing, did not draw them (the docs say every run's end does)."""
    import shutil

    from mlflow.tracking import MlflowClient

    from conftest import run_cli

    path = write_space({"study": {"name": "redrawn", "n_trials": 1, "baseline": False, "ablation": False},
                        "train": {"epochs": 1}})
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    parent = client.search_runs([client.get_experiment_by_name("redrawn").experiment_id],
                                "tags.`search.kind` = 'study'")[0]
    drawn = {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    assert "study/top_trials.csv" in drawn
    shutil.rmtree(Path(parent.info.artifact_uri.removeprefix("file://")) / "study")  # as a failed refresh leaves it
    assert not client.list_artifacts(parent.info.run_id, "study")
    capsys.readouterr()
    assert run_cli("run", path, "--home", home, "--quiet") == 0
    assert "already has its 1 finished trials" in capsys.readouterr().out
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "study")} == drawn
