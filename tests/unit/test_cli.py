"""The headless entry points that need no target: lab, targets, and error handling."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.labgen import make_lab


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repx_tui", *args], capture_output=True, text=True, timeout=120)


def test_lab_json_shape(tmp_path):
    lab_dir = make_lab(tmp_path / "lab", image_layers=2)
    result = run_cli("lab", str(lab_dir), "--json", "--verify")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"lab_id", "runs", "groups", "jobs", "images", "host_tools"}
    assert [r["name"] for r in data["runs"]] == ["simulation", "analysis"]
    assert data["jobs"] == sum(len(r["jobs"]) for r in data["runs"])
    assert data["groups"] == {"all": ["simulation", "analysis"]}
    (image,) = data["images"]
    assert image["path"].startswith("images/") and len(image["layers"]) == 2
    assert all(len(layer["digest"]) == 64 and layer["size"] > 0 for layer in image["layers"])


def test_broken_lab_is_one_clear_line(tmp_path):
    lab_dir = make_lab(tmp_path / "lab")
    subprocess.run(["chmod", "-R", "u+w", str(lab_dir)], check=True)
    (next((lab_dir / "lab").glob("*lab-metadata.json"))).write_text("{not json")
    result = run_cli("lab", str(lab_dir))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and "lab-metadata.json" in result.stderr


def test_corrupted_file_fails_verify_naming_it(tmp_path):
    lab_dir = make_lab(tmp_path / "lab")
    subprocess.run(["chmod", "-R", "u+w", str(lab_dir)], check=True)
    readme = lab_dir / "readme" / "README.md"
    readme.write_text(readme.read_text() + "tampered\n")
    result = run_cli("lab", str(lab_dir), "--verify")
    assert result.returncode == 1
    assert "readme/README.md" in result.stderr and "Traceback" not in result.stderr


def test_unknown_target_is_a_clear_error(tmp_path):
    lab_dir = make_lab(tmp_path / "lab")
    result = run_cli("status", "--lab", str(lab_dir), "--target", "nowhere")
    assert result.returncode == 1
    assert "target 'nowhere'" in result.stderr and "Traceback" not in result.stderr
