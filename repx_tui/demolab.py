"""Write small RepX Labs in the exact upstream 0.5.0 on-disk format, without Nix.

Used by `repx-tui demo` and by the test suite (tests/labgen.py). The Lab's host tools are this
machine's own binaries (dynamically linked, unlike the static ones in real Labs), so a demo Lab
runs on this machine or on a target reached over loopback, not on arbitrary hosts.

Layout written: lab/lab-metadata.json, revision/metadata-top.json, revision/metadata-<run>.json,
jobs/<id>/{bin/<script>, <pname>-parameters.json, nix-input-dependencies.json},
host-tools/<64hex>/bin/<tool> -> ../../../store/<h>-<pkg>-<tool>, readme/README.md and, with
image_layers > 0, images/<h>-repx-shared-image.tar/ plus store/<digest>-layer.tar.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import force_rmtree

NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
REPX_VERSION = "0.5.0"
DEMO_RUNS = ("simulation", "analysis")
DEMO_GROUPS = {"all": ("simulation", "analysis")}
DEMO_GIT_HASH = hashlib.sha1(b"repx-tui demo lab").hexdigest()
IMAGE_NAME = "repx-shared-image"
SCATTER_ITEMS = 3

# Tool -> the package it would come from in a real (Nix) Lab; only used to name store files.
HOST_TOOLS: dict[str, str] = {
    "bash": "bash",
    "jq": "jq",
    **{
        t: "coreutils"
        for t in (
            "cat",
            "mkdir",
            "mv",
            "rm",
            "ln",
            "ls",
            "sha256sum",
            "stat",
            "sort",
            "head",
            "tail",
            "wc",
            "date",
            "sleep",
            "env",
            "tr",
            "cut",
            "id",
            "df",
            "nproc",
            "touch",
            "chmod",
            "dirname",
            "basename",
            "readlink",
            "timeout",
            "mktemp",
            "cp",
            "seq",
            "printf",
            "whoami",
            "realpath",
        )
    },
    "flock": "util-linux",
    "setsid": "util-linux",
    "kill": "procps",
    "tar": "gnutar",
    "find": "findutils",
    "xargs": "findutils",
    "sed": "gnused",
    "grep": "gnugrep",
    "rsync": "rsync",
    "bwrap": "bubblewrap",
}
# Tools the image's rootfs does not need (they run on the host side of a container).
_NOT_IN_IMAGE = {"rsync", "bwrap"}
_MAPPING_KEYS = (
    "dependency_type",
    "job_id",
    "job_id_template",
    "source",
    "source_key",
    "source_output",
    "source_run",
    "source_value",
    "target_input",
    "type",
)


@dataclass(frozen=True)
class DemoOptions:
    """What to put in a demo Lab. Options that change behaviour never change job ids."""

    runs: Sequence[str] | None = None  # subset of DEMO_RUNS; "analysis" needs "simulation"
    fail_job: str | None = None  # "<pname>", "<pname>-<version>", a job id, or any of those + ":<exe>"
    fail_unless: str | None = None  # fail_job fails only while this path does not exist (a retry then succeeds)
    sleep_seconds: float | Mapping[str, float] = 0.0  # per executable; a mapping is keyed by pname
    log_lines: int = 0  # numbered stdout lines each executable prints before its work
    log_delay: float = 0.05  # seconds between those lines
    image_layers: int = 0  # 0 = native Lab; else one image shared by every run
    layer_size_kib: int = 0  # random padding in each data layer (layer 1 if it is the only one)
    layer_seed: int | str = 0  # changes the last layer only
    scale: int = 0  # extra trivial jobs (a binary tree hanging off stage-B) in "simulation"
    hash_prefixed_names: bool = False  # pre-0.5.0 names: lab/<h>-lab-metadata.json, ...
    nix_like: bool = True  # 0444/0555 modes and mtime 1, like the Nix store
    host_tools: Sequence[str] | None = None  # subset of HOST_TOOLS; None = all found on PATH
    lab_version: str = "1.0.0"
    git_hash: str = DEMO_GIT_HASH


# ----------------------------------------------------------------------------------- hashes


def nix32(digest: bytes) -> str:
    """Nix's base-32 encoding (least significant 5-bit group last)."""
    length = (len(digest) * 8 + 4) // 5
    chars = []
    for n in range(length - 1, -1, -1):
        byte, bit = divmod(n * 5, 8)
        value = digest[byte] >> bit
        if byte + 1 < len(digest):
            value |= digest[byte + 1] << (8 - bit)
        chars.append(NIX32_ALPHABET[value & 0x1F])
    return "".join(chars)


