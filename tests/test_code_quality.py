"""The habits of a well-kept project, checked with the tests: ruff's lint and mypy, clean on the package."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    if shutil.which(name) is None and subprocess.run([sys.executable, "-m", name, "--version"],
                                                     capture_output=True).returncode != 0:
        pytest.fail(f"{name} is not installed: pip install '.[test]' installs it")
    return [sys.executable, "-m", name]


def test_ruff_finds_nothing():
    result = subprocess.run(_tool("ruff") + ["check", "search", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = subprocess.run(_tool("mypy"), cwd=ROOT, capture_output=True, text=True)  # files from pyproject
    assert result.returncode == 0, result.stdout + result.stderr
