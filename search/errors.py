"""User-facing error types.

Every mistake a user can make (a bad space file, unreadable data, an impossible validation scheme)
is raised as a :class:`UserError`; the CLI prints its one-paragraph message and exits with code 2,
never a traceback.
"""
from __future__ import annotations

from enum import Enum
from typing import Any


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


class ArgumentError(UserError):
    """An argument of a Python API call that is misspelt, extra, given by position, or of the wrong kind."""


class StudyError(UserError):
    """The study cannot be opened or continued as asked."""


class VerifyMismatch(StudyError):
    """``reproduce --verify``: the trial's validation, re-run, did not give the stored losses; said before the
    test rows are looked at. The command exits with status 1, as a check that fails."""

    exit_code = 1


class StoreTrouble(StudyError):
    """A store that cannot be used for a reason that is no mistake in the input (a damaged file, a full disk):
    exit status 1, as the README gives for failures not of the input."""

    exit_code = 1


class ContinuationRefused(StudyError):
    """The stored study cannot go on as the space asks (other data, objectives, family or distributions),
    said before any trial of this run starts."""


class FailureKind(str, Enum):
    """Why a trial ended in Optuna's FAIL state, recorded as the trial's ``failure`` user attribute.

    Set where the exception is caught, and read everywhere else (the run loop, the consecutive-failure
    rule, recovery), so no one parses the ``reason`` text again.
    """

    BAD_SETTINGS = "bad_settings"    # the settings failed (a builder error, an impossible shape): counts
    OVER_BUDGET = "over_budget"      # other workers already hold the study's remaining trials
    DISK_FULL = "disk_full"          # a checkpoint could not be written; runs again once there is room
    INTERRUPTED = "interrupted"      # a stop signal cut it short; queued to run again
    LOST_PROCESS = "lost_process"    # its process died; queued to run again
    SILENT = "silent"                # failed by Optuna's heartbeat check: its worker went silent
    LOST_STORAGE = "lost_storage"    # its worker lost the storage mid-trial; queued to run again

    @property
    def counts(self) -> bool:
        """Whether it counts toward ``study.max_consecutive_failures``: only the settings' own failures."""
        return self is FailureKind.BAD_SETTINGS

    @classmethod
    def of(cls, trial: Any) -> "FailureKind":
        stored = trial.user_attrs.get(FAILURE_ATTR)
        if stored in cls._value2member_map_:
            return cls(stored)
        return _from_older_reason(str(trial.user_attrs.get("reason", "")))


FAILURE_ATTR = "failure"


def _from_older_reason(reason: str) -> FailureKind:
    """Studies written before the ``failure`` attribute existed said it only in words."""
    if not reason:
        return FailureKind.SILENT
    if reason.startswith("over budget"):
        return FailureKind.OVER_BUDGET
    if reason.startswith("DiskFull"):
        return FailureKind.DISK_FULL
    if reason.startswith("its process"):
        return FailureKind.LOST_PROCESS
    if "queued to run again" in reason:
        return FailureKind.INTERRUPTED
    return FailureKind.BAD_SETTINGS