def fake_store_hash(*parts: str) -> str:
    """A deterministic 32-char nix32 hash, shaped like a Nix store hash."""
    return nix32(hashlib.sha256("\0".join(parts).encode()).digest())[:32]


def compact_json(value: Any) -> str:
    # serde_json without preserve_order writes maps in key order, compactly.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------------------ job plans


@dataclass
class _Exe:
    name: str  # main | scatter | step-<s> | gather
    body: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    resource_hints: dict[str, Any] | None = None
    deps: list[str] | None = None


@dataclass
class _Stage:
    pname: str
    params: dict[str, Any]
    exes: list[_Exe]
    upstream: list[str]  # job ids this job's id and nix-input-dependencies.json depend on
    stage_type: str = "simple"
    resource_hints: dict[str, Any] | None = None
    version: str = "1.1"
    id: str = ""

    def __post_init__(self) -> None:
        seed = [self.name, compact_json(self.params), compact_json(sorted(self.upstream))]
        self.id = f"{fake_store_hash(*seed)}-{self.name}"

    @property
    def name(self) -> str:
        return f"{self.pname}-{self.version}"

    def script_name(self, exe: str) -> str:
        return self.pname if exe == "main" else f"{self.pname}-{exe}"


def _mapping(target_input: str, **values: Any) -> dict[str, Any]:
    # Upstream writes all ten keys, with null for the unused ones.
    mapping = dict.fromkeys(_MAPPING_KEYS)
    mapping.update(target_input=target_input, **values)
    return mapping


def _intra(upstream: _Stage, output: str, target: str) -> dict[str, Any]:
    return _mapping(
        target, type="intra-pipeline", job_id=upstream.id, job_id_template=upstream.pname, source_output=output
    )


def _stage_b() -> _Stage:
    body = 'for ((i = 0; i < ${params[count]}; i++)); do echo $(( ${params[start]} + i )); done > "$out/list_b.txt"'
    exe = _Exe("main", body, outputs={"raw_output": "$out/list_b.txt"})
    hints = {"mem": "128M", "cpus": 1, "sbatch_opts": ["--comment=repx-demo"]}
    return _Stage("stage-B-producer", {"count": 3, "start": 10}, [exe], [], resource_hints=hints)


def _stage_a(count: int) -> _Stage:
    body = 'for ((i = 1; i <= ${params[count]}; i++)); do echo "$i"; done > "$out/numbers.txt"'
    exe = _Exe("main", body, outputs={"data_a": "$out/numbers.txt"})
    hints = {"mem": "256M", "cpus": 1, "time": "00:05:00"}
    return _Stage("stage-A-producer", {"count": count}, [exe], [], resource_hints=hints)


def _stage_c(a: _Stage, b: _Stage) -> _Stage:
    body = 'cat "${inputs[data_a]}" "${inputs[list_b]}" > "$out/combined_list.txt"'
    exe = _Exe(
        "main",
        body,
        inputs=[_intra(a, "data_a", "data_a"), _intra(b, "raw_output", "list_b")],
        outputs={"combined_list": "$out/combined_list.txt"},
    )
    return _Stage("stage-C-consumer", {}, [exe], [a.id, b.id], resource_hints={"time": "00:15:00"})


_SCATTER = f"jq -n '[range({SCATTER_ITEMS}) | {{index: .}}]' > \"$out/work_items.json\""
_EXTRACT = """index=$(jq -r '.index' "${inputs[worker__item]}")
sed -n "$((index + 1))p" "${inputs[number_list_file]}" > "$out/number.txt\""""
_SQUARE = """n=$(cat "${inputs[extracted_number]}")
echo $((n * n)) > "$out/squared.txt\""""
_GATHER = """total=0
while read -r part; do total=$((total + $(cat "$part"))); done < <(jq -r '.[].squared' "${inputs[worker__outs]}")
if [ -n "${inputs[work__items]:-}" ]; then
  want=$(jq length "${inputs[work__items]}"); got=$(jq length "${inputs[worker__outs]}")
  [ "$want" = "$got" ] || { echo "gather: $want work items but $got branch results" >&2; exit 1; }
fi
echo "$total" > "$out/total.txt\""""


