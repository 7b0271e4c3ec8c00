"""The Lab's model: runs, jobs, executables, input mappings, images and layers, as loaded by
lab.py (which re-exports every name here), and the topological sort both use."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from repx_tui.backend.errors import LabError

# ----------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class InputMapping:
    target_input: str
    type: str | None
    job_id: str | None
    source_output: str | None
    source_run: str | None
    source_value: str | None
    source: str | None
    source_key: str | None
    dependency_type: str | None
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Executable:
    name: str
    path: str
    inputs: tuple[InputMapping, ...]
    outputs: Mapping[str, Any]
    resource_hints: Mapping[str, Any]
    deps: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    run: str
    stage_type: str
    params: Mapping[str, Any]
    executables: Mapping[str, Executable]
    resource_hints: Mapping[str, Any]
    dependencies: tuple[str, ...]  # jobs whose outputs this job reads (inputs[*].job_id)
    source_runs: tuple[str, ...] = ()  # runs whose results this job reads (inter-run inputs)

    @property
    def is_scatter_gather(self) -> bool:
        return self.stage_type == "scatter-gather"

    @property
    def main(self) -> Executable | None:
        return self.executables.get("main")

    @property
    def scatter(self) -> Executable | None:
        return self.executables.get("scatter")

    @property
    def gather(self) -> Executable | None:
        return self.executables.get("gather")

    @property
    def steps(self) -> dict[str, Executable]:
        return {n.removeprefix("step-"): e for n, e in self.executables.items() if n.startswith("step-")}

    @property
    def step_order(self) -> list[str]:
        """Step names, each after the steps it depends on (ties by name)."""
        steps = self.steps
        return kahn(steps, lambda s: [d for d in steps[s].deps if d in steps], f"steps of job {self.id}")

    @property
    def short_id(self) -> str:
        """Upstream's short form: 12 hash chars, '-', then the rest of the id."""
        head, sep, tail = self.id.partition("-")
        return f"{head[:12]}-{tail}" if sep else self.id[:12]


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    store_path: str
    sha256: str | None


@dataclass(frozen=True)
class Image:
    path: str
    tag: str
    layers: tuple[Layer, ...]
    meta_files: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    name: str
    metadata_path: str
    image: str | None
    jobs: tuple[str, ...]
    dependencies: Mapping[str, str]


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str


# ---------------------------------------------------------------------------- graph helpers


def kahn(nodes: Iterable[str], deps_of: Callable[[str], Iterable[str]], what: str) -> list[str]:
    """Topological sort with a heap so ties come out in name order; LabError on a cycle."""
    nodes = set(nodes)
    waiting = {n: set(deps_of(n)) for n in nodes}
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for node, deps in waiting.items():
        for dep in deps:
            users[dep].append(node)
    ready = [n for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for user in users[node]:
            waiting[user].discard(node)
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = sorted(n for n, deps in waiting.items() if deps)
        raise LabError(f"dependency cycle among {what}: {', '.join(stuck[:6])}")
    return order
