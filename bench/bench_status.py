"""Status refresh for 10,000 jobs: parse (squeue + marker script output) + merge + change
events, versus a naive full rebuild that re-emits every job each refresh.

    python bench/bench_status.py [--jobs 10000] [--repeat 20] [--markdown]

Steady state is modelled: between refreshes ~1% of the jobs move (queued -> running,
running -> finished, elapsed ticking), the rest are unchanged. Both variants parse and merge
the same inputs and build the JobsChanged event they would emit (serialising it is the
consumer's cost and is not timed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repx_tui.backend.events import JobsChanged  # noqa: E402
from repx_tui.backend.status import (  # noqa: E402
    SEP,
    LabView,
    MergeCache,
    SqueueParser,
    StatusInputs,
    diff_states,
    merge_states,
    parse_snapshot,
    parse_squeue,
    queue_by_job,
)


def make_view(n: int) -> LabView:
    jobs = tuple(f"{i:032x}-stage-{i % 7}" for i in range(n))
    # chains of 10: every job depends on the previous one in its chain
    deps = {j: ((jobs[i - 1],) if i % 10 else ()) for i, j in enumerate(jobs)}
    return LabView("bench-lab", jobs, deps, {j: f"run-{i % 4}" for i, j in enumerate(jobs)}, {})


def make_inputs(view: LabView, tick: int) -> tuple[str, str]:
    """(squeue text, marker-script text) for refresh number `tick`."""
    n = len(view.jobs)
    done = n // 2 + tick * n // 100  # the finished front advances 1% per refresh
    marker_lines = ["U" + SEP + "bench"]
    queue_lines = []
    for i, job in enumerate(view.jobs):
        if i < done:
            failed = i % 97 == 0
            marker_lines.append(SEP.join(("M", job, "FAIL" if failed else "SUCCESS", "1" if failed else "0")))
        elif i < done + 200:
            queue_lines.append(SEP.join((str(10_000 + i), job, "RUNNING", f"0:{tick:02d}", "node1", "None", "p")))
        else:
            queue_lines.append(SEP.join((str(10_000 + i), job, "PENDING", "0:00", "", "Dependency", "p")))
    return "\n".join(queue_lines) + "\n", "\n".join(marker_lines) + "\n"


class Incremental:
    """What StatusWatcher does: cached squeue lines, merge reuse, changes only."""

    def __init__(self) -> None:
        self.parser = SqueueParser()
        self.cache = MergeCache()

    def refresh(self, view: LabView, squeue_text: str, marker_text: str, previous: dict):
        snapshot = parse_snapshot(marker_text)
        queue = queue_by_job(self.parser.parse(squeue_text), view.run_of)
        inputs = StatusInputs(view.jobs, view.deps, view.run_of, snapshot, queue, {}, {})
        states = merge_states(inputs, previous, self.cache)
        changed, removed = diff_states(previous, states)
        return states, JobsChanged(changed=changed, removed=removed)


class Naive:
    """A full rebuild: parse everything, build every state, emit every job."""

    def refresh(self, view: LabView, squeue_text: str, marker_text: str, previous: dict):
        snapshot = parse_snapshot(marker_text)
        queue = queue_by_job(parse_squeue(squeue_text), view.run_of)
        states = merge_states(StatusInputs(view.jobs, view.deps, view.run_of, snapshot, queue, {}, {}))
        return states, JobsChanged(changed=tuple(states.values()))


def bench(n: int, repeat: int) -> dict:
    view = make_view(n)
    inputs = [make_inputs(view, t) for t in range(repeat + 1)]
    results = {}
    for name, variant in (("incremental", Incremental()), ("naive", Naive())):
        previous: dict = {}
        previous, _ = variant.refresh(view, *inputs[0], previous)  # first full view
        times, emitted = [], []
        for t in range(1, repeat + 1):
            start = time.perf_counter()
            previous, event = variant.refresh(view, *inputs[t], previous)
            times.append(time.perf_counter() - start)
            emitted.append(len(event.changed))
        results[name] = {
            "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000,
            "emitted": statistics.median(emitted),
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--markdown", action="store_true", help="print a docs/benchmarks.md table row")
    args = parser.parse_args()
    r = bench(args.jobs, args.repeat)
    inc, naive = r["incremental"], r["naive"]
    ratio = naive["median_ms"] / inc["median_ms"]
    if args.markdown:
        print(
            "| jobs | incremental median / min (ms) | jobs emitted | naive median / min (ms) | jobs emitted "
            "| naive / incremental (median) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {args.jobs} | {inc['median_ms']:.1f} / {inc['min_ms']:.1f} | {inc['emitted']:.0f} "
            f"| {naive['median_ms']:.1f} / {naive['min_ms']:.1f} | {naive['emitted']:.0f} | {ratio:.1f}x |"
        )
    else:
        print(f"{args.jobs} jobs, median of {args.repeat} refreshes, Python {platform.python_version()}")
        print(
            f"  incremental: median {inc['median_ms']:7.1f} ms, min {inc['min_ms']:7.1f} ms, "
            f"{inc['emitted']:.0f} jobs emitted per refresh"
        )
        print(
            f"  naive:       median {naive['median_ms']:7.1f} ms, min {naive['min_ms']:7.1f} ms, "
            f"{naive['emitted']:.0f} jobs emitted per refresh"
        )
        print(f"  naive / incremental: {ratio:.1f}x; target <= 50 ms: {'met' if inc['median_ms'] <= 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
