"""Benchmark (not a test): submitting a 1,000-job DAG to SLURM beside a bare `sbatch` loop, in ONE run.

Against the test-bed sshd and its single-node SLURM (bash tests/infra/start-all.sh first), as
root (the user the SLURM tests submit as):

    python bench/bench_submit.py [--scale 1000] [--reps 3] [--before DIR] [--markdown]

The Lab is the demo's with a binary tree of `--scale` extra jobs (labgen `big_dag`: 1,008 jobs
for 1000), synced once. Every job is submitted held (`--hold`, a resources.toml rule), so nothing
runs, and cancelled after each repetition. Interleaved per repetition:

* repx-tui submit (in-process): `TargetSession.submit` of every job (deploying the helpers,
  building the scripts, one round trip to submit.sh) in a Python that has imported everything.
* repx-tui before (in-process): the same with the code in `--before DIR` (an older checkout).
* bare sbatch loop: ONE ssh command running a bash loop that does, per job in the same order,
  `sbatch --parsable --hold --dependency=afterok:<ids>` of a two-line script: the floor, what
  SLURM itself costs, timed by the loop's own clock (the ssh login is not counted; for
  repx-tui neither, its session is connected before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repx_tui.backend.lab import Lab  # noqa: E402
from tests import labgen  # noqa: E402
from tests.infra.fixtures import e2e_dir, read_env_file  # noqa: E402

SUBMIT = r"""
import asyncio, json, sys, time
from repx_tui.backend.config import load_config
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import load_resources
from repx_tui.backend.session import TargetSession
import repx_tui.backend.transport.ssh
target = load_config().targets["bench"]
lab = Lab.load(sys.argv[1])
resources = load_resources(sys.argv[2])
async def main():
    async with TargetSession(target, lab=lab, scheduler="slurm") as session:
        if sys.argv[3] == "sync":
            await session.sync(lab)
            return 0.0, []
        t0 = time.monotonic()
        result = await session.submit(lab.topological_order(list(lab.jobs)), resources=resources)
        return time.monotonic() - t0, [sid for _, sid in result.submitted if sid]
seconds, ids = asyncio.run(main())
print(json.dumps({"seconds": seconds, "ids": ids}))
"""

BARE_LOOP = r"""
set -eu
started=$EPOCHREALTIME
declare -A ID=()
while IFS=$'\t' read -r job deps; do
    args=(--parsable --hold -p "$1" --time=5 --mem=64M -o /dev/null -J "$job")
    if [ "$deps" != - ]; then
        IFS=, read -r -a names <<<"$deps"
        ids=()
        for name in "${names[@]}"; do ids+=("${ID[$name]}"); done
        IFS=: eval 'joined="${ids[*]}"'
        args+=("--dependency=afterok:$joined")
    fi
    ID[$job]=$(sbatch "${args[@]}" "$2")
    echo "${ID[$job]}"
