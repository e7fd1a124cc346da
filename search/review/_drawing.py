"""Figures drawn in a helper process, so that matplotlib never holds the training process's Python lock.

A trial's learning-curve figure takes about 110 ms of CPU, nearly all of it Python. Drawn on the tracker's
side thread, it ran beside the next trial and took Python's lock from the training thread each time a
TensorFlow call returned: measured, it slowed the next trial by more than the drawing itself. Training
a small model keeps about one of two cores busy, so a second process draws on the idle one and hands
back the PNG bytes; the side thread only waits on a pipe.

The helper is a plain ``python <this file>`` child, not ``multiprocessing``: a spawned process re-imports
the parent's main script, which runs a search again when that script calls ``search.run`` without a
``__main__`` guard. It is started on first use, ignores Ctrl-C (the run decides when to stop) and ends
when its pipe closes. Where it cannot start or dies, the work is done in this process, as before.

One helper serves every run of a process (:func:`shared`): starting one, with matplotlib's first figure,
costs some 2 s of CPU, which a notebook's or a script's second and later runs need not pay again.
"""
from __future__ import annotations

import sys

if __name__ == "__main__":
    # Run as a script, this file's folder is first on sys.path: its modules must not shadow libraries.
    del sys.path[0]

import atexit
import importlib
import logging
import os
import pickle
import struct
import subprocess
import threading
import weakref
from typing import IO, Any, Callable

_log = logging.getLogger("search")
# The helper's niceness (added to the run's). It draws at the training's own priority: at the lowest (19)
# it should only take cores training leaves idle, but side by side in one process it measured no faster
# (100-epoch trials 1.12x and 1.15x their bare fit at 0 and 19; benchmarks/drawing_priority.py and
# docs/performance.md), while its figures would wait whenever training kept every core busy.
NICENESS = 0
_HEADER = struct.Struct("<Q")


class DrawingFailed(Exception):
    """The function raised in the helper process; the message is its error."""


class _Unavailable(Exception):
    """The helper process could not be started, or stopped answering."""


class Drawer:
    """Calls module-level functions in one helper process, one call at a time, from any thread."""

    def __init__(self, niceness: int = NICENESS) -> None:
        self.niceness = niceness  # added to the helper's priority when it starts
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._in_process = False  # the helper failed once: draw here for the rest of the run

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the helper; raises :class:`DrawingFailed` if it raised there."""
        if not self._in_process:
            try:
                return self._remote(fn, args, kwargs)
            except _Unavailable as exc:
                _log.debug("figures are drawn in this process from now on: %s", exc)
                self._in_process = True
                self.close()
        return fn(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)

    def _remote(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        payload = pickle.dumps((fn.__module__, fn.__qualname__, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            proc = self._proc or self._start()
            try:
                assert proc.stdin is not None and proc.stdout is not None
                _send(proc.stdin, payload)
                ok, value = pickle.loads(_receive(proc.stdout))
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                raise _Unavailable(f"the drawing process stopped ({type(exc).__name__}: {exc})") from None
        if not ok:
            raise DrawingFailed(value)
        return value

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            proc = subprocess.Popen([sys.executable, __file__, str(self.niceness)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise _Unavailable(f"cannot start {sys.executable} ({exc})") from None
        self._proc = proc
        weakref.finalize(self, _stop, proc)  # a tracker that is never finished still ends its helper
        return proc


_SHARED: tuple[int, Drawer] | None = None  # with the process it belongs to: a forked child starts its own
_SHARED_LOCK = threading.Lock()


def shared() -> Drawer:
    """The process's drawing helper, for every run in it; ended when the process ends (its pipe closes).
    One that failed in an earlier run is tried again."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED[0] != os.getpid():
            _SHARED = (os.getpid(), Drawer())
            atexit.register(_SHARED[1].close)
        drawer = _SHARED[1]
        drawer._in_process = False
        return drawer


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # the helper ends when its pipe closes
        proc.wait(timeout=5)
    except Exception:  # noqa: BLE001  (stuck, or already gone)
        proc.kill()


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("no answer")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("a cut answer")
    return data


def _serve(niceness: int = NICENESS) -> None:
    """The helper's loop: read a call, run it, answer (result or error text), until the pipe closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        try:
            os.nice(niceness)
        except (AttributeError, OSError):  # no niceness here (Windows): drawn at the usual priority
            pass
    try:  # a review's in-memory study is not news, nor a figure with no complete trial to draw
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:
        pass
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the answers
    requests = sys.stdin.buffer
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            return
        try:
            module, name, args, kwargs = pickle.loads(request)
            fn: Any = importlib.import_module(module)
            for part in name.split("."):
                fn = getattr(fn, part)
            answer = pickle.dumps((True, fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001  (handed back to the caller)
            answer = pickle.dumps((False, f"{type(exc).__name__}: {exc}"))
        try:
            _send(answers, answer)
        except (BrokenPipeError, ValueError):
            # The run is gone (killed outright): nobody to answer, and no traceback for the terminal it left,
            # not even the one a flush of the answers at exit would print.
            os._exit(0)


if __name__ == "__main__":
    _niceness = int(sys.argv[1]) if len(sys.argv) > 1 else NICENESS
    try:
        from search._stack import call_with_room
    except ImportError:  # started without the package on its path: plain calls
        _serve(_niceness)
    else:
        call_with_room(_serve, _niceness)  # matplotlib draws deep (search/_stack.py)
