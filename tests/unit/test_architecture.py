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


# What a front end may not reach past TargetSession for: the connection, the phases, the
# scheduler, the status machinery, cancel and health. (keeper.client stays: login/logout manage
# the kept connection itself, before and after any session.)
FRONT_END_FORBIDDEN_MODULES = tuple(
    f"repx_tui.backend.{m}"
    for m in (
        "transport",
        "schedulers",
        "sync",
        "cancel",
        "health",
        "layout",
        "keeper.server",
        "status.watcher",
        "status.snapshot",
        "status.slurm",
        "status.merge",
    )  # fmt: skip
)
FRONT_END_FORBIDDEN_NAMES = {"LogFollower", "list_log_units", "inspect_job", "pull_outputs", "lab_presence",
                             "StatusWatcher", "sync_lab", "open_transport", "check_target", "check_targets"}  # fmt: skip


def _backend_reaches(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            found |= {alias.name for alias in node.names if alias.name in FRONT_END_FORBIDDEN_NAMES}
        found |= {m for m in modules if m.startswith(FRONT_END_FORBIDDEN_MODULES)}
    return found


def test_front_ends_reach_the_backend_only_through_the_session():
    """Every headless command and every UI module uses TargetSession's verbs and the events:
    none opens a transport, runs a phase, polls or checks health by itself."""
    package = BACKEND.parent
    offenders = {
        str(p.relative_to(package)): sorted(bad)
        for front in ("headless", "ui")
        for p in (package / front).rglob("*.py")
        if (bad := _backend_reaches(p))
    }
    assert offenders == {}
