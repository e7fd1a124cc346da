"""Credentials are found by parsing URLs, and hidden in everything the process prints, warns or logs.

One case per URL shape that a pattern used to miss, then the channels: printed errors, warnings, log
records, tracebacks under --debug, and the net under every command.
"""
from __future__ import annotations

import logging
import sys
import traceback
import warnings

import pytest

from conftest import run_cli
from search import _redact
from search._redact import redact
from search.cli import UNEXPECTED

# (name, text, the secret that must not survive, a part that must survive)
SHAPES = [
    ("plain", "postgresql://alice:plain-pw1@db.example/optuna", "plain-pw1", "db.example/optuna"),
    ("slash in password", "postgresql://postgres:s3/cretpw@host/db", "cretpw", "@host/db"),
    ("at sign in password", "postgresql://u:p@ssw0rd@host/db", "ssw0rd", "@host/db"),
    ("percent-encoded at", "postgresql://u:p%40ssw0rd@host/db, decoded p@ssw0rd", "ssw0rd", "@host/db"),
    ("empty user name", "postgresql://:emptyuser-pw@host:5432/db", "emptyuser-pw", "host:5432/db"),
    ("query password", "postgresql://u@host/db?password=query-pw&sslmode=require", "query-pw", "sslmode=require"),
    ("query token", "http://mlflow.example:5000/?token=tok-123456", "tok-123456", "mlflow.example:5000"),
    ("query access_token", "https://h.example/api?x=1&access_token=acc-999", "acc-999", "x=1"),
    ("query secret", "https://h.example/api?client_secret=sec-777&y=2", "sec-777", "y=2"),
    ("azure sas signature", "https://acct.blob.core.windows.net/c?sv=2020&sig=AbC%2Fsig", "AbC%2Fsig", "sv=2020"),
    ("http basic auth", "http://alice:http-pw@127.0.0.1:5000/api", "http-pw", "127.0.0.1:5000/api"),
    ("quoted in a message", "can't connect to 'mysql+pymysql://root:r00t!x@localhost:3306/x'.", "r00t!x",
     "localhost:3306/x'."),
    ("question mark in password", "postgresql://u:what?pw9@host/db", "what?pw9", "@host/db"),
    ("env style assignment", "MLFLOW_TRACKING_TOKEN=envtok-1 search run x.yaml", "envtok-1", "search run x.yaml"),
    ("dict repr", "connect args {'password': 'dict-pw-1', 'host': 'h'}", "dict-pw-1", "'host': 'h'"),
    ("token as the user", "https://ghp_tok3n99@mlflow.example.com/api", "ghp_tok3n99", "@mlflow.example.com/api"),
]


@pytest.mark.parametrize("name, text, secret, kept", SHAPES, ids=[s[0] for s in SHAPES])
def test_each_url_shape_is_redacted(name: str, text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out, out
    assert "***" in out and kept in out, out


def test_urls_without_credentials_are_left_alone() -> None:
    for text in ("postgresql://postgres@127.0.0.1:5432/test", "http://[::1]:5000/", "sqlite:////tmp/a/optuna.db",
                 "see http://host:8080/path.", "file:///tmp/x", "12:30 at noon", "max_tokens: 5"):
        assert redact(text) == text


def test_a_password_is_hidden_before_a_long_message_is_cut_short() -> None:
    """Cut first, ``postgresql://alice:VeryLongSe`` has no ``@`` left to show where the password ends."""
    from search.cli import _one_paragraph

    text = "x" * 370 + " postgresql://alice:VeryLongSecret-77@db.example/optuna was refused"
    assert "VeryLong" not in _one_paragraph(RuntimeError(text))


def test_a_secret_seen_in_a_url_is_hidden_where_it_appears_alone() -> None:
    _redact.remember("postgresql://u:alone-pw-42@host/db")
    assert redact('FATAL: password "alone-pw-42" rejected') == 'FATAL: password "***" rejected'


def test_environment_token_values_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "env-token-abc")
    monkeypatch.setenv("PGPASSWORD", "pg-env-pw")
    assert redact("header Bearer env-token-abc; pg-env-pw") == "header Bearer ***; ***"


