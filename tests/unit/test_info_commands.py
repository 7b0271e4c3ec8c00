"""targets, lab, login and logout answer with one event each, rendered by render.py's two
renderers like every other command: what the CLI prints is exactly what the renderer prints for
that event, and the JSON documents keep the keys docs/headless.md gives."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import Target, load_config
from repx_tui.backend.events import (
    HealthCheck,
    KeeperEnded,
    LabReport,
    LoggedOut,
    LoginKept,
    TargetHealth,
    TargetsReport,
)
from repx_tui.backend.lab import Lab
from repx_tui.headless.render import renderer
from tests.labgen import make_lab

REPO = Path(__file__).resolve().parents[2]
HEADLESS = REPO / "repx_tui" / "headless"


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repx_tui", *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=120)  # fmt: skip


def rendered(event, as_json: bool) -> str:
    out = io.StringIO()
    renderer(as_json, out)(event)
    return out.getvalue()


@pytest.fixture
def config(tmp_path, monkeypatch) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(
        f'submission_target = "local"\n[targets.local]\nbase_path = "{tmp_path / "base"}"\n'
        '[targets.cluster]\naddress = "me@login.example"\nbase_path = "/scratch/me"\ndefault_scheduler = "slurm"\n'
    )
    monkeypatch.setenv("REPX_CONFIG", str(path))
    return {"REPX_CONFIG": str(path)}


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_targets_prints_what_the_renderer_renders(config, as_json):
    loaded = load_config()
    expected = rendered(TargetsReport(loaded.source, tuple(loaded.targets.values())), as_json)
    result = cli(config, "targets", *(["--json"] if as_json else []))
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    if as_json:
        data = json.loads(result.stdout)
        assert set(data) == {"config", "targets"} and [t["name"] for t in data["targets"]] == ["local", "cluster"]
        assert "health" not in data["targets"][0]
    else:
        assert result.stdout.startswith(f"targets from {loaded.source}:\n  local ")


def test_targets_check_json_keeps_its_health_document(config):
    result = cli(config, "targets", "--check", "--json")
    data = json.loads(result.stdout)
    local = data["targets"][0]
    assert set(local["health"]) == {"ok", "seconds", "checks"} and local["health"]["ok"] is True
    assert all(set(c) == {"name", "ok", "detail", "hint"} for c in local["health"]["checks"])
    assert data["targets"][1]["health"]["ok"] is False and result.returncode == 1  # no such host


def test_a_failed_check_reads_with_its_hint():
    target = Target(name="c", base_path="/b", address="me@c")
    health = TargetHealth("c", (HealthCheck("reachable", False, "refused", hint="ssh me@c"),), 1.5)
    report = TargetsReport("/x/config.toml", (target,), (health,))
    assert not report.ok
    assert rendered(report, False).splitlines()[2:] == ["      [FAIL] reachable: refused", "             try: ssh me@c"]
    (entry,) = json.loads(rendered(report, True))["targets"]
    assert entry["health"] == {"ok": False, "seconds": 1.5,
                               "checks": [{"name": "reachable", "ok": False, "detail": "refused", "hint": "ssh me@c"}]}  # fmt: skip


@pytest.mark.parametrize("verify", [False, True], ids=["plain", "verify"])
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_lab_prints_what_the_renderer_renders(tmp_path, verify, as_json):
    lab_dir = make_lab(tmp_path / "lab", image_layers=2)
    lab = Lab.load(lab_dir)
    expected = rendered(LabReport(str(lab.root), lab.to_summary(), verified=verify), as_json)
    argv = ["lab", str(lab_dir), *(["--verify"] if verify else []), *(["--json"] if as_json else [])]
    result = cli({}, *argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    if as_json:
        assert json.loads(result.stdout).get("verified") is (True if verify else None)
    else:
        assert result.stdout.startswith(f"Lab {lab.lab_id}  ({lab.root})\n")
        assert result.stdout.endswith("; every file verified\n" if verify else " jobs in all\n")


def test_logout_without_a_keeper_prints_what_the_renderer_renders(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    result = cli({"XDG_RUNTIME_DIR": str(runtime)}, "logout", "cluster")
    assert result.returncode == 0, result.stderr
    assert result.stdout == rendered(LoggedOut(target="cluster"), False) == "no kept login for cluster\n"


def test_login_and_logout_lines():
    assert rendered(LoginKept("c", "me@h", 42, 300.0), False) == (
        "logged in to c (me@h); kept by pid 42 until it is unused for 5 min; `repx-tui logout c` ends it\n"
    )
    assert rendered(LoginKept("c", "me@h", 42, 600.0, already=True), False) == (
        "already logged in to c (me@h), kept by pid 42\n"
    )
    ended = LoggedOut((KeeperEnded("a", "x@a", 1), KeeperEnded("b", "y@b", 2)))
    assert rendered(ended, False) == (
        "logged out of a (x@a): keeper pid 1 ended\nlogged out of b (y@b): keeper pid 2 ended\n"
    )


def _prints(path: Path) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_these_commands_print_nothing_of_their_own():
    """Their output goes through render.py, the one place that renders each event."""
    assert [name for name in ("targets", "lab", "login", "logout") if _prints(HEADLESS / f"{name}.py")] == []
