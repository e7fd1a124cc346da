"""search: hyperparameter search and honest validation for Keras models, on Optuna, scikit-learn and MLflow.

The ``search`` command is a thin layer over this API::

    import search

    result = search.run("spaces/digits_mlp.yaml", n_trials=5)   # or x=..., y=..., builder=...
    picked = search.best("digits-mlp")                           # TrialResult: value, config, split_models()
    test = search.reproduce("digits-mlp")                        # one look at the test rows
    frame = search.predict("digits-mlp", "new_rows.csv")         # the final model's predictions
    rows = search.ablate("digits-mlp")                           # what each regularizer bought
    search.report("digits-mlp", "digits.html")

Names are imported on first use, so ``import search`` stays cheap and never starts TensorFlow, and
imports nothing third-party: ``python -m search`` imports this package while the working folder is still
first on ``sys.path`` (search/__main__.py then removes it), so a ``yaml.py`` or ``numpy.py`` there would
otherwise be run in place of the library.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# MLflow 3 starts a usage reporter on import that sends to MLflow's servers; nothing of a search may reach
# the network. Set before any of our modules imports MLflow, in the CLI and in a script that uses the API;
# a user who sets the variable themselves is obeyed.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's client retries a request 7 times with a doubling wait (made for hosted services that rate-limit):
# with a tracking server gone down mid-run, each request took minutes, each trial many of them, and a stop
# waited for them. Four tries a second, two, four and eight apart give a restarting server its chance; the
# tracker turns itself off after three trials' writes fail. A user's own settings are obeyed.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

# name -> module that defines it
_EXPORTS = {
    "run": "search.api", "best": "search.api", "reproduce": "search.api", "ablate": "search.api",
    "report": "search.api", "predict": "search.api", "RunResult": "search.api", "TrialResult": "search.api",
    "AblationRow": "search.reproduction.ablation", "Report": "search.reproduction.outcome",
    "Space": "search.space", "load_space": "search.api",
    "UserError": "search.errors", "ArgumentError": "search.errors", "SpaceError": "search.errors",
    "DataError": "search.errors",
    "StudyError": "search.errors", "ValidationSchemeError": "search.errors", "VerifyMismatch": "search.errors",
}

__all__ = ["AblationRow", "ArgumentError", "DataError", "Report", "RunResult", "Space", "SpaceError", "StudyError",
           "TrialResult",
           "UserError", "ValidationSchemeError", "VerifyMismatch", "__version__", "ablate", "best", "load_space",
           "predict", "report", "reproduce", "run"]

if TYPE_CHECKING:
    from search.reproduction.ablation import AblationRow
    from search.api import RunResult, TrialResult, ablate, best, load_space, predict, report, reproduce, run
    from search.errors import (ArgumentError, DataError, SpaceError, StudyError, UserError, ValidationSchemeError,
                               VerifyMismatch)
    from search.reproduction.outcome import Report
    from search.space import Space


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
