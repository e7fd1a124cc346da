"""Keeping credentials out of everything we print, log or store.

Credentials are found by parsing each URL in a text, with both SQLAlchemy's parser (which the Optuna
storage and MLflow's database stores use) and the standard library's (which MLflow's HTTP client
uses), because they disagree: SQLAlchemy reads ``postgresql://u:s3/cret@host/db`` as password
``s3/cret``, urllib as host ``u`` with a path. What either parser, or a reading up to the last ``@``,
would call a password is hidden, and so are query parameters that carry secrets. Every secret found
is also remembered for the life of the process, so it is hidden where it appears without its URL
(a driver's error, a traceback line).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
import warnings
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
# Query parameters and variables whose value is a credential: ?password=, ?token=, ?access_token=,
# ?client_secret=, ?sig= (Azure SAS), X-Amz-Signature, MLFLOW_TRACKING_TOKEN=...
_SECRET_NAME = re.compile(r"pass|pwd|token|secret|sig|credential|api_?key|access_?key|auth", re.I)
# A URL: a scheme, ://, then everything up to whitespace (a password may hold / @ ? : and quotes).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
# NAME=value or NAME: value where NAME names a credential (environment dumps, command lines, dicts).
# Matched from the keyword on (a leading name part is left as it is), so a long run of letters, such as
# a base64 figure in a report, costs linear time.
_ASSIGNMENT = re.compile(r"""(?P<name>PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|ACCESS_?KEY|CREDENTIALS?)
                             (?P<sep>['"]?\s*[=:]\s*['"]?)(?P<value>[^\s'",;&}]+)""", re.I | re.X)
_SECRET_VARIABLE = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|ACCESS_KEY|CREDENTIAL", re.I)
_TRAILING = "'\")]},;>."  # punctuation that closes a quoted or bracketed URL in a message
_MIN_GLOBAL = 4  # shorter secrets are hidden inside their URL only: replacing "pw" everywhere mangles text
_known: set[str] = set()


def remember(*urls: str | None) -> None:
    """Hide the credentials of these URLs wherever they appear later in this process."""
    for url in urls:
        if url:
            for secret in _url_secrets(str(url)):
                if len(secret) >= _MIN_GLOBAL:
                    _known.add(secret)


def redact(text: object) -> str:
    """``text`` with every credential replaced by ``***``."""
    out = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))
    out = _ASSIGNMENT.sub(lambda m: m.group("name") + m.group("sep") + MASK, out)
    for secret in sorted(_known | _environment_secrets(), key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out


def _redact_url(candidate: str) -> str:
    body = candidate.rstrip(_TRAILING)
    if "://" not in body:
        return candidate
    secrets = _url_secrets(body)
    for secret in secrets:
        if len(secret) >= _MIN_GLOBAL:
            _known.add(secret)
    start = body.index("://") + 3
    at, colon = _userinfo_end(body, start), body.find(":", start)
    if at is not None and start <= colon < at:
        body = body[:colon + 1] + MASK + body[at:]
    elif (token := _bare_token(body, start)) is not None:
        body = body[:start] + MASK + body[start + len(token):]
    return _redact_query(body) + candidate[len(candidate.rstrip(_TRAILING)):]


def _bare_token(url: str, start: int) -> str | None:
    """The user part of ``https://TOKEN@host``: HTTP clients send it as credentials (a GitHub or MLflow token).

    Hidden inside its URL only, never remembered: it may as well be a user name (``https://alice@host``),
    which must not vanish from every path (``/home/alice``) printed later.
    """
    if url[:start - 3].lower() not in ("http", "https", "grpc", "grpcs"):
        return None  # a database user name (postgresql://postgres@host) is not a secret
    head = re.split(r"[/?#]", url[start:], maxsplit=1)[0]
    user = head.rpartition("@")[0] if "@" in head else ""
    return user if user and ":" not in user else None


def _userinfo_end(url: str, start: int) -> int | None:
    """Where the user:password part ends (its ``@``), the farthest any of the parsers would put it.

    SQLAlchemy takes the first ``@`` after the colon; urllib and a password holding ``@`` call for the
    last one before the query. Taking the farthest hides too much in odd URLs, never too little.
    """
    rest = url[start:]
    colon = rest.find(":")
    if colon < 0 or "/" in rest[:colon]:
        return None
    ends = []
    first = rest.find("@", colon)
    if first >= 0:
        ends.append(first)
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    if head.rfind("@") > colon:
        ends.append(head.rindex("@"))
    return start + max(ends) if ends else None


def _redact_query(url: str) -> str:
    if "?" not in url:
        return url
    base, _, query = url.partition("?")
    parts = re.split(r"([&;])", query)
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and _SECRET_NAME.search(unquote(name)):
            parts[i] = f"{name}={MASK}"
    return base + "?" + "".join(parts)


def _url_secrets(url: str) -> set[str]:
    """Every password or secret query value that a parser would read from ``url``, raw and decoded."""
    found: set[str] = set()
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.password:
            found.add(str(parsed.password))
        for name, value in parsed.query.items():
            if _SECRET_NAME.search(name):
                found.update([value] if isinstance(value, str) else value)
    except Exception:  # not a URL SQLAlchemy reads: the other parsers still look
        pass
    try:
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        found.update(v for k, v in parse_qsl(parts.query, keep_blank_values=False) if _SECRET_NAME.search(k))
    except ValueError:  # e.g. an invalid port or IPv6 literal
        pass
    if "://" in url:
        start = url.index("://") + 3
        at = _userinfo_end(url, start)
        if at is not None and ":" in url[start:at]:
            password = url[start:at].split(":", 1)[1]
            found.update([password, unquote(password)])

    return {s for s in found if s}


def _environment_secrets() -> set[str]:
    """Values of variables that name a credential (MLFLOW_TRACKING_TOKEN, PGPASSWORD, ...)."""
    out = set()
    for name, value in os.environ.items():
        if _SECRET_VARIABLE.search(name) and len(value) >= _MIN_GLOBAL:
            out.add(value)
    return out


# ---------------------------------------------------------------------------------------------
# Every message that leaves the process: our prints, warnings, log records and tracebacks.


class _RedactingStream:
    """A text stream that hides credentials in what is written through it (stdout, stderr)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer ...
        return getattr(self._inner, name)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Redact everything this process prints, warns or logs while the ``search`` command runs.

    Streams, the warning printer and the log record factory are put back afterwards, so a program
    (or a test) that calls ``main()`` gets its own objects back.
    """
    saved = sys.stdout, sys.stderr, warnings.showwarning, logging.getLogRecordFactory()
    shown, make_record = warnings.showwarning, logging.getLogRecordFactory()

    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        shown(redact(message), category, filename, lineno, file, line)

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        # Handlers made before now (MLflow's, absl's) hold the raw stream, so records are cleaned at birth.
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return record
        if (clean := redact(message)) != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")
        return record

    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)
    warnings.showwarning = showwarning
    logging.setLogRecordFactory(record_factory)
    try:
        yield
    finally:
        sys.stdout, sys.stderr, warnings.showwarning = saved[:3]
        logging.setLogRecordFactory(saved[3])


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, redacted (for --debug)."""
    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def flag_words(flag: str, value: Any, variable: str) -> list[str]:
    """``[flag, value]`` (its password hidden) for a printed command line, or nothing where the value is the
    environment variable's: the same shell runs the command with it, password and all, as printed."""
    if not value or str(value) == os.environ.get(variable):
        return []
    return [flag, redact(str(value))]
