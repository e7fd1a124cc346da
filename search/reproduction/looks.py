"""The looks at a study's test rows: each recorded with the study (trial, config, epochs, time), counted per
test rows across the studies of a store, and said after a reproduce."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from search.studies.looks import looks_from_other_studies


# How the rows are made into the model's inputs: two studies of the same rows that differ here (pixels scaled to
# [0, 1] or standardized) judged two configs on the test rows, said to be one config judged twice.
_INPUT_SETTINGS = ("preprocess", "missing", "categorical", "drop", "image_size", "color_mode")


def inputs_of(space: Any) -> dict[str, dict[str, Any]]:
    """The data settings that shape a model's inputs, where they differ from the defaults (so a config's hash,
    and the looks an earlier version recorded, stay as they were for a space that leaves them be)."""
    section = type(space.data)
    given = {key: getattr(space.data, key) for key in _INPUT_SETTINGS}
    defaults = section.model_validate({"source": space.data.source, "as_images": space.data.as_images}).model_dump()
    changed = {k: v for k, v in given.items() if v != defaults.get(k) and v not in (None, [])}
    return {"inputs": changed} if changed else {}


def config_hash(settings: dict[str, dict[str, Any]]) -> str:
    """A short fingerprint of a fixed config's model and training settings, and of the data settings that shape
    its inputs where they are not the defaults."""
    import hashlib

    text = json.dumps({k: settings[k] for k in ("model", "train", "inputs") if k in settings}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record(study: Any, trial: int, settings: dict[str, dict[str, Any]], epochs: int,
                      ensemble: int = 1, test_loss: float | None = None,
                      members: list[str] | None = None, rows: str | None = None,
                      scores: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Record this look at the test rows (trial, config hash, epochs); return every look so far at the
    same rows.

    Every look after the first, and every extra config judged there, makes the test set less of a test:
    the records let the report count them. ``rows`` is the fingerprint of the test rows looked at where they
    are not the study's own (``--allow-data-change`` on data that changed): that look is at other rows, and
    the looks at the study's rows are not its count.
    """
    import time

    own = study.user_attrs.get("test_fingerprint")
    looks = [look if isinstance(look, dict) else {"trial": look, "config": "", "epochs": 0}
             for look in study.user_attrs.get("test_looks", [])]
    looks.append({"trial": trial, "config": config_hash(settings), "epochs": int(epochs), "ensemble": ensemble,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  **({"members": list(members)} if members else {}),
                  **({"rows": rows} if rows and rows != own else {}),
                  # The scores a reader compares (RMSE, R², the share of chance), for the report as printed.
                  **({"scores": {k: float(v) for k, v in scores.items() if np.isfinite(v)}} if scores else {}),
                  **({"test_loss": float(test_loss)} if test_loss is not None and np.isfinite(test_loss) else {})})
    study.set_user_attr("test_looks", looks)
    at = looks[-1].get("rows")
    earlier = [look for look in looks[:-1] if look.get("rows") == at]
    elsewhere = looks_from_other_studies(study) if at is None else []
    return sorted(elsewhere + earlier, key=lambda look: str(look.get("time", ""))) + looks[-1:]


def looks_text(looks: list[dict[str, Any]]) -> list[str]:
    """What the record of test looks says about the one just made."""
    if len(looks) <= 1:
        return []
    last = looks[-1]
    same = sum(1 for look in looks if look["config"] and look["config"] == last["config"])
    # An ensemble's other trials were scored on the test rows as well: each is a config judged there.
    configs = len({look["config"] or f"t{look['trial']}" for look in looks}
                  | {m for look in looks for m in look.get("members", [])})
    judged = "the same config each time" if configs == 1 else f"{configs} different configs judged there"
    others = sorted({look["study"] for look in looks if look.get("study")})
    # Counted in looks, not configs: "2 different configs, 2 of them from study 'a'" read as two of a's configs.
    also = (f"; {sum(1 for look in looks if look.get('study'))} of the looks by study "
            + ", ".join(f"'{name}'" for name in others) + ", which holds out the same rows") if others else ""
    out = [f"  note: this is look {len(looks)} at this study's test rows ({judged}{also}); only the first look is "
           f"an unbiased test, and choosing among looks by test score makes the test set a second validation set"]
    if same > 1:
        out.append(f"  note: this config (hash {last['config']}) has now been judged on the test rows {same} times")
    return out
