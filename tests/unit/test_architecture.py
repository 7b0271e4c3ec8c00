"""The backend stays UI-free: the UI and the CLI are two thin consumers of its events."""

from __future__ import annotations

import ast
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[2] / "repx_tui" / "backend"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_backend_imports_no_ui():
    offenders = {}
    for path in BACKEND.rglob("*.py"):
        bad = {n for n in _imports(path) if n.split(".")[0] in {"textual", "rich"} or n.startswith("repx_tui.ui")}
        bad |= {n for n in _imports(path) if n.startswith("repx_tui.headless") or n == "repx_tui.cli"}
        if bad:
            offenders[str(path.relative_to(BACKEND))] = sorted(bad)
    assert offenders == {}


def test_every_event_serialises_to_json():
    import json

    from repx_tui.backend import events

    sample = events.LayerProgress("img", "a" * 64, 10, 5, events.LayerAction.TRANSFERRED)
    data = json.loads(json.dumps(sample.to_json()))
    assert data == {
        "event": "LayerProgress",
        "image": "img",
        "digest": "a" * 64,
        "size": 10,
        "sent": 5,
        "action": "transferred",
        "done": False,
    }


def test_backend_does_not_write_labs():
    """demolab is a tool for the demo and the tests: the backend only reads Labs."""
    users = [
        str(p.relative_to(BACKEND))
        for p in BACKEND.rglob("*.py")
        if any(n.startswith(("repx_tui.demolab", "repx_tui.demoimage")) for n in _imports(p))
    ]
    assert users == []


def test_no_module_past_600_lines():
    package = BACKEND.parent
    long = {
        str(p.relative_to(package)): n for p in package.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600
    }
    assert long == {}
