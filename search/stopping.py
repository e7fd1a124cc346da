"""Stopping a run gracefully: SIGINT/SIGTERM end the current epoch, then the run.

The first signal only sets a flag that the training loop reads after each epoch; a second SIGINT
interrupts at once (KeyboardInterrupt), for the user who really means it.
"""
from __future__ import annotations

import signal
from typing import Any


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def install(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)


class TrialInterrupted(Exception):
    """The trial was stopped by a stop request; it is recorded as failed and queued again."""
