"""The tracker's side thread: MLflow writes in order while training goes on, failures handed back."""
from __future__ import annotations

import logging
from typing import Any

from search._redact import redact

_log = logging.getLogger("search")


class DeferredFailure(Exception):
    """A tracking write made on the side thread failed; raised at the listener's next call, named by its event."""

    def __init__(self, event: str, error: Exception) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.event, self.error = event, error


class Later:
    """One daemon thread that makes the tracker's writes, in order, while training goes on.

    Work with an ``event`` that fails is kept and raised (as :class:`DeferredFailure`) at the tracker's
    next call on the training thread, so the run's listener accounting (warn once, off after failing in
    several trials in a row) sees it; work without one only logs its failure (a figure is never worth a
    trial). ``drain`` waits for everything submitted so far.
    """

    def __init__(self, name: str = "search-tracking") -> None:
        import queue
        import threading

        self.name = name
        self._queue: Any = queue.Queue()
        self._thread: Any = None
        self._failures: list[tuple[int, DeferredFailure]] = []  # (item number, failure), oldest first
        self._submitted = self._done = 0
        self._progress = threading.Condition()

    def ticket(self) -> int:
        """The work submitted so far; ``wait(ticket)`` returns once all of it is done."""
        return self._submitted

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait until the work before ``ticket`` is done, or ``timeout`` seconds; True if it is done."""
        with self._progress:
            return self._progress.wait_for(lambda: self._done >= ticket, timeout)

    def submit(self, fn: Any, *args: Any, event: str | None = None) -> None:
        import threading

        if self._thread is None or not self._thread.is_alive():
            from search._stack import call_with_room

            # SQLAlchemy's and MLflow's calls go deep; a frame stack that maps no memory (search/_stack.py).
            self._thread = threading.Thread(target=call_with_room, args=(self._work,), name=self.name, daemon=True)
            self._thread.start()
        self._queue.put((self._submitted, fn, args, event))
        self._submitted += 1

    def drain(self) -> None:
        if self._thread is not None:
            self._queue.join()

    def raise_failure(self, before: int) -> None:
        """Raise the first failure among items submitted before ticket ``before`` (dropping the rest of them)."""
        with self._progress:  # the side thread appends to the same list
            due = [f for n, f in self._failures if n < before]
            self._failures = [(n, f) for n, f in self._failures if n >= before]
        if due:
            raise due[0]

    def _work(self) -> None:
        while True:
            number, fn, args, event = self._queue.get()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001  (handed back to the training thread, or logged)
                if event is None:
                    _log.warning("background tracking work failed: %s", redact(exc))
                else:
                    with self._progress:
                        self._failures.append((number, DeferredFailure(event, exc)))
            finally:
                with self._progress:
                    self._done += 1
                    self._progress.notify_all()
                self._queue.task_done()
