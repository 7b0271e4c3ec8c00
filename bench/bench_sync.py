"""Benchmark (not a test): this sync beside upstream-style `rsync -z` steps and plain `rsync -a`, in ONE run.

Against the test-bed sshd as the unprivileged user `e2e` (bash tests/infra/start-all.sh first),
over loopback and, when it is up (REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh), over the
shaped "login host" link (veth into a netns, tbf-rate-limited, +delay each way):

    python bench/bench_sync.py [--reps N] [--layers 20] [--layer-mib 10] [--link loopback|login|both]
                               [--before DIR] [--markdown]

Two Labs of the same shape (the demo Lab with `--layers` image layers of `--layer-mib` MiB, all
host tools): a compressible one (text-like layers, gzip about 2.2 : 1, see bench/benchlab.py) and
an incompressible one (random layers). Scenarios: cold (empty base_path) for both; unchanged (the
same Lab again) and one layer changed (a fresh changed layer per repetition) for the
incompressible one. Tools, each with its own base_path, interleaved within a repetition so the
machine's load falls on all of them alike:

* repx-tui (in-process): one TargetSession connect + sync + close in a Python that has imported
  everything already (what the TUI does); `--compress auto`.
* repx-tui sync: the CLI as a fresh process (start-up and imports included).
* repx-tui before (in-process): the same, with the code in `--before DIR` (e.g. `git archive` of
  an older commit), for "no slower than today".
* upstream-style: what upstream's client does: one ssh/rsync process (and login) per step, the Lab
  with `rsync -rltpz` (both rsyncs here negotiate zstd for -z).
* rsync -a: one plain `rsync -a` over ssh (no layout, no verification, mtime quick check).

Wall time of the whole command (in-process rows: the child's own clock). Wire = bytes through the
link's interface (lo, or the host end of the veth pair) from /proc/net/dev; other traffic on lo
adds noise. Best of N: other work on the machine only ever adds time. The link limit of the shaped
link is the Lab's content at the link's nominal rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchlab import make_lab  # noqa: E402
from tests.infra.fixtures import e2e_dir, read_env_file  # noqa: E402

# Times one session connect + sync + close inside a Python that has already imported everything.
IN_PROCESS = r"""
import asyncio, json, sys, time
from repx_tui.backend.config import load_config
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
import repx_tui.backend.transport.ssh  # asyncssh imported before the clock starts, as in the TUI
target = load_config().targets["bench"]
lab = Lab.load(sys.argv[1])
async def main():
    t0 = time.monotonic()
    async with TargetSession(target) as session:
        summary = await session.sync(lab)
    return time.monotonic() - t0, summary.to_json()
seconds, summary = asyncio.run(main())
print(json.dumps({"seconds": seconds, "compression": summary.get("compression", "off")}))
"""


@dataclass
class Sample:
    seconds: float
    wire: int
    note: str = ""  # what the tool said about compression


@dataclass
class Link:
    name: str
    ssh_config: str
    alias: str
    interface: str
    description: str
    rate: float | None = None  # bytes/s of a shaped link


def if_bytes(interface: str) -> int:
    """Bytes through the interface (received + sent for veth; lo counts each byte once each way)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == interface:
            fields = rest.split()
            return int(fields[0]) if interface == "lo" else int(fields[0]) + int(fields[8])
    return 0


