"""Keeping credentials out of everything we print, log or store."""
from __future__ import annotations

import os
import re

_URL_PASSWORD = re.compile(r"(//[^/:@\s]+):([^@/\s]+)@")
# Secrets that may reach us through the environment rather than a URL.
_SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "DATABRICKS_TOKEN",
                     "AWS_SECRET_ACCESS_KEY")


def redact(text: str) -> str:
    """Hide the password in ``scheme://user:password@host`` URLs and the values of secret variables."""
    text = _URL_PASSWORD.sub(r"\1:***@", str(text))
    for name in _SECRET_VARIABLES:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
