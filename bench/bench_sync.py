"""Benchmark (not a test): this sync vs an upstream-style sequence vs plain `rsync -a`, in ONE run.

Against the test-bed sshd on loopback (bash tests/infra/start-all.sh first):
    python bench/bench_sync.py [--reps N] [--markdown]

Scenarios: cold (empty base_path), unchanged (same Lab again), one layer changed (a Lab whose
last image layer differs). Each tool gets its own base_path. Wall time is the whole command a
user would run (a fresh process); wire bytes are what crossed the loopback interface (counted
in /proc/net/dev, so other traffic on lo at the same time adds noise: we keep the minimum).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import labgen  # noqa: E402
from tests.infra.fixtures import e2e_dir, read_env_file  # noqa: E402

TOOLS = (*labgen.SCRIPT_TOOLS, "rsync", "tar", "sha256sum", "stat", "cut", "chmod", "mv", "cp", "ln")
ALIAS = "e2e-cluster"


@dataclass
class Sample:
    seconds: float
    wire: int


def lo_bytes() -> int:
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[0])  # received on lo == sent on lo
    return 0


def timed(commands: list[list[str]], env: dict[str, str]) -> Sample:
    wire0, t0 = lo_bytes(), time.monotonic()
    for argv in commands:
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Sample(time.monotonic() - t0, lo_bytes() - wire0)


class Tools:
    def __init__(self, ssh_config: str, work: Path) -> None:
        self.cfg = ssh_config
        self.work = work
        self.ssh = ["ssh", "-F", ssh_config, ALIAS]
        self.rsh = f"ssh -F {ssh_config}"
        self.env = {**os.environ, "REPX_SSH_CONFIG": ssh_config, "PYTHONPATH": str(ROOT),
                    "REPX_CONFIG": str(work / "config.toml")}
        (work / "config.toml").write_text(f'[targets.bench]\naddress = "{ALIAS}"\nbase_path = "{work}/ours"\n')

    def ours(self, lab: Path) -> list[list[str]]:
        return [[sys.executable, "-m", "repx_tui", "sync", "--lab", str(lab), "--target", "bench"]]

    def upstream_style(self, lab: Path) -> list[list[str]]:
        """One ssh/rsync process per step, as upstream's client does (§2.3-2.4 of the notes)."""
        base = f"{self.work}/upstream"
        image = next((lab / "images").iterdir())
        tag = image.name.removesuffix(".tar")
        rsync = ["rsync", "-rltpz", "--chmod=Du+w", "--mkpath", "-e", self.rsh]
        return [
            [*self.ssh, f"test -f {base}/bin/rsync && echo exists || true"],
            [*self.ssh, f"mkdir -p {base}/bin"],
            [*rsync, f"{lab}/", f"{ALIAS}:{base}/artifacts"],
            [*self.ssh, f"chmod u+w {base}/artifacts"],
            [*self.ssh, f"mkdir -p {base}/artifacts/store {base}/artifacts/images"],
            [*rsync, f"{lab}/store/", f"{ALIAS}:{base}/artifacts/store"],
            [*rsync, f"{image}/", f"{ALIAS}:{base}/artifacts/images/{image.name}"],
            [*self.ssh, f"cd {base}/artifacts/images && rm -f {tag} && ln -sfn {image.name} {tag}"],
        ]

    def plain_rsync(self, lab: Path) -> list[list[str]]:
        return [["rsync", "-a", "-e", self.rsh, f"{lab}/", f"{ALIAS}:{self.work}/plain/"]]

    def ssh_true(self) -> list[list[str]]:
        return [[*self.ssh, "true"]]


