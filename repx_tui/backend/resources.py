"""resources.toml: SLURM directives per job, resolved as upstream RepX does.

Order for one job: `[defaults]` -> the job's `resource_hints` from the Lab -> every matching
`[[rules]]` entry in file order (later wins, field by field; `sbatch_opts` replaced, never
appended, and only when non-empty). `Resources.explain` gives the same values plus, per value,
what produced it (a Provenance: the default, the Lab's hint, rule N, or nothing).
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
        return replace(self, **{attr: value for attr, (value, _key) in _changes(values).items()})

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


_KEY_ATTRS = (
    ("partition", "partition"),
    ("cpus-per-task", "cpus_per_task"),
    ("cpus", "cpus_per_task"),
    ("mem", "mem"),
    ("time", "time"),
)
DIRECTIVE_FIELDS = ("partition", "cpus_per_task", "mem", "time", "sbatch_opts")


def _changes(values: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """attr -> (new value, the key it was read from) for what `values` sets."""
    changes: dict[str, tuple[Any, str]] = {}
    for key, attr in _KEY_ATTRS:
        if values.get(key) is not None:
            changes[attr] = (values[key], key)
    opts = values.get("sbatch_opts")
    if opts:  # replaced, not appended; an empty list changes nothing
        changes["sbatch_opts"] = (tuple([opts] if isinstance(opts, str) else opts), "sbatch_opts")
    return changes


@dataclass(frozen=True)
class Provenance:
    """What produced one directive value of a job."""

    kind: str  # "default" | "hint" | "sink-hint" | "rule" | "worker" | "unset"
    rule: int | None = None  # 1-based position among the [[rules]] entries
    job_id_glob: str | None = None
    target: str | None = None
    file: str | None = None  # the resources.toml the value was read from

    def describe(self) -> str:
        where = f" in {self.file}" if self.file else ""
        if self.kind == "default":
            return f"[defaults] of resources.toml{where}"
        if self.kind in ("rule", "worker"):
            scope = [f"job_id_glob = {self.job_id_glob!r}"] if self.job_id_glob else []
            scope += [f"target = {self.target!r}"] if self.target else []
            what = "worker_resources of " if self.kind == "worker" else ""
            return f"{what}[[rules]] entry {self.rule} ({', '.join(scope) or 'every job'}) of resources.toml{where}"
        if self.kind == "hint":
            return "the Lab's resource_hints for this stage"
        if self.kind == "sink-hint":
            return "the Lab's resource_hints of the scatter-gather step"
        return "not set: the cluster's default"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "job_id_glob": self.job_id_glob,
            "target": self.target,
            "file": self.file,
            "describe": self.describe(),
        }


Explained = tuple[Directives, dict[str, Provenance]]


def _overlay_explained(explained: Explained, values: Mapping[str, Any], source: Provenance) -> Explained:
    directives, provenance = explained
    changes = _changes(values)
    if not changes:
        return explained
    provenance = {**provenance, **{attr: source for attr in changes}}
    return replace(directives, **{attr: value for attr, (value, _key) in changes.items()}), provenance


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
    # which file each value came from: "defaults.<key>" and "rules" (the array is replaced whole)
    origins: Mapping[str, Path] = field(default_factory=dict)

    def resolve(self, job_id: str, hints: Mapping[str, Any] | None, target: str) -> Directives:
        directives = Directives().overlay(self.defaults).overlay(hints or {})
        for rule in self.rules:
            if rule.matches(job_id, target):
                directives = directives.overlay(rule.values)
        return directives

    def explain(self, job_id: str, hints: Mapping[str, Any] | None, target: str) -> Explained:
        """resolve()'s directives and, per field, what produced its value."""
        explained: Explained = (Directives(), {f: Provenance("unset") for f in DIRECTIVE_FIELDS})
        for key, value in self.defaults.items():
            origin = self.origins.get(f"defaults.{key}")
            source = Provenance("default", file=str(origin) if origin else None)
            explained = _overlay_explained(explained, {key: value}, source)
        explained = _overlay_explained(explained, hints or {}, Provenance("hint"))
        rules_file = self.origins.get("rules")
        for index, rule in enumerate(self.rules, 1):
            if rule.matches(job_id, target):
                source = Provenance(
                    "rule", index, rule.job_id_glob, rule.target, str(rules_file) if rules_file else None
                )
                explained = _overlay_explained(explained, rule.values, source)
        return explained

    def explain_worker(
        self, job_id: str, hints: Mapping[str, Any] | None, sink_hints: Mapping[str, Any] | None, target: str
    ) -> Explained:
        """resolve_worker()'s directives and what produced each value."""
        explained = _overlay_explained(self.explain(job_id, hints, target), sink_hints or {}, Provenance("sink-hint"))
        matching = [(n, rule) for n, rule in enumerate(self.rules, 1) if rule.matches(job_id, target)]
        if matching and matching[-1][1].worker_resources:
            index, rule = matching[-1]
            rules_file = self.origins.get("rules")
            source = Provenance("worker", index, rule.job_id_glob, rule.target, str(rules_file) if rules_file else None)
            explained = _overlay_explained(explained, rule.worker_resources or {}, source)
        return explained

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
    return _build(merged, tuple(doc.path for doc in docs), _origins(docs))


def parse_resources(doc: TomlDoc) -> Resources:
    _validate(doc)
    return _build(doc.data, (doc.path,), _origins([doc]))


def _origins(docs: Sequence[TomlDoc]) -> dict[str, Path]:
    """The file each default and the rules array come from: the last one that sets it."""
    origins: dict[str, Path] = {}
    for doc in docs:
        for key in doc.data.get("defaults", {}):
            origins[f"defaults.{key}"] = doc.path
        if "rules" in doc.data:
            origins["rules"] = doc.path
    return origins


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


def _build(data: Mapping[str, Any], sources: tuple[Path, ...], origins: Mapping[str, Path] | None = None) -> Resources:
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
    return Resources(defaults=defaults, rules=rules, sources=sources, origins=dict(origins or {}))


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


__all__ = [
    "Directives",
    "Provenance",
    "Resources",
    "Rule",
    "load_resources",
    "parse_resources",
    "describe",
    "ConfigError",
]
