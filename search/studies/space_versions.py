"""Each version of a study's space file, kept under its own key, and named by each trial that ran with it.

The study's ``space_yaml`` is the latest file; a space edited between runs (a fixed learning rate changed,
another preprocessing) would otherwise rebuild an earlier trial's config with the later values, where the
trial's own MLflow record (``config/resolved.yaml``) is not at hand.
"""
from __future__ import annotations

import hashlib
from typing import Any

DIGEST_ATTR = "space_digest"  # a trial's attribute: the digest of the space version it ran with


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def key(text: str) -> str:
    """The study attribute holding this version of the space file (as stored, passwords redacted)."""
    return f"space_yaml:{digest(text)}"


def of_trial(study: Any, trial: Any) -> str | None:
    """The space file a trial ran with, as stored; None for a trial from before versions were kept, or whose
    version is missing."""
    named = trial.user_attrs.get(DIGEST_ATTR)
    return study.user_attrs.get(f"space_yaml:{named}") if named else None
