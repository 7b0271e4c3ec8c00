"""The test bed's sshd as the target `cluster` of a config.toml, and repx-tui's CLI as a fresh process.

    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M")
    answer = last_json(bed.run(lab_dir, "simulation"))  # run ... --headless --json on `cluster`
    ...
    scancel_recorded(bed.base)  # at the end, passed or not: no SLURM job outlives its test

Tests that drive the TUI in this process use ``bed.use(monkeypatch)`` instead of a CLI process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.terminal import Terminal

REPO = Path(__file__).resolve().parents[1]


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """`repx-tui <args>` with this config.toml; nothing on stdin, so it can ask nobody."""
    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        env={**os.environ, "REPX_CONFIG": str(config), **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def last_json(result: subprocess.CompletedProcess[str]) -> dict:
    """The answer of a `--json` command that succeeded (its last line)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_config(path: Path, sshd: dict, base: Path, scheduler: str = "slurm") -> Path:
    """config.toml with the one target `cluster`: the bed's sshd (`sshd["alias"]`) at `base`."""
    text = f'[targets.cluster]\naddress = "{sshd["alias"]}"\nbase_path = "{base}"\ndefault_scheduler = "{scheduler}"\n'
    if scheduler == "slurm":
        text += '[targets.cluster.slurm]\nexecution_types = ["native"]\n'
    path.write_text(text)
    return path


def write_resources(
    path: Path, partition: str, *, cpus: int | None = None, mem: str | None = None, rules: str = ""
) -> Path:
    """resources.toml: defaults on the bed's partition with five minutes, then `rules` (TOML text).
    Rules come after the Lab's own hints, so they win for every job they match; defaults do not."""
    lines = ["[defaults]", f'partition = "{partition}"', 'time = "00:05:00"']
    if cpus is not None:
        lines.append(f"cpus-per-task = {cpus}")
    if mem is not None:
        lines.append(f'mem = "{mem}"')
    path.write_text("\n".join(lines) + "\n" + rules)
    return path


@dataclass(frozen=True)
class Cluster:
    """The SLURM target `cluster`: its config.toml, resources.toml and base_path."""

    config: Path
    resources: Path
    base: Path
    env: dict[str, str]  # REPX_CONFIG and REPX_SSH_CONFIG

    def cli(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return cli(self.config, *args, env=self.env, timeout=timeout)

    def run(self, lab_dir: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        """`repx-tui run <args>` of this Lab on `cluster` with this resources.toml, headless, JSON."""
        target = ["--lab", str(lab_dir), "--target", "cluster", "--resources", str(self.resources)]
        return self.cli("run", *args, *target, "--headless", "--json", timeout=timeout)

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The TUI in this process reads the same config.toml and SSH config."""
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)


def slurm_cluster(
    tmp_path: Path,
    sshd: dict,
    partition: str,
    *,
    base: Path | None = None,
    cpus: int | None = None,
    mem: str | None = None,
    rules: str = "",
) -> Cluster:
    """`cluster` on the bed's sshd and SLURM (native jobs), base_path `tmp_path/cluster-store` unless given."""
    base = base or tmp_path / "cluster-store"
    config = write_config(tmp_path / "config.toml", sshd, base)
    resources = write_resources(tmp_path / "resources.toml", partition, cpus=cpus, mem=mem, rules=rules)
    return Cluster(config, resources, base, {"REPX_CONFIG": str(config), "REPX_SSH_CONFIG": sshd["ssh_config"]})


def login_env(tmp_path: Path, sshd: dict, base: Path, runtime: Path | None = None) -> dict[str, str]:
    """A CLI environment for `cluster` (local scheduler) with a keeper directory of its own:
    XDG_RUNTIME_DIR is `runtime`, or a private (0700) `tmp_path/runtime`."""
    config = write_config(tmp_path / "config.toml", sshd, base, scheduler="local")
    if runtime is None:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
    keeper = {"REPX_CONFIG": str(config), "REPX_SSH_CONFIG": sshd["ssh_config"], "XDG_RUNTIME_DIR": str(runtime)}
    return {**os.environ, **keeper}


def answer_key_and_password(
    args: list[str],
    env: dict[str, str],
    target: dict,
    code: str,
    prompts: tuple[str, str] = ("Passphrase for key", "Password for e2e-2fa-pw"),
) -> str:
    """`repx-tui <args>` on a terminal of its own, the two-factor sshd's `target`: its key's
    passphrase typed at the first prompt, the password (a TOTP `code`) at the second; it must end
    well. Returns what the terminal showed."""
    term = Terminal([sys.executable, "-m", "repx_tui", *args], env=env, cwd=str(REPO))
    try:
        term.expect(prompts[0], timeout=30)
        term.send(target["passphrase"] + "\n")
        term.expect(prompts[1], timeout=30)
        term.send(code + "\n")
        assert term.wait(timeout=60) == 0, term.output
    finally:
        term.kill()
    return term.output


def scontrol(slurm_id: str) -> dict[str, str]:
    """`scontrol show job` as Key=Value pairs (values up to the next space)."""
    out = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True).stdout
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


def recorded_ids(base: Path, lab_id: str) -> dict[str, list[str]]:
    """Per job, the SLURM ids this Lab's submission records under `base` hold, oldest record first."""
    ids: dict[str, list[str]] = {}
    for record in sorted((base / "submissions" / lab_id).glob("*.json")):
        for line in record.read_text().splitlines():
            entry = json.loads(line)
            ids.setdefault(entry["job"], []).append(entry["slurm_id"])
    return ids


def scancel(ids: Iterable[str | None]) -> None:
    """Cancel these SLURM jobs; ids already gone are no error."""
    wanted = [sid for sid in ids if sid]
    if wanted:
        subprocess.run(["scancel", *wanted], capture_output=True)


def scancel_recorded(base: Path) -> None:
    """Cancel every SLURM job recorded under `base` (recorded as soon as sbatch answered), of any Lab."""
    records = (base / "submissions").glob("*/*.json")
    scancel(json.loads(line).get("slurm_id") for record in records for line in record.read_text().splitlines())


def wrapped_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> None:
    """`script` as the tool `name`, first on PATH here, so a demo Lab made after this ships it
    among its host tools (demolab copies what `which` finds) and scripts on the target run it."""
    tools = tmp_path / "wrapper-bin"
    tools.mkdir(exist_ok=True)
    wrapper = tools / name
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")


def queued_ids_by_name(names: Iterable[str]) -> dict[str, list[str]]:
    """The SLURM ids in the queue (any user) per job name, for these names only."""
    wanted = set(names)
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True, check=True).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        sid, name = line.split(maxsplit=1)
        if name in wanted:
            found.setdefault(name, []).append(sid)
    return found