class Tools:
    """The commands of each tool for one link; each tool syncs into its own base_path."""

    def __init__(self, link: Link, work: Path, before: Path | None) -> None:
        self.link = link
        self.work = work
        self.ssh = ["ssh", "-F", link.ssh_config, link.alias]
        self.rsh = f"ssh -F {link.ssh_config}"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env = {**env, "REPX_SSH_CONFIG": link.ssh_config, "PYTHONPYCACHEPREFIX": str(work.parent / "pycache")}
        self.code = {"ours": ROOT, "before": before}
        self.rows = {  # name -> (its base_path's directory, its command)
            "repx-tui (in-process)": ("ours", lambda lab: self.in_process("ours", lab)),
            "repx-tui sync": ("cli", self.cli),
            **(
                {"repx-tui before (in-process)": ("before", lambda lab: self.in_process("before", lab))}
                if before
                else {}
            ),  # fmt: skip
            "upstream-style (rsync -z)": ("upstream", self.upstream_style),
            "rsync -a": ("plain", self.plain_rsync),
        }

    def config(self, name: str) -> Path:
        path = self.work / f"{name}.toml"
        path.write_text(f'[targets.bench]\naddress = "{self.link.alias}"\nbase_path = "{self.work}/{name}"\n')
        return path

    def reset(self, name: str) -> None:
        shutil.rmtree(self.work / self.rows[name][0], ignore_errors=True)

    def timed(self, argv: list[str], env: dict[str, str] | None = None) -> Sample:
        wire0, t0 = if_bytes(self.link.interface), time.monotonic()
        # cwd: not the repository, whose repx_tui/ would shadow PYTHONPATH's (`python -c` puts "" first)
        done = subprocess.run(argv, check=True, env=env or self.env, capture_output=True, text=True, cwd=self.work)
        seconds, note = time.monotonic() - t0, ""
        if argv[:2] == [sys.executable, "-c"]:
            answer = json.loads(done.stdout.strip().splitlines()[-1])  # the child's own clock
            seconds, note = answer["seconds"], answer["compression"]
        return Sample(seconds, if_bytes(self.link.interface) - wire0, note)

    def in_process(self, which: str, lab: Path) -> Sample:
        env = {**self.env, "PYTHONPATH": str(self.code[which]), "REPX_CONFIG": str(self.config(which))}
        return self.timed([sys.executable, "-c", IN_PROCESS, str(lab)], env)

    def cli(self, lab: Path) -> Sample:
        env = {**self.env, "PYTHONPATH": str(ROOT), "REPX_CONFIG": str(self.config("cli"))}
        return self.timed([sys.executable, "-m", "repx_tui", "sync", "--lab", str(lab), "--target", "bench"], env)

    def upstream_style(self, lab: Path) -> Sample:
        """One ssh/rsync process per step, as upstream's client does (§2.3-2.4 of the notes)."""
        base = f"{self.work}/upstream"
        image = next((lab / "images").iterdir())
        tag = image.name.removesuffix(".tar")
        alias = self.link.alias
        rsync = ["rsync", "-rltpz", "--chmod=Du+w", "--mkpath", "-e", self.rsh]
        steps = [
            [*self.ssh, f"test -f {base}/bin/rsync && echo exists || true"],
            [*self.ssh, f"mkdir -p {base}/bin"],
            [*rsync, f"{lab}/", f"{alias}:{base}/artifacts"],
            [*self.ssh, f"chmod u+w {base}/artifacts"],
            [*self.ssh, f"mkdir -p {base}/artifacts/store {base}/artifacts/images"],
            [*rsync, f"{lab}/store/", f"{alias}:{base}/artifacts/store"],
            [*rsync, f"{image}/", f"{alias}:{base}/artifacts/images/{image.name}"],
            [*self.ssh, f"cd {base}/artifacts/images && rm -f {tag} && ln -sfn {image.name} {tag}"],
        ]
        return self.sequence(steps)

    def plain_rsync(self, lab: Path) -> Sample:
        return self.timed(["rsync", "-a", "-e", self.rsh, f"{lab}/", f"{self.link.alias}:{self.work}/plain/"])

    def sequence(self, steps: list[list[str]]) -> Sample:
        samples = [self.timed(step) for step in steps]
        return Sample(sum(s.seconds for s in samples), sum(s.wire for s in samples))


def links(which: str) -> list[Link]:
    env_file = e2e_dir() / "env"
    if not env_file.is_file():
        raise SystemExit(f"{env_file} missing: run `bash tests/infra/start-all.sh` first")
    found = []
    if which in ("loopback", "both"):
        config = read_env_file(env_file)["REPX_E2E_SSH_CONFIG"]
        found.append(Link("loopback", config, "e2e-user", "lo", "127.0.0.1, unshaped"))
    netns_env = e2e_dir() / "netns" / "env"
    if which in ("login", "both"):
        if netns_env.is_file():
            env = read_env_file(netns_env)
            shaped = env.get("REPX_E2E_NETNS_LINK", "shaped")
            found.append(Link("login host", env["REPX_E2E_NETNS_SSH_CONFIG"], env["REPX_E2E_NETNS_ALIAS"], "e2e-h",
                              shaped, link_rate(shaped)))  # fmt: skip
        elif which == "login":
            raise SystemExit(f"{netns_env} missing: run `REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh` first")
    return found