def _stage_d(c: _Stage) -> _Stage:
    numbers = _intra(c, "combined_list", "number_list_file")
    exes = [
        _Exe(
            "scatter",
            _SCATTER,
            inputs=[numbers],
            outputs={"work__items": "$out/work_items.json", "worker__arg": {"index": 0}},
        ),
        _Exe(
            "step-extract",
            _EXTRACT,
            inputs=[_mapping("worker__item", source="scatter:work_item"), numbers],
            outputs={"extracted_number": "$out/number.txt"},
            resource_hints={"cpus": 1, "mem": "512M", "time": "00:05:00"},
        ),
        _Exe(
            "step-square",
            _SQUARE,
            deps=["extract"],
            inputs=[_mapping("extracted_number", source="step:extract", source_output="extracted_number")],
            outputs={"squared": "$out/squared.txt"},
        ),
        _Exe(
            "gather",
            _GATHER,
            outputs={"sum_of_squares": "$out/total.txt"},
            inputs=[
                _mapping("worker__outs", source="runner:worker_outputs", source_key="squared"),
                _mapping("work__items", job_id="self", source_output="work__items"),
            ],
            resource_hints={"cpus": 1, "mem": "1G", "time": "00:10:00"},
        ),
    ]
    return _Stage(
        "stage-D-sum-squares",
        {},
        exes,
        [c.id],
        stage_type="scatter-gather",
        resource_hints={"cpus": 1, "mem": "256M", "time": "00:02:00"},
    )


def _stage_scale(index: int, parent: _Stage) -> _Stage:
    source = "raw_output" if parent.pname == "stage-B-producer" else "value"
    body = 'test -s "${inputs[parent]}"\necho "${params[index]}" > "$out/value.txt"'
    exe = _Exe("main", body, inputs=[_intra(parent, source, "parent")], outputs={"value": "$out/value.txt"})
    return _Stage("stage-S-scale", {"index": index}, [exe], [parent.id])


# Reads the simulation run's results through its metadata, like a repx-py analysis would: a
# missing result (the run has not finished) is an error, never an empty report.
_REPORT = """meta="${inputs[metadata__simulation]}"
jobs=$(jq -r '.jobs | length' "$meta")
run=$(jq -r '.name' "$meta")
total=0 sums=0
while read -r id; do
  result="${inputs[store__base]}/outputs/$id/out/total.txt"
  [ -s "$result" ] || { echo "stage-E-report: no result from $id: $result" >&2; exit 1; }
  total=$((total + $(cat "$result"))) sums=$((sums + 1))
done < <(jq -r '.jobs | to_entries[] | select(.value.stage_type == "scatter-gather") | .key' "$meta")
echo "${params[title]}: run $run has $jobs jobs; $sums sums, total $total" > "$out/report.txt\""""


def _stage_e(simulation_ids: list[str]) -> _Stage:
    mapping = _mapping(
        "metadata__simulation", type="inter-run", source_run="simulation", dependency_type="hard", job_id=None
    )
    base = _mapping("store__base", type="global", source_value="store_base")
    exe = _Exe("main", _REPORT, inputs=[mapping, base], outputs={"report": "$out/report.txt"})
    return _Stage("stage-E-report", {"title": "demo-report"}, [exe], simulation_ids)


