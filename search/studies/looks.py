"""The looks other studies of a store took at a study's test rows: a study that holds out the same rows (an
ablation study, one run from an exported config, the same data and seed) spends them all the same."""
from __future__ import annotations

from typing import Any


def looks_from_other_studies(study: Any) -> list[dict[str, Any]]:
    """Looks that other studies of the store took at the same test rows (the same data and test-row
    fingerprints): an ablation study, or a study run from an exported config, holds out the rows its parent
    does, and a look from there is a look at them all the same."""
    return _looks_of_others(study, same_rows=True)


def looks_at_other_draws(study: Any) -> list[dict[str, Any]]:
    """Looks that other studies of the store took at other test rows of the same data (another study.seed,
    test_size or split_column draws them): rows seen at those looks may sit among this study's development
    rows, and a study started after seeing their scores is not a first look at unseen rows. A new seed gave
    a look counted as "one look" after four looks at the same file."""
    return _looks_of_others(study, same_rows=False)


def _looks_of_others(study: Any, same_rows: bool) -> list[dict[str, Any]]:
    import optuna

    data, test = study.user_attrs.get("data_fingerprint"), study.user_attrs.get("test_fingerprint")
    if not data or not test:
        return []
    out = []
    for other in optuna.get_all_study_summaries(study._storage, include_best_trial=False):
        attrs, name = other.user_attrs, other.study_name
        rows = attrs.get("test_fingerprint")
        if name == study.study_name or attrs.get("data_fingerprint") != data or \
                (rows != test if same_rows else rows in (None, test) or ".ablation." in name):
            continue
        out += [{**look, "study": name} for look in attrs.get("test_looks", [])
                if isinstance(look, dict) and not look.get("rows")]
    return out
