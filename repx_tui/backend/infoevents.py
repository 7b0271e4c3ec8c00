"""The events of the commands that describe rather than act: `targets`, `lab`, `login`, `logout`
(re-exported by events.py). Each is the whole answer of its command, rendered once by the
front end's renderer; the JSON of `TargetsReport` and `LabReport` is the documented document of
`targets --json` and `lab --json` (no "event" key, keys only ever added)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repx_tui.backend.config import Target
from repx_tui.backend.events import Event, TargetHealth


def health_json(health: TargetHealth) -> dict[str, Any]:
    return {
        "ok": health.ok,
        "seconds": round(health.seconds, 3),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "hint": c.hint} for c in health.checks],
    }


@dataclass(frozen=True)
class TargetsReport(Event):
    """The configured targets and, when they were checked, their health."""

    config: str  # where the targets come from (a file, or the embedded default)
    targets: tuple[Target, ...]
    health: tuple[TargetHealth, ...] = ()  # empty: not checked

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.health)

    def health_of(self, name: str) -> TargetHealth | None:
        return next((h for h in self.health if h.target == name), None)

    def to_json(self) -> dict[str, Any]:
        entries = []
        for target in self.targets:
            entry = target.to_json()
            if (health := self.health_of(target.name)) is not None:
                entry["health"] = health_json(health)
            entries.append(entry)
        return {"config": self.config, "targets": entries}


@dataclass(frozen=True)
class LabReport(Event):
    """What a Lab holds (Lab.to_summary()), and whether every file was verified."""

    root: str
    summary: Mapping[str, Any]
    verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.summary, "verified": True} if self.verified else dict(self.summary)


@dataclass(frozen=True)
class LoginKept(Event):
    """`login`: a keeper holds the target's login (started now, or already running)."""

    target: str
    address: str
    pid: int
    idle_seconds: float  # the keeper ends after this long unused
    already: bool = False  # it was running before this login


@dataclass(frozen=True)
class KeeperEnded:
    target: str
    address: str
    pid: int


@dataclass(frozen=True)
class LoggedOut(Event):
    """`logout`: the keepers ended (none: there was no kept login for `target`, or at all)."""

    ended: tuple[KeeperEnded, ...] = ()
    target: str | None = None  # the target asked for; None: every target
