"""Fixtures for the UI tests: real Labs from tests/labgen.py, a config with local (+ sshd) targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from repx_tui.backend.config import load_config
from tests.labgen import make_lab


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory) -> Path:
    return make_lab(tmp_path_factory.mktemp("lab") / "lab", "quick", image_layers=2, log_lines=30)


def write_config(path: Path, base: Path, sshd: dict | None = None, sshd_base: str | None = None) -> Path:
    text = f'submission_target = "local"\n\n[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n'
    text += '[targets.local.local]\nexecution_types = ["native"]\n'
    if sshd is not None:
        text += (
            f'\n[targets.cluster]\naddress = "{sshd["alias"]}"\nbase_path = "{sshd_base}"\n'
            'default_scheduler = "local"\n[targets.cluster.local]\nexecution_types = ["native"]\n'
        )
    path.write_text(text)
    return path


@pytest.fixture
def local_config(tmp_path, monkeypatch):
    path = write_config(tmp_path / "config.toml", tmp_path / "store")
    monkeypatch.setenv("REPX_CONFIG", str(path))
    return load_config()
