"""What the headline against the baseline cannot show by itself: the fixed settings an edit of the space file
changed between the two trials, and a gap inside the noise of their splits."""
from __future__ import annotations

import math
from typing import Any

from search._numbers import sig


def fixed_differences(study: Any, before: Any, after: Any, sampled: set[str]) -> list[str]:
    """The settings the space file fixes that differ between two trials run under different versions of it
    (edited between runs): the table shows sampled values only, and the headline compared such trials as if
    only those differed."""
    from search import space as spaces
    from search.runner.session import changed_settings
    from search.studies import space_versions

    old, new = space_versions.of_trial(study, before), space_versions.of_trial(study, after)
    if not old or not new or old == new:
        return []
    try:
        later = spaces.validate(spaces.parse_yaml(new))
    except Exception:  # a version that no longer validates (its builder gone): nothing to compare
        return []
    return [line for line in changed_settings(old, later) if line.split(":", 1)[0] not in sampled]


def within_noise(best: dict[str, Any], base: dict[str, Any]) -> str:
    """The headline's gap, where two standard errors of the two means over their splits cover it: a gain of
    seed and split noise was quoted as what the best trial's settings bought."""
    errors = [r["std"] / math.sqrt(r["n_splits"]) for r in (best, base)
              if r.get("n_splits", 0) > 1 and math.isfinite(r["std"])]
    if len(errors) < 2:
        return ""
    band = 2 * math.sqrt(errors[0] ** 2 + errors[1] ** 2)
    if not base["value"] - best["value"] < band:
        return ""
    return (f"  (within the noise of the splits: the gap {base['value'] - best['value']:.3g} is less than two "
            f"standard errors of the two means, {sig(band)}; not told apart from chance)")
