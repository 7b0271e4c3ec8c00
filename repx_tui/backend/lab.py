"""The Lab model: load an upstream RepX 0.5.0 Lab (a directory, a file in its lab/, or a tar of one).

The loader only follows pointers (manifest -> root metadata -> run metadata) and never guesses
file names, because upstream changed them between releases. Everything that later ends up in a
remote path or shell command (job ids, run names, image and executable paths) is checked here,
so the rest of the backend can trust a loaded Lab.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from repx_tui.backend.errors import LabError
from repx_tui.backend.labfs import check_lab_symlinks, check_real_dirs, read_json_file, verify_files, written_dirs
from repx_tui.backend.labmodel import (  # noqa: F401  (the model's names are lab.py's API)
    Executable,
    FileEntry,
    Image,
    InputMapping,
    Job,
    Layer,
    Run,
)
from repx_tui.backend.labmodel import (
    kahn as _kahn,
)
from repx_tui.backend.labtar import force_rmtree, lab_cache_dir, locate_root  # noqa: F401  (re-exported)
from repx_tui.backend.labvalues import check_job_values

SUPPORTED_REPX_VERSION = "0.5.0"

_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
# Characters that would need shell quoting or break a line-oriented protocol.
_UNSAFE_RE = re.compile(r"[\s'\"$`\\\x00-\x1f\x7f]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9._:-]+\Z")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
_INPUT_KEYS = (
    "type",
    "job_id",
    "source_output",
    "source_run",
    "source_value",
    "source",
    "source_key",
    "dependency_type",
)

ProgressFn = Callable[[int, int, str], None]


@dataclass(eq=False)
class Lab:
    root: Path
    source: Path
    lab_id: str
    lab_version: str
    repx_version: str
    git_hash: str
    manifest_path: str
    metadata_path: str
    runs: dict[str, Run]
    groups: dict[str, tuple[str, ...]]
    jobs: dict[str, Job]
    images: dict[str, Image]
    host_tools_dir: str
    files: tuple[FileEntry, ...]
    warnings: list[str] = field(default_factory=list)
    _dependants: dict[str, set[str]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        direct: dict[str, set[str]] = {j: set() for j in self.jobs}
        for job_id in self.jobs:
            for dep in self.upstream(job_id):
                direct.setdefault(dep, set()).add(job_id)
        self._dependants = direct

    @classmethod
    def load(cls, path: str | Path) -> Lab:
        source = Path(path).expanduser()
        try:
            return _Loader(source, locate_root(source)).load()
        except OSError as exc:  # e.g. an unreadable directory: still a one-line error
            raise LabError(f"{exc.filename or source}: cannot read the Lab ({exc.strerror or exc})") from None

    @property
    def host_tools_path(self) -> Path:
        return self.root / "host-tools" / self.host_tools_dir / "bin"

    def job(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise LabError(f"unknown job '{job_id}' in Lab {self.lab_id}") from None

    def run_of(self, job_id: str) -> str:
        return self.job(job_id).run

    def image_for_job(self, job_id: str) -> Image | None:
        image = self.runs[self.run_of(job_id)].image
        return self.images[image] if image else None

    def upstream(self, job_id: str) -> tuple[str, ...]:
        """Every job that must succeed before job_id may start: the jobs it reads outputs from,
        and, for an inter-run input, the final jobs of the source run (which succeed only after
        the whole run did). Upstream RepX treats the inter-run edge as informational; we don't."""
        job = self.job(job_id)
        if not job.source_runs:
            return job.dependencies
        from_runs = {j for run in job.source_runs for j in self.final_jobs(run)}
        return tuple(sorted(set(job.dependencies) | from_runs))

    def run_upstream(self, job_id: str) -> dict[str, tuple[str, ...]]:
        """Source run -> its final jobs, for each inter-run input of job_id."""
        return {run: tuple(self.final_jobs(run)) for run in self.job(job_id).source_runs}

    def final_jobs(self, run: str) -> list[str]:
        """Jobs of a run that no other job of the same run depends on."""
        members = set(self.runs[run].jobs)
        used = {d for j in members for d in self.jobs[j].dependencies if d in members}
        return sorted(members - used)

    def with_dependencies(self, job_ids: Iterable[str]) -> set[str]:
        """The given jobs plus everything they depend on, transitively."""
        seen: set[str] = set()
        stack = list(job_ids)
        while stack:
            job_id = stack.pop()
            if job_id not in seen:
                seen.add(job_id)
                stack.extend(self.job(job_id).dependencies)
        return seen

    def dependants(self, job_id: str) -> set[str]:
        """Every job that depends on job_id, directly or transitively."""
        self.job(job_id)
        seen: set[str] = set()
        stack = list(self._dependants.get(job_id, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self._dependants.get(current, ()))
        return seen

    def topological_order(self, job_ids: Iterable[str]) -> list[str]:
        """job_ids ordered so every upstream job (inter-run ones included) comes first; ties by id."""
        wanted = set(job_ids)
        for job_id in wanted:
            self.job(job_id)
        return _kahn(wanted, lambda j: [d for d in self.upstream(j) if d in wanted], "jobs")

    def resolve(self, specs: Sequence[str]) -> list[str]:
        """What to submit for run names, @groups and job-id prefixes: the jobs and what they read
        from (inter-run sources are not pulled in: see missing_source_runs), upstream first."""
        selected: set[str] = set()
        for spec in specs:
            selected |= self._resolve_one(spec)
        return self.topological_order(self.with_dependencies(selected))

    def select(self, specs: Sequence[str]) -> list[str]:
        """What a run name, @group or job-id prefix means for status, cancel and logs: every job of
        the runs named, or the one job; in topological order."""
        chosen: set[str] = set()
        for spec in specs:
            if spec.startswith("@"):
                chosen |= {j for run in self._group_runs(spec[1:]) for j in self.runs[run].jobs}
            elif spec in self.runs:
                chosen |= set(self.runs[spec].jobs)
            else:
                chosen.add(self._job_by_prefix(spec))
        return self.topological_order(chosen)

    def with_dependants(self, job_ids: Iterable[str]) -> list[str]:
        """job_ids plus every job that can only run after one of them (what a cancel stops)."""
        chosen = set(job_ids)
        for job_id in list(chosen):
            chosen |= self.dependants(job_id)
        return self.topological_order(chosen)

    def missing_source_runs(self, job_ids: Iterable[str]) -> dict[str, list[str]]:
        """Source run -> the selected jobs that read it, for runs the selection does not include."""
        selected = set(job_ids)
        missing: dict[str, list[str]] = {}
        for job_id in sorted(selected):
            for run, finals in self.run_upstream(job_id).items():
                if not set(finals) <= selected:
                    missing.setdefault(run, []).append(job_id)
        return missing

    def _resolve_one(self, spec: str) -> set[str]:
        if spec.startswith("@"):
            return {j for run in self._group_runs(spec[1:]) for j in self.final_jobs(run)}
        if spec in self.runs:
            return set(self.final_jobs(spec))
        return {self._job_by_prefix(spec)}

    def _group_runs(self, name: str) -> tuple[str, ...]:
        if not name:
            raise LabError("'@' needs a group name, e.g. @all")
        if name not in self.groups:
            known = ", ".join(sorted(self.groups)) or "none"
            raise LabError(f"unknown group '@{name}' (groups in this Lab: {known})")
        return self.groups[name]

    def _job_by_prefix(self, prefix: str) -> str:
        if prefix in self.jobs:
            return prefix
        matches = sorted(j for j in self.jobs if prefix and j.startswith(prefix))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LabError(
                f"'{prefix}' did not match any run, group or job",
                hint=f"runs: {', '.join(self.runs) or 'none'}; groups: "
                f"{', '.join('@' + g for g in self.groups) or 'none'}",
            )
        shown = ", ".join(matches[:8]) + (f" and {len(matches) - 8} more" if len(matches) > 8 else "")
        raise LabError(f"'{prefix}' is ambiguous: it matches {len(matches)} jobs: {shown}")

    def verify(self, progress: ProgressFn | None = None) -> None:
        """Re-hash every file the manifest lists; raise LabError if any is missing or differs."""
        verify_files(self.root, ((f.path, f.sha256) for f in self.files), progress)

    def to_summary(self) -> dict[str, Any]:
        return {
            "lab_id": self.lab_id,
            "runs": [{"name": r.name, "jobs": list(r.jobs)} for r in self.runs.values()],
            "groups": {g: list(runs) for g, runs in self.groups.items()},
            "jobs": len(self.jobs),
            "images": [
                {"path": i.path, "tag": i.tag, "layers": [{"digest": ly.digest, "size": ly.size} for ly in i.layers]}
                for i in self.images.values()
            ],
            "host_tools": self.host_tools_dir,
        }


# ------------------------------------------------------------------------------- loading


def _is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


class _Loader:
    """Reads and validates one Lab; all errors name the file they come from."""

    def __init__(self, source: Path, root: Path) -> None:
        self.source = source
        self.root = root
        self.warnings: list[str] = []

    # -- small checked accessors

    def fail(self, where: str, message: str, hint: str | None = None) -> LabError:
        return LabError(f"{where}: {message}", hint=hint)

    def rel_path(self, value: Any, what: str, where: str, *, shell_safe: bool = True) -> str:
        """A validated lab-relative path, normalised to posix form."""
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"{what} must be a non-empty string, got {value!r}")
        if value.startswith("/"):
            raise self.fail(where, f"{what} '{value}' is absolute; Lab paths must be relative")
        parts = value.split("/")
        if ".." in parts:
            raise self.fail(where, f"{what} '{value}' contains '..'")
        bad = _UNSAFE_RE if shell_safe else _CONTROL_RE
        if bad.search(value):
            raise self.fail(
                where, f"{what} {value!r} contains whitespace, a quote, '$', '`', '\\' or a control character"
            )
        return "/".join(p for p in parts if p not in ("", ".")) or "."

    def local(self, rel: str) -> Path:
        """Where a validated rel path lives. No realpath needed: check_symlinks() already proved
        that no link in the Lab leads outside it, and rel has no '..'."""
        return self.root / rel

    def inside(self, rel: str, what: str, where: str) -> Path:
        """The real location of rel; LabError if a symlink takes it outside the Lab."""
        real = Path(os.path.realpath(self.root / rel))
        if not _is_within(real, self.root):
            raise self.fail(where, f"{what} '{rel}' resolves outside the Lab (to {real})")
        return real

    def safe_name(self, value: Any, what: str, where: str) -> str:
        if not isinstance(value, str) or not value or _UNSAFE_RE.search(value) or "/" in value or value in (".", ".."):
            raise self.fail(
                where,
                f"{what} {value!r} is empty or contains '/', whitespace, a quote, "
                "'$', '`', '\\' or a control character",
            )
        return value

    def job_id(self, value: str, where: str) -> str:
        if not _SAFE_ID_RE.match(value) or ".." in value:
            raise self.fail(
                where, f"job id {value!r} is not a safe name (letters, digits, '.', '_', '+', '-'; no '..')"
            )
        return value

    def read_json(self, rel: str, what: str) -> Any:
        return read_json_file(self.inside(rel, what, rel), rel, what)

    def get_field(
        self,
        obj: Any,
        key: str,
        kind: type | tuple[type, ...],
        where: str,
        *,
        required: bool = True,
        default: Any = None,
    ) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(where, f"expected a JSON object, got {type(obj).__name__}")
        if key not in obj or obj[key] is None:
            if required:
                raise self.fail(where, f"required field '{key}' is missing")
            return default
        value = obj[key]
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(where, f"field '{key}' must be {_JSON_NAMES.get(names, names)}, got {type(value).__name__}")
        return value

    # -- the Lab, top down

    def load(self) -> Lab:
        self.check_symlinks()
        manifest_path = self.find_manifest()
        manifest = self.read_json(manifest_path, "Lab manifest")
        lab_id = self.safe_name(self.get_field(manifest, "labId", str, manifest_path), "labId", manifest_path)
        lab_version = self.get_field(manifest, "lab_version", str, manifest_path)
        metadata_path = self.rel_path(
            self.get_field(manifest, "metadata", str, manifest_path), "metadata", manifest_path
        )
        files = self.parse_files(self.get_field(manifest, "files", list, manifest_path), manifest_path)
        root_meta = self.read_json(metadata_path, "root metadata")
        repx_version = self.get_field(root_meta, "repx_version", str, metadata_path)
        if repx_version != SUPPORTED_REPX_VERSION:
            self.warnings.append(
                f"Lab was built by RepX {repx_version}; repx-tui expects {SUPPORTED_REPX_VERSION}. Loading it anyway."
            )
        git_hash = self.get_field(root_meta, "gitHash", str, metadata_path)
        run_paths = self.get_field(root_meta, "runs", list, metadata_path)
        jobs: dict[str, Job] = {}
        runs = self.parse_runs(run_paths, metadata_path, jobs)
        groups = self.parse_groups(
            self.get_field(root_meta, "groups", dict, metadata_path, required=False, default={}), runs, metadata_path
        )
        self.check_dependencies(runs, jobs)
        file_hashes = {f.path: f.sha256 for f in files}
        images = {r.image: self.parse_image(r.image, r.metadata_path, file_hashes) for r in runs.values() if r.image}
        lab = Lab(
            root=self.root,
            source=self.source,
            lab_id=lab_id,
            lab_version=lab_version,
            repx_version=repx_version,
            git_hash=git_hash,
            manifest_path=manifest_path,
            metadata_path=metadata_path,
            runs=runs,
            groups=groups,
            jobs=jobs,
            images=images,
            host_tools_dir=self.host_tools_dir(),
            files=files,
            warnings=self.warnings,
        )
        lab.topological_order(jobs)  # a cycle is a broken Lab: fail now, not mid-run
        check_job_values(jobs, runs)
        check_real_dirs(self.root, written_dirs(lab))
        return lab

    def check_symlinks(self) -> None:
        """Every symlink must stay inside the Lab as it will resolve on the target (labfs)."""
        check_lab_symlinks(self.root)

    def find_manifest(self) -> str:
        found = sorted(p.name for p in (self.root / "lab").glob("*lab-metadata.json") if p.is_file())
        if not found:
            raise LabError(
                f"{self.root}/lab: no *lab-metadata.json manifest; this is not a Lab",
                hint="pass the Lab directory (e.g. ./result) or a tar of it",
            )
        name = "lab-metadata.json" if "lab-metadata.json" in found else found[0]
        if len(found) > 1:
            self.warnings.append(f"several manifests in lab/ ({', '.join(found)}); using {name}")
        return f"lab/{name}"

    def parse_files(self, entries: list[Any], where: str) -> tuple[FileEntry, ...]:
        out = []
        for entry in entries:
            path = self.rel_path(self.get_field(entry, "path", str, where), "files[].path", where, shell_safe=False)
            digest = self.get_field(entry, "sha256", str, where).lower()
            if not _SHA256_RE.match(digest):
                raise self.fail(where, f"sha256 of '{path}' is not 64 hex characters")
            out.append(FileEntry(path, digest))
        return tuple(out)

    def parse_runs(self, run_paths: list[Any], where: str, jobs: dict[str, Job]) -> dict[str, Run]:
        runs: dict[str, Run] = {}
        for value in run_paths:
            rel = self.rel_path(value, "run metadata path", where)
            run = self.parse_run(rel, self.read_json(rel, "run metadata"), jobs)
            if run.name in runs:
                raise self.fail(rel, f"run name '{run.name}' is used twice")
            runs[run.name] = run
        return runs

    def parse_run(self, rel: str, meta: Any, jobs: dict[str, Job]) -> Run:
        name = self.safe_name(self.get_field(meta, "name", str, rel), "run name", rel)
        image = self.get_field(meta, "image", str, rel, required=False)
        if image is not None:
            image = self.rel_path(image, "image", rel)
        deps = self.get_field(meta, "dependencies", dict, rel, required=False, default={})
        job_objs = self.get_field(meta, "jobs", dict, rel)
        if job_objs and not (self.root / "jobs").is_dir():
            raise self.fail(rel, "the Lab has no jobs/ directory")
        ids = []
        for job_id, obj in job_objs.items():
            job = self.parse_job(self.job_id(job_id, rel), obj, name, rel)
            jobs.setdefault(job_id, job)  # a job shared by two runs keeps its first run
            ids.append(job_id)
        return Run(name, rel, image, tuple(ids), {str(k): str(v) for k, v in deps.items()})

    def parse_job(self, job_id: str, obj: Any, run: str, rel: str) -> Job:
        where = f"{rel}: job {job_id}"
        job_dir = self.local(f"jobs/{job_id}")
        if not job_dir.is_dir():
            raise self.fail(rel, f"job directory jobs/{job_id} is missing from the Lab")
        name = self.get_field(obj, "name", str, where)
        stage_type = self.get_field(obj, "stage_type", str, where, required=False, default="simple")
        if stage_type not in ("simple", "scatter-gather"):
            raise self.fail(where, f"unknown stage_type '{stage_type}' (expected simple or scatter-gather)")
        params = self.get_field(obj, "params", dict, where)
        exe_objs = self.get_field(obj, "executables", dict, where, required=False, default={})
        executables = {n: self.parse_executable(n, e, where) for n, e in exe_objs.items()}
        if stage_type == "scatter-gather":
            self.check_scatter_gather(executables, where)
        deps = {i.job_id for e in executables.values() for i in e.inputs}
        deps -= {None, "self"}
        source_runs = sorted({i.source_run for e in executables.values() for i in e.inputs if i.source_run is not None})
        return Job(
            id=job_id,
            name=name,
            run=run,
            stage_type=stage_type,
            params=params,
            executables=executables,
            dependencies=tuple(sorted(deps)),  # type: ignore[arg-type]
            source_runs=tuple(source_runs),
            resource_hints=self.get_field(obj, "resource_hints", dict, where, required=False, default={}),
        )

    def parse_executable(self, name: str, obj: Any, where: str) -> Executable:
        here = f"{where}, executable {name}"
        if not _SAFE_ID_RE.match(name):
            raise self.fail(where, f"executable name {name!r} is not a safe name")
        path = self.rel_path(self.get_field(obj, "path", str, here), "executable path", here)
        if not self.local(path).is_file():
            raise self.fail(here, f"script {path} is missing from the Lab")
        inputs = tuple(
            self.parse_input(i, here) for i in self.get_field(obj, "inputs", list, here, required=False, default=[])
        )
        deps = self.get_field(obj, "deps", list, here, required=False, default=[])
        if not all(isinstance(d, str) for d in deps):
            raise self.fail(here, "field 'deps' must be a list of step names")
        return Executable(
            name=name,
            path=path,
            inputs=inputs,
            deps=tuple(deps),
            outputs=self.get_field(obj, "outputs", dict, here, required=False, default={}),
            resource_hints=self.get_field(obj, "resource_hints", dict, here, required=False, default={}),
        )

    def parse_input(self, obj: Any, where: str) -> InputMapping:
        target = self.get_field(obj, "target_input", str, f"{where}, input")
        here = f"{where}, input {target}"
        values = {k: self.get_field(obj, k, str, here, required=False) for k in _INPUT_KEYS}
        if values["job_id"] not in (None, "self"):
            self.job_id(values["job_id"], here)
        if values["source_run"] is not None:
            self.safe_name(values["source_run"], "source_run", here)
        return InputMapping(target_input=target, raw=obj, **values)

    def check_scatter_gather(self, exes: dict[str, Executable], where: str) -> None:
        missing = [n for n in ("scatter", "gather") if n not in exes]
        if not any(n.startswith("step-") for n in exes):
            missing.append("step-*")
        if missing:
            raise self.fail(where, f"scatter-gather job lacks executable(s): {', '.join(missing)}")

    def parse_groups(self, obj: dict[str, Any], runs: dict[str, Run], where: str) -> dict[str, tuple[str, ...]]:
        groups = {}
        for name, members in obj.items():
            self.safe_name(name, "group name", where)
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise self.fail(where, f"group '{name}' must be a list of run names")
            unknown = [m for m in members if m not in runs]
            if unknown:
                raise self.fail(where, f"group '{name}' names unknown run(s): {', '.join(unknown)}")
            groups[name] = tuple(members)
        return groups

    def check_dependencies(self, runs: dict[str, Run], jobs: dict[str, Job]) -> None:
        for job in jobs.values():
            for dep in job.dependencies:
                if dep not in jobs:
                    raise self.fail(
                        runs[job.run].metadata_path, f"job {job.id} depends on {dep}, which is not in the Lab"
                    )
            for source in job.source_runs:
                if source not in runs:
                    raise self.fail(
                        runs[job.run].metadata_path, f"job {job.id} reads run '{source}', which is not in the Lab"
                    )
                if source == job.run:
                    raise self.fail(runs[job.run].metadata_path, f"job {job.id} of run '{source}' reads its own run")

    def parse_image(self, rel: str, where: str, file_hashes: dict[str, str]) -> Image:
        real = self.inside(rel, "image", where)
        if not real.exists():
            raise self.fail(where, f"image {rel} is missing from the Lab")
        if not real.is_dir():
            raise self.fail(where, f"image {rel} is not a directory (expected an unpacked docker archive)")
        tag = PurePosixPath(rel).stem
        if not _IMAGE_TAG_RE.match(tag):
            raise self.fail(where, f"image tag '{tag}' has characters outside [A-Za-z0-9._:-]")
        manifest_rel = f"{rel}/manifest.json"
        manifest = self.read_json(manifest_rel, "image manifest")
        if not isinstance(manifest, list) or not manifest:
            raise self.fail(manifest_rel, "expected a non-empty JSON array")
        entries = self.get_field(manifest[0], "Layers", list, manifest_rel)
        layers = tuple(self.parse_layer(rel, e, manifest_rel, file_hashes) for e in entries)
        meta = tuple(sorted(f"{rel}/{p.name}" for p in real.glob("*.json") if p.is_file()))
        return Image(path=rel, tag=tag, layers=layers, meta_files=meta)

    def parse_layer(self, image: str, entry: Any, where: str, file_hashes: dict[str, str]) -> Layer:
        entry = self.rel_path(entry, "layer", where)
        digest = PurePosixPath(entry).parent.as_posix()
        if digest == "." or not _SAFE_ID_RE.match(digest):
            raise self.fail(where, f"layer '{entry}' is not '<digest>/layer.tar'")
        link = f"{image}/{entry}"
        real = self.inside(link, "layer", where)
        if not real.is_file():
            raise self.fail(where, f"layer file {link} is missing from the Lab")
        store_path = real.relative_to(self.root).as_posix()
        sha = file_hashes.get(link) or file_hashes.get(store_path)
        return Layer(digest=digest, size=real.stat().st_size, store_path=store_path, sha256=sha)

    def host_tools_dir(self) -> str:
        base = self.root / "host-tools"
        dirs = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        if not dirs:
            raise LabError(
                f"{self.root}: the Lab has no host-tools/<hash>/ directory", hint="the Lab is incomplete; rebuild it"
            )
        if not (base / dirs[0] / "bin").is_dir():
            raise LabError(f"{self.root}: host-tools/{dirs[0]}/bin is missing")
        return dirs[0]


_JSON_NAMES = {"str": "a string", "list": "a JSON array", "dict": "a JSON object", "int": "an integer"}
