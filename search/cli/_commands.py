"""Each ``search`` subcommand: its arguments turned into API calls, its outcome into lines and an exit status."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search.cli._parser import DEFAULT_HOME
from search.errors import StudyError, UserError

if TYPE_CHECKING:
    import optuna

    from search.runner.session import Prepared, RunOptions

def _run(args: argparse.Namespace) -> int:
    from search.runner.stopping import STOPPED_EXIT_CODE, StopRequest

    if args.worker_index:
        from search.runner.workers import follow_parent

        follow_parent()
    # Held from the start to the end: a Ctrl-C or SIGTERM while the data is read (it killed the command with
    # status 143 and no word), or between the last trial and the ablation (the closing writes, the summary),
    # is a graceful stop too, not a traceback or a kill mid-write.
    held = StopRequest(announce=True) if not args.worker_index else StopRequest()  # workers: their parent's
    if not args.worker_index:
        held.install()
    try:
        from search import api, space as spaces
        from search.runner import session
        from search.tracking import figures_wanted

        figures_wanted(args.figures)  # $SEARCH_FIGURES checked before the data is read
        space = spaces.load(args.space, study_name=args.study_name)
        prepared = session.prepare(space, threads=args.threads)
        if not args.worker_index:  # workers share their parent's data; it speaks for them
            api.announce(prepared, quiet=args.quiet)
        options = _run_options(args)
        recycle = args.recycle_after if args.recycle_after is not None else (50 if args.workers > 1 else 0)
        outcome = api.run_prepared(prepared, options, args.space.read_text(), workers=args.workers,
                                   worker_argv=_worker_argv(args), recycle_after=recycle)
        if outcome.stopped_by:
            return STOPPED_EXIT_CODE  # a wrapper can tell a stopped run from a finished one
        if outcome.exit_code == 0 and not args.worker_index:
            from search.reproduction.ablation import AblationStopped

            if not held.requested:
                try:
                    api.ablate_when_done(space, options)
                except AblationStopped:
                    return STOPPED_EXIT_CODE
                api.workflow_answer(space, options)
            if held.requested:
                print(f"\nstopped by {held.reason} after the trials; what is left of the study (its ablation) "
                      f"runs when you continue it with:\n  {options.continue_command}")
                return STOPPED_EXIT_CODE
        return outcome.exit_code
    finally:
        held.uninstall()


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
        return (f"study '{name}' already has {finished} finished trials, of study.n_trials {budget}: `search run` "
                f"would train nothing (raise study.n_trials above {finished} to continue it)")
    for change in session.changed_settings(study.user_attrs.get("space_yaml"), prepared.space):
        print(f"warning: study '{name}' would continue with a setting changed since its earlier trials: {change}",
              file=sys.stderr)
    return f"study '{name}': continues the study in {path}, {finished} of {budget} trials finished"


def _continue_command(args: argparse.Namespace) -> str:
    """The command that continues this study: the same one, without per-invocation limits (--n-trials,
    --timeout); how it runs (--workers, --threads, --recycle-after) is kept."""
    from search._redact import flag_words, redact

    parts = ["search", "run", str(args.space)]
    if args.study_name:
        parts += ["--study-name", redact(args.study_name)]
    parts += flag_words("--storage", args.storage, "SEARCH_STORAGE")
    parts += flag_words("--tracking-uri", args.tracking_uri, "MLFLOW_TRACKING_URI")
    if args.home != DEFAULT_HOME:
        parts += ["--home", str(args.home)]
    if args.workers > 1:
        parts += ["--workers", str(args.workers)]
    for flag, value in (("--threads", args.threads), ("--recycle-after", args.recycle_after)):
        if value is not None:
            parts += [flag, str(value)]
    if args.heartbeat != 30:  # a fleet's heartbeat, as the run had it
        parts += ["--heartbeat", str(args.heartbeat)]
    if getattr(args, "storage_patience", 600.0) != 600.0:
        parts += ["--storage-patience", f"{args.storage_patience:g}"]
    if getattr(args, "figures", None) is False:  # given on the command line ($SEARCH_FIGURES stays set)
        parts += ["--figures", "off"]
    # As the end of a run's next steps say it: a hidden password does not run as printed.
    hidden = [(flag, variable) for flag, variable, url in (("--storage", "SEARCH_STORAGE", args.storage),
                                                           ("--tracking-uri", "MLFLOW_TRACKING_URI", args.tracking_uri))
              if url and url != os.environ.get(variable) and redact(str(url)) != str(url)]
    note = ("\n  (a password is shown as ***, so this does not run as printed: put the full URL in $"
            + " and $".join(v for _, v in hidden) + " and leave " + " and ".join(f for f, _ in hidden)
            + " out)") if hidden else ""
    return shlex.join(parts) + note  # pasted into a shell as printed: a home with spaces


def _run_options(args: argparse.Namespace) -> "RunOptions":
    from search.runner import session

    options = session.RunOptions(home=Path(args.home), storage=args.storage, tracking_uri=args.tracking_uri,
                                 n_trials=args.n_trials, timeout=args.timeout, threads=args.threads,
                                 quiet=args.quiet, worker_index=args.worker_index, heartbeat=args.heartbeat,
                                 figures=args.figures, storage_patience=args.storage_patience,
                                 local_workers=args.local_workers, continue_command=_continue_command(args))
    if args.run_started is not None:
        options.run_started = args.run_started
    return options


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """Arguments every worker process shares (each adds its own --worker-index and --threads)."""
    argv = ["run", str(args.space), "--home", str(args.home), "--quiet", "--heartbeat", str(args.heartbeat),
            "--storage-patience", f"{args.storage_patience:g}",
            "--local-workers", str(args.workers)]  # they share this machine's cores (and its review time)
    if args.figures is not None:  # else $SEARCH_FIGURES, which they inherit, or on
        argv += ["--figures", "on" if args.figures else "off"]
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
                       tracking_uri=args.tracking_uri, threads=args.threads, figures=args.figures)
        except AblationStopped:
            return STOPPED_EXIT_CODE
    return 0


def _status(args: argparse.Namespace) -> int:
    from search.review.display import format_counts, summary_table
    from search.review.verdicts import test_looks, why_ended
    from search.studies import lifecycle as studies

    study = _load_study(args)
    budget = study.user_attrs.get("budget")
    print(f"study {study.study_name}: " + format_counts(studies.trials_by_state(study), budget))
    print(studies.timing_text(study, budget))
    for line in why_ended(study):
        print(line)
    print(summary_table(study, args.top))
    print(test_looks(study))
    return 0


def _report(args: argparse.Namespace) -> int:
    from search.reproduction.workflow_answer import html_section
    from search.review import report

    study = _load_study(args)
    out = report.write(study, args.out or Path(f"{study.study_name}-report.html"), top=args.top,
                       extra=html_section(study))
    print(f"wrote {out}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from search import api

    out = args.out or args.input.with_name(f"{args.input.stem}-predictions.csv")
    if out.resolve() == args.input.resolve():
        raise UserError("--out names the input file; the predictions are written beside the rows, in another file",
                        field="--out", found=str(out))
    with api.as_command():
        frame = api.predict(args.study, args.input, run_id=args.run_id, home=args.home,
                            tracking_uri=args.tracking_uri)
    from search.reproduction.rows import shortest_text

    predicted = set(frame.attrs.get("predicted", ()))
    for column in frame.columns:
        if column in predicted and frame[column].dtype.kind == "f":
            # the model's float32, in the digits that read back as it (rows.csv's)
            frame[column] = shortest_text(frame[column].to_numpy())
        elif column not in predicted and frame[column].dtype.kind == "f":
            # The user's whole numbers with a gap (pandas' floats) written back as the file wrote them: 35, not 35.0.
            values = frame[column].to_numpy(dtype="float64", na_value=np.nan)  # pandas' nullable Float64 too
            present = values[~np.isnan(values)]
            if len(present) < len(values) and np.all(present == np.round(present)) and np.all(abs(present) < 2**53):
                frame[column] = frame[column].astype("Int64")
    try:  # a folder that is not there yet is made, as `search best --export` and `search report --out` make theirs
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
    except OSError as exc:
        raise UserError(f"cannot write the predictions to {out} ({exc.strerror or exc})", field="--out",
                        expected="a file in a folder this user may write to", found=str(out)) from None
    print(f"predicted by {frame.attrs.get('model')}")
    if frame.attrs.get("score"):
        print(frame.attrs["score"])
    print(f"wrote {len(frame)} row(s) with their predictions to {out}")
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
    from search.reproduction.targets import study_named_by

    return ui.serve(uri, args.host, args.port, study_named_by(args.study) if args.study else None)


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
        which = " (the one_se pick)" if len(study.directions) > 1 and args.trial is None else ""
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
