"""Keypress-to-paint latency of the Jobs screen with 10,000 jobs while status refreshes arrive.

    python bench/bench_tui.py [--jobs 10000] [--runs 20] [--changed 300] [--interval 1.0]
                              [--rounds 3] [--variant repx|naive|both] [--no-efficiency] [--markdown]

The real RepxApp runs headless under Pilot (autostart off: no backend tasks; everything else is
the real app). A feeder task posts a `JobsChanged` with `--changed` moved jobs every
`--interval` seconds through `Controller.feed`, the path real status events take. Meanwhile a
fixed script of keys is pressed: cursor moves, marks, state filters (l/h), sort, tree/flat,
fold, and a typed filter.

How a keypress-to-paint is timed: the key is sent the way a terminal driver sends it
(`driver.send_message(Key)`, not `pilot.press`, whose idle-waits add 40+ ms of sleeping). `t0` =
just before sending. A message hook notes every dispatch of that Key object (app -> screen ->
focused widget); once every queue has drained (`Pilot._wait_for_screen`, a call_later
round-trip, no sleeping) the paint is the first frame rendered after the key's *last* dispatch.
A frame is one `App.post_display_hook`, which runs right after `Screen._compositor_refresh` has
rendered the compositor update (headless, Textual renders the update but writes it nowhere).
latency = frame time - t0, so it includes waiting behind a status event that was already queued,
the handler, layout, and rendering the changed lines. The 60 fps update timer runs as in a real
terminal (up to ~16 ms of it is in every number). A debounced filter echoes the typed character
at once and relays the table out a moment later; that is timed separately ("filter applied": the
last key of the filter text to the first frame showing the filtered table).

Variants, each in its own process (so RSS is its own), same script, same events:
* repx: the Jobs screen as shipped.
* naive: the same screen but every status event clears and rebuilds the whole table.
RSS is VmHWM (peak resident set) of that process at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from repx_tui.backend.config import embedded_default  # noqa: E402
from repx_tui.backend.events import Efficiency, JobsChanged, JobState, JobStateKind  # noqa: E402
from repx_tui.ui.app import RepxApp  # noqa: E402
from repx_tui.ui.screens.jobs import JobsScreen  # noqa: E402

# (label, keys pressed one after another, each timed)
SCRIPT: list[tuple[str, list[str]]] = [
    ("cursor j/k", ["j"] * 15 + ["k"] * 5),
    ("page down/up", ["pagedown", "pagedown", "pageup"]),
    ("mark x", ["x", "x", "x"]),
    ("state filter l/h", ["l", "l", "h", "h"]),
    ("sort s", ["s", "s", "s", "s", "s"]),
    ("tree/flat t", ["t", "t"]),
    ("fold .", ["period", "period"]),
    ("filter typing", ["slash", *"stage-1"]),
    ("filter enter", ["enter"]),
    # `/` selects the filter text (Input select_on_focus), so one backspace clears it; more
    # backspaces on an empty box paint nothing and would only time the wait for the next refresh.
    ("clear filter", ["slash", "backspace", "enter"]),
    ("end/top", ["G", "g", "g"]),
]
KEY_TIMEOUT = 10.0  # seconds; a key with no frame by then counts as this much
STEADY = [JobStateKind.QUEUED, JobStateKind.RUNNING, JobStateKind.SUCCEEDED]


class RebuiltDataTable(DataTable):
    """Textual's DataTable behind the JobTable methods the Jobs screen calls: every set_rows
    clears the table and adds every row again (columns auto-sized, as DataTable does)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def set_columns(self, columns) -> None:
        if not self.columns:
            for column in columns:
                self.add_column(column.label, key=column.key)

    def set_rows(self, keys, row_of, groups=()) -> None:
        current = self.cursor_key
        self.clear()
        columns = [c.value for c in self.columns]
        for key in keys:
            row = row_of(key)
            self.add_row(*(row.get(c, "") for c in columns), key=key)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)
        self._row_of = row_of

    def refresh_row(self, key) -> None:
        if key in self.rows:
            row = self._row_of(key)
            for column in self.columns:
                self.update_cell(key, column, row.get(column.value, ""))

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class NaiveJobsScreen(JobsScreen):
    """The baseline: a DataTable, cleared and rebuilt on every status event."""

    TABLE = RebuiltDataTable

    def apply_changes(self, job_ids: set[str], runs: set[str]) -> None:
        if self.is_mounted:
            for job_id in job_ids:
                self._cells.pop(job_id, None)
            self.relayout()

    def on_data_table_row_selected(self, event) -> None:
        event.stop()


class NaiveApp(RepxApp):
    CSS_PATH = str(ROOT / "repx_tui" / "ui" / "app.tcss")  # relative paths resolve next to this file
    MODES = {**RepxApp.MODES, "jobs": NaiveJobsScreen}


def job_id(n: int) -> str:
    return f"{n:032x}-stage-{n % 9}-work"


