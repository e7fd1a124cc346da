"""The looks other studies of a store took at a study's test rows: a study that holds out the same rows (an
ablation study, one run from an exported config, the same data and seed) spends them all the same."""
from __future__ import annotations

from typing import Any


def looks_from_other_studies(study: Any) -> list[dict[str, Any]]:
    """Looks that other studies of the store took at the same test rows (the same data and test-row
    fingerprints): an ablation study, or a study run from an exported config, holds out the rows its parent
    does, and a look from there is a look at them all the same."""
    import optuna

    data, test = study.user_attrs.get("data_fingerprint"), study.user_attrs.get("test_fingerprint")
    if not data or not test:
        return []
    out = []
    for other in optuna.get_all_study_summaries(study._storage, include_best_trial=False):
        attrs = other.user_attrs
        if other.study_name != study.study_name and attrs.get("data_fingerprint") == data \
                and attrs.get("test_fingerprint") == test:
            out += [{**look, "study": other.study_name} for look in attrs.get("test_looks", [])
                    if isinstance(look, dict) and not look.get("rows")]
    return out
