"""The code's own checks, run by the test command (so by CI): ruff lint, ruff format, mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["repx_tui", "tests", "bench", "scripts"]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(check):
    if shutil.which("ruff") is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    result = _run(["ruff", *check, *SOURCES])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy():
    result = _run([sys.executable, "-m", "mypy"])  # files and options from pyproject.toml
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
