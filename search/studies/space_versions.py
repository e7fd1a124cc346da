"""Each version of a study's space file, kept under its own key, and named by each trial that ran with it.

The study's ``space_yaml`` is the latest file; a space edited between runs (a fixed learning rate changed,
another preprocessing) would otherwise rebuild an earlier trial's config with the later values, where the
trial's own MLflow record (``config/resolved.yaml``) is not at hand.
"""
from __future__ import annotations

import hashlib
from typing import Any

DIGEST_ATTR = "space_digest"  # a trial's attribute: the digest of the space version it ran with
BUILDER_CODE_ATTR = "builder_code"  # a trial's (and the study's) attribute: a custom builder's code digest


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def digest_of(space: Any) -> str:
    """The digest a space is stored under (:func:`key`), as stored: its YAML with passwords redacted."""
    from search._redact import redact

    return digest(redact(space.to_yaml()))


def key(text: str) -> str:
    """The study attribute holding this version of the space file (as stored, passwords redacted)."""
    return f"space_yaml:{digest(text)}"


def of_trial(study: Any, trial: Any) -> str | None:
    """The space file a trial ran with, as stored; None for a trial from before versions were kept, or whose
    version is missing."""
    named = trial.user_attrs.get(DIGEST_ATTR)
    return study.user_attrs.get(f"space_yaml:{named}") if named else None


def builder_code_of(study: Any, trial: Any) -> str | None:
    """The digest of the builder code a trial ran with: its own record, else (a trial from before trials
    kept one) the study's, which is the code of the study's latest run."""
    return trial.user_attrs.get(BUILDER_CODE_ATTR) or study.user_attrs.get(BUILDER_CODE_ATTR)
