"""config.toml: targets and defaults, in upstream RepX's schema, validated with clear errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repx_tui.backend.errors import ConfigError
from repx_tui.backend.slurmvalues import control_chars
from repx_tui.backend.tomlfile import TomlDoc, check_keys, short_repr, shown_path

SCHEDULERS = ("local", "slurm")
EXECUTION_TYPES = ("native", "bwrap", "podman", "docker")
ARTIFACT_STORES = ("shared", "node-local")


def _str(v: Any) -> bool | str:
    if not isinstance(v, str):
        return False
    return f"contains a control character: {short_repr(v)}" if control_chars(v) else True


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


# user@host, host, host:port-less ssh_config aliases, [v6]; never an ssh option or shell syntax
_ADDRESS = re.compile(r"(?:[A-Za-z0-9_.][A-Za-z0-9_.+-]*@)?[A-Za-z0-9_\[][A-Za-z0-9_.:%\[\]-]*", re.ASCII)


def _address(v: Any) -> bool | str:
    if not isinstance(v, str):
        return False
    if not v.strip():
        return "is empty"
    if len(v) > 255 or not _ADDRESS.fullmatch(v):
        return (
            f"{short_repr(v)} is not an SSH address: use user@host, host or an ssh_config alias "
            "(letters, digits, . _ - : [ ]; no spaces, no leading -)"
        )
    return True


def _mount_paths(v: Any) -> bool | str:
    if not _str_list(v):
        return False
    for path in v:
        if not path.startswith("/") or _UNSAFE_PATH_CHARS & set(path) or control_chars(path):
            return f"{short_repr(path)} must be an absolute path without quotes, shell characters or control characters"
    return True


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1_000_000


def _one_of(*choices: str):
    def check(v: Any) -> bool:
        return v in choices

    return check


_TOP_KEYS = {
    "theme": _str,
    "submission_target": _str,
    "default_scheduler": _one_of(*SCHEDULERS),
    "logging": dict,
    "targets": dict,
}
_LOGGING_KEYS = {"max_files": _pos_int, "max_age_days": _pos_int}
_TARGET_KEYS = {
    "address": _address,
    "base_path": _str,
    "node_local_path": _str,
    "default_scheduler": _one_of(*SCHEDULERS),
    "default_execution_type": _one_of(*EXECUTION_TYPES),
    "artifact_store": _one_of(*ARTIFACT_STORES),
    "mount_host_paths": bool,
    "mount_paths": _mount_paths,
    "local": dict,
    "slurm": dict,
}
_SCHEDULER_KEYS = {
    "execution_types": lambda v: _str_list(v) and all(x in EXECUTION_TYPES for x in v),
    "local_concurrency": _pos_int,
}


@dataclass(frozen=True)
class SchedulerConfig:
    execution_types: tuple[str, ...] = ()
    local_concurrency: int | None = None


@dataclass(frozen=True)
class Target:
    name: str
    base_path: str  # absolute; a remote one may start with "~" (resolved on the target)
    address: str | None = None  # None: this machine
    node_local_path: str | None = None
    default_scheduler: str | None = None
    default_execution_type: str | None = None
    artifact_store: str = "shared"
    mount_host_paths: bool = False
    mount_paths: tuple[str, ...] = ()
    local: SchedulerConfig | None = None
    slurm: SchedulerConfig | None = None

    @property
    def is_local(self) -> bool:
        return self.address is None

    def scheduler(self, fallback: str | None = None) -> str:
        """The scheduler to use when the user names none."""
        if self.default_scheduler:
            return self.default_scheduler
        if fallback:
            return fallback
        return "slurm" if self.slurm is not None else "local"

    def execution_types(self, scheduler: str) -> tuple[str, ...]:
        table = self.slurm if scheduler == "slurm" else self.local
        return table.execution_types if table else ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "base_path": self.base_path,
            "node_local_path": self.node_local_path,
            "default_scheduler": self.scheduler(),
            "default_execution_type": self.default_execution_type,
            "artifact_store": self.artifact_store,
            "local": None if self.local is None else _sched_json(self.local),
            "slurm": None if self.slurm is None else _sched_json(self.slurm),
        }


def _sched_json(s: SchedulerConfig) -> dict[str, Any]:
    return {"execution_types": list(s.execution_types), "local_concurrency": s.local_concurrency}


@dataclass(frozen=True)
class Config:
    targets: Mapping[str, Target]
    path: Path | None = None  # None: the embedded default
    submission_target: str | None = None
    default_scheduler: str | None = None
    theme: str | None = None
    logging: Mapping[str, int] = field(default_factory=dict)

    def target(self, name: str | None) -> Target:
        chosen = name or self.submission_target or next(iter(self.targets), None)
        if chosen is None:
            raise ConfigError(f"{self.source}: no targets configured")
        try:
            return self.targets[chosen]
        except KeyError:
            known = ", ".join(self.targets) or "none"
            raise ConfigError(
                f"target '{chosen}' is not in {self.source} (configured: {known})",
                hint=f"add a [targets.{chosen}] table with address and base_path",
            ) from None

    @property
    def source(self) -> str:
        return shown_path(self.path) if self.path else "the embedded default config"


def xdg_dir(kind: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    defaults = {"config": ".config", "data": ".local/share", "cache": ".cache", "state": ".local/state"}
    value = env.get(f"XDG_{kind.upper()}_HOME")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME", str(Path.home()))) / defaults[kind]


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    return xdg_dir("config", env) / "repx" / "config.toml"


def embedded_default(env: Mapping[str, str] | None = None) -> Config:
    """With no config at all: this machine as target `local`, running jobs with the local agent."""
    base = xdg_dir("data", env) / "repx-tui" / "store"
    local = Target(
        name="local",
        base_path=str(base),
        default_scheduler="local",
        default_execution_type="native",
        local=SchedulerConfig(execution_types=("native", "bwrap")),
    )
    return Config(targets={"local": local}, submission_target="local", default_scheduler="local")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load `path`, else $REPX_CONFIG, else the XDG file, else the embedded default.

    A path the user named must exist; the XDG file may be absent.
    """
    env = os.environ if env is None else env
    named = path or env.get("REPX_CONFIG")
    if named:
        return parse_config(TomlDoc.load(Path(named).expanduser()), env)
    default = default_config_path(env)
    if default.exists() or default.is_symlink():  # a directory or FIFO there is an error, not "no config"
        return parse_config(TomlDoc.load(default), env)
    return embedded_default(env)


