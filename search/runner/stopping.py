"""Stopping a run gracefully: SIGINT/SIGTERM/SIGHUP end the current epoch, then the run.

The first signal only sets a flag that the training loop reads after each epoch; a second SIGINT
interrupts at once (KeyboardInterrupt), for the user who really means it.
"""
from __future__ import annotations

import os
import signal
import stat
import sys
from typing import Any

# `search run`'s exit status after a graceful stop (SIGINT/SIGTERM): the study is intact and can be
# continued, but it did not finish what was asked. A --timeout or --n-trials limit is a normal end (0).
STOPPED_EXIT_CODE = 3


def graceful_signals() -> list[int]:
    """The signals that stop a run gracefully in this process.

    SIGHUP is the terminal closing (an ssh session dropped): by default it killed the run mid-epoch and
    left the trial and its MLflow run RUNNING. Where it is ignored (``nohup search run``), it stays ignored:
    the user asked the run to outlive the terminal.
    """
    found: list[int] = [signal.SIGINT, signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        found.append(hup)
    return found


def leave_terminal() -> None:
    """After a hang-up, what this process still writes to its terminal goes nowhere.

    A terminal that has hung up fails every write (EIO): the table and the command to continue, printed
    as the run stops, would turn the graceful stop into a traceback. Output sent to a file or a pipe
    stays where it was.
    """
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        nowhere = os.fstat(null).st_rdev
        for fd in (1, 2):
            try:
                # Not os.isatty: a terminal that has hung up answers it False. Files and pipes are not
                # character devices; a terminal is one.
                found = os.fstat(fd)
                if stat.S_ISCHR(found.st_mode) and found.st_rdev != nowhere:
                    os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


def announce(signum: int) -> None:
    """Say at once that the signal was heard, so nobody presses Ctrl-C again by mistake.

    ``os.write`` rather than ``print``: a signal handler may run while the main thread is inside a
    print to the same stream, and a buffered stream refuses that reentrant call.
    """
    again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
    try:
        os.write(sys.stderr.fileno(), f"\n{signal.Signals(signum).name}: stopping at the end of the current "
                                      f"epoch{again}\n".encode())
    except (OSError, ValueError, AttributeError):  # no usable stderr (closed, or replaced by a test)
        pass


# The stop requests installed in this process, the latest last (only the main thread installs one).
_installed: list["StopRequest"] = []
# Why this process sent itself a signal (the stop's reason in place of the signal's name), by signal.
_WHY_SENT: dict[int, str] = {}


def stop_self(why: str) -> None:
    """Stop gracefully as SIGTERM does, with ``why`` as the reason the trials and the output give."""
    import os

    _WHY_SENT[signal.SIGTERM] = why
    os.kill(os.getpid(), signal.SIGTERM)


class StopRequest:
    """``announce``: say so on stderr when the first signal comes (the process the user talks to does).

    Requests nest: a command holds one from its start to its end (the closing writes, the summary, the
    ablation after the last trial), and the run inside it holds its own. A signal is heard by every one
    installed, and one installed after a signal starts out requested, so a stop heard between two runs of
    one command (a trial loop, then its ablation) is not lost.
    """

    def __init__(self, announce: bool = False) -> None:
        self.reason: str | None = None
        self.urgent = False  # a second Ctrl-C came
        self.announce = announce
        self._previous: dict[int, Any] = {}
        self._unraisable_hook: Any = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def raise_if_urgent(self) -> None:
        """Raise the second Ctrl-C's KeyboardInterrupt again where it cannot be lost.

        Python drops an exception raised while a finalizer (``__del__``) runs, and TensorFlow's
        finalizers run at any moment during training, so the handler's own raise may come to nothing.
        """
        if self.urgent:
            raise KeyboardInterrupt

    def install(self) -> "StopRequest":
        if _installed and _installed[-1].reason is not None:
            self.request(_installed[-1].reason)
        for sig in graceful_signals():
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        if self._previous:
            self._unraisable_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
            _installed.append(self)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self in _installed:
            _installed.remove(self)
        if self._unraisable_hook is not None:
            sys.unraisablehook, self._unraisable_hook = self._unraisable_hook, None

    def _unraisable(self, unraisable: Any) -> None:
        # The second Ctrl-C dropped inside a finalizer: raise_if_urgent() raises it again, so the
        # traceback Python would print for it is noise.
        if self.urgent and unraisable.exc_type is KeyboardInterrupt:
            return
        self._unraisable_hook(unraisable)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            self.urgent = True
            raise KeyboardInterrupt
        if signum == getattr(signal, "SIGHUP", None):
            leave_terminal()
        first = not self.requested
        # Recorded before it is announced: a second Ctrl-C sent on seeing the announcement can land while this
        # handler still runs, and must find the first one already there. A worker whose parent died sends
        # itself SIGTERM, which no one sent it: its trials were said to be "stopped by SIGTERM".
        why = _WHY_SENT.pop(signum, None) or signal.Signals(signum).name
        for held in [self, *_installed]:
            held.request(why)
        if self.announce and first:
            announce(signum)


class TrialInterrupted(Exception):
    """The trial was stopped by a stop request; it is recorded as failed and queued again."""
