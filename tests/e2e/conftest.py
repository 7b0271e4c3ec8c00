"""Fixtures shared by the end-to-end tests (the real-services ones are in tests/infra/fixtures.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def e2e_base(tmp_path):
    """A base_path the unprivileged user e2e can create (pytest's tmp_path is root-only); removed after."""
    path = Path("/tmp") / f"repx-e2e-{os.getpid()}-{tmp_path.name}"
    yield path
    shutil.rmtree(path, ignore_errors=True)
