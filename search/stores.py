"""The stores a command opens, checked before anything is created, and opened read-only when only read.

Every check here creates nothing: a typo in ``--home``, a bad URL or a server that is down must leave
no folder, database or lock file behind. A server is asked for a connection with a short timeout
before the Optuna study is created, so a tracking server that is down is a clear error at once
instead of minutes of MLflow's retries after the study already exists.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit

from search._redact import redact
from search.errors import StoreTrouble, StudyError

CONNECT_TIMEOUT = 5.0  # seconds: a server on a LAN answers in milliseconds; a dead host never does
LOCK_NAME = ".lock"
STORAGE, TRACKING = "Optuna storage", "MLflow tracking store"
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433,
                  "oracle": 1521, "http": 80, "https": 443, "grpc": 13000}
# The pip command that installs each database kind's driver (pyproject's extras where there is one).
_DRIVER_HINT = {"postgresql": "pip install '.[postgres]' (psycopg 3, which postgresql:// uses)",
                "mysql": "pip install pymysql, and write mysql+pymysql://", "mariadb": "pip install pymysql"}


def check_url(url: str, flag: str, what: str) -> None:
    """Refuse a URL that cannot work: unparsable, an unknown database, a missing driver, a server down.

    ``flag`` names the option the URL came from, ``what`` the store ("Optuna storage", "MLflow
    tracking store"), both for the message.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme and what == STORAGE:
        raise StudyError(f"{redact(url)} is not a database URL", field=flag,
                         expected="e.g. sqlite:///path/optuna.db, postgresql://user@host/db or grpc://host:port")
    if not scheme or scheme in ("file", "databricks", "databricks-uc", "uc"):
        return  # a local folder or a hosted service: nothing of ours to check up front
    if scheme in ("http", "https", "grpc"):
        parts = _split(url, flag, what)
        _reach(parts.hostname, parts.port or _DEFAULT_PORTS[scheme], url, flag, what)
        if what == TRACKING and scheme in ("http", "https"):
            _answers_as_mlflow(url, flag)
        return
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy.exc.ArgumentError, ValueError (a port that is not a number)
        raise StudyError(f"{redact(url)} is not a database URL", field=flag,
                         expected="e.g. sqlite:///path/optuna.db or postgresql://user@host/db") from None
    try:
        dialect = parsed.get_dialect()
    except Exception:  # sqlalchemy.exc.NoSuchModuleError
        raise StudyError(f"the {what} URL {redact(url)} names a database kind SQLAlchemy does not know "
                         f"('{parsed.drivername}')", field=flag,
                         expected="sqlite:///, postgresql://, mysql+pymysql://") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        backend = parsed.get_backend_name()
        hint = _DRIVER_HINT.get(backend, f"install the Python driver for {backend}")
        raise StudyError(f"the {what} {redact(url)} needs the database driver '{exc.name or exc}', which is "
                         f"not installed: {hint}", field=flag) from None
    if backend_is_file(url):
        return
    if parsed.host:  # no host: a Unix socket, which the driver itself reports on quickly
        _reach(parsed.host, parsed.port or _DEFAULT_PORTS.get(parsed.get_backend_name()), url, flag, what)


def backend_is_file(url: str) -> bool:
    return url.lower().startswith("sqlite")


def _split(url: str, flag: str, what: str):  # noqa: ANN202 (urllib's SplitResult)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise StudyError(f"the {what} URL {redact(url)} cannot be read ({redact(exc)})", field=flag) from None
    if not parts.hostname:
        raise StudyError(f"the {what} URL {redact(url)} names no host", field=flag,
                         expected="e.g. http://host:5000") from None
    return parts


def _reach(host: str | None, port: int | None, url: str, flag: str, what: str) -> None:
    if not host or not port:
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return
    except socket.gaierror as exc:  # a host name that resolves to nothing: a typo, more likely than an outage
        raise StudyError(f"cannot reach the {what} at {redact(url)}: its host name is not known "
                         f"({exc.strerror or exc}); check the host in the URL. Nothing was created",
                         field=flag) from None
    except socket.timeout:
        reason = f"no answer within {CONNECT_TIMEOUT:g} s"
    except OSError as exc:  # refused, no route
        reason = exc.strerror or type(exc).__name__
    # Exit status 1, not 2 (a mistake in the input): a supervisor retries a server that is down, and a
    # restart loop that took 2 for "fix the config" stopped a fleet for a database restart.
    raise StoreTrouble(f"cannot reach the {what} at {redact(url)} ({reason}); start it, or check the host, the "
                       f"port and the network, then run the command again. Nothing was created", field=flag)


def _answers_as_mlflow(url: str, flag: str) -> None:
    """A server on the port that is not MLflow's (optuna-dashboard, a static page) failed later, with a page of
    HTML in an 'unexpected failure', and after the study was stored. MLflow answers its REST API with JSON, or
    401/403 where it asks for a login."""
    import urllib.error
    import urllib.request

    probe = url.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=CONNECT_TIMEOUT) as answer:  # noqa: S310 (the user's URL)
            kind = answer.headers.get("Content-Type", "")
            status = answer.status
    except urllib.error.HTTPError as exc:
        kind, status = exc.headers.get("Content-Type", "") if exc.headers else "", exc.code
    except (OSError, ValueError):  # no answer in time: left to MLflow's own client to say
        return
    if status in (401, 403) or (status < 400 and "json" in kind) or status >= 500:
        return
    raise StudyError(f"the server at {redact(url)} answers, but not as an MLflow tracking server (its REST API "
                     f"gave HTTP {status}{', ' + kind.split(';')[0] if kind else ''}): another program on that port? "
                     f"Give the URL of an `mlflow server`, or leave the option out for the local store. Nothing "
                     f"was created", field=flag, expected="an MLflow tracking server's URL")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for another kind of store (or an in-memory one)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def prepare_home(home: Path) -> None:
    """Create ``home`` if needed and make sure this process can write there (``search run``)."""
    if home.exists() and not home.is_dir():
        raise StudyError(f"{home} is a file, not a folder; `search run` stores its study, runs and checkpoints in "
                         f"a folder. Choose another --home", field="--home")
    try:
        home.mkdir(parents=True, exist_ok=True)
        with open(home / LOCK_NAME, "a"):
            pass
    except OSError as exc:
        raise StudyError(f"cannot write to the store folder {home} ({exc.strerror or exc}); `search run` "
                         f"stores its study, runs and checkpoints there. Choose a writable folder with --home "
                         f"(status, best and report can still read a read-only copy)", field="--home") from None