def test_warnings_and_log_records_are_redacted_while_the_command_runs(capsys: pytest.CaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    handler_stream = logging.StreamHandler()  # made before: holds the raw stream, as MLflow's handler does
    # pytest records warnings instead of printing them; print them as Python does outside pytest.
    monkeypatch.setattr(warnings, "_showwarnmsg_impl",
                        lambda msg: sys.stderr.write(warnings._formatwarnmsg(msg)))  # type: ignore[attr-defined]
    logger = logging.getLogger("search.test_redact")
    logger.addHandler(handler_stream)
    try:
        with warnings.catch_warnings(), _redact.guarded():
            warnings.simplefilter("always")
            warnings.warn("retrying http://bob:warn-pw-1@host:5000", UserWarning, stacklevel=1)
            logger.warning("store %s is slow", "postgresql://bob:log-pw-1@host/db")
            try:
                raise ConnectionError("down: postgresql://bob:exc-pw-1@host/db")
            except ConnectionError:
                logger.exception("failed")
            print("printed http://bob:print-pw-1@host/")
    finally:
        logger.removeHandler(handler_stream)
    out, err = capsys.readouterr()
    for secret in ("warn-pw-1", "log-pw-1", "exc-pw-1", "print-pw-1"):
        assert secret not in out + err
    assert "retrying http://bob:***@host:5000" in err and "store postgresql://bob:***@host/db is slow" in err
    assert "ConnectionError: down: postgresql://bob:***@host/db" in err  # the logged traceback, redacted
    assert "printed http://bob:***@host/" in out


def test_the_net_prints_one_redacted_paragraph_and_debug_the_redacted_traceback(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """An exception no check foresaw (here: injected into the argument handling of `search ui`)."""
    import search.tracking

    def broken(home):
        raise RuntimeError("lost postgresql://u:net-pw-77@db.example/optuna mid-way")

    monkeypatch.setattr(search.tracking, "default_tracking_uri", broken)
    assert run_cli("ui", "--home", tmp_path) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "net-pw-77" not in err
    assert UNEXPECTED in err and "--debug" in err and "RuntimeError: lost postgresql://u:***@db.example" in err
    assert len(err.strip().splitlines()) == 1

    assert run_cli("ui", "--home", tmp_path, "--debug") == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "net-pw-77" not in err
    assert 'raise RuntimeError("lost postgresql://u:net-pw-77' not in err  # the source line is redacted too


def test_the_python_api_hides_a_storage_password_in_what_it_says_later() -> None:
    """A notebook calls the API, not the CLI: every entry point remembers the URLs' passwords, as the CLI does."""
    import search
    from search.api import _hides_credentials

    entry_points = ("run", "best", "reproduce", "ablate", "report")
    assert all(hasattr(getattr(search, name), "__wrapped__") for name in entry_points)
    _hides_credentials(lambda **kwargs: None)(storage="postgresql://u:api-secret-93@db.example/x")
    assert redact('FATAL: password "api-secret-93" rejected') == 'FATAL: password "***" rejected'


def test_a_user_name_hidden_in_its_url_is_not_hidden_everywhere_else() -> None:
    """``https://name@host`` may carry a token or a user name: masked in its URL, never in a path."""
    _redact.remember("https://alice-example@mlflow.example.com")
    assert redact("https://alice-example@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    assert redact("source: csv:/home/alice-example/data.csv") == "source: csv:/home/alice-example/data.csv"


def test_an_exception_raised_through_the_python_api_shows_no_password() -> None:
    """SQLAlchemy's and MLflow's errors repeat the URL they were given; the notebook shows them whole."""
    import sqlalchemy.exc

    from search.api import _hides_credentials

    url = "postgresql://u:api-raised-57@db.example/x"

    def fails(**kwargs):
        try:
            raise ValueError(f"cannot reach {url}")
        except ValueError as inner:
            raise sqlalchemy.exc.OperationalError(f"connect {url}", {"u": url}, inner) from inner

    with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
        _hides_credentials(fails)(storage=url)
    shown = "".join(traceback.format_exception(caught.value))
    assert "api-raised-57" not in shown and "***" in shown and "OperationalError" in shown, shown

    def plain(**kwargs):
        raise RuntimeError("mlflow: https://user:tok-3321xyz@mlflow.example/api failed")

    with pytest.raises(RuntimeError, match=r"https://user:\*\*\*@mlflow.example/api failed"):
        _hides_credentials(plain)(tracking_uri="https://user:tok-3321xyz@mlflow.example")
