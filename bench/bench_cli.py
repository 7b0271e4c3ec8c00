"""Benchmark (not a test): headless commands as fresh processes, with and without a kept login.

    python bench/bench_cli.py [--reps 9] [--link loopback|login|both] [--markdown]

Against the test-bed sshd as the unprivileged user `e2e` (bash tests/infra/start-all.sh first;
the shaped link also REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh). In ONE run, interleaved
repetition by repetition so load on the machine hits every row alike:

  ssh host true                 OpenSSH, one login, one command
  rsync -a (unchanged)          plain rsync over ssh of the same Lab, nothing to send
  repx-tui sync (unchanged)     a fresh CLI process that logs in itself ($REPX_KEEPER=0)
  repx-tui status               the same for `status` (the Lab's jobs ran once before)
  ... (kept login)              the same two after `repx-tui login`: through the keeper

Median and best of N wall seconds per command (a whole process, Python start-up included,
bytecode cached as an installed package has it), and the median's ratio to `ssh host true`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sync import Link, links  # noqa: E402

from tests import labgen  # noqa: E402


class Bench:
    def __init__(self, link: Link, work: Path) -> None:
        self.link, self.work = link, work
        self.lab = labgen.make_lab(work / "lab", "default")
        runtime = work / "runtime"
        runtime.mkdir(mode=0o700)
        config = work / "config.toml"
        config.write_text(f'[targets.bench]\naddress = "{link.alias}"\nbase_path = "{work}/ours"\n'
                          'default_scheduler = "local"\n')  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env = {**env, "REPX_SSH_CONFIG": link.ssh_config, "REPX_CONFIG": str(config), "PYTHONPATH": str(ROOT),
                    "PYTHONPYCACHEPREFIX": str(work / "pycache"), "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
        lab = ["--lab", str(self.lab), "--target", "bench"]
        repx = [sys.executable, "-m", "repx_tui"]
        self.rows = {
            "ssh host true": ["ssh", "-F", link.ssh_config, link.alias, "true"],
            "rsync -a (unchanged)": [
                "rsync",
                "-a",
                "-e",
                f"ssh -F {link.ssh_config}",
                f"{self.lab}/",
                f"{link.alias}:{work}/plain/",
            ],  # fmt: skip
            "repx-tui sync (unchanged)": [*repx, "sync", *lab],
            "repx-tui status": [*repx, "status", *lab],
            "repx-tui sync (unchanged), kept login": [*repx, "sync", *lab],
            "repx-tui status, kept login": [*repx, "status", *lab],
        }
        self.login = [*repx, "login", "bench", "--idle", "10m"]
        self.run_all = [*repx, "run", "@all", *lab, "--headless", "--wait"]

    def call(self, argv: list[str], keeper: bool) -> float:
        env = self.env if keeper else {**self.env, "REPX_KEEPER": "0"}
        start = time.monotonic()
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return time.monotonic() - start

    def measure(self, reps: int) -> tuple[dict[str, list[float]], float]:
        for argv in (self.rows["rsync -a (unchanged)"], self.run_all):  # warm: the Lab there, its jobs done
            self.call(argv, keeper=False)
        login = self.call(self.login, keeper=True)
        samples: dict[str, list[float]] = {name: [] for name in self.rows}
        try:
            for _ in range(reps):
                for name, argv in self.rows.items():
                    samples[name].append(self.call(argv, keeper="kept login" in name))
        finally:
            self.call([sys.executable, "-m", "repx_tui", "logout"], keeper=True)
        return samples, login


def table(link: Link, samples: dict[str, list[float]], login: float, reps: int) -> str:
    base = statistics.median(samples["ssh host true"])
    lines = [f"### {link.name} ({link.description}), {reps} repetitions", "",
             "| command (a fresh process) | median s | best s | × ssh host true |", "|---|---:|---:|---:|"]  # fmt: skip
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {min(values):.3f} | {median / base:.2f} |")
    lines += ["", f"`repx-tui login` itself (starts the keeper and logs in, once): {login:.2f} s", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--link", choices=("loopback", "login", "both"), default="loopback")
    parser.add_argument("--markdown", action="store_true", help="(tables are markdown either way)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repx-bench-cli-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o777)  # the remote side is the user e2e on this machine
        for link in links(args.link):
            work = Path(tmp) / link.name.replace(" ", "-")
            work.mkdir()
            os.chmod(work, 0o777)
            samples, login = Bench(link, work).measure(args.reps)
            print(table(link, samples, login, args.reps), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