def build_app(variant: str, jobs: int, runs: int) -> RepxApp:
    cls = NaiveApp if variant == "naive" else RepxApp
    app = cls(embedded_default(), target="local", lab_path="/lab", autostart=False, clock=lambda: 0.0)
    for n in range(jobs):
        app.jobs_model.add_job(job_id(n), f"stage-{n % 9}-work", f"run-{n % runs:02d}", "simple")
    return app


def state_of(n: int, kind: JobStateKind, tick: int) -> JobState:
    # finished jobs carry sacct's usage, as on SLURM: the efficiency columns have cells to draw
    usage = Efficiency(60 + n % 50, 30 + n % 40, 1 + n % 4, (n % 900) << 20, 1 << 30, 3600) if kind.finished else None
    return JobState(
        job=job_id(n), run="", state=kind, slurm_id=str(100000 + n),
        elapsed=f"00:{tick // 60 % 60:02d}:{tick % 60:02d}" if kind != JobStateKind.QUEUED else None,
        node=f"node{n % 16:02d}" if kind != JobStateKind.QUEUED else None,
        reason="Priority" if kind == JobStateKind.QUEUED else None, efficiency=usage,
    )  # fmt: skip


class Feeder:
    """Posts a JobsChanged with `changed` moved jobs every `interval` seconds."""

    def __init__(self, app: RepxApp, jobs: int, changed: int, interval: float) -> None:
        self.app, self.jobs, self.changed, self.interval = app, jobs, changed, interval
        self.rng = random.Random(7)
        self.kinds = [JobStateKind.QUEUED] * jobs
        self.sent = 0

    def initial(self) -> JobsChanged:
        return JobsChanged(changed=tuple(state_of(n, JobStateKind.QUEUED, 0) for n in range(self.jobs)))

    def next_event(self) -> JobsChanged:
        states = []
        for n in self.rng.sample(range(self.jobs), self.changed):
            self.kinds[n] = STEADY[(STEADY.index(self.kinds[n]) + 1) % len(STEADY)]
            states.append(state_of(n, self.kinds[n], self.sent))
        self.sent += 1
        return JobsChanged(changed=tuple(states))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the refresh cadence being simulated
            self.app.controller.feed(self.next_event())


class FrameClock:
    """Timestamps of rendered frames, via App.post_display_hook."""

    def __init__(self, app: RepxApp) -> None:
        self.frames: list[float] = []
        self.new_frame = asyncio.Event()
        original = app.post_display_hook

        def hook() -> None:
            original()
            self.frames.append(time.perf_counter())
            self.new_frame.set()

        app.post_display_hook = hook  # type: ignore[method-assign]

    async def frame_after(self, moment: float, timeout: float = 5.0) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            self.new_frame.clear()
            if self.frames and self.frames[-1] >= moment:
                return next(f for f in self.frames if f >= moment)
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return float("nan")  # nothing to paint (the key changed nothing on screen)
            try:
                await asyncio.wait_for(self.new_frame.wait(), remaining)
            except TimeoutError:
                return float("nan")


def table_rows(app: RepxApp) -> int:
    return app.screen.query_one("#jobs").row_count


def key_event(key: str) -> events.Key:
    """The Key event a terminal driver would deliver for a Pilot-style key name."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


class KeySender:
    """Sends keys through the driver and times each one to its first frame."""

    def __init__(self, pilot, clock: FrameClock) -> None:
        self.pilot, self.clock = pilot, clock
        self.dispatched: dict[int, float] = {}  # id(Key) -> time of its latest dispatch

    def hook(self, message) -> None:
        if isinstance(message, events.Key):
            self.dispatched[id(message)] = time.perf_counter()

    async def press(self, key: str) -> float:
        event = key_event(key)
        event.set_sender(self.pilot.app)
        t0 = time.perf_counter()
        self.pilot.app._driver.send_message(event)
        while id(event) not in self.dispatched:
            await asyncio.sleep(0)
        await self.pilot._wait_for_screen()
        t1 = await self.clock.frame_after(self.dispatched.pop(id(event)), timeout=KEY_TIMEOUT)
        return (t1 - t0) * 1000 if t1 == t1 else KEY_TIMEOUT * 1000  # no frame in time: count the cap


async def measure(variant: str, args: argparse.Namespace) -> dict:
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="bench-tui-")  # no saved view of the user's
    app = build_app(variant, args.jobs, args.runs)
    feeder = Feeder(app, args.jobs, args.changed, args.interval)
    results: dict[str, list[float]] = {label: [] for label, _ in SCRIPT}
    filter_applied: list[float] = []
    sender: KeySender | None = None
    async with app.run_test(size=(120, 40), message_hook=lambda m: sender and sender.hook(m)) as pilot:
        clock = FrameClock(app)
        sender = KeySender(pilot, clock)
        t = time.perf_counter()
        app.controller.feed(feeder.initial())
        while table_rows(app) < args.jobs or not app.jobs_model.jobs[job_id(0)].state.slurm_id:
            await asyncio.sleep(0.01)
        first_fill = time.perf_counter() - t
        if args.efficiency:  # the cpu% / mem% / time% columns on, as `e` turns them on
            app.screen.action_toggle_efficiency()
        relayouts = _record_relayouts(app.screen)
        feed_task = asyncio.create_task(feeder.run())
        try:
            for _ in range(args.rounds):
                for label, keys in SCRIPT:
                    for key in keys:
                        t_last = time.perf_counter()
                        results[label].append(await sender.press(key))
                        await asyncio.sleep(args.gap)  # a fast typist's pause between keys
                    if label == "filter typing":
                        filter_applied.append(await _filter_applied_ms(relayouts, clock, t_last))
        finally:
            feed_task.cancel()
        events_sent = feeder.sent
    return {
        "variant": variant,
        "first_fill_ms": first_fill * 1000,
        "keys": results,
        "filter_applied_ms": filter_applied,
        "events": events_sent,
        "rss_mib": _peak_rss_mib(),
    }


async def _filter_applied_ms(relayouts: list[float], clock: FrameClock, t_last_key: float) -> float:
    """From the last filter key to the first frame after the table was laid out for it."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        done = [t for t in relayouts if t >= t_last_key]
        if done:
            return (await clock.frame_after(done[0]) - t_last_key) * 1000
        await asyncio.sleep(0.005)
    return float("nan")