def parse_config(doc: TomlDoc, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    data = doc.data
    check_keys(doc, (), data, _TOP_KEYS)
    check_keys(doc, ("logging",), data.get("logging", {}), _LOGGING_KEYS)
    targets: dict[str, Target] = {}
    for name, table in data.get("targets", {}).items():
        if not isinstance(table, dict):
            raise doc.error(("targets",), name, "must be a table")
        if not _TARGET_NAME.fullmatch(name):
            raise doc.error(
                ("targets",), name, "a target name may hold only letters, digits and . _ @ + - (at most 64)"
            )
        targets[name] = _parse_target(doc, name, table, env)
    config = Config(
        targets=targets,
        path=doc.path,
        submission_target=data.get("submission_target"),
        default_scheduler=data.get("default_scheduler"),
        theme=data.get("theme"),
        logging=data.get("logging", {}),
    )
    if config.submission_target and config.submission_target not in targets:
        raise doc.error((), "submission_target", f"names no configured target '{config.submission_target}'")
    if not targets:
        raise ConfigError(f"{shown_path(doc.path)}: no [targets.NAME] tables", hint="see docs/configuration.md")
    return config


def _parse_target(doc: TomlDoc, name: str, table: dict[str, Any], env: Mapping[str, str]) -> Target:
    where = ("targets", name)
    check_keys(doc, where, table, _TARGET_KEYS)
    if "base_path" not in table:
        raise doc.error(where, None, "base_path is required")
    address = table.get("address")
    if address is None and name != "local":
        raise doc.error(where, None, "has no address; only the target named 'local' may run on this machine")
    base_path = _checked_path(doc, where, "base_path", table["base_path"], remote=address is not None, env=env)
    node_local = table.get("node_local_path")
    if node_local is not None:
        node_local = _checked_path(doc, where, "node_local_path", node_local, remote=address is not None, env=env)
    if table.get("artifact_store") == "node-local" and node_local is None:
        raise doc.error(where, "artifact_store", '"node-local" needs node_local_path: where each node unpacks the Lab')
    schedulers = {}
    for kind in ("local", "slurm"):
        if kind in table:
            check_keys(doc, (*where, kind), table[kind], _SCHEDULER_KEYS)
            schedulers[kind] = SchedulerConfig(
                execution_types=tuple(table[kind].get("execution_types", ())),
                local_concurrency=table[kind].get("local_concurrency"),
            )
    return Target(
        name=name,
        address=address,
        base_path=base_path,
        node_local_path=node_local,
        default_scheduler=table.get("default_scheduler"),
        default_execution_type=table.get("default_execution_type"),
        artifact_store=table.get("artifact_store", "shared"),
        mount_host_paths=table.get("mount_host_paths", False),
        mount_paths=tuple(table.get("mount_paths", ())),
        **schedulers,
    )


_UNSAFE_PATH_CHARS = set("'\"`$\\\n\r\t;&|<>*?")
_TARGET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}", re.ASCII)
MAX_PATH_CHARS = 1024


def _checked_path(
    doc: TomlDoc, where: tuple[str, ...], key: str, value: str, *, remote: bool, env: Mapping[str, str]
) -> str:
    if not value:
        raise doc.error(where, key, "is empty")
    if len(value) > MAX_PATH_CHARS:
        raise doc.error(where, key, f"is {len(value)} characters long (at most {MAX_PATH_CHARS})")
    if _UNSAFE_PATH_CHARS & set(value) or control_chars(value):
        raise doc.error(
            where,
            key,
            f"{short_repr(value)} contains characters that are unsafe in a remote shell path "
            "(quotes, $ ` \\ ; & | < > * ?, control characters)",
        )
    if remote:
        # "~" means the remote home; it is resolved on the target, never with the local HOME.
        if value == "~" or value.startswith("~/") or value.startswith("/"):
            return value.rstrip("/") or "/"
        raise doc.error(where, key, f"must be absolute or start with ~/ (got '{value}')")
    if value == "~" or value.startswith("~/"):
        value = env.get("HOME", str(Path.home())) + value[1:]
    if not os.path.isabs(value):
        raise doc.error(where, key, f"must be an absolute path (got '{value}')")
    return os.path.normpath(value)
