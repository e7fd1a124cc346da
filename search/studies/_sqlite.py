"""SQLite files shared by several local processes."""
from __future__ import annotations

import contextlib
import sqlite3

from search.errors import StoreTrouble, StudyError


def prepare(url: str) -> None:
    """Create the database's folder and switch the file to write-ahead logging.

    WAL lets readers (``search status``, the MLflow UI, other workers) work while one process writes,
    which the default rollback journal does not; the mode is stored in the file, so once is enough.
    """
    from search.stores import is_read_only, sqlite_path, trouble_of

    path = sqlite_path(url)
    if path is None or is_read_only(url):  # a reader neither creates the file nor changes its mode
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except (OSError, sqlite3.Error) as exc:
        if (trouble := trouble_of(exc)) is not None:  # a damaged file or a full disk, not the folder's rights
            raise StoreTrouble(f"cannot open the SQLite store {path}: {trouble}", field="--home") from None
        raise StudyError(f"cannot open or create the SQLite store {path} ({exc}); the folder must be writable "
                         f"for a command that writes (search run, search reproduce)", field="--home") from None


def serialize_transactions(engine: "object") -> None:
    """Make every transaction on a SQLite engine take the write lock when it begins.

    SQLite has no SELECT ... FOR UPDATE: two workers can both read a queued trial as WAITING and both
    claim it. ``BEGIN IMMEDIATE`` makes read-then-write atomic (SQLAlchemy's documented recipe for
    SQLite), so each queued trial goes to exactly one worker, as row locks ensure on PostgreSQL.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: object, record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        # With write-ahead logging, NORMAL syncs at checkpoints instead of at every commit: a crash of the
        # process loses nothing, a power cut at most the last reports; the file is never corrupted. A
        # fused trial reports every split's every epoch, and a sync per report cost more than the step.
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: object) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # type: ignore[attr-defined]

    engine.dispose()  # type: ignore[attr-defined]  # pooled connections predate the listeners
