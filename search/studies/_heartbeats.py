"""Heartbeats judged by the worker that owns the trial, and written without killing the beat on an outage.

Optuna judges every running trial by the grace period of the process that looks: a worker started with
``--heartbeat 3`` failed, after 9 s, the live trial of one beating every 120 s, and that worker then crashed
telling it. Each trial records its worker's interval (:data:`INTERVAL_ATTR`, set as it starts), and a trial
is silent after three of *its* intervals without a beat; a trial without the attribute (older studies, or
the moment before it is written) is judged by the looker's own grace period, as before.

Imported only where a storage is made: it needs Optuna and SQLAlchemy at module level.
"""
from __future__ import annotations

import json

import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState

from search.errors import FAILURE_ATTR, FailureKind
from search.studies._identity import INTERVAL_ATTR

# Beats a trial may miss before it is judged silent (Optuna's grace period, as make_storage sets it).
MISSED_BEATS = 3


class OwnerJudgedStorage(RDBStorage):
    """Optuna's SQL storage, with each running trial judged silent by its own worker's heartbeat interval."""

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna beats on a side thread that dies on the first error, with a traceback: after a short outage
        # the trial would beat no more, and be failed as silent although its worker lives. A beat missed is
        # only a beat missed; the next one tries again.
        try:
            super().record_heartbeat(trial_id)
        except Exception:
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """The running trials silent past their own grace; each is given its ``reason`` here, while it is
        still running, since Optuna fails it next and a finished trial takes no attributes."""
        own = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
        with _create_scoped_session(self.scoped_session, True) as session:
            now = session.execute(sqlalchemy.func.now()).scalar()
            assert now is not None
            now = now.replace(tzinfo=None)  # PostgreSQL answers with a zone; the beats are stored without
            trial, beat, attr = models.TrialModel, models.TrialHeartbeatModel, models.TrialUserAttributeModel
            beats = session.execute(
                sqlalchemy.select(trial.trial_id, beat.heartbeat).join(beat, beat.trial_id == trial.trial_id)
                .where(trial.study_id == study_id, trial.state == TrialState.RUNNING)).all()
            intervals = dict(session.execute(
                sqlalchemy.select(attr.trial_id, attr.value_json)
                .where(attr.key == INTERVAL_ATTR, attr.trial_id.in_([row[0] for row in beats]))).all()) if beats else {}
        stale = []
        for trial_id, last in beats:
            interval = _seconds(intervals.get(trial_id))
            grace = MISSED_BEATS * interval if interval is not None else own
            silent = (now - last).total_seconds()
            if silent <= grace:
                continue
            whose = f"its worker's interval {interval:g} s" if interval is not None else \
                f"no interval recorded; this worker's grace {grace:g} s"
            try:
                self.set_trial_user_attr(trial_id, "reason", f"went silent: no heartbeat for {silent:.0f} s "
                                                             f"({whose}); queued again")
                self.set_trial_user_attr(trial_id, FAILURE_ATTR, FailureKind.SILENT.value)
            except UpdateFinishedTrialError:
                continue  # its worker told it, or another worker failed it, since the read above
            stale.append(trial_id)
        return stale


def _seconds(value_json: str | None) -> float | None:
    try:
        value = json.loads(value_json) if value_json is not None else None
    except ValueError:
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
