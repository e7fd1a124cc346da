"""A trial this worker must give up without telling Optuna: the storage went away, or another worker took it.

Optuna tells the storage how every trial ended. With the storage gone, that tell fails, and Optuna's own
error handling then reads the trial again, fails again, and ends in ``UnboundLocalError: updated_state``
(optuna/study/_optimize.py), leaving the trial RUNNING; with the trial failed by another worker (its
heartbeats judged silent), the tell is refused with ``ValueError: Cannot tell a FAIL trial``. Both ended
the worker. Here the objective ends such a trial with :class:`TrialAbandoned`, which Optuna lets through
untold, and the run loop waits for the storage (:func:`wait_for_storage`) or goes on to the next trial.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from search.errors import StoreTrouble

# How long a worker waits for the storage to answer again before it gives up, in seconds in all.
PATIENCE_SECONDS = 600.0
# The first wait between two tries, doubled after each up to the last.
FIRST_WAIT, LONGEST_WAIT = 1.0, 30.0


class TrialAbandoned(BaseException):
    """Ends a trial that must not be told. A BaseException on purpose: Optuna tells every ``Exception`` (and
    ``KeyboardInterrupt``) as a failure, and telling is what cannot be done here."""

    def __init__(self, trial_number: int, state: str, reason: str) -> None:
        super().__init__(reason)
        self.trial_number, self.state, self.reason = trial_number, state, reason


def storage_error(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc`` where the storage could not be reached (a dropped connection, a
    server that is down); None for every other error, a constraint or a bad value included."""
    import sqlalchemy.exc as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # PendingRollbackError: a session whose connection broke mid-transaction, refused until rolled back.
        if isinstance(current, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError,
                                sa.PendingRollbackError)):
            return current
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return current
        current = current.__cause__ or current.__context__
    return None


def taken_over(exc: BaseException) -> bool:
    """Whether ``exc`` says the running trial was finished by someone else (a write Optuna refused)."""
    from optuna.exceptions import UpdateFinishedTrialError

    current: BaseException | None = exc
    for _ in range(8):  # a chain is short; a loop in one must not hang the worker
        if current is None:
            return False
        if isinstance(current, UpdateFinishedTrialError):
            return True
        current = current.__cause__ or current.__context__
    return False


def abandonment(exc: BaseException, trial_number: int) -> TrialAbandoned | None:
    """The :class:`TrialAbandoned` that ``exc``, raised while trial ``trial_number`` ran, amounts to, if any."""
    if isinstance(exc, TrialAbandoned):
        return exc
    if taken_over(exc):
        return TrialAbandoned(trial_number, "failed", "taken over by another worker, which found its heartbeats "
                                                      "silent and queued it again; the result here is discarded")
    if (error := storage_error(exc)) is not None:
        return TrialAbandoned(trial_number, "interrupted", f"the Optuna storage became unreachable mid-trial "
                                                           f"({describe(error)}); queued to run again")
    return None


def probe(storage: Any) -> None:
    """Ask the database behind an Optuna storage something, past every cache; raises while it cannot answer.

    The session Optuna keeps per thread is dropped first: one whose connection broke mid-transaction refuses
    every later query, the database back or not.
    """
    backend = getattr(storage, "_backend", storage)
    sessions, engine = getattr(backend, "scoped_session", None), getattr(backend, "engine", None)
    if sessions is None or engine is None:
        storage.get_all_studies()
        return
    import sqlalchemy

    sessions.remove()
    with engine.connect() as connection:
        connection.execute(sqlalchemy.select(1))


def describe(error: BaseException) -> str:
    """The database's own words: Optuna wraps them in a message about invalid data, which misleads here."""
    from search._redact import redact

    error = storage_error(error) or error
    first = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {redact(first[0] if first else '')[:200]}"


def wait_for_storage(probe: Callable[[], Any], error: BaseException, what: str, *,
                     stopped: Callable[[], bool] = lambda: False, patience: float = PATIENCE_SECONDS) -> bool:
    """Call ``probe`` with backoff until it answers (True), or until ``stopped()`` (False: a stop request,
    heard between tries). Said once, with the time, on stderr.

    Raises :class:`StoreTrouble` (exit status 1: no mistake in the input) once ``patience`` seconds pass
    without an answer. ``what``: what this worker was doing when the storage went away.
    """
    started, wait = time.monotonic(), FIRST_WAIT
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} storage unreachable while {what} ({describe(error)}); retrying "
          f"for up to {_span(patience)}", file=sys.stderr, flush=True)
    while True:
        left = patience - (time.monotonic() - started)
        if left <= 0:
            raise StoreTrouble(
                f"the Optuna storage did not answer for {_span(patience)} (last: {describe(error)}), so this worker "
                f"stopped; any trial it held is still marked running there. Once the database answers again, run the "
                f"same command: the trial is then failed and queued again, and the study goes on (--storage-patience "
                f"waits longer)", field="--storage")
        if stopped():
            return False
        time.sleep(min(wait, left))
        wait = min(wait * 2, LONGEST_WAIT)
        try:
            probe()
        except Exception as exc:
            if storage_error(exc) is None:
                raise
            error = exc
            continue
        return True


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
