"""Benchmark (not a test): this sync vs an upstream-style sequence vs plain `rsync -a`, in ONE run.

Against the test-bed sshd as the unprivileged user `e2e` (bash tests/infra/start-all.sh first),
over loopback and, when it is up (REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh), over the
shaped "login host" link (veth into a netns, tbf-rate-limited, +delay each way):
    python bench/bench_sync.py [--reps N] [--layer-mib M] [--markdown] [--link loopback|login|both]

Scenarios: cold (empty base_path), unchanged (same Lab again), one layer changed (a Lab whose
image layers differ in one layer). Each tool gets its own base_path. Wall time is the whole
command a user would run (a fresh process), except "repx-tui (in-process)", which times a
session connect + sync + close inside an already running Python (what the TUI does: it keeps
its process and asyncssh imported). Wire bytes are what crossed the link's interface (lo, or
the host end of the veth pair), from /proc/net/dev; other traffic on lo adds noise, so we keep
the minimum. Best of N on purpose: other work on the machine only ever adds time.
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

TOOLS = (*labgen.SCRIPT_TOOLS, "rsync", "tar", "sha256sum", "stat", "cut", "chmod", "mv", "cp", "ln", "tee")

# Times one session connect + sync + close inside a Python that has already imported everything.
IN_PROCESS = r"""
import asyncio, sys, time
from repx_tui.backend.config import load_config
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
import repx_tui.backend.transport.ssh  # asyncssh imported before the clock starts, as in the TUI
target = load_config().targets["bench"]
lab = Lab.load(sys.argv[1])
async def main():
    t0 = time.monotonic()
    async with TargetSession(target) as session:
        await session.sync(lab)
    return time.monotonic() - t0
print(f"{asyncio.run(main()):.6f}")
"""


@dataclass
class Sample:
    seconds: float
    wire: int


@dataclass
class Link:
    name: str
    ssh_config: str
    alias: str
    interface: str
    description: str


def if_bytes(interface: str) -> int:
    """Bytes through the interface (received + sent for veth; lo counts each byte once each way)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == interface:
            fields = rest.split()
            return int(fields[0]) if interface == "lo" else int(fields[0]) + int(fields[8])
    return 0


