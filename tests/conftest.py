"""Shared pytest setup: the real-services fixtures, and isolation from the developer's ~."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.infra.fixtures"]


@pytest.fixture(autouse=True)
def isolated_xdg(tmp_path_factory, monkeypatch):
    """Never read or write the developer's real ~/.config, ~/.local or ~/.cache."""
    root = tmp_path_factory.mktemp("xdg")
    for kind in ("CONFIG", "DATA", "CACHE", "STATE"):
        path = root / kind.lower()
        path.mkdir()
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(path))
    monkeypatch.delenv("REPX_CONFIG", raising=False)
    return root