def remove_if_only_lock(home: Path) -> None:
    """Take back a home folder that holds nothing but the lock file :func:`prepare_home` made (and empty
    SQLite files a store began on a full disk)."""
    try:
        for empty in ("optuna.db", "mlflow.db"):
            if (home / empty).is_file() and (home / empty).stat().st_size == 0:
                (home / empty).unlink()
        if {p.name for p in home.iterdir()} <= {LOCK_NAME}:
            (home / LOCK_NAME).unlink(missing_ok=True)
            home.rmdir()
    except OSError:  # another process is using it now: it stays
        pass


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """Hold ``<home>/.lock`` while the stores' schemas are created.

    MLflow creates its SQLite schema on the first client (Alembic migrations) and two processes doing
    that at once on a fresh home fail with a "table already exists" error; held here, the second
    waits a second or two, then finds the schema made.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the stores' own retries are all there is
        yield
        return
    with open(home / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reading_url(url: str, flag: str = "--storage", writes: str | None = None) -> str:
    """The URL to open an existing store with, for a command that reads it (and, if ``writes`` says
    what it writes, also writes to it).

    Nothing is created: a missing SQLite file is an error, not a new empty database. A file this
    process may not write (a read-only copy of a finished home) is opened read-only, and immutable
    where SQLite could not otherwise read a write-ahead-logged file without creating its -shm file.
    """
    path = sqlite_path(url)
    if path is None:
        check_url(url, flag, STORAGE)
        return url
    if not path.is_file():
        where = (f"{path.parent} is a file, not a folder" if path.parent.is_file() else
                 f"the folder {path.parent} does not exist" if not path.parent.is_dir() else
                 f"{path} is a folder, not a database file" if path.is_dir() else
                 f"the folder {path.parent} holds no {path.name}")
        raise StudyError(f"no study store at {path}: {where}. Nothing was created; check --home (or "
                         f"--storage), or start the study with `search run`", field=flag)
    if writable(path):
        return url
    if writes:
        raise StudyError(f"the store {path} is read-only, and this command {writes}; run it on a writable copy "
                         f"of the folder", field=flag)
    for query in ("mode=ro", "mode=ro&immutable=1"):
        uri = f"file:{quote(str(path.resolve()))}?{query}"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            continue
        return f"sqlite:///{uri}&uri=true"
    raise StudyError(f"cannot read the store {path} (not a SQLite database, or not readable)", field=flag)


def writable(path: Path) -> bool:
    """Whether SQLite can write ``path``: the file, and its folder for the -wal and -shm files."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def is_read_only(url: str) -> bool:
    return "mode=ro" in url and url.startswith("sqlite:///file:")


def tracking_readable(uri: str | None) -> bool:
    """Whether MLflow may open ``uri`` to read from it without creating or migrating a file.

    MLflow's SQLite store creates a missing file and writes its schema on first use, and a server
    that is down costs minutes of retries; a reader skips MLflow then (the trial's config is rebuilt
    from the study instead).
    """
    if not uri:
        return False
    path = sqlite_path(uri)
    if path is not None:
        return path.is_file() and writable(path)
    try:  # a server that is down would cost minutes of MLflow's retries for something we can rebuild
        check_url(uri, "--tracking-uri", TRACKING)
    except StudyError:
        return False
    return True


def trouble_of(exc: BaseException) -> str | None:
    """A store on a damaged file or a full disk, found anywhere in the exception's chain (Optuna and SQLAlchemy
    wrap SQLite's words): said as what it is, where the net said "unexpected failure, please report it"."""
    import errno

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in seen)
    for words in ("database disk image is malformed", "file is not a database"):
        if words in text:
            return (f"a store's SQLite file is damaged (\"{words}\"): restore optuna.db or mlflow.db from a copy, "
                    f"or give another --home; SQLite's own `.recover` command can save what is left of it. "
                    f"Nothing was changed")
    if "database is locked" in text:  # after the wait each connection has (60 s for Optuna, 5 s for MLflow)
        return ("a store's SQLite file (optuna.db or mlflow.db) stayed locked by another process past the time a "
                "worker waits for it: most likely another worker on the same --home that was stopped in the middle "
                "of a write (Ctrl-Z, a paused virtual machine, a laptop asleep), or another program holding it open "
                "in a transaction. "
                "Resume or end that process and run again: what the stores hold is kept. Workers that may pause "
                "are safer on PostgreSQL (--storage postgresql://…)")
    if "database or disk is full" in text or any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in seen):
        return ("the disk holding the stores is full (\"database or disk is full\"): free some space, or give "
                "another --home on a disk that has room")
    return None