class Tools:
    def __init__(self, link: Link, work: Path) -> None:
        self.link = link
        self.work = work
        self.ssh = ["ssh", "-F", link.ssh_config, link.alias]
        self.rsh = f"ssh -F {link.ssh_config}"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        # bytecode cached outside the repo, as an installed package would have it
        self.env = {**env, "REPX_SSH_CONFIG": link.ssh_config, "PYTHONPATH": str(ROOT),
                    "PYTHONPYCACHEPREFIX": str(work.parent / "pycache"), "REPX_CONFIG": str(work / "config.toml")}
        (work / "config.toml").write_text(
            f'[targets.bench]\naddress = "{link.alias}"\nbase_path = "{work}/ours"\n')

    def timed(self, commands: list[list[str]]) -> Sample:
        wire0, t0 = if_bytes(self.link.interface), time.monotonic()
        printed = ""
        for argv in commands:
            done = subprocess.run(argv, check=True, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            printed = done.stdout
        seconds = time.monotonic() - t0
        if commands and commands[0][:2] == [sys.executable, "-c"]:
            seconds = float(printed.strip().splitlines()[-1])  # the child's own clock
        return Sample(seconds, if_bytes(self.link.interface) - wire0)

    def ours(self, lab: Path) -> list[list[str]]:
        return [[sys.executable, "-m", "repx_tui", "sync", "--lab", str(lab), "--target", "bench"]]

    def ours_in_process(self, lab: Path) -> list[list[str]]:
        return [[sys.executable, "-c", IN_PROCESS, str(lab)]]

    def upstream_style(self, lab: Path) -> list[list[str]]:
        """One ssh/rsync process per step, as upstream's client does (§2.3-2.4 of the notes)."""
        base = f"{self.work}/upstream"
        image = next((lab / "images").iterdir())
        tag = image.name.removesuffix(".tar")
        alias = self.link.alias
        rsync = ["rsync", "-rltpz", "--chmod=Du+w", "--mkpath", "-e", self.rsh]
        return [
            [*self.ssh, f"test -f {base}/bin/rsync && echo exists || true"],
            [*self.ssh, f"mkdir -p {base}/bin"],
            [*rsync, f"{lab}/", f"{alias}:{base}/artifacts"],
            [*self.ssh, f"chmod u+w {base}/artifacts"],
            [*self.ssh, f"mkdir -p {base}/artifacts/store {base}/artifacts/images"],
            [*rsync, f"{lab}/store/", f"{alias}:{base}/artifacts/store"],
            [*rsync, f"{image}/", f"{alias}:{base}/artifacts/images/{image.name}"],
            [*self.ssh, f"cd {base}/artifacts/images && rm -f {tag} && ln -sfn {image.name} {tag}"],
        ]

    def plain_rsync(self, lab: Path) -> list[list[str]]:
        return [["rsync", "-a", "-e", self.rsh, f"{lab}/", f"{self.link.alias}:{self.work}/plain/"]]

    def ssh_true(self) -> list[list[str]]:
        return [[*self.ssh, "true"]]


def links(which: str) -> list[Link]:
    env_file = e2e_dir() / "env"
    if not env_file.is_file():
        raise SystemExit(f"{env_file} missing: run `bash tests/infra/start-all.sh` first")
    found = []
    if which in ("loopback", "both"):
        found.append(Link("loopback", read_env_file(env_file)["REPX_E2E_SSH_CONFIG"], "e2e-user", "lo",
                          "127.0.0.1, unshaped"))
    netns_env = e2e_dir() / "netns" / "env"
    if which in ("login", "both"):
        if netns_env.is_file():
            env = read_env_file(netns_env)
            found.append(Link("login host", env["REPX_E2E_NETNS_SSH_CONFIG"], env["REPX_E2E_NETNS_ALIAS"], "e2e-h",
                              env.get("REPX_E2E_NETNS_LINK", "shaped")))
        elif which == "login":
            raise SystemExit(f"{netns_env} missing: run `REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh` first")
    return found


TOOL_ROWS = (("repx-tui sync", "ours"), ("repx-tui (in-process)", "ours_in_process"),
             ("upstream-style", "upstream_style"), ("rsync -a", "plain_rsync"))


def run_link(link: Link, reps: int, labs: dict, tmp: Path) -> dict:
    work = tmp / link.name.replace(" ", "-")
    work.mkdir()
    os.chmod(work, 0o777)  # the remote side is the user e2e on this same machine
    tools = Tools(link, work)
    results: dict[str, dict[str, Sample]] = {"ssh host true": {"once": best(reps, lambda: tools.timed(tools.ssh_true()))}}
    for name, method in TOOL_ROWS:
        commands = getattr(tools, method)
        row: dict[str, Sample] = {}
        cold = []
        for _ in range(reps):
            for sub in ("ours", "upstream", "plain"):
                shutil.rmtree(work / sub, ignore_errors=True)
            cold.append(tools.timed(commands(labs["base"])))
        row["cold"] = min(cold, key=lambda s: s.seconds)
        row["unchanged"] = best(reps, lambda: tools.timed(commands(labs["base"])))
        changed = []
        for lab_changed in labs["changed"]:
            tools.timed(commands(labs["base"]))
            changed.append(tools.timed(commands(lab_changed)))
        row["one layer changed"] = min(changed, key=lambda s: s.seconds)
        results[name] = row
    return {"results": results, "plain_missed": missed_change(work / "plain", labs["changed"][-1])}


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


def report(link: Link, data: dict, lab_bytes: int, layer: int, markdown: bool) -> str:
    res = data["results"]
    base = res["ssh host true"]["once"].seconds
    ours, inproc, plain = res["repx-tui sync"], res["repx-tui (in-process)"], res["rsync -a"]
    lines = [f"### {link.name} ({link.description})", ""]
    if markdown:
        lines += ["| tool | scenario | wall s | × repx-tui | wire MiB |", "|---|---|---:|---:|---:|"]
    for name, row in res.items():
        for scenario, sample in row.items():
            ref = ours.get(scenario)
            ratio = f"{sample.seconds / ref.seconds:.2f}" if ref and ref.seconds else "–"
            cells = [name, scenario, f"{sample.seconds:.2f}", ratio, f"{sample.wire / 2**20:.1f}"]
            lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(f"{c:>22}" for c in cells))
    lab_mib = lab_bytes / 2**20
    changed = ours["one layer changed"].wire
    lines += [
        "",
        f"- unchanged re-sync vs one bare `ssh host true` ({base:.2f} s), target ≤ 1.5×: fresh process "
        f"{ours['unchanged'].seconds:.2f} s = **{ours['unchanged'].seconds / base:.2f}×**; in-process "
        f"{inproc['unchanged'].seconds:.2f} s = **{inproc['unchanged'].seconds / base:.2f}×**",
        f"- one changed layer ({layer / 2**20:.1f} MiB), target ≤ 1.05× its size on the wire: {changed / 2**20:.1f} MiB "
        f"= **{changed / layer:.2f}×**" if layer else "- no layer changed?",
        f"- cold ({lab_mib:.1f} MiB Lab), throughput vs `rsync -a` ({lab_mib / plain['cold'].seconds:.1f} MiB/s), "
        f"target ≥ 0.95×: fresh process {lab_mib / ours['cold'].seconds:.1f} MiB/s = "
        f"**{plain['cold'].seconds / ours['cold'].seconds:.2f}×**; in-process {lab_mib / inproc['cold'].seconds:.1f} MiB/s = "
        f"**{plain['cold'].seconds / inproc['cold'].seconds:.2f}×**",
        (f"- plain `rsync -a` left `{data['plain_missed']}` STALE after the change (same size, Nix mtime 1: "
         "its quick check sees no change)") if data["plain_missed"] else "- plain `rsync -a` sent every change",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--layer-mib", type=int, default=20, help="size of each of the 3 image layers")
    parser.add_argument("--link", choices=("loopback", "login", "both"), default="both")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    chosen = links(args.link)
    with tempfile.TemporaryDirectory(prefix="repx-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        kib = args.layer_mib * 1024
        base = labgen.make_lab(tmp / "lab1", "big_layers", host_tools=TOOLS, layer_size_kib=kib)
        # a fresh changed layer per repetition: the layer store keeps every layer it has seen
        changed = [labgen.make_lab(tmp / f"lab2-{i}", "big_layers", host_tools=TOOLS, layer_size_kib=kib,
                                   layer_seed=100 + i) for i in range(args.reps)]
        labs = {"base": base, "changed": changed}
        lab_bytes = sum(f.stat().st_size for f in base.rglob("*") if f.is_file() and not f.is_symlink())
        layer = changed_layer_size(base, changed[-1])
        load_before = os.getloadavg()[0]
        for link in chosen:
            print(report(link, run_link(link, args.reps, labs, tmp), lab_bytes, layer, args.markdown), flush=True)
    print(f"(benchmark took {time.monotonic() - started:.0f} s; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs; best of {args.reps}; remote user e2e)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
