"""Environment faults and secrets, table-driven, through the real CLI in-process.

Each case is a deliberate, specific error (or, for the read-only store, a command that must work): it
asserts the exit code, that no traceback was printed, the words of the message, that the net's generic
wording is absent (a case must not pass because the net caught it), that no password was printed,
and that nothing was created where nothing should be. A module fixture runs one real one-objective
study and one real two-objective study into a shared home; cases that read it check afterwards that
its files are byte-identical.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import TINY, merge, run_cli
from search.cli import UNEXPECTED

SECRET = "corpus-pw-5e1"  # in every URL below that carries a password; must never be printed


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(home: Path) -> dict[str, str]:
    # SQLite's -wal and -shm files come and go with any open connection, a reader's too.
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@dataclass
class Shared:
    folder: Path
    home: Path
    space: Path
    read_only: Path | None  # a read-only copy of home, or None where this machine cannot make one


@contextlib.contextmanager
def _read_only_copy(home: Path, where: Path):
    """A copy of ``home`` this process cannot write: permissions for a user, a read-only bind mount for root."""
    copy = where / "ro-home"
    shutil.copytree(home, copy)
    if os.geteuid() != 0:
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
        yield copy
        for p in [copy, *copy.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(copy), str(copy)], capture_output=True).returncode == 0
    yield copy if mounted else None
    if mounted:  # lazily: this process's SQLite engines still hold the copy's files open
        subprocess.run(["umount", "-l", str(copy)], check=True)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("env")
    home = folder / "home"
    fast = {"validation": {"scheme": "kfold", "k": 2}, "train": {"epochs": 1}}
    one = folder / "one.yaml"
    one.write_text(yaml.safe_dump(merge(TINY, {**fast, "study": {"name": "one", "n_trials": 1}})))
    two = folder / "two.yaml"
    two.write_text(yaml.safe_dump(merge(TINY, {**fast, "study": {"name": "two", "n_trials": 2,
                                                                 "objectives": ["val_loss", "params"]}})))
    assert run_cli("run", one, "--home", home, "--quiet") == 0
    assert run_cli("run", two, "--home", home, "--quiet") == 0
    with _read_only_copy(home, folder) as ro:
        yield Shared(folder, home, one, ro)


def _garbage_home(folder: Path) -> Path:
    (folder / "damaged").mkdir(exist_ok=True)
    (folder / "damaged" / "optuna.db").write_text("not a database, as a disk error or a copy gone wrong leaves it")
    return folder / "damaged"


def _damaged_pages(home: Path, folder: Path) -> Path:
    """A copy of a real store with some of its pages overwritten, as a failing disk leaves it."""
    copy = folder / "malformed"
    copy.mkdir(exist_ok=True)
    data = bytearray((home / "optuna.db").read_bytes())
    data[8192:min(len(data), 8192 + 40960)] = b"Z" * len(data[8192:min(len(data), 8192 + 40960)])
    (copy / "optuna.db").write_bytes(bytes(data))
    return copy


@dataclass
class Case:
    name: str
    argv: Callable[[Shared, Path], list]   # (shared, tmp) -> the command line
    code: int
    words: tuple[str, ...]
    absent: Callable[[Shared, Path], list] = lambda s, t: []  # paths that must not exist afterwards
    read_only: bool = False                # needs the read-only copy
    keeps_home: bool = True                # the shared home must be byte-identical afterwards
    env: dict[str, str] = field(default_factory=dict)
    fast: float | None = None              # at most this many seconds


P = _closed_port()
PG = f"postgresql://user:{SECRET}@127.0.0.1:{P}/db"
CASES = [
    # -- a study or home that does not exist: a clear error, nothing created ---------------------------
    Case("status of a study not in the store", lambda s, t: ["status", "nope", "--home", s.home], 2,
         ("no study named 'nope'", "one, two")),
    Case("status of a study named with a typo", lambda s, t: ["status", "twoo", "--home", s.home], 2,
         ("no study named 'twoo' in this storage (did you mean 'two'?)",)),
    Case("status with a mistyped home", lambda s, t: ["status", "one", "--home", t / "typo"], 2,
         ("no study store", "does not exist", "Nothing was created", "--home"), lambda s, t: [t / "typo"]),
    Case("best with a mistyped home", lambda s, t: ["best", "one", "--home", t / "typo"], 2,
         ("no study store", "does not exist"), lambda s, t: [t / "typo"]),
    Case("best --export with a mistyped home",
         lambda s, t: ["best", "one", "--home", t / "typo", "--export", t / "x.yaml"], 2,
         ("no study store",), lambda s, t: [t / "typo", t / "x.yaml"]),
    Case("report with a mistyped home", lambda s, t: ["report", "one", "--home", t / "typo", "--out", t / "r.html"], 2,
         ("no study store",), lambda s, t: [t / "typo", t / "r.html"]),
    Case("reproduce with a mistyped home", lambda s, t: ["reproduce", "one", "--home", t / "typo"], 2,
         ("no study store",), lambda s, t: [t / "typo"]),
    # The field named was '--storage', which the user never gave.
    Case("ablate with a mistyped home", lambda s, t: ["ablate", "one", "--home", t / "typo"], 2,
         ("no study store", "field '--home'"), lambda s, t: [t / "typo"]),
    # A damaged store is no mistake in the input: status 1, as the README says (it was 2).
    Case("status on a home whose optuna.db is not a database",
         lambda s, t: ["status", "one", "--home", _garbage_home(t)], 1,
         ("cannot open the SQLite store", "is damaged (\"file is not a database\")", "restore optuna.db or "
          "mlflow.db from a copy", "--home")),
    Case("status on a home whose optuna.db has damaged pages",
         lambda s, t: ["status", "one", "--home", _damaged_pages(s.home, t)], 1,
         ("cannot open the Optuna storage", "is damaged (\"database disk image is malformed\")",
          "restore optuna.db or mlflow.db from a copy")),
    Case("status on an empty home folder", lambda s, t: ["status", "one", "--home", t], 2,
         ("holds no optuna.db", "Nothing was created"), lambda s, t: [t / "optuna.db", t / "mlflow.db"]),
    Case("status with a sqlite storage file that does not exist",
         lambda s, t: ["status", "one", "--storage", f"sqlite:///{t}/none/optuna.db"], 2,
         ("no study store", "--storage"), lambda s, t: [t / "none"]),
    Case("ui with a mistyped home", lambda s, t: ["ui", "--home", t / "typo"], 2,
         ("no MLflow store", "--home"), lambda s, t: [t / "typo"]),
    Case("best --export with the tracking server down rebuilds the config from the study",
         lambda s, t: ["best", "one", "--home", s.home, "--tracking-uri", f"http://127.0.0.1:{P}",
                       "--export", t / "one.yaml"], 0, ("wrote trial 0's config", "from the study's space"),
         fast=20),
    Case("reproduce a trial that does not exist", lambda s, t: ["reproduce", "one", "--home", s.home, "--trial", "99"],
         2, ("trial 99", "does not exist", "--trial")),
    # -- bad storage URLs: refused before anything is created ----------------------------------------
    Case("run with a storage that is not a URL",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", "nonsense"],
         2, ("not a database URL", "--storage"), lambda s, t: [t / "h"]),
    Case("run with an unknown database kind",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"foo://u:{SECRET}@127.0.0.1/db"], 2,
         ("database kind", "'foo'"), lambda s, t: [t / "h"]),
    Case("run with a missing database driver",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"postgresql+pg8000://u:{SECRET}@127.0.0.1/db"],
         2, ("driver", "pg8000", "pip install '.[postgres]'"), lambda s, t: [t / "h"]),
    Case("run with a bad port in the tracking URI",
         lambda s, t: ["run", s.space, "--home", t / "h", "--tracking-uri", "http://127.0.0.1:notaport"], 2,
         ("cannot be read", "--tracking-uri"), lambda s, t: [t / "h"]),
    # -- servers that are down: a short check, the URL named with its password hidden ------------------
    Case("run with a PostgreSQL storage that is down",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", PG], 1,
         ("cannot reach the Optuna storage", f"postgresql://user:***@127.0.0.1:{P}/db", "Nothing was created"),
         lambda s, t: [t / "h"], fast=20),
    Case("run with a tracking server that is down",
         lambda s, t: ["run", s.space, "--home", t / "h", "--tracking-uri", f"http://alice:{SECRET}@127.0.0.1:{P}"], 1,
         ("cannot reach the MLflow tracking store", f"http://alice:***@127.0.0.1:{P}"), lambda s, t: [t / "h"],
         fast=20),
    Case("status with a PostgreSQL storage that is down", lambda s, t: ["status", "one", "--storage", PG], 1,
         ("cannot reach the Optuna storage",), fast=20),
    Case("status through a storage proxy that is down",
         lambda s, t: ["status", "one", "--storage", f"grpc://127.0.0.1:{P}"], 1, ("cannot reach", "grpc://")),
    Case("reproduce with a tracking server that is down",
         lambda s, t: ["reproduce", "one", "--home", s.home, "--tracking-uri", f"http://127.0.0.1:{P}"], 1,
         ("cannot reach the MLflow tracking store",)),
    # -- secrets in every URL shape stay hidden in the error -------------------------------------------
    Case("password with a slash",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"postgresql://postgres:s3/{SECRET}@127.0.0.1:{P}/db"],
         1, ("cannot reach", "postgres:***@127.0.0.1"), lambda s, t: [t / "h"]),
    Case("password in a query parameter",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"postgresql://u@127.0.0.1:{P}/db?password={SECRET}"],
         1, ("cannot reach", "password=***"), lambda s, t: [t / "h"]),
    Case("password with an empty user name",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"postgresql://:{SECRET}@127.0.0.1:{P}/db"],
         1, ("cannot reach", "postgresql://:***@"), lambda s, t: [t / "h"]),
    Case("token in the tracking URI's query",
         lambda s, t: ["run", s.space, "--home", t / "h", "--tracking-uri", f"http://127.0.0.1:{P}/?token={SECRET}"],
         1, ("cannot reach", "token=***"), lambda s, t: [t / "h"]),
    Case("password with an at sign",
         lambda s, t: ["status", "one", "--storage", f"postgresql://u:at@{SECRET}@127.0.0.1:{P}/db"], 2,
         ("cannot reach", "postgresql://u:***@127.0.0.1")),
    # -- homes that cannot be written ------------------------------------------------------------------
    Case("run with a home that is a file",
         lambda s, t: ["run", s.space, "--home", _file(t / "afile")], 2,
         ("afile is a file, not a folder", "--home", "Choose another --home")),
    Case("run with a home inside a file",
         lambda s, t: ["run", s.space, "--home", _file(t / "afile") / "sub"], 2,
         ("cannot write to the store folder",)),
    Case("run with a sqlite storage in a folder inside a file",
         lambda s, t: ["run", s.space, "--home", t / "h", "--storage", f"sqlite:///{_file(t / 'f')}/x/optuna.db"], 2,
         ("cannot open or create the SQLite store",)),
    Case("report into a folder inside a file",
         lambda s, t: ["report", "one", "--home", s.home, "--out", _file(t / "afile") / "r.html"], 2,
         ("cannot write the report", "--out")),
    Case("best --export into a folder inside a file",
         lambda s, t: ["best", "one", "--home", s.home, "--export", _file(t / "afile") / "x.yaml"], 2,
         ("cannot write", "--export")),
    # -- a read-only copy of a finished home: readers work, writers say why not ---------------------
    Case("run on a read-only home", lambda s, t: ["run", s.space, "--home", s.read_only], 2,
         ("cannot write to the store folder",), read_only=True),
    Case("reproduce on a read-only home", lambda s, t: ["reproduce", "one", "--home", s.read_only], 2,
         ("is read-only", "writable copy"), read_only=True),
    Case("status on a read-only home", lambda s, t: ["status", "one", "--home", s.read_only], 0,
         ("1/1 finished", "baseline"), read_only=True),
    Case("best on a read-only home", lambda s, t: ["best", "two", "--home", s.read_only], 0,
         ("val_loss",), read_only=True),
    Case("best --export on a read-only home",
         lambda s, t: ["best", "one", "--home", s.read_only, "--export", t / "one.yaml"], 0,
         ("wrote trial 0's config", "from the study's space"), read_only=True),
    Case("report on a read-only home", lambda s, t: ["report", "two", "--home", s.read_only, "--out", t / "r.html"], 0,
         ("wrote",), read_only=True),
]

# A server that answers, without the database named: the home folder made for the run was left holding its
# lock file. Where CI's PostgreSQL is given (SEARCH_TEST_POSTGRES_URL).
if _SERVER := os.environ.get("SEARCH_TEST_POSTGRES_URL"):
    from urllib.parse import urlsplit

    _AT = urlsplit(_SERVER)
    CASES.append(Case(
        "run with a PostgreSQL database that does not exist",
        lambda s, t: ["run", s.space, "--home", t / "h", "--storage",
                      f"postgresql://{_AT.username or 'postgres'}:{SECRET}@{_AT.hostname}:{_AT.port or 5432}"
                      f"/no_such_db"],
        2, ("cannot open the Optuna storage", ":***@", '"no_such_db" does not exist'), lambda s, t: [t / "h"]))


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_environment_case(case: Case, shared: Shared, tmp_path: Path, capsys: pytest.CaptureFixture,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    if case.read_only and shared.read_only is None:
        pytest.skip("this machine cannot make a read-only copy (not root, and permissions do not bind root)")
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # a report or export without a path lands here, not in the repository
    before = _snapshot(shared.home)
    ro_before = _snapshot(shared.read_only) if shared.read_only else None
    started = time.monotonic()
    code = run_cli(*case.argv(shared, tmp_path))
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    text = out + err
    assert code == case.code, text
    assert "Traceback" not in text
    assert UNEXPECTED not in text  # a specific error, not the net's
    assert SECRET not in text
    for word in case.words:
        assert word in text, f"{word!r} not in {text!r}"
    if case.code:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for path in case.absent(shared, tmp_path):
        assert not Path(path).exists(), f"{path} was created"
    if case.keeps_home:
        assert _snapshot(shared.home) == before
    if ro_before is not None:
        assert _snapshot(shared.read_only) == ro_before  # no -wal, -shm or lock file appeared
    if case.fast is not None:
        assert elapsed < case.fast, f"took {elapsed:.1f} s"
