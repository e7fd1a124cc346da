"""A running trial's reports and attributes stored by a side thread, so training never waits on the store.

A fused trial reports every split's every epoch; each report is a transaction (SQLite takes the write
lock for it, and a second worker waits for that lock). Optuna judges a running trial from the view it
keeps in memory (``Trial.should_prune`` reads no storage), so the view is updated at once and the
rows follow on a side thread, in order. The objective waits for them before the trial is finished:
Optuna refuses writes to a finished trial, and other workers only compare finished trials.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class StorageWriter:
    """One side thread that makes storage writes in the order they were asked for."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        if self._thread is None or not self._thread.is_alive():
            # A daemon: a process told to stop at once must not hang on a store that went away.
            self._thread = threading.Thread(target=self._work, name="search-storage-writes", daemon=True)
            self._thread.start()
        self._queue.put((write, args))

    def wait(self, raise_failure: bool = True) -> None:
        """Block until every write asked for so far is made; raise the first that failed since the last wait."""
        self._queue.join()
        with self._lock:
            failure, self._failure = self._failure, None
        if failure is not None and raise_failure:
            raise failure

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                write, args = job
                with self._lock:
                    failed = self._failure is not None
                if not failed:  # after a failure the rest of the trial's writes would only fail the same way
                    write(*args)
            except BaseException as exc:  # raised to the trial by wait()
                with self._lock:
                    self._failure = exc
            finally:
                self._queue.task_done()


class TrialWritesBehind:
    """An Optuna ``Trial`` whose ``report`` and ``set_user_attr`` go through a :class:`StorageWriter`.

    Everything else is the trial's own. Where the trial is not one Optuna runs against a storage (a
    ``FixedTrial``, or an Optuna without the in-memory view), writes are made in place as before.
    """

    def __init__(self, trial: Any, writer: StorageWriter) -> None:
        self._trial, self._writer = trial, writer
        view = getattr(trial, "_cached_frozen_trial", None)
        self._view = view if hasattr(view, "intermediate_values") and hasattr(trial, "_trial_id") else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    @property
    def unwrapped(self) -> Any:
        return self._trial

    def report(self, value: float, step: int) -> None:
        if self._view is None or len(self._trial.study.directions) > 1:
            self._trial.report(value, step)  # Optuna's own checks and errors
            return
        value, step = float(value), int(step)
        if step < 0:
            raise ValueError(f"step {step} must be non-negative")
        if step in self._view.intermediate_values:  # as Optuna does: the first report of a step stands
            return
        self._view.intermediate_values[step] = value
        self._writer.submit(self._trial.storage.set_trial_intermediate_value, self._trial._trial_id, step, value)

    def set_user_attr(self, key: str, value: Any) -> None:
        if self._view is None:
            self._trial.set_user_attr(key, value)
            return
        self._view.user_attrs[key] = value
        self._writer.submit(self._trial.storage.set_trial_user_attr, self._trial._trial_id, key, value)
