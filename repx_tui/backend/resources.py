"""resources.toml: SLURM directives per job, resolved as upstream RepX does.

Order for one job: `[defaults]` -> the job's `resource_hints` from the Lab -> every matching
`[[rules]]` entry in file order (later wins, field by field; `sbatch_opts` replaced, never
appended, and only when non-empty).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from repx_tui.backend.config import xdg_dir
from repx_tui.backend.errors import ConfigError
from repx_tui.backend.slurmvalues import (
    control_chars,
    cpus_error,
    mem_error,
    partition_error,
    sbatch_opt_directive,
    sbatch_opts_error,
    time_error,
)
from repx_tui.backend.tomlfile import Check, TomlDoc, check_keys, short_repr


def _name(v: Any) -> bool | str:
    """A job_id_glob or target name: one printable line."""
    if not isinstance(v, str):
        return False
    if not v.strip():
        return "is empty"
    if control_chars(v) or len(v) > 256:
        return f"{short_repr(v)} must be one printable line of at most 256 characters"
    return True


# Every value is checked here, at load, with the rules sbatch applies: a typo fails before
# anything is contacted, and nothing with a space or a newline reaches an #SBATCH line.
_FIELD_KEYS: dict[str, Check] = {
    "partition": partition_error,
    "cpus-per-task": cpus_error,
    "mem": mem_error,
    "time": time_error,
    "sbatch_opts": sbatch_opts_error,
}
_RULE_KEYS: dict[str, Check] = {**_FIELD_KEYS, "job_id_glob": _name, "target": _name, "worker_resources": dict}


@dataclass(frozen=True)
class Directives:
    """What one job asks SLURM for. None means: leave it to the cluster's default."""

    partition: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None
    sbatch_opts: tuple[str, ...] = ()

    def overlay(self, values: Mapping[str, Any]) -> Directives:
        changes: dict[str, Any] = {}
        for key, attr in (
            ("partition", "partition"),
            ("cpus-per-task", "cpus_per_task"),
            ("cpus", "cpus_per_task"),
            ("mem", "mem"),
            ("time", "time"),
        ):
            if values.get(key) is not None:
                changes[attr] = values[key]
        opts = values.get("sbatch_opts")
        if opts:  # replaced, not appended; an empty list changes nothing
            changes["sbatch_opts"] = tuple([opts] if isinstance(opts, str) else opts)
        return replace(self, **changes)

    def sbatch_lines(self) -> list[str]:
        lines = []
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.cpus_per_task:
            lines.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.mem:
            lines.append(f"--mem={self.mem}")
        if self.time:
            lines.append(f"--time={self.time}")
        lines.extend(sbatch_opt_directive(opt) if isinstance(opt, str) else opt for opt in self.sbatch_opts)
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "time": self.time,
            "sbatch_opts": list(self.sbatch_opts),
        }


@dataclass(frozen=True)
class Rule:
    values: Mapping[str, Any]  # the directive fields this rule sets
    job_id_glob: str | None = None
    target: str | None = None
    worker_resources: Mapping[str, Any] | None = None

    def matches(self, job_id: str, target: str) -> bool:
        if self.target is not None and self.target != target:
            return False
        return self.job_id_glob is None or fnmatch.fnmatchcase(job_id, self.job_id_glob)


@dataclass(frozen=True)
class Resources:
    defaults: Mapping[str, Any] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    sources: tuple[Path, ...] = ()

    def resolve(self, job_id: str, hints: Mapping[str, Any] | None, target: str) -> Directives:
        directives = Directives().overlay(self.defaults).overlay(hints or {})
        for rule in self.rules:
            if rule.matches(job_id, target):
                directives = directives.overlay(rule.values)
        return directives

    def resolve_worker(
        self, job_id: str, hints: Mapping[str, Any] | None, sink_hints: Mapping[str, Any] | None, target: str
    ) -> Directives:
        """Scatter-gather steps: the job's resolution, the sink step's hints, then the last
        matching rule's worker_resources (only that rule's, and only if it has one)."""
        directives = self.resolve(job_id, hints, target).overlay(sink_hints or {})
        matching = [rule for rule in self.rules if rule.matches(job_id, target)]
        if matching and matching[-1].worker_resources:
            directives = directives.overlay(matching[-1].worker_resources)
        return directives


def load_resources(
    explicit: str | Path | None = None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Resources:
    """Deep-merge the XDG file, ./resources.toml and --resources, in that order."""
    env = os.environ if env is None else env
    candidates = [xdg_dir("config", env) / "repx" / "resources.toml", (cwd or Path.cwd()) / "resources.toml"]
    # present but not a regular file (a directory, a FIFO) is an error, not "no file"
    docs = [TomlDoc.load(p) for p in candidates if p.exists() or p.is_symlink()]
    if explicit is not None:
        docs.append(TomlDoc.load(Path(explicit).expanduser()))  # a missing named file is an error
    merged: dict[str, Any] = {}
    for doc in docs:
        _validate(doc)
        merged = _deep_merge(merged, doc.data)
    return _build(merged, tuple(doc.path for doc in docs))


def parse_resources(doc: TomlDoc) -> Resources:
    _validate(doc)
    return _build(doc.data, (doc.path,))


def _validate(doc: TomlDoc) -> None:
    check_keys(doc, (), doc.data, {"defaults": dict, "rules": list})
    check_keys(doc, ("defaults",), doc.data.get("defaults", {}), _RULE_KEYS)
    defaults_workers = doc.data.get("defaults", {}).get("worker_resources")
    if defaults_workers is not None:
        check_keys(doc, ("defaults", "worker_resources"), defaults_workers, _FIELD_KEYS)
    for index, rule in enumerate(doc.data.get("rules", [])):
        if not isinstance(rule, dict):
            raise doc.error((), "rules", f"entry {index + 1} must be a table ([[rules]])")
        check_keys(doc, ("rules",), rule, _RULE_KEYS, index)
        if "worker_resources" in rule:
            check_keys(doc, ("rules", "worker_resources"), rule["worker_resources"], _FIELD_KEYS, index)


def _build(data: Mapping[str, Any], sources: tuple[Path, ...]) -> Resources:
    defaults = {k: v for k, v in data.get("defaults", {}).items() if k in _FIELD_KEYS}
    rules = tuple(
        Rule(
            values={k: v for k, v in raw.items() if k in _FIELD_KEYS},
            job_id_glob=raw.get("job_id_glob"),
            target=raw.get("target"),
            worker_resources=raw.get("worker_resources"),
        )
        for raw in data.get("rules", [])
    )
    return Resources(defaults=defaults, rules=rules, sources=sources)


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value  # arrays (rules) are replaced whole
    return merged


def describe(directives: Directives) -> str:
    parts = directives.sbatch_lines()
    return " ".join(parts) if parts else "(cluster defaults)"


def ensure_known_target(resources: Resources, targets: Sequence[str]) -> list[str]:
    """Names of rule targets that match no configured target (a likely typo)."""
    return sorted({r.target for r in resources.rules if r.target and r.target not in targets})


__all__ = ["Directives", "Resources", "Rule", "load_resources", "parse_resources", "describe", "ConfigError"]
