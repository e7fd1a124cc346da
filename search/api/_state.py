"""The process-wide Python state a call of the API changes on its way, given back when it returns.

A notebook is one long process: the seeds a trial sets (``keras.utils.set_random_seed`` reseeds Python's
``random`` and NumPy's global generator), Optuna's log level (failed trials are our progress lines, not its
tracebacks) and the warnings filters the stores add would otherwise outlive the call, and fix every later
unseeded draw of the session. TensorFlow's own global seed and its thread pools are not given back: they
cannot be once it has started (docs/api.md says so).
"""
from __future__ import annotations

import contextlib
import random
import warnings
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """Python's and NumPy's global random states, Optuna's verbosity and the warnings filters as they were
    before the block, also where it raises (a KeyboardInterrupt included)."""
    import optuna

    python_state, numpy_state = random.getstate(), np.random.get_state()
    verbosity = optuna.logging.get_verbosity()
    try:
        with warnings.catch_warnings():  # the filters list is copied in and the caller's put back on the way out
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        optuna.logging.set_verbosity(verbosity)
