"""The ``search`` command: argument parsing, and turning user errors into one clear paragraph."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from search.cli._commands import (_ablate, _best, _check, _predict, _report, _reproduce, _run, _status,
                                  _storage_proxy, _ui)
from search.cli import _exit
from search.cli._parser import DEFAULT_HOME, build_parser, parse_duration, positive_duration
from search.errors import UserError

__all__ = ["DEFAULT_HOME", "UNEXPECTED", "build_parser", "main", "parse_duration", "positive_duration"]


def main(argv: Sequence[str] | None = None) -> int:
    # Set before anything imports TensorFlow: its C++ start-up chatter is not for our users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        from search import _redact

        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # bare `search`: what it can do, not an error
            parser.print_help()
            return 0
        if argv is None:  # after --help, which opens no database and need not import SQLAlchemy for it
            _exit.watch_engines()
    except KeyboardInterrupt:  # a Ctrl-C in the first tenths of a second, before any command began (a traceback)
        print("\ninterrupted before the command started; nothing was done.", file=sys.stderr)
        return 130
    debug = bool(getattr(args, "debug", False)) or os.environ.get("SEARCH_DEBUG", "") not in ("", "0")
    # The URLs' credentials are hidden wherever they appear, also without their URL (a driver's error).
    _redact.remember(getattr(args, "storage", None), getattr(args, "tracking_uri", None))
    try:
        code = _dispatch(args, debug)
    finally:
        if argv is None:  # the program itself, not a caller in Python: its work is done
            import signal

            # A Ctrl-C while the interpreter shuts down (TensorFlow's and MLflow's clean-up) printed a
            # traceback and left the exit status at 0; the command has finished, so there is nothing to stop.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    if argv is None:
        _exit.leave(code)
    return code


def _on_these_stores(text: str, args: argparse.Namespace) -> str:
    """A command an error suggests (`search status STUDY`), on the stores this one was given (--home ...):
    the code that says it does not know them."""
    if not hasattr(args, "home"):
        return text
    import re

    from search.review.display import command

    options = argparse.Namespace(home=args.home, storage=getattr(args, "storage", None),
                                 tracking_uri=getattr(args, "tracking_uri", None))
    import shlex

    # A space file's path may be quoted (a folder with spaces): taken unquoted, quoted again by command().
    return re.sub(r"`search (status|best|report|reproduce|ablate|run) ('[^'`]*'|[^`\s]+)`",
                  lambda m: f"`{command(m.group(1), shlex.split(m.group(2))[0], options)}`", text)


def _dispatch(args: argparse.Namespace, debug: bool) -> int:
    from search import _redact

    with _redact.guarded():
        try:
            return {"run": _run, "check": _check, "ablate": _ablate, "status": _status, "report": _report, "ui": _ui,
                    "best": _best, "reproduce": _reproduce, "storage-proxy": _storage_proxy,
                    "predict": _predict}[args.command](args)
        except UserError as exc:
            if debug:
                print(_redact.format_exception(exc), file=sys.stderr)
            print(f"error: {_redact.redact(_on_these_stores(str(exc), args))}", file=sys.stderr)
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
            from search.stores import trouble_of

            trouble = trouble_of(exc)
            if trouble:  # the machine's, not the user's input, and not a bug to report either
                print(f"error: {_redact.redact(trouble)}", file=sys.stderr)
                return 1
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
