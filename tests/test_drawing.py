"""Figures are drawn in a helper process, so drawing never takes Python's lock from the training thread."""
from __future__ import annotations

import os

import pytest

from search.review import diagnostics, figures
from search.review._drawing import Drawer, DrawingFailed


def _histories() -> dict[int, dict[str, list[float]]]:
    return {k: {"loss": [1 / (e + 1) for e in range(8)], "val_loss": [1 / (e + 1) + 0.02 * e for e in range(8)]}
            for k in range(3)}


def test_a_figure_is_drawn_in_another_process_and_is_the_same_png():
    drawer = Drawer()
    try:
        assert drawer.call(os.getpid) != os.getpid()
        histories = _histories()
        diagnosis = diagnostics.diagnose_trial(histories, 2.3, 5)
        png = drawer.call(figures.learning_curves, histories, diagnosis, "trial 3", fit="good")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) == len(figures.learning_curves(histories, diagnosis, "trial 3", fit="good"))
    finally:
        drawer.close()


def test_an_error_in_the_helper_is_raised_here_with_its_message_and_the_helper_goes_on():
    drawer = Drawer()
    try:
        with pytest.raises(DrawingFailed, match="FileNotFoundError"):
            drawer.call(os.stat, "/no/such/file/here")
        assert drawer.call(os.getpid) != os.getpid()  # the same helper still answers
    finally:
        drawer.close()


def test_when_the_helper_dies_the_drawing_is_done_in_this_process():
    drawer = Drawer()
    try:
        helper = drawer.call(os.getpid)
        os.kill(helper, 9)
        drawer._proc.wait(timeout=10)
        assert drawer.call(os.getpid) == os.getpid()  # no figure is lost, none is drawn twice
        assert drawer._proc is None
    finally:
        drawer.close()


def test_closing_ends_the_helper():
    drawer = Drawer()
    drawer.call(os.getpid)
    proc = drawer._proc
    drawer.close()
    assert proc.poll() is not None


def test_the_reused_learning_curve_figure_draws_each_trial_as_a_fresh_figure_would(monkeypatch):
    """One figure serves every trial; nothing of the trial drawn before (log axis, more splits, onset
    lines, limits, title) may show in the next."""
    small = _histories()
    large = {k: {"loss": [500 * 0.8 ** e for e in range(40)],
                 "val_loss": [600 * 0.8 ** e + 0.05 * e for e in range(40)]} for k in range(5)}
    d_small, d_large = diagnostics.diagnose_trial(small, 2.3, 5), diagnostics.diagnose_trial(large, 2.3, 5)
    fresh = {}
    for name, histories, diagnosis in (("small", small, d_small), ("large", large, d_large)):
        monkeypatch.setattr(figures, "_curves", None)  # a new figure
        fresh[name] = figures.learning_curves(histories, diagnosis, f"trial {name}", fit="good")
    assert fresh["small"] != fresh["large"]
    # Each drawn again right after the other one, on the figure that other one used.
    assert figures.learning_curves(small, d_small, "trial small", fit="good") == fresh["small"]
    assert figures.learning_curves(large, d_large, "trial large", fit="good") == fresh["large"]
    assert figures.learning_curves(small, d_small, "trial small", fit="good") == fresh["small"]


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process niceness on this platform")
def test_the_helper_draws_at_the_runs_priority_or_at_the_niceness_it_is_given():
    drawers = [Drawer(), Drawer(niceness=19)]  # the second as benchmarks/drawing_priority.py compares with
    try:
        assert drawers[0].call(os.nice, 0) == os.nice(0)
        assert drawers[1].call(os.nice, 0) == 19 > os.nice(0)  # this process keeps its own priority
    finally:
        for drawer in drawers:
            drawer.close()


def test_the_drawing_helper_leaves_quietly_when_its_run_was_killed():
    """A run killed outright closes the pipe the helper answers on: no traceback may reach its terminal."""
    import pickle
    import subprocess
    import sys

    from search.review import _drawing

    proc = subprocess.Popen([sys.executable, _drawing.__file__, "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _drawing._send(proc.stdin, pickle.dumps(("time", "sleep", (1.0,), {})))
    proc.stdout.close()  # the run is gone before the answer comes
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_every_run_of_a_process_draws_through_one_helper(tmp_path, monkeypatch):
    """Each run started a helper of its own, which paid its start and matplotlib's first figure again
    (about 2 s of CPU per run of a notebook or a script)."""
    import yaml

    from conftest import TINY, merge, run_cli
    from search.review import _drawing

    helper = _drawing.shared().call(os.getpid)
    starts = []
    start = _drawing.Drawer._start
    monkeypatch.setattr(_drawing.Drawer, "_start", lambda self: starts.append(self) or start(self))
    for name in ("one", "two"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merge(TINY, {"study": {"name": name, "n_trials": 1, "baseline": False}})))
        assert run_cli("run", path, "--home", tmp_path / "h", "--quiet") == 0
    assert starts == []  # both runs drew (their trials' and the study's figures) through the running helper
    assert _drawing.shared().call(os.getpid) == helper != os.getpid()


def test_a_long_run_name_as_a_figure_title_keeps_its_trial_number_inside_the_figure():
    """A run's name centred over the axes ran past both edges of the figure: "03 layers=1 units=124 ..." for
    t003, the part that says which trial it is cut off."""
    from search.review import figures

    fig = figures._figure()
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.08, right=0.74, top=0.91, bottom=0.1)
    name = ("t003 ★ 0.1152 layers=1 units=124 dropout=0.2134 l2=0.000123 batchnorm=on learning_rate=0.00312 "
            "batch_size=64 optimizer=adam momentum=0.9 weight_decay=0.0001 augment=flip,rotate  [fit: good]")
    figures._title(ax, name)
    fig.canvas.draw()
    from matplotlib.text import Text

    title = next(t for t in ax.get_children() if isinstance(t, Text) and t.get_text().startswith("t003 ★"))
    box = title.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    assert 0 <= box.x0 and box.x1 <= width and box.y1 <= height, (box, width, height)
