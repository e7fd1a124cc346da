"""The ``search`` command: argument parsing, and turning user errors into one clear paragraph."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from search.errors import StudyError, UserError

if TYPE_CHECKING:
    import optuna

    from search.runner.session import Prepared, RunOptions

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
                         "mistake in the input, 3 when SIGINT/SIGTERM stopped it gracefully (continue it with "
                         "the same command), 130 after a second Ctrl-C.")
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
                     "a trial silent for 3 heartbeats is failed and retried by another worker (default 30)")

    abl = sub.add_parser("ablate", help="what the regularizers of the best (or a given) trial bought: the same "
                         "config with them switched off, on the same splits and seeds")
    abl.add_argument("study", help="study name")
    abl.add_argument("--trial", type=int, help="trial number (default: the best trial)")
    abl.add_argument("--threads", type=positive_int, help="TensorFlow threads (default: all cores)")
    _store_args(abl)

    check = sub.add_parser("check", help="load the space file and its data, run every check, print the data "
                           "summary and the split plan; trains nothing and writes nothing")
    check.add_argument("space", type=Path, help="the space file (YAML)")
    check.add_argument("--study-name", help="as `search run`'s: the study whose continuation is checked")
    _store_args(check)

    status = sub.add_parser("status", help="trial counts and the top trials of a study, from storage")
    status.add_argument("study", help="study name")
    status.add_argument("--top", type=positive_int, default=10)
    _store_args(status)

    best = sub.add_parser("best", help="the best trials of a study (of a two-objective study, its Pareto front); "
                          "--export writes the picked trial's fixed config")
    best.add_argument("study", help="study name")
    best.add_argument("--top", type=positive_int, default=10)
    best.add_argument("--export", type=Path, metavar="FILE", help="write the picked trial's config (the lowest "
                      "loss; of two objectives, the one_se pick), every value fixed, which `search run` accepts "
                      "and which repeats the trial")
    best.add_argument("--trial", type=int, metavar="N", help="with --export: write trial N's config instead")
    best.add_argument("--csv", type=Path, metavar="FILE", help="write every trial (state, settings, scores, each "
                      "split's best validation loss and epoch) as one CSV table, as scikit-learn's cv_results_")
    _store_args(best)

    rep = sub.add_parser("reproduce", help="retrain a trial's config on all non-test data, test it once, "
                         "ensemble its split models, log a reproduce run")
    rep.add_argument("study", help="study name")
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
    report.add_argument("study", help="study name")
    report.add_argument("--out", type=Path, help="the HTML file to write (default: <study>-report.html)")
    report.add_argument("--top", type=positive_int, default=10, help="rows of the top-trials table")
    _store_args(report)

    ui = sub.add_parser("ui", help="start the MLflow UI on this project's tracking store and print the URL of "
                        "a study's runs once it answers")
    ui.add_argument("study", nargs="?", help="study whose runs to open (default: the most recent)")
    _store_args(ui)
    ui.add_argument("--port", type=port_number, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    for command in sub.choices.values():  # also after the command: `search run x.yaml --debug`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the (redacted) traceback of an error")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Set before anything imports TensorFlow: its C++ start-up chatter is not for our users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from search import _redact

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `search`: what it can do, not an error
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False)) or os.environ.get("SEARCH_DEBUG", "") not in ("", "0")
    # The URLs' credentials are hidden wherever they appear, also without their URL (a driver's error).
    _redact.remember(getattr(args, "storage", None), getattr(args, "tracking_uri", None))
    try:
        return _dispatch(args, debug)
    finally:
        if argv is None:  # the program itself, not a caller in Python: its work is done
            import signal

            # A Ctrl-C while the interpreter shuts down (TensorFlow's and MLflow's clean-up) printed a
            # traceback and left the exit status at 0; the command has finished, so there is nothing to stop.
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _dispatch(args: argparse.Namespace, debug: bool) -> int:
    from search import _redact

    with _redact.guarded():
        try:
            return {"run": _run, "check": _check, "ablate": _ablate, "status": _status, "report": _report, "ui": _ui,
                    "best": _best, "reproduce": _reproduce, "storage-proxy": _storage_proxy}[args.command](args)
        except UserError as exc:
            if debug:
                print(_redact.format_exception(exc), file=sys.stderr)
            print(f"error: {_redact.redact(str(exc))}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print("\ninterrupted.", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `search check x.yaml | head`: the reader has all it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush does not fail again
            return 0
        except Exception as exc:  # the net under every command: a short paragraph, never a raw traceback
            if debug:
                print(_redact.format_exception(exc), file=sys.stderr)
            print(f"error: {UNEXPECTED} in `search {args.command}`: {type(exc).__name__}: "
                  f"{_redact.redact(_one_paragraph(exc))}. "
                  + ("The traceback is above. " if debug else "Run the same command with --debug for the "
                     "traceback. ") + "Nothing you gave was found wrong before this; please report it with the "
                  "traceback if it persists.", file=sys.stderr)
            return 1


# The net's own words: a specific error never says them (tests/test_env_corpus.py checks).
UNEXPECTED = "unexpected failure"


def _one_paragraph(exc: BaseException, limit: int = 400) -> str:
    from search._redact import redact

    # Redacted before it is cut: a password cut in half is no longer recognised as one.
    text = " ".join(redact(str(exc)).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _run(args: argparse.Namespace) -> int:
    from search import api, space as spaces
    from search.runner import session

    if args.worker_index:
        from search.runner.workers import follow_parent

        follow_parent()
    space = spaces.load(args.space, study_name=args.study_name)
    prepared = session.prepare(space, threads=args.threads)
    if not args.worker_index:  # workers share their parent's data; it speaks for them
        api.announce(prepared, quiet=args.quiet)
    options = _run_options(args)
    recycle = args.recycle_after if args.recycle_after is not None else (50 if args.workers > 1 else 0)
    outcome = api.run_prepared(prepared, options, args.space.read_text(), workers=args.workers,
                               worker_argv=_worker_argv(args), recycle_after=recycle)
    from search.runner.stopping import STOPPED_EXIT_CODE

    if outcome.stopped_by:
        return STOPPED_EXIT_CODE  # a wrapper can tell a stopped run from a finished one
    if outcome.exit_code == 0 and not args.worker_index:
        from search.reproduction.ablation import AblationStopped

        try:
            api.ablate_when_done(space, options)
        except AblationStopped:
            return STOPPED_EXIT_CODE
        api.workflow_answer(space, options)
    return outcome.exit_code


def _check(args: argparse.Namespace) -> int:
    from search import api, space as spaces
    from search.runner import session
    from search.studies.samplers import make_sampler

    prepared = session.prepare(spaces.load(args.space, study_name=args.study_name))
    make_sampler(prepared.space)  # what the sampler needs installed (gp: PyTorch), as the run would find
    api.announce(prepared)
    print(_study_to_run(prepared, args))
    print(f"{args.space}: the space and its data pass every check; nothing was trained or stored.")
    return 0


def _study_to_run(prepared: "Prepared", args: argparse.Namespace) -> str:
    """Whether `search run` with these stores starts the study or continues it, checked as the run
    would check it (same objectives, data and splits), reading the store and creating nothing."""
    from search import stores
    from search._redact import redact
    from search.reproduction import targets
    from search.runner import session
    from search.studies import lifecycle as studies

    storage, _ = _stores(args)
    name = prepared.space.study.name
    path = stores.sqlite_path(storage)
    if path is None:  # opening a server's database may create Optuna's tables in it, or wait on the network
        return (f"study '{name}': stored in {redact(storage)}, which `search check` does not open; the run checks "
                f"there whether it starts or continues the study")
    if not path.is_file():
        return f"study '{name}': a new study (no store yet at {path})"
    if not stores.writable(path):
        raise StudyError(f"the store {path} is read-only: `search run` cannot record trials in it; choose a "
                         f"writable folder with --home (or a copy of this one)", field=_storage_flag(args))
    try:
        study = targets.load_study(storage, name, flag=_storage_flag(args))
    except StudyError as exc:
        if exc.field != "STUDY":  # not a store the run could use either
            raise
        return f"study '{name}': a new study in {path}"
    studies.check_continuable(study, prepared.space, prepared.attrs())
    finished, budget = studies.finished_count(study), studies.budget_of(prepared.space)
    if finished >= budget:
        return (f"study '{name}' already has its {budget} finished trials: `search run` would train nothing "
                f"(raise study.n_trials to continue it)")
    for change in session.changed_settings(study.user_attrs.get("space_yaml"), prepared.space):
        print(f"warning: study '{name}' would continue with a setting changed since its earlier trials: {change}",
              file=sys.stderr)
    return f"study '{name}': continues the study in {path}, {finished} of {budget} trials finished"


def _continue_command(args: argparse.Namespace) -> str:
    """The command that continues this study: the same one, without per-invocation limits (--n-trials,
    --timeout); how it runs (--workers, --threads, --recycle-after) is kept."""
    from search._redact import redact

    parts = ["search", "run", str(args.space)]
    for flag, value in (("--study-name", args.study_name), ("--storage", args.storage),
                        ("--tracking-uri", args.tracking_uri)):
        if value:
            parts += [flag, redact(value)]
    if args.home != DEFAULT_HOME:
        parts += ["--home", str(args.home)]
    if args.workers > 1:
        parts += ["--workers", str(args.workers)]
    for flag, value in (("--threads", args.threads), ("--recycle-after", args.recycle_after)):
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)  # pasted into a shell as printed: a home with spaces


def _run_options(args: argparse.Namespace) -> "RunOptions":
    from search.runner import session

    options = session.RunOptions(home=Path(args.home), storage=args.storage, tracking_uri=args.tracking_uri,
                                 n_trials=args.n_trials, timeout=args.timeout, threads=args.threads,
                                 quiet=args.quiet, worker_index=args.worker_index, heartbeat=args.heartbeat,
                                 local_workers=args.local_workers, continue_command=_continue_command(args))
    if args.run_started is not None:
        options.run_started = args.run_started
    return options


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """Arguments every worker process shares (each adds its own --worker-index and --threads)."""
    argv = ["run", str(args.space), "--home", str(args.home), "--quiet", "--heartbeat", str(args.heartbeat),
            "--local-workers", str(args.workers)]  # they share this machine's cores (and its review time)
    if getattr(args, "debug", False):
        argv.append("--debug")
    if args.study_name is not None:
        argv += ["--study-name", str(args.study_name)]
    return argv  # the storage and tracking URLs go by the environment (search/runner/workers.py)


def _load_study(args: argparse.Namespace) -> "optuna.Study":
    from search.reproduction import targets
    from search.studies import lifecycle as studies

    return targets.load_study(args.storage or studies.default_storage(Path(args.home)), args.study,
                              flag=_storage_flag(args))


def _ablate(args: argparse.Namespace) -> int:
    from search import api

    from search.reproduction.ablation import AblationStopped
    from search.runner.stopping import STOPPED_EXIT_CODE

    with api.as_command():  # its errors name the command's options, not the function's arguments
        try:
            api.ablate(args.study, trial=args.trial, home=args.home, storage=args.storage,
                       tracking_uri=args.tracking_uri, threads=args.threads)
        except AblationStopped:
            return STOPPED_EXIT_CODE
    return 0


def _status(args: argparse.Namespace) -> int:
    from search.review.display import format_counts, summary_table
    from search.review.verdicts import why_ended
    from search.studies import lifecycle as studies

    study = _load_study(args)
    budget = study.user_attrs.get("budget")
    print(f"study {args.study}: " + format_counts(studies.trials_by_state(study), budget))
    print(studies.timing_text(study, budget))
    for line in why_ended(study):
        print(line)
    print(summary_table(study, args.top))
    return 0


def _report(args: argparse.Namespace) -> int:
    from search.reproduction.workflow_answer import html_section
    from search.review import report

    study = _load_study(args)
    out = report.write(study, args.out or Path(f"{args.study}-report.html"), top=args.top, extra=html_section(study))
    print(f"wrote {out}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from search import stores, ui
    from search.errors import StudyError
    from search.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(Path(args.home))
    path = stores.sqlite_path(uri)
    if path is not None and not path.is_file():  # `mlflow ui` would create an empty store
        raise StudyError(f"no MLflow store at {path}; check --home (or --tracking-uri), or run a study first",
                         field="--tracking-uri" if args.tracking_uri else "--home")
    stores.check_url(uri, "--tracking-uri", stores.TRACKING)
    return ui.serve(uri, args.host, args.port, args.study)


def _stores(args: argparse.Namespace) -> tuple[str, str]:
    from search.studies import lifecycle as studies
    from search.tracking import default_tracking_uri

    home = Path(args.home)
    return (args.storage or studies.default_storage(home), args.tracking_uri or default_tracking_uri(home))


def _storage_flag(args: argparse.Namespace) -> str:
    """The option to name in an error about the Optuna storage: the one the user gave."""
    return "--storage" if args.storage else "--home"


def _best(args: argparse.Namespace) -> int:
    from search.reproduction import targets
    from search.review.display import format_counts, summary_table
    from search.review.verdicts import why_ended
    from search.studies import lifecycle as studies

    if args.trial is not None and not args.export:
        raise UserError("--trial picks the trial --export writes; give --export FILE too", field="--trial")
    storage, tracking_uri = _stores(args)
    study = targets.load_study(storage, args.study, flag=_storage_flag(args))
    # A trial that cannot be exported is said before the table, not after it.
    target = targets.locate(study, tracking_uri, trial=args.trial) if args.export else None
    print(format_counts(studies.trials_by_state(study), study.user_attrs.get("budget")))
    for line in why_ended(study):
        print(line)
    # A two-objective study has no single best: its Pareto front, the pick that --export writes marked.
    print(summary_table(study, args.top))
    if args.csv:
        from search.review._table import write_csv

        write_csv(study, args.csv)
        print(f"\nwrote {len(study.trials)} trial(s) to {args.csv}")
    if target is not None:
        targets.export(target, args.export)
        which = " (the one_se pick)" if len(study.directions) > 1 else ""
        print(f"\nwrote trial {target.trial.number}'s config{which} (from {target.origin}) to {args.export}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from search import stores
    from search.reproduction import final as reproduce
    from search.reproduction import targets

    storage, tracking_uri = _stores(args)
    stores.check_url(tracking_uri, "--tracking-uri", stores.TRACKING)
    study = targets.load_study(storage, args.study, writes="records its look at the test set in the study",
                               flag=_storage_flag(args))
    target = targets.locate(study, tracking_uri, trial=args.trial, run_id=args.run_id, config=args.config)
    options = reproduce.Options(home=Path(args.home), tracking_uri=tracking_uri, verify=args.verify,
                                tolerance=args.tolerance, allow_data_change=args.allow_data_change,
                                epochs=args.epochs, threads=args.threads, ensemble=args.ensemble,
                                register=args.register)
    reproduce.reproduce(target, options)  # a --verify mismatch raises VerifyMismatch: exit status 1
    return 0


def _storage_proxy(args: argparse.Namespace) -> int:
    from optuna.storages import run_grpc_proxy_server

    from search.studies import lifecycle as studies
    from search._redact import redact

    from search import stores

    url = args.storage or studies.default_storage(Path(args.home))
    stores.check_url(url, "--storage", stores.STORAGE)
    storage = studies.make_storage(url)
    print(f"Optuna storage {redact(url)} served on grpc://{args.host}:{args.port}; Ctrl-C to stop",
          file=sys.stderr)
    run_grpc_proxy_server(storage, host=args.host, port=args.port)
    return 0
