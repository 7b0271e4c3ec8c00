"""Small formatting helpers shared by the screens: sizes, rates, states, short ids."""

from __future__ import annotations

import re

import humanize
from rich.text import Text

from repx_tui.backend.events import JobStateKind, LayerAction

STATE_STYLE: dict[JobStateKind, str] = {
    JobStateKind.SUCCEEDED: "bold green",
    JobStateKind.FAILED: "bold red",
    JobStateKind.TIMEOUT: "bold red",
    JobStateKind.OUT_OF_MEMORY: "bold red",
    JobStateKind.CANCELLED: "magenta",
    JobStateKind.RUNNING: "bold cyan",
    JobStateKind.QUEUED: "blue",
    JobStateKind.PENDING: "yellow",
    JobStateKind.BLOCKED: "dark_orange",
    JobStateKind.UNKNOWN: "grey50",
}

# A glyph per state so the state reads without colour too.
STATE_GLYPH: dict[JobStateKind, str] = {
    JobStateKind.SUCCEEDED: "✓",
    JobStateKind.FAILED: "✗",
    JobStateKind.TIMEOUT: "⏱",
    JobStateKind.OUT_OF_MEMORY: "✗",
    JobStateKind.CANCELLED: "⊘",
    JobStateKind.RUNNING: "▶",
    JobStateKind.QUEUED: "…",
    JobStateKind.PENDING: "○",
    JobStateKind.BLOCKED: "◌",
    JobStateKind.UNKNOWN: "?",
}

LAYER_MARK: dict[LayerAction, tuple[str, str]] = {
    LayerAction.PENDING: ("· waiting", "grey50"),
    LayerAction.REUSED: ("= REUSED", "bold green"),
    LayerAction.NODE_LOCAL: ("⌂ NODE-LOCAL", "bold blue"),
    LayerAction.TRANSFERRED: ("↑ SENT", "bold yellow"),
}

_HASHED_ID = re.compile(r"^([0-9a-z]{12,})-(.+)$")


def short_id(job_id: str) -> str:
    """`<long hash>-name` shown as `<8 chars>-name`, like upstream RepX."""
    match = _HASHED_ID.match(job_id)
    return f"{match.group(1)[:8]}-{match.group(2)}" if match else job_id


def state_text(state: JobStateKind, stale: bool = False) -> Text:
    label = f"{STATE_GLYPH[state]} {state.value}"
    text = Text(label, style=STATE_STYLE[state])
    if stale:  # the status line says what "*" means; a long suffix would be cut in the column
        text.append("*", style="bold yellow")
    return text


def size(n: int | float | None) -> str:
    return "–" if n is None else humanize.naturalsize(n, binary=True)


def rate(bytes_per_second: float | None) -> str:
    if not bytes_per_second:
        return ""
    return f"{humanize.naturalsize(bytes_per_second, binary=True)}/s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return humanize.precisedelta(seconds, minimum_unit="seconds", format="%0.0f")


def eta(remaining_bytes: int, bytes_per_second: float | None) -> str:
    if not bytes_per_second or remaining_bytes <= 0:
        return ""
    return "ETA " + humanize.naturaldelta(remaining_bytes / bytes_per_second)


def bar(done: int, total: int, width: int = 20, style: str = "green") -> Text:
    """A text progress bar (works inside DataTable cells, unlike the ProgressBar widget)."""
    fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
    filled = round(fraction * width)
    text = Text("━" * filled, style=style)
    text.append("━" * (width - filled), style="grey23")
    text.append(f" {fraction * 100:3.0f}%")
    return text