def run(reps: int) -> dict:
    env_file = e2e_dir() / "env"
    if not env_file.is_file():
        raise SystemExit(f"{env_file} missing: run `bash tests/infra/start-all.sh` first")
    ssh_config = read_env_file(env_file)["REPX_E2E_SSH_CONFIG"]
    results: dict[str, dict[str, Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="repx-bench-") as tmp:
        work = Path(tmp)
        lab1 = labgen.make_lab(work / "lab1", "big_layers", host_tools=TOOLS)
        # a fresh changed layer per repetition: the layer store keeps every layer it has seen
        changed_labs = [labgen.make_lab(work / f"lab2-{i}", "big_layers", host_tools=TOOLS, layer_seed=100 + i)
                        for i in range(reps)]
        lab2 = changed_labs[-1]
        tools = Tools(ssh_config, work)
        results["ssh host true"] = {"once": best(reps, lambda: timed(tools.ssh_true(), tools.env))}
        for name, commands in (("repx-tui sync", tools.ours), ("upstream-style", tools.upstream_style),
                               ("rsync -a", tools.plain_rsync)):
            row: dict[str, Sample] = {}
            cold = []
            for _ in range(reps):
                for sub in ("ours", "upstream", "plain"):
                    shutil.rmtree(work / sub, ignore_errors=True)
                cold.append(timed(commands(lab1), tools.env))
            row["cold"] = min(cold, key=lambda s: s.seconds)
            row["unchanged"] = best(reps, lambda: timed(commands(lab1), tools.env))
            changed = []
            for lab_changed in changed_labs:
                timed(commands(lab1), tools.env)
                changed.append(timed(commands(lab_changed), tools.env))
            row["one layer changed"] = min(changed, key=lambda s: s.seconds)
            results[name] = row
        lab_bytes = sum(f.stat().st_size for f in lab1.rglob("*") if f.is_file() and not f.is_symlink())
        changed_layer = changed_layer_size(lab1, lab2)  # same size in every repetition
        plain_missed = missed_change(work / "plain", lab2)
    return {"results": results, "lab_bytes": lab_bytes, "changed_layer": changed_layer, "plain_missed": plain_missed}


def best(reps: int, measure) -> Sample:
    samples = [measure() for _ in range(reps)]
    return min(samples, key=lambda s: s.seconds)


def changed_layer_size(lab1: Path, lab2: Path) -> int:
    old = {p.name for p in (lab1 / "store").glob("*-layer.tar")}
    new = [p for p in (lab2 / "store").glob("*-layer.tar") if p.name not in old]
    return sum(p.stat().st_size for p in new)


def missed_change(plain: Path, lab2: Path) -> str:
    """A file plain rsync -a (size+mtime quick check, mtimes all 1) left stale, or ""."""
    for path in sorted(lab2.rglob("*")):
        if path.is_file() and not path.is_symlink():
            twin = plain / path.relative_to(lab2)
            if not twin.exists() or twin.read_bytes() != path.read_bytes():
                return path.relative_to(lab2).as_posix()
    return ""


def report(data: dict, markdown: bool) -> str:
    res = data["results"]
    base = res["ssh host true"]["once"].seconds
    ours = res["repx-tui sync"]
    lines = []
    if markdown:
        lines += ["| tool | scenario | wall s | × repx-tui | wire MiB |", "|---|---|---:|---:|---:|"]
    for name, row in res.items():
        for scenario, sample in row.items():
            ref = ours.get(scenario)
            ratio = sample.seconds / ref.seconds if ref and ref.seconds else float("nan")
            cells = [name, scenario, f"{sample.seconds:.2f}", f"{ratio:.2f}", f"{sample.wire / 2**20:.1f}"]
            lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(f"{c:>18}" for c in cells))
    lab_mib = data["lab_bytes"] / 2**20
    layer = data["changed_layer"]
    lines += [
        "",
        f"- unchanged re-sync: {ours['unchanged'].seconds:.2f} s = {ours['unchanged'].seconds / base:.2f}× one bare "
        f"`ssh host true` ({base:.2f} s) (target ≤ 1.5×)",
        f"- one changed layer ({layer / 2**20:.1f} MiB): {ours['one layer changed'].wire / 2**20:.1f} MiB on the wire "
        f"= {ours['one layer changed'].wire / layer:.2f}× its size (target ≤ 1.05×)" if layer else "- no layer changed?",
        f"- cold ({lab_mib:.1f} MiB Lab): throughput {lab_mib / ours['cold'].seconds:.1f} MiB/s vs rsync -a "
        f"{lab_mib / res['rsync -a']['cold'].seconds:.1f} MiB/s = "
        f"{res['rsync -a']['cold'].seconds / ours['cold'].seconds:.2f}× (target ≥ 0.95×)",
        (f"- plain `rsync -a` left `{data['plain_missed']}` STALE after the change (same size, Nix mtime 1: "
         "its quick check sees no change)") if data["plain_missed"] else "- plain `rsync -a` sent every change",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    data = run(args.reps)
    print(report(data, args.markdown))
    # best-of-N on purpose: other work on the machine only ever adds time
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}; "
          f"best of {args.reps})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