done
echo "seconds $started $EPOCHREALTIME"
"""


def partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout
    return out.split()[0].rstrip("*")


class Bench:
    def __init__(self, work: Path, lab: Path, before: Path | None) -> None:
        env_file = e2e_dir() / "env"
        if not env_file.is_file():
            raise SystemExit(f"{env_file} missing: run `bash tests/infra/start-all.sh` first")
        self.ssh_config = read_env_file(env_file)["REPX_E2E_SSH_CONFIG"]
        self.work, self.lab, self.part = work, lab, partition()
        self.code = {"ours": ROOT, "before": before}
        self.resources = work / "resources.toml"  # a rule: rules come after the Lab's own hints
        self.resources.write_text(f'[defaults]\npartition = "{self.part}"\ntime = "00:05:00"\nmem = "64M"\n'
                                  '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--hold"]\n')  # fmt: skip
        self.script = work / "bare.sbatch"
        self.script.write_text("#!/bin/sh\ntrue\n")
        loaded = Lab.load(lab)
        order = loaded.topological_order(list(loaded.jobs))
        self.tsv = "".join(f"{j}\t{','.join(loaded.job(j).dependencies) or '-'}\n" for j in order)
        self.jobs = len(order)

    def in_process(self, which: str, action: str) -> tuple[float, list[str]]:
        config = self.work / f"{which}.toml"
        config.write_text(f'[targets.bench]\naddress = "e2e-cluster"\nbase_path = "{self.work}/{which}"\n'
                          'default_scheduler = "slurm"\n[targets.bench.slurm]\nexecution_types = ["native"]\n')  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(self.code[which]), "REPX_CONFIG": str(config),
               "REPX_SSH_CONFIG": self.ssh_config}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", SUBMIT, str(self.lab), str(self.resources), action],
                              env=env, capture_output=True, text=True, check=True, cwd=self.work)  # fmt: skip
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return answer["seconds"], answer["ids"]

    def bare(self) -> tuple[float, list[str]]:
        """The loop's own clock: the ssh login before it is not SLURM's cost."""
        command = "bash -c " + shlex.join([BARE_LOOP, "bare", self.part, str(self.script)])
        done = subprocess.run(["ssh", "-F", self.ssh_config, "e2e-cluster", command], input=self.tsv,
                              capture_output=True, text=True, check=True)  # fmt: skip
        *ids, _, started, ended = done.stdout.split()
        return float(ended) - float(started), ids


def cancel(ids: list[str]) -> None:
    for start in range(0, len(ids), 500):
        subprocess.run(["scancel", *ids[start : start + 500]], capture_output=True)


def room_for(jobs: int) -> None:
    """Stop with a clear line when slurmctld cannot take `jobs` more: it keeps ended (even cancelled)
    jobs for MinJobAge seconds, and refuses new ones past MaxJobCount."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    values = {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in config.splitlines())}
    limit = int(values.get("MaxJobCount", "10000").split()[0])
    age = values.get("MinJobAge", "300").split()[0]
    held = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, check=True)
    known = len(held.stdout.split())
    if known + jobs > limit:
        raise SystemExit(
            f"slurmctld knows {known} jobs and takes at most {limit} (MaxJobCount): this run needs {jobs} more. "
            f"Ended jobs are forgotten after MinJobAge ({age} s): wait, or pass fewer --reps"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an older copy of the code, timed in-process too")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    started, load = time.monotonic(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="repx-bench-submit-") as tmp_name:
        work = Path(tmp_name)
        lab = labgen.make_lab(work / "lab", "big_dag", scale=args.scale)
        bench = Bench(work, lab, args.before)
        room_for(bench.jobs * args.reps * (3 if args.before else 2))
        rows = {"repx-tui submit (in-process)": lambda: bench.in_process("ours", "submit")}
        if args.before:
            rows["repx-tui before (in-process)"] = lambda: bench.in_process("before", "submit")
        rows["bare sbatch loop (one ssh)"] = bench.bare
        for which in ("ours", "before") if args.before else ("ours",):
            bench.in_process(which, "sync")  # the Lab is on the target before the clock starts
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.reps):
            for name, run in rows.items():
                seconds, ids = run()
                cancel(ids)
                if len(ids) != bench.jobs:
                    raise SystemExit(f"{name}: {len(ids)} SLURM ids for {bench.jobs} jobs")
                times[name].append(seconds)
        floor = min(times["bare sbatch loop (one ssh)"])
        print(f"{bench.jobs} jobs (binary tree, afterok), held, best of {args.reps}:\n")
        if args.markdown:
            print("| what | best s | median s | × bare sbatch loop |\n|---|---:|---:|---:|")
        for name, values in times.items():
            best, median = min(values), sorted(values)[len(values) // 2]
            cells = [name, f"{best:.2f}", f"{median:.2f}", f"{best / floor:.2f}"]
            print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(f"{c:>28}" for c in cells))
    print(
        f"\n(took {time.monotonic() - started:.0f} s; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} "
        f"after; {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