def _record_relayouts(screen: JobsScreen) -> list[float]:
    times: list[float] = []
    original = screen.relayout

    def relayout() -> None:
        original()
        times.append(time.perf_counter())

    screen.relayout = relayout  # type: ignore[method-assign]
    return times


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(v for v in values if v == v)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summarise(result: dict) -> dict:
    every = [v for vs in result["keys"].values() for v in vs]
    per_key = {k: (pct(v, 50), pct(v, 95), max(v)) for k, v in result["keys"].items()}
    return {
        "p50": pct(every, 50), "p95": pct(every, 95), "max": max(every), "n": len(every),
        "per_key": per_key, "rss": result["rss_mib"], "fill": result["first_fill_ms"],
        "filter": statistics.median(result["filter_applied_ms"]) if result["filter_applied_ms"] else float("nan"),
        "events": result["events"],
    }  # fmt: skip


def run_variant_subprocess(variant: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--variant", variant, "--json-out", "-",
            "--jobs", str(args.jobs), "--runs", str(args.runs), "--changed", str(args.changed),
            "--interval", str(args.interval), "--rounds", str(args.rounds), "--gap", str(args.gap),
            *([] if args.efficiency else ["--no-efficiency"])]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: list[dict], args: argparse.Namespace, markdown: bool) -> None:
    sums = {r["variant"]: summarise(r) for r in results}
    print(f"# {args.jobs} jobs in {args.runs} runs, {args.changed} changed every {args.interval}s, "
          f"{args.rounds} rounds; Python {platform.python_version()}, load {_load()}")  # fmt: skip
    if markdown:
        print(
            "\n| variant | keys | p50 ms | p95 ms | max ms | filter applied ms | first fill ms | events | peak RSS MiB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in sums.items():
        if markdown:
            print(f"| {name} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['max']:.1f} | {s['filter']:.0f} "
                  f"| {s['fill']:.0f} | {s['events']} | {s['rss']:.0f} |")  # fmt: skip
        else:
            print(f"{name:6} p50 {s['p50']:7.1f} ms  p95 {s['p95']:7.1f} ms  max {s['max']:7.1f} ms  "
                  f"filter applied {s['filter']:6.0f} ms  fill {s['fill']:6.0f} ms  events {s['events']}  RSS {s['rss']:.0f} MiB")  # fmt: skip
    if markdown:
        print("\n| key group | " + " | ".join(f"{n} p50 / p95 ms" for n in sums) + " |")
        print("|---|" + "---:|" * len(sums))
    for label, _ in SCRIPT:
        cells = [f"{s['per_key'][label][0]:.1f} / {s['per_key'][label][1]:.1f}" for s in sums.values()]
        print(f"| {label} | " + " | ".join(cells) + " |" if markdown else f"  {label:18} " + "   ".join(cells))
    if "repx" in sums and "naive" in sums:
        r, n = sums["repx"], sums["naive"]
        print(
            f"\nnaive / repx: p50 {n['p50'] / r['p50']:.1f}x, p95 {n['p95'] / r['p95']:.1f}x, RSS {n['rss'] / r['rss']:.2f}x"
        )


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--changed", type=int, default=300)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap", type=float, default=0.08, help="seconds between two keys")
    parser.add_argument("--variant", choices=("repx", "naive", "both"), default="both")
    parser.add_argument(
        "--no-efficiency",
        dest="efficiency",
        action="store_false",
        help="without the efficiency columns (they are on by default)",
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json_out:
        print(json.dumps(asyncio.run(measure(args.variant, args))))
        return 0
    variants = ["repx", "naive"] if args.variant == "both" else [args.variant]
    report([run_variant_subprocess(v, args) for v in variants], args, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
