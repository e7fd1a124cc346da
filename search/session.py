"""One ``search run``: load data once, hold out the test rows, plan splits, open the study, optimize.

Every user mistake surfaces from :func:`prepare`, before TensorFlow loads and before any store is
written, so a bad space file never costs a stored study anything.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from search import data, splits
from search.data import Dataset
from search.space import Space
from search.splits import Split


@dataclass
class Prepared:
    space: Space
    dataset: Dataset
    dev_idx: np.ndarray
    test_idx: np.ndarray
    splits: list[Split]

    def attrs(self) -> dict[str, Any]:
        """Stored with the study; the fingerprints guard continuation and reproduction."""
        ds = self.dataset
        return {"data_fingerprint": ds.fingerprint, "test_fingerprint": data.fingerprint_indices(self.test_idx),
                "splits_fingerprint": splits.fingerprint(self.splits), "task": ds.task,
                "rows": int(len(ds.X)), "test_rows": int(len(self.test_idx)), "n_splits": len(self.splits),
                "duplicates_dropped": ds.duplicates_dropped, "seed": self.space.study.seed,
                "budget": self.space.study.n_trials, "metric": "mae" if ds.task == "regression" else "accuracy"}


@dataclass
class RunOptions:
    home: Path = Path("mlruns")
    storage: str | None = None
    tracking_uri: str | None = None
    n_trials: int | None = None      # at most this many trials in this invocation
    timeout: float | None = None     # seconds
    threads: int | None = None
    quiet: bool = False
    extra_listeners: list[Any] = field(default_factory=list)


def prepare(space: Space) -> Prepared:
    where = str(space.path) if space.path else "<space>"
    dataset = data.load(space.data, space.path)
    time_ordered = space.validation.scheme == "time_series" or dataset.has_order
    dev_idx, test_idx = data.split_test(dataset, space.data.test_size, space.study.seed, time_ordered, where)
    plan = splits.plan(space.validation, dataset, dev_idx, space.study.seed, where)
    return Prepared(space, dataset, dev_idx, test_idx, plan)


def run(prepared: Prepared, options: RunOptions, space_text: str, out: TextIO | None = None) -> Any:
    """Optimize until the study's budget, ``options.n_trials`` or ``options.timeout`` is reached."""
    out = out or sys.stdout  # looked up per call: a default bound at import misses redirected output
    from search import _runtime, provenance, study as studies, tracking
    from search.display import Progress, format_counts, summary_table
    from search.objective import Objective

    space = prepared.space
    home = Path(options.home)
    home.mkdir(parents=True, exist_ok=True)
    storage_url = options.storage or studies.default_storage(home)
    storage = studies.make_storage(storage_url)
    study = studies.open_study(space, storage, prepared.attrs())
    budget = space.study.n_trials
    if studies.finished_count(study) >= budget:
        print(f"study '{space.study.name}' already has its {budget} finished trials; raise study.n_trials "
              f"to continue it.", file=out)
        print(summary_table(study), file=out)
        return study
    _runtime.configure(options.threads)
    tags = {"storage": tracking.redact(storage_url), **provenance.record(space.path.parent if space.path else None),
            **prepared.attrs()}
    tracker = tracking.MlflowTracker(options.tracking_uri or tracking.default_tracking_uri(home), home, space,
                                     space_text, tags)
    tracker.start(study)
    progress = Progress(budget, quiet=options.quiet)
    progress.seed_from(study)
    objective = Objective(space, prepared.dataset, prepared.splits, home,
                          [tracker, progress, *options.extra_listeners])
    stopper = studies.Budget(budget, space.study.max_consecutive_failures)
    status = "FINISHED"
    try:
        study.optimize(objective, n_trials=options.n_trials, timeout=options.timeout, callbacks=[stopper],
                       catch=(Exception,), gc_after_trial=True)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish(status)
    print("\n" + format_counts(studies.trials_by_state(study), budget), file=out)
    print(summary_table(study), file=out)
    if stopper.gave_up:
        from search.errors import StudyError

        last = study.trials[-1].user_attrs.get("reason", "unknown")
        raise StudyError(f"stopped after {stopper.consecutive_failures} consecutive failed trials; this is a "
                         f"configuration problem, not bad luck. Last failure: {last}",
                         source=str(space.path) if space.path else None)
    return study
