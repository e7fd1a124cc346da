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


def held_by_version(study: Any) -> dict[int, dict[str, Any]]:
    """Per trial number, the values its own version of the space file fixed for the model and train settings
    that differ between the study's versions (searched in one, fixed in another, or fixed at two values).

    A study whose file was edited between runs showed its tables with the latest file's searched settings
    only: a trial run with ``dropout: 0.2`` fixed had a blank cell, and a learning rate changed from 0.01 to
    0.003 no column at all. Empty for a study of one version (or of versions that no longer validate)."""
    named = {t.number: t.user_attrs.get(DIGEST_ATTR) for t in study.get_trials(deepcopy=False)}
    digests = {d for d in named.values() if d}
    if len(digests) < 2:  # most studies: nothing to read
        return {}
    read = {d: _leaves(study.user_attrs.get(f"space_yaml:{d}")) for d in digests}
    leaves = {d: v for d, v in read.items() if v is not None}
    if len(leaves) < 2:
        return {}
    keys = {k for v in leaves.values() for k in v}
    varying = {k for k in keys if len({repr(v.get(k)) for v in leaves.values()}) > 1}
    fixed = {d: {k: v[k] for k in varying if k in v and not isinstance(v[k], dict)} for d, v in leaves.items()}
    return {n: fixed[d] for n, d in named.items() if d in fixed and fixed[d]}


def _leaves(text: str | None) -> dict[str, Any] | None:
    """The model and train settings of a stored version, or None where it no longer reads (its builder gone)."""
    from search import space as spaces

    if not text:
        return None
    try:
        space = spaces.validate(spaces.parse_yaml(text))
    except Exception:  # a version an older release stored, or whose builder file moved: nothing to show
        return None
    return {k: v for k, v in space.leaves().items() if k.split(".")[0] in ("model", "train")}
