"""Which process runs a trial: lets a restarted run tell a dead worker's trial from a live one."""
from __future__ import annotations

import os
import socket


def worker_identity() -> dict[str, object]:
    # SEARCH_HOSTNAME names the host where containers share one hostname (and lets tests act as one).
    return {"host": os.environ.get("SEARCH_HOSTNAME") or socket.gethostname(), "pid": os.getpid()}
