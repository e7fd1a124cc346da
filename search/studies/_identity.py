"""Which process runs a trial: lets a restarted run tell a dead worker's trial from a live one."""
from __future__ import annotations

import os
import socket
from typing import Any, Sequence

# The trial's user attribute holding its worker's heartbeat interval, in seconds: other workers judge the
# trial silent by it (search/studies/_heartbeats.py).
INTERVAL_ATTR = "heartbeat_interval"


def worker_identity() -> dict[str, object]:
    # SEARCH_HOSTNAME names the host where containers share one hostname (and lets tests act as one).
    return {"host": os.environ.get("SEARCH_HOSTNAME") or socket.gethostname(), "pid": os.getpid()}


def orphans(study: Any, trials: Sequence[Any] | None = None) -> list[Any]:
    """RUNNING trials whose process, on this host, is gone (among ``trials``, read here when not given)."""
    host, found = worker_identity()["host"], []
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        if t.state.name != "RUNNING":
            continue
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") == host and not process_alive(int(worker.get("pid", -1))):
            found.append(t)
    return found


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a killed child not yet reaped) still answers kill(0): read its state where we can.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def interval_of(storage: Any) -> int | None:
    """The heartbeat interval a storage (or Optuna's cache in front of it) beats at; None without beats."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None