def _plan_simulation(scale: int) -> list[_Stage]:
    b = _stage_b()
    stages = [b]
    for count in (3, 5):  # the sweep: one pipeline A -> C -> D per value, B shared
        a = _stage_a(count)
        c = _stage_c(a, b)
        stages += [a, c, _stage_d(c)]
    scaled: list[_Stage] = []
    for index in range(scale):
        scaled.append(_stage_scale(index, b if index == 0 else scaled[(index - 1) // 2]))
    return stages + scaled


def plan_runs(options: DemoOptions) -> dict[str, list[_Stage]]:
    wanted = list(options.runs) if options.runs is not None else list(DEMO_RUNS)
    unknown = [r for r in wanted if r not in DEMO_RUNS]
    if unknown:
        raise ValueError(f"unknown demo run(s) {unknown}; choose from {DEMO_RUNS}")
    if "analysis" in wanted and "simulation" not in wanted:
        raise ValueError("the demo run 'analysis' reads 'simulation'; include both")
    plans: dict[str, list[_Stage]] = {}
    if "simulation" in wanted:
        plans["simulation"] = _plan_simulation(options.scale)
    if "analysis" in wanted:
        plans["analysis"] = [_stage_e([s.id for s in plans["simulation"]])]
    return plans


# ------------------------------------------------------------------------------- writer


class _Writer:
    def __init__(self, root: Path, options: DemoOptions) -> None:
        self.root = root
        self.options = options

    def write(self) -> None:
        from repx_tui.demoimage import ImageWriter  # it builds on this module's names

        for sub in ("lab", "readme", "store", "jobs", "revision", "host-tools"):
            (self.root / sub).mkdir()
        self.write_host_tools()
        image = ImageWriter(self.root, self.options).write() if self.options.image_layers > 0 else None
        plans = plan_runs(self.options)
        run_paths = self.write_runs(plans, image)
        root_meta = self.write_root_metadata(run_paths, list(plans))
        self.write_text("readme/README.md", _README)
        self.write_manifest(root_meta)
        if self.options.nix_like:
            make_nix_like(self.root)

    def write_text(self, rel: str, text: str, mode: int = 0o644) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)

    def metadata_name(self, directory: str, base: str, content: str) -> str:
        if not self.options.hash_prefixed_names:
            return f"{directory}/{base}"
        return f"{directory}/{fake_store_hash(base, content)}-{base}"

    def write_host_tools(self) -> None:
        names = self.options.host_tools if self.options.host_tools is not None else list(HOST_TOOLS)
        found = [(t, p) for t in names if (p := shutil.which(t))]
        packages = sorted({f"{fake_store_hash(HOST_TOOLS.get(t, t))}-{HOST_TOOLS.get(t, t)}-demo" for t, _ in found})
        bin_dir = self.root / "host-tools" / hashlib.sha256("-".join(packages).encode()).hexdigest() / "bin"
        bin_dir.mkdir(parents=True)
        for tool, path in found:
            package = HOST_TOOLS.get(tool, tool)
            store_name = f"{fake_store_hash(package)}-{package}-demo-{tool}"
            store_file = self.root / "store" / store_name
            shutil.copyfile(os.path.realpath(path), store_file)
            store_file.chmod(0o755)
            (bin_dir / tool).symlink_to(f"../../../store/{store_name}")

    def write_job(self, stage: _Stage) -> dict[str, Any]:
        from repx_tui.demoscripts import stage_script  # it builds on this module's names

        job_dir = f"jobs/{stage.id}"
        executables = {}
        for exe in stage.exes:
            script = f"{job_dir}/bin/{stage.script_name(exe.name)}"
            self.write_text(script, stage_script(stage, exe, self.options), 0o755)
            entry: dict[str, Any] = {"inputs": exe.inputs, "outputs": exe.outputs, "path": script}
            if exe.resource_hints:
                entry["resource_hints"] = exe.resource_hints
            if exe.deps:
                entry["deps"] = exe.deps
            executables[exe.name] = entry
        self.write_text(f"{job_dir}/{stage.pname}-parameters.json", compact_json(stage.params))
        self.write_text(f"{job_dir}/nix-input-dependencies.json", compact_json(sorted(stage.upstream)))
        job: dict[str, Any] = {
            "executables": executables,
            "name": stage.name,
            "params": stage.params,
            "stage_type": stage.stage_type,
        }
        if stage.resource_hints:
            job["resource_hints"] = stage.resource_hints
        return job

    def write_runs(self, plans: dict[str, list[_Stage]], image: str | None) -> list[str]:
        paths: dict[str, str] = {}
        for run, stages in plans.items():
            deps = {paths["simulation"]: "hard"} if run == "analysis" else {}
            meta = {
                "dependencies": deps,
                "gitHash": self.options.git_hash,
                "image": image,
                "jobs": {s.id: self.write_job(s) for s in stages},
                "name": run,
                "type": "run",
            }
            text = compact_json(meta)
            paths[run] = self.metadata_name("revision", f"metadata-{run}.json", text)
            self.write_text(paths[run], text)
        return list(paths.values())

    def write_root_metadata(self, run_paths: list[str], runs: list[str]) -> str:
        groups = {g: list(members) for g, members in DEMO_GROUPS.items() if set(members) <= set(runs)}
        meta: dict[str, Any] = {
            "gitHash": self.options.git_hash,
            "repx_version": REPX_VERSION,
            "runs": run_paths,
            "type": "root",
        }
        if groups:
            meta["groups"] = groups
        text = compact_json(meta)
        rel = self.metadata_name("revision", "metadata-top.json", text)
        self.write_text(rel, text)
        return rel

    def write_manifest(self, root_meta: str) -> None:
        files = [{"path": rel, "sha256": sha256_file(self.root / rel)} for rel in list_lab_files(self.root)]
        manifest = {
            "files": files,
            "labId": fake_store_hash("lab", compact_json(files)),
            "lab_version": self.options.lab_version,
            "metadata": root_meta,
        }
        text = compact_json(manifest)
        self.write_text(self.metadata_name("lab", "lab-metadata.json", text), text)


def list_lab_files(root: Path) -> list[str]:
    """Every file (or symlink to a file) in a Lab except its manifest, sorted by path."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if not re.fullmatch(r"lab/[^/]*lab-metadata\.json", rel):
                found.append(rel)
    return sorted(found)


def make_nix_like(root: Path) -> None:
    """Read-only modes and mtime 1 everywhere, like a path in the Nix store."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o555 if path.stat().st_mode & 0o111 else 0o444)
            os.utime(path, (1, 1), follow_symlinks=False)
        os.chmod(dirpath, 0o555)
        os.utime(dirpath, (1, 1))


# ------------------------------------------------------------------------------ public API


def write_demo_lab(dest: str | Path, *, overwrite: bool = False, **options: Any) -> Path:
    """Write a demo Lab at dest (atomically: a sibling temp dir renamed into place).

    Keyword options are the fields of DemoOptions. Returns the absolute Lab path.
    """
    opts = DemoOptions(**options)
    dest = Path(dest).absolute()
    if os.path.lexists(dest):
        if not overwrite:
            raise FileExistsError(f"{dest} already exists")
        force_rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _Writer(tmp, opts).write()
        os.rename(tmp, dest)
    except BaseException:
        force_rmtree(tmp)
        raise
    return dest


def write_lab_tar(lab_dir: str | Path, tar_path: str | Path, prefix: str = "result") -> Path:
    """Pack a Lab into a tar (gzip if the name ends in .gz/.tgz); prefix "" = flat, "." = './...'."""
    lab_dir, tar_path = Path(lab_dir), Path(tar_path).absolute()
    gzip = tar_path.name.endswith((".gz", ".tgz"))
    tmp = tar_path.with_name(f".{tar_path.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz" if gzip else "w", format=tarfile.PAX_FORMAT) as tf:
            arcname = prefix.rstrip("/")
            if arcname:
                tf.add(lab_dir, arcname=arcname)
            else:
                for child in sorted(lab_dir.iterdir()):
                    tf.add(child, arcname=child.name)
        os.replace(tmp, tar_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tar_path


_README = """# RepX demo Lab

Written by repx-tui (`repx-tui demo`), not by Nix. Same layout as a RepX 0.5.0 Lab:

* run `simulation`: stage-A-producer (a sweep over count = 3, 5), stage-B-producer,
  stage-C-consumer (reads A and B), stage-D-sum-squares (scatter-gather: 3 branches of
  extract -> square, gather sums them);
* run `analysis`: stage-E-report, which reads the `simulation` run's metadata;
* group `all` = both runs.

The host tools are copies of the building machine's own (dynamically linked) binaries, so this
Lab runs on that machine, or on a target with the same system libraries.
"""