def link_rate(description: str) -> float | None:
    """Bytes/s of "100mbit, +10 ms each way (tbf)"."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*([kmg])bit", description.lower())
    if not match:
        return None
    return float(match.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)] / 8


def run_link(link: Link, reps: int, labs: dict, tmp: Path, before: Path | None) -> dict[str, dict[str, Sample]]:
    work = tmp / link.name.replace(" ", "-")
    work.mkdir()
    os.chmod(work, 0o777)  # the remote side is the user e2e on this same machine
    tools = Tools(link, work, before)
    samples: dict[str, dict[str, list[Sample]]] = {name: {} for name in tools.rows}
    ssh_true = [tools.timed([*tools.ssh, "true"]) for _ in range(reps)]
    for rep in range(reps):
        for scenario, lab in (("cold, compressible", labs["compressible"]), ("cold, incompressible", labs["random"])):
            for name, (_, run) in tools.rows.items():
                tools.reset(name)
                samples[name].setdefault(scenario, []).append(run(lab))
        for name, (_, run) in tools.rows.items():  # each base_path holds the incompressible Lab now
            samples[name].setdefault("unchanged", []).append(run(labs["random"]))
            samples[name].setdefault("one layer changed", []).append(run(labs["changed"][rep]))
            run(labs["random"])  # back, so the next tool and repetition start alike
    best = {name: {k: min(v, key=lambda s: s.seconds) for k, v in rows.items()} for name, rows in samples.items()}
    return {"ssh host true": {"once": min(ssh_true, key=lambda s: s.seconds)}, **best}


def report(link: Link, results: dict[str, dict[str, Sample]], sizes: dict[str, int], markdown: bool) -> str:
    plain, upstream = results["rsync -a"], results["upstream-style (rsync -z)"]
    lines = [f"### {link.name} ({link.description})", ""]
    header = ["tool", "scenario", "wall s", "÷ rsync -a", "÷ upstream -z", "wire MiB", "compression"]
    if markdown:
        lines += ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|---|"]
    for name, row in results.items():
        for scenario, sample in row.items():
            cells = [name, scenario, f"{sample.seconds:.2f}", _ratio(sample, plain.get(scenario)),
                     _ratio(sample, upstream.get(scenario)), f"{sample.wire / 2**20:.1f}", sample.note]  # fmt: skip
            lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(f"{c:>20}" for c in cells))
    if link.rate:
        for kind, size in sizes.items():
            lines.append(
                f"{'| ' if markdown else ''}link limit | cold, {kind} | {size / link.rate:.2f} |  |  | "
                f"{size / 2**20:.1f} | content at {link.rate * 8 / 1e6:.0f} Mbit/s{' |' if markdown else ''}"
            )
    return "\n".join(lines + [""])


def _ratio(sample: Sample, reference: Sample | None) -> str:
    return f"{sample.seconds / reference.seconds:.2f}" if reference and reference.seconds else "–"


def goals(all_results: dict[str, dict], links_: list[Link], sizes: dict[str, int], before: bool) -> str:
    """The issue's goals, each a ratio from the same run."""
    out = ["Goals (issue 15), each from this run:", ""]
    ours = "repx-tui (in-process)"
    for link in links_:
        res = all_results[link.name]
        inproc, cli = res[ours], res["repx-tui sync"]
        if link.rate:
            for label, row in (("in-process", inproc), ("CLI", cli)):
                up = res["upstream-style (rsync -z)"]["cold, compressible"].seconds
                out.append(
                    f"- {link.name}, compressible, {label}: {row['cold, compressible'].seconds / up:.2f} × "
                    "upstream-style rsync -z (goal ≤ 0.6)"
                )
                limit = sizes["incompressible"] / link.rate
                out.append(
                    f"- {link.name}, incompressible, {label}: {row['cold, incompressible'].seconds / limit:.2f} "
                    f"× the link limit {limit:.1f} s (goal ≤ 1.05)"
                )
        else:
            plain = res["rsync -a"]["cold, incompressible"].seconds
            for label, row in (("in-process", inproc), ("CLI", cli)):
                out.append(
                    f"- {link.name}, cold, {label}: {row['cold, incompressible'].seconds / plain:.2f} × rsync -a "
                    "(goal ≤ 1.0)"
                )
        if before:
            old = res["repx-tui before (in-process)"]
            for scenario in ("unchanged", "one layer changed"):
                out.append(
                    f"- {link.name}, {scenario}: {inproc[scenario].seconds / old[scenario].seconds:.2f} × "
                    "before (goal ≤ 1.0)"
                )
    return "\n".join(out + [""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--layers", type=int, default=20, help="image layers besides the rootfs layer")
    parser.add_argument("--layer-mib", type=int, default=10, help="size of each of those layers")
    parser.add_argument("--link", choices=("loopback", "login", "both"), default="both")
    parser.add_argument("--before", type=Path, help="an older copy of the code (its repx_tui/), timed in-process too")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    chosen = links(args.link)
    with tempfile.TemporaryDirectory(prefix="repx-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        shape = {"layers": args.layers, "layer_mib": args.layer_mib, "host_tools": None}
        labs = {
            "compressible": make_lab(tmp / "lab-text", "compressible", **shape),
            "random": make_lab(tmp / "lab-random", "incompressible", **shape),
            # a fresh changed layer per repetition: the layer store keeps every layer it has seen
            "changed": [
                make_lab(tmp / f"lab-changed-{i}", "incompressible", layer_seed=100 + i, **shape)
                for i in range(args.reps)
            ],  # fmt: skip
        }
        sizes = {kind: _content(labs[key]) for kind, key in (("compressible", "compressible"),
                                                             ("incompressible", "random"))}  # fmt: skip
        load_before = os.getloadavg()
        print(
            f"Labs: {sizes['compressible'] / 2**20:.1f} MiB (compressible), {sizes['incompressible'] / 2**20:.1f} MiB "
            f"(incompressible), {args.layers} layers of {args.layer_mib} MiB + the rootfs layer",
            flush=True,
        )
        results = {}
        for link in chosen:
            results[link.name] = run_link(link, args.reps, labs, tmp, args.before)
            print(report(link, results[link.name], sizes, args.markdown), flush=True)
        print(goals(results, chosen, sizes, args.before is not None))
    print(
        f"(benchmark took {time.monotonic() - started:.0f} s; load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (1 min), {os.getloadavg()[1]:.1f} (5 min); {os.cpu_count()} CPUs; "
        f"best of {args.reps}; remote user e2e)"
    )
    return 0


def _content(lab: Path) -> int:
    return sum(f.stat().st_size for f in lab.rglob("*") if f.is_file() and not f.is_symlink())


if __name__ == "__main__":
    raise SystemExit(main())
