"""The program's end: once a command's work is done, leave without the interpreter's teardown.

Tearing down TensorFlow's, Keras' and MLflow's modules object by object took 2 s after the last line was
printed, in every command and in every worker process of a run (measured on 2 cores: 9.0 s against 7.1 s for
a process that imports them and fits one model). What a normal exit would still do for us is done first: the
exit handlers (logging's flush, the libraries' own), the database connections' close (SQLite folds its
write-ahead log back into the file then, so ``mlflow.db`` or ``optuna.db`` alone is whole), and the streams' last flush.
"""
from __future__ import annotations

import os
import sys
import weakref
from typing import Any

_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def watch_engines() -> None:
    """Remember every SQLAlchemy engine that connects from now on, to close its connections at the end."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def remember(connection: Any) -> None:
        _engines.add(connection.engine)

    if not event.contains(Engine, "engine_connect", remember):
        event.listen(Engine, "engine_connect", remember)


def leave(code: int) -> None:
    """Exit with ``code`` at once; or return, and exit as usual, while a thread that is not a daemon works
    or a profiler or tracer watches."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    if sys.getprofile() is not None or sys.gettrace() is not None:  # `python -m cProfile`, a debugger, coverage:
        return  # they write what they gathered after the program returns
    atexit._run_exitfuncs()
    for engine in list(_engines):
        try:
            engine.dispose()
        except Exception:  # a connection already broken: nothing of ours is left in it
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (`| head`), or a stream closed already
            pass
    os._exit(code)
