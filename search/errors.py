"""User-facing error types.

Every mistake a user can make (a bad space file, unreadable data, an impossible validation scheme)
is raised as a :class:`UserError`; the CLI prints its one-paragraph message and exits with code 2,
never a traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input, reported as one clear paragraph."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 expected: str | None = None, found: object = None) -> None:
        parts = []
        if source:
            parts.append(f"{source}:")
        if field:
            parts.append(f"field '{field}':")
        parts.append(message.rstrip("."))
        text = " ".join(parts)
        if expected is not None:
            text += f"; expected {expected}"
        if found is not None:
            text += f", found {found!r}"
        super().__init__(text + ".")
        self.source, self.field = source, field


class SpaceError(UserError):
    """The space file is malformed or inconsistent."""


class DataError(UserError):
    """The data cannot be loaded or does not match what the space file says."""


class ValidationSchemeError(UserError):
    """The validation scheme cannot be carried out on this data."""


class StudyError(UserError):
    """The study cannot be opened or continued as asked."""
