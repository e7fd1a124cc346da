"""What was run, for the record: package versions, Python, platform and the project's git commit."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# This package's own version first: its seed derivation and training loop are part of what was run.
PACKAGES = ("search", "tensorflow", "tensorflow-cpu", "keras", "optuna", "mlflow", "mlflow-skinny",
            "scikit-learn", "numpy", "pandas", "pydantic")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(where: Path | None = None) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where or Path.cwd(), capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def record(where: Path | None = None) -> dict[str, str]:
    info = {f"version.{k}": v for k, v in versions().items()}
    info["python"] = sys.version.split()[0]
    info["platform"] = platform.platform()
    commit = git_commit(where)
    if commit:
        info["git_commit"] = commit
    return info
