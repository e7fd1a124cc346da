"""The ``search`` command's arguments: every subcommand's options and the types that check them."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

DEFAULT_HOME = "mlruns"


def parse_duration(text: str) -> float:
    """``8h``, ``90m``, ``1h30m``, ``45s`` or plain seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise argparse.ArgumentTypeError(f"expected a duration like 8h, 90m, 1h30m or 3600; found {text!r}")
    scale = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(n) * scale[u] for n, u in parts)


def positive_duration(text: str) -> float:
    """A duration above zero: ``--timeout 0`` would otherwise read as no limit at all."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above zero, like 8h or 90m; found {text!r}")
    return seconds


def _counting(low: int, high: int | None = None):
    """An argparse type for whole numbers of at least ``low`` (and at most ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number; found {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}; found {text!r}")
        return value

    parse.__name__ = "whole number"  # what argparse names in "invalid <type> value"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; found {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0; found {text!r}")
    return value


_positive_float.__name__ = "number"
positive_int, non_negative_int, port_number = _counting(1), _counting(0), _counting(1, 65535)


def on_off(text: str) -> bool:
    """``on`` or ``off``, in any case."""
    word = text.strip().lower()
    if word not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off; found {text!r}")
    return word == "on"


on_off.__name__ = "on/off"


def _figures_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--figures", type=on_off, default=None, metavar="on|off",
                   help="draw PNG figures into MLflow: each trial's learning curves and the study's figures "
                   "(default: $SEARCH_FIGURES, else on); off saves their CPU time (about 2 s a process and 50 ms "
                   "a trial); the tables, notes and metrics are written either way, and `search report` still draws")


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", default=os.environ.get("SEARCH_HOME", DEFAULT_HOME),
                   help="folder for the default stores, artifacts and checkpoints (default: mlruns)")
    p.add_argument("--storage", default=os.environ.get("SEARCH_STORAGE"),
                   help="Optuna storage URL (default: sqlite:///<home>/optuna.db)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI (default: sqlite:///<home>/mlflow.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="search", description="Hyperparameter search and honest validation "
                                     "for Keras models, on Optuna, scikit-learn and MLflow.")
    from search import __version__

    parser.add_argument("--version", action="version", version=f"search {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the (redacted) traceback of an error")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="start or continue the study a space file describes",
                         description="Start or continue the study a space file describes. Exit status: 0 when "
                         "the run ended normally (budget spent, --n-trials or --timeout reached), 2 for a "
                         "mistake in the input, 3 when SIGINT/SIGTERM/SIGHUP stopped it gracefully (continue it with "
                         "the same command; also while the data is still being read), 130 after a second "
                         "Ctrl-C, 1 where every trial failed or on an unexpected failure.")
    run.add_argument("space", type=Path, help="the space file (YAML)")
    run.add_argument("--study-name", help="override study.name from the file")
    _store_args(run)
    run.add_argument("--n-trials", type=positive_int, help="run at most this many trials now (the file's n_trials is "
                     "the study's total budget)")
    run.add_argument("--timeout", type=positive_duration, help="stop starting trials after this long (8h, 90m)")
    run.add_argument("--threads", type=positive_int, help="TensorFlow threads (default: all cores)")
    run.add_argument("--quiet", action="store_true", help="no progress lines, only the final table")
    run.add_argument("--workers", type=positive_int, default=1, help="run N worker processes on this study; "
                     "TensorFlow threads per worker = cores / N")
    run.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    run.add_argument("--run-started", type=float, default=None, help=argparse.SUPPRESS)
    run.add_argument("--local-workers", type=positive_int, default=1, help=argparse.SUPPRESS)
    run.add_argument("--recycle-after", type=non_negative_int, default=None, metavar="N",
                     help="run trials in a child process replaced every N trials, so memory that a custom "
                     "builder or library keeps is returned (default: 50 with --workers, off otherwise)")
    run.add_argument("--heartbeat", type=positive_int, default=30, help="seconds between a running trial's heartbeats; "
                     "a trial silent for 3 of its own worker's heartbeats is failed and retried by another worker "
                     "(default 30)")
    run.add_argument("--storage-patience", type=positive_duration, default=600.0, metavar="DURATION",
                     help="how long a worker waits for an Optuna storage that stopped answering mid-run (retrying "
                     "with backoff) before it exits with status 1 (default 10m; 1h for a database's maintenance "
                     "window)")
    _figures_arg(run)

    abl = sub.add_parser("ablate", help="what the regularizers of the best (or a given) trial bought: the same "
                         "config with them switched off, on the same splits and seeds")
    abl.add_argument("study", help="study name, or the space file that names it")
    abl.add_argument("--trial", type=int, help="trial number (default: the best trial)")
    abl.add_argument("--threads", type=positive_int, help="TensorFlow threads (default: all cores)")
    _store_args(abl)
    _figures_arg(abl)

    check = sub.add_parser("check", help="load the space file and its data, run every check, print the data "
                           "summary and the split plan; trains nothing and writes nothing")
    check.add_argument("space", type=Path, help="the space file (YAML)")
    check.add_argument("--study-name", help="as `search run`'s: the study whose continuation is checked")
    _store_args(check)

    status = sub.add_parser("status", help="trial counts and the top trials of a study, from storage")
    status.add_argument("study", help="study name, or the space file that names it")
    status.add_argument("--top", type=positive_int, default=10, help="rows of the top-trials table")
    _store_args(status)

    best = sub.add_parser("best", help="the best trials of a study (of a two-objective study, its Pareto front); "
                          "--export writes the picked trial's fixed config")
    best.add_argument("study", help="study name, or the space file that names it")
    best.add_argument("--top", type=positive_int, default=10, help="rows of the top-trials table")
    best.add_argument("--export", type=Path, metavar="FILE", help="write the picked trial's config (the lowest "
                      "loss; of two objectives, the one_se pick), every value fixed, which `search run` accepts "
                      "and which repeats the trial")
    best.add_argument("--trial", type=int, metavar="N", help="with --export: write trial N's config instead")
    best.add_argument("--csv", type=Path, metavar="FILE", help="write every trial (state, settings, scores, each "
                      "split's best validation loss and epoch) as one CSV table, as scikit-learn's cv_results_")
    _store_args(best)

    rep = sub.add_parser("reproduce", help="retrain a trial's config on all non-test data, test it once, "
                         "ensemble its split models, log a reproduce run")
    rep.add_argument("study", help="study name, or the space file that names it")
    which = rep.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="trial number (default: the best trial)")
    which.add_argument("--run-id", help="the MLflow run id of a trial")
    which.add_argument("--config", type=Path, metavar="FILE", help="a fixed config, as `search best --export` "
                       "writes it")
    rep.add_argument("--verify", action="store_true", help="first re-run the trial's validation as the "
                     "search ran it, with the stored seeds, and compare each split's best validation loss; a mismatch "
                     "exits 1 before the test rows are looked at")
    rep.add_argument("--tolerance", type=_positive_float, help="relative tolerance of --verify (default 1e-4)")
    rep.add_argument("--allow-data-change", action="store_true", help="go on when the data differs from the "
                     "study's (by fingerprint)")
    rep.add_argument("--epochs", type=positive_int,
                     help="train the final model this many epochs instead of the epoch rule")
    rep.add_argument("--ensemble", type=positive_int, default=1, metavar="N",
                     help="also train the final models of the top N trials and score their averaged predictions "
                     "in the same look at the test rows")
    rep.add_argument("--threads", type=positive_int, help="TensorFlow threads (default: all cores)")
    rep.add_argument("--register", metavar="NAME", help="also register the final model in MLflow's model registry "
                     "as the next version of NAME (created if new)")
    _store_args(rep)

    proxy = sub.add_parser("storage-proxy", help="serve the Optuna storage to many workers over gRPC "
                           "(workers then use --storage grpc://HOST:PORT)")
    _store_args(proxy)
    proxy.add_argument("--host", default="0.0.0.0")
    proxy.add_argument("--port", type=port_number, default=13000)

    report = sub.add_parser("report", help="write the study's review (figures, diagnostics, top trials) as "
                            "one self-contained HTML file")
    report.add_argument("study", help="study name, or the space file that names it")
    report.add_argument("--out", type=Path, help="the HTML file to write (default: <study>-report.html)")
    report.add_argument("--top", type=positive_int, default=10, help="rows of the top-trials table")
    _store_args(report)

    predict = sub.add_parser("predict", help="the final model's predictions (of the best trial's latest "
                             "reproduce run) for the rows of a CSV file, written beside them")
    predict.add_argument("study", help="study name, or the space file that names it")
    predict.add_argument("input", type=Path, help="a CSV file of rows with the training file's feature columns")
    predict.add_argument("--out", type=Path, help="the CSV file to write (default: <input>-predictions.csv)")
    predict.add_argument("--run-id", help="the reproduce run whose final model predicts (default: the best trial's "
                         "latest, else the latest)")
    _store_args(predict)

    ui = sub.add_parser("ui", help="start the MLflow UI on this project's tracking store and print the URL of "
                        "a study's runs once it answers")
    ui.add_argument("study", nargs="?", help="study whose runs to open, or its space file (default: the most recent)")
    _store_args(ui)
    ui.add_argument("--port", type=port_number, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    for command in sub.choices.values():  # also after the command: `search run x.yaml --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the (redacted) traceback of an error")
    return parser
