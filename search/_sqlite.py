"""SQLite files shared by several local processes."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def prepare(url: str) -> None:
    """Create the database's folder and switch the file to write-ahead logging.

    WAL lets readers (``search status``, the MLflow UI, other workers) work while one process writes,
    which the default rollback journal does not; the mode is stored in the file, so once is enough.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=60) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
