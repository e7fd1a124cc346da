"""A running trial's reports and attributes stored in batches, so training seldom waits on the store.

A fused trial reports every split's every epoch; one transaction per value (SQLite takes its write
lock for each, and a second worker waits for that lock) cost more than the training steps between
them. Optuna judges a running trial from the view it keeps in memory (``Trial.should_prune`` reads no
storage), so the view is updated at once and the rows are written together, in order, at most every
``FLUSH_SECONDS`` and when the trial ends (before Optuna is told: it refuses writes to a finished
trial, and other workers only compare finished trials).

The batch is written on the training thread, not a side thread: a thread running SQLAlchemy holds
Python's lock while TensorFlow's calls return to the training loop, and that cost more (measured:
+17 % epoch time at 100 epochs) than the write itself.
"""
from __future__ import annotations

import math
import time
from typing import Any

# At most this long between a report and its row in the storage (progress shown by `search status`,
# a worker's trial seen as running). The first write of a trial is made at once.
FLUSH_SECONDS = 1.0

# A write: ("report", storage, trial id, step, value) or ("attr", storage, trial id, key, value).
_Write = tuple[str, Any, int, Any, Any]


class TrialWithBatchedWrites:
    """An Optuna ``Trial`` whose ``report`` and ``set_user_attr`` are stored in batches; call :meth:`flush`
    before the trial ends.

    Everything else is the trial's own. Where the trial is not one Optuna runs against a storage (a
    ``FixedTrial``, or an Optuna without the in-memory view), writes are made in place as before.
    """

    def __init__(self, trial: Any, every: float = FLUSH_SECONDS) -> None:
        self._trial, self._every = trial, every
        self._pending: list[_Write] = []
        self._last_flush = -math.inf
        self._dropped = False
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
        self._add(("report", self._trial.storage, self._trial._trial_id, step, value))

    def set_user_attr(self, key: str, value: Any) -> None:
        if self._view is None:
            self._trial.set_user_attr(key, value)
            return
        self._view.user_attrs[key] = value
        self._add(("attr", self._trial.storage, self._trial._trial_id, key, value))

    def flush(self) -> None:
        """Write everything reported so far (one transaction on Optuna's SQL storage)."""
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        if pending:
            _make(pending)

    def drop_writes(self) -> None:
        """Keep every later write in the trial's view only: the trial was finished elsewhere (another worker
        failed it, or this one will once the storage answers), and the storage refuses writes to it."""
        self._pending, self._dropped = [], True

    def _add(self, write: _Write) -> None:
        if self._dropped:
            return
        self._pending.append(write)
        if time.monotonic() - self._last_flush >= self._every:
            self.flush()


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
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    values = models.TrialIntermediateValueModel
    rows = []
    for kind, _, trial_id, step, value in batch:
        if kind == "report":
            stored, value_type = values.intermediate_value_to_stored_repr(value)
            rows.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                         "intermediate_value_type": value_type})
    with _create_scoped_session(rdb.scoped_session) as session:
        for trial_id in {write[2] for write in batch}:
            rdb.check_trial_is_updatable(trial_id, models.TrialModel.find_or_raise_by_id(trial_id, session).state)
        if rows:
            # One statement for all: each step is new (the trial's view refused repeats), and Optuna's
            # per-value helper costs two queries a row.
            session.execute(sqlalchemy.insert(values), rows)
        # An attribute set several times since the last flush (a trial's `splits`, split after split) is
        # written once, with its last value.
        attrs = {(trial_id, key): value for kind, _, trial_id, key, value in batch if kind == "attr"}
        if attrs and not _upsert_attrs(session, rdb, models.TrialUserAttributeModel, attrs):
            for (trial_id, key), value in attrs.items():
                rdb._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)


def _upsert_attrs(session: Any, rdb: Any, model: Any, attrs: dict[tuple[int, str], Any]) -> bool:
    """All attributes in one INSERT ... ON CONFLICT DO UPDATE, as Optuna writes each one on SQLite and
    PostgreSQL (there it first reads the trial again, per attribute); False on other databases."""
    import json
    import sqlite3

    name = rdb.engine.name
    if name == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0):
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    else:
        return False
    stmt = insert(model).values([{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                 for (trial_id, key), value in attrs.items()])
    session.execute(stmt.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                               set_={"value_json": stmt.excluded.value_json}))
    return True


def _sql_storage(storage: Any) -> Any:
    """Optuna's SQL storage behind ``storage`` when its helpers and tables are where this code expects
    them (they are Optuna's internals); None otherwise, and each write is made through the public API."""
    try:
        from optuna.storages import RDBStorage
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401
    except ImportError:
        return None
    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, RDBStorage):
        return None
    needed = [(rdb, "scoped_session"), (rdb, "_set_trial_attr_without_commit"), (rdb, "check_trial_is_updatable"),
              (models, "TrialUserAttributeModel"), (models, "TrialModel"),
              (getattr(models, "TrialModel", None), "find_or_raise_by_id"),
              (getattr(models, "TrialIntermediateValueModel", None), "intermediate_value_to_stored_repr")]
    return rdb if all(hasattr(owner, name) for owner, name in needed) else None
