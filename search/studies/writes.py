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
from typing import Any


# A write: ("report", storage, trial id, step, value) or ("attr", storage, trial id, key, value).
_Write = tuple[str, Any, int, Any, Any]


class StorageWriter:
    """One side thread that makes storage writes in the order they were asked for.

    Writes queued while the thread was busy go in one transaction where the storage is Optuna's
    SQL storage: a fused trial's epoch reports every split at once, and a transaction (SQLite's write
    lock, a commit) per value cost more than the values.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[_Write] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def report(self, storage: Any, trial_id: int, step: int, value: float) -> None:
        self._submit(("report", storage, trial_id, step, value))

    def set_user_attr(self, storage: Any, trial_id: int, key: str, value: Any) -> None:
        self._submit(("attr", storage, trial_id, key, value))

    def wait(self, raise_failure: bool = True) -> None:
        """Block until every write asked for so far is made; raise the first that failed since the last wait."""
        self._queue.join()
        with self._lock:
            failure, self._failure = self._failure, None
        if failure is not None and raise_failure:
            raise failure

    def _submit(self, write: _Write) -> None:
        if self._thread is None or not self._thread.is_alive():
            # A daemon: a process told to stop at once must not hang on a store that went away.
            self._thread = threading.Thread(target=self._work, name="search-storage-writes", daemon=True)
            self._thread.start()
        self._queue.put(write)

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._lock:
                    failed = self._failure is not None
                if not failed:  # after a failure the rest of the trial's writes would only fail the same way
                    _make(batch)
            except BaseException as exc:  # raised to the trial by wait()
                with self._lock:
                    self._failure = exc
            finally:
                for _ in batch:
                    self._queue.task_done()


def _make(batch: list[_Write]) -> None:
    storage = batch[0][1]
    rdb = _sql_storage(storage)
    if rdb is None or any(write[1] is not storage for write in batch):
        for kind, store, trial_id, a, b in batch:
            if kind == "report":
                store.set_trial_intermediate_value(trial_id, a, b)
            else:
                store.set_trial_user_attr(trial_id, a, b)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(rdb.scoped_session, True) as session:
        for kind, _, trial_id, a, b in batch:
            if kind == "report":
                rdb._set_trial_intermediate_value_without_commit(session, trial_id, a, b)
            else:
                rdb._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, a, b)


def _sql_storage(storage: Any) -> Any:
    """Optuna's SQL storage behind ``storage`` when its per-write helpers are where this code expects them
    (they are Optuna's internals); None otherwise, and each write is made through the public API."""
    try:
        from optuna.storages import RDBStorage
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401
    except ImportError:
        return None
    rdb = getattr(storage, "_backend", storage)
    needed = ("scoped_session", "_set_trial_intermediate_value_without_commit", "_set_trial_attr_without_commit")
    if not isinstance(rdb, RDBStorage) or not all(hasattr(rdb, name) for name in needed):
        return None
    return rdb if hasattr(models, "TrialUserAttributeModel") else None


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
        self._writer.report(self._trial.storage, self._trial._trial_id, step, value)

    def set_user_attr(self, key: str, value: Any) -> None:
        if self._view is None:
            self._trial.set_user_attr(key, value)
            return
        self._view.user_attrs[key] = value
        self._writer.set_user_attr(self._trial.storage, self._trial._trial_id, key, value)
