"""The versions of the space file a study's MLflow parent run has seen.

MLflow keeps a run's params once: a study continued with an edited space file kept the first version's
params and ``space.yaml`` while its note showed the latest, and nothing said the study mixes the two. Each
version is kept as ``space_versions/<digest>.yaml`` under the digest the Optuna study and each trial's run
(tag ``search.space_digest``) name it by, and an edit is said in the ``search.space_edited`` tag.
"""
from __future__ import annotations

from typing import Any

from search._redact import redact
from search.space import Space
from search.studies import space_versions

DIGEST_TAG = "search.space_digest"  # the version of the space file a run's params hold (parent and trial runs)
VERSIONS_TAG = "search.space_versions"
EDITED_TAG = "search.space_edited"


def record(client: Any, run_id: str, space: Space, space_text: str, created: bool) -> None:
    """Keep this run's version of the space with the parent run: at its creation, or, continuing a study, where
    the file was edited since."""
    digest = space_versions.digest_of(space)
    if created:
        known, first = [], digest
    else:
        tags = client.get_run(run_id).data.tags
        first = tags.get(DIGEST_TAG)
        if first is None:  # a parent run from before versions were kept: its first version is not known
            client.set_tag(run_id, DIGEST_TAG, digest)
            return
        known = tags.get(VERSIONS_TAG, first).split(",")
        if digest in known:
            return
    client.log_text(run_id, redact(space_text or space.to_yaml()), f"space_versions/{digest}.yaml")
    client.set_tag(run_id, VERSIONS_TAG, ",".join([*known, digest]))
    if created:
        client.set_tag(run_id, DIGEST_TAG, digest)
        return
    client.set_tag(run_id, EDITED_TAG, f"the space file was edited between runs ({len(known) + 1} versions): this "
                   f"run's params and space.yaml are its first version ({first}), its note the latest; "
                   f"space_versions/ holds each, and each trial run's {DIGEST_TAG} tag names the one it ran with")
