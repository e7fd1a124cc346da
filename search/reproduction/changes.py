"""What changed since a trial ran that reproducing it would not show: the data, its test rows or split plan,
the backbone weights file (by their fingerprints), and a custom builder's code."""
from __future__ import annotations

import sys
from typing import Any

_FINGERPRINTS = ("data_fingerprint", "test_fingerprint", "splits_fingerprint", "weights_fingerprint")


def data_changes(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    names = {"data_fingerprint": "data", "test_fingerprint": "test rows", "splits_fingerprint": "split plan",
             "weights_fingerprint": "model.weights file"}
    return [f"{names[k]} fingerprint {stored[k]} → {now[k]}" for k in _FINGERPRINTS
            if k in stored and k in now and stored[k] != now[k]]


def builder_codes(target: Any) -> tuple[str, str] | None:
    """The digests of the builder's code when the trial ran and now, where they differ."""
    from search.runner import _preflight
    from search.studies import space_versions

    ran_with, now = space_versions.builder_code_of(target.study, target.trial), _preflight.builder_code(target.space)
    return None if not ran_with or not now or ran_with == now else (ran_with, now)


def builder_changed(target: Any) -> str | None:
    """The digest of the builder's code now, where it differs from the code the trial ran with (said here,
    before training: the split checkpoints are the old code's models, the final model the new code's)."""
    codes = builder_codes(target)
    if codes is None:
        return None
    ran_with, now = codes
    number = target.trial.number
    print(f"warning: model.family's code: the builder function {target.space.family} does something else now "
          f"than when trial {number} ran (code {ran_with} then, {now} now): its split checkpoints are the old "
          f"code's models and the final model is the new code's, so this test look judges another model than "
          f"trial {number}'s; give the function trial {number} ran with to judge the trial itself",
          file=sys.stderr)
    return now
