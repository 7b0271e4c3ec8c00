"""Property: a valid Lab, mutated at random (JSON values of the wrong type, deleted keys, odd
strings, huge numbers, deep nesting, control characters, broken text, FIFOs, links anywhere to
anywhere), loaded from its directory or from a tar, either loads or fails with one LabError
line: never another exception, and never a file created outside the Lab or the Lab cache."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.errors import LabError
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Resources
from repx_tui.backend.schedulers.jobspec import sink_step
from repx_tui.backend.schedulers.slurm import checked_directives, job_directives
from tests import labgen

SETTINGS = settings(
    deadline=None,
    max_examples=120,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEEP = "__deep_nesting__"
ODD_TEXT = [
    "",
    ".",
    "..",
    "../x",
    "/etc/passwd",
    "a b",
    "$(id)",
    "x\ny",
    "\x00",
    "-rf",
    "é",
    "\u2028",
    "4G",
    "4096",
    "00:05:00",
    "1-12",
    "--exclusive",
    "--a\n#SBATCH --b",
    "x" * 300,
    "jobs",
    "@all",
]
ABSOLUTE_INSIDE = "<the Lab's own absolute path>/store"
LINK_TARGETS = [
    "/etc/passwd",
    "/dev/zero",
    "/tmp",
    "..",
    "../..",
    "../bin",
    ".",
    "loop",
    "a/../../..",
    "store",
    "../../../store",
    "lab/lab-metadata.json",
    "missing",
    "../../lab/readme",
]
# Inside the Lab here (the copy is named lab), outside it on a target: drawn as often as all others.
HERE_ONLY_TARGETS = [ABSOLUTE_INSIDE, "../lab", "../lab/store", "../lab/readme/README.md"]

odd_text = st.one_of(st.text(max_size=12), st.sampled_from(ODD_TEXT))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), odd_text, st.just(DEEP))
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(odd_text, kids, max_size=3), max_leaves=6
)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """One writable Lab with an image (so image manifests and layer links are in play)."""
    return labgen.make_lab(tmp_path_factory.mktemp("base") / "lab", "quick", image_layers=1, nix_like=False)


def json_files(lab: Path) -> list[str]:
    found = ["lab/lab-metadata.json", *sorted(p.relative_to(lab).as_posix() for p in (lab / "revision").iterdir())]
    return found + sorted(p.relative_to(lab).as_posix() for p in lab.glob("images/*/manifest.json"))


def json_paths(value: Any, here: tuple = ()) -> Iterator[tuple]:
    yield here
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*here, index))


def dump(doc: Any, depth: int) -> str:
    """JSON text; the DEEP marker becomes `depth` nested arrays (deeper than json.dumps can write)."""
    text = json.dumps(doc)
    return text.replace(json.dumps(DEEP), "[" * depth + "1" + "]" * depth)


def copy_lab(base: Path, into: Path) -> Path:
    # hard links: cheap, and every mutation replaces a file rather than writing into it
    return Path(shutil.copytree(base, into / "lab", symlinks=True, copy_function=os.link))


def replace_file(path: Path, data: bytes | None = None, *, fifo: bool = False, link: str | None = None) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    if fifo:
        os.mkfifo(path)
    elif link is not None:
        path.symlink_to(link)
    elif data is not None:
        path.write_bytes(data)


def mutate_json(lab: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(json_files(lab)), label="file")
    doc = json.loads((lab / rel).read_text())
    path = data.draw(st.sampled_from(list(json_paths(doc))), label="json path")
    op = data.draw(st.sampled_from(["replace", "delete", "wrap", "rename-key"]), label="op")
    new = data.draw(json_values, label="value")
    if not path:
        doc = new if op == "replace" else [doc]
    else:
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if op == "replace":
            parent[last] = new
        elif op == "delete":
            del parent[last]
        elif op == "wrap":
            parent[last] = [parent[last]]
        elif isinstance(parent, dict):
            parent[data.draw(odd_text, label="new key")] = parent.pop(last)
    depth = data.draw(st.sampled_from([3, 70, 900, 5000]), label="depth")
    replace_file(lab / rel, dump(doc, depth).encode())


def mutate_text(lab: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(json_files(lab)), label="file")
    text = (lab / rel).read_bytes()
    cut = data.draw(st.integers(0, len(text)), label="cut")
    raw = data.draw(
        st.sampled_from(
            [
                text[:cut],
                text[:cut] + b"\xff" + text[cut:],
                b"[" * 100_000,
                b'{"a":' * 50_000,
                b"9" * 6000,
                b"NaN",
                b"",
                text.replace(b",", b",\x00", 1),
                text[:cut] + b"1e999999" + text[cut:],
            ]
        ),
        label="text",
    )
    replace_file(lab / rel, raw)


def some_entry(lab: Path, data: st.DataObject) -> Path:
    entries = sorted(p for p in lab.rglob("*") if "host-tools" not in p.parts or p.name == "bin")
    return data.draw(st.sampled_from(entries), label="entry")


def mutate_files(lab: Path, data: st.DataObject) -> None:
    op = data.draw(st.sampled_from(["fifo", "link-over", "new-link", "delete"]), label="fs op")
    target = data.draw(st.sampled_from(LINK_TARGETS) | st.sampled_from(HERE_ONLY_TARGETS), label="link target")
    target = str(lab / "store") if target == ABSOLUTE_INSIDE else target
    if op == "new-link":
        parent = data.draw(st.just(lab) | st.builds(some_entry, st.just(lab), st.just(data)), label="parent")
        parent = parent if parent.is_dir() and not parent.is_symlink() else parent.parent
        replace_file(parent / data.draw(st.sampled_from(["x", "loop", "bin", "lab"]), label="name"), link=target)
        return
    entry = some_entry(lab, data)
    replace_file(entry, fifo=op == "fifo", link=target if op == "link-over" else None)


def snapshot(where: Path) -> set[str]:
    return {p.relative_to(where).as_posix() for p in where.rglob("*")}


def mutate_hints(lab: Path, data: st.DataObject) -> None:
    """A job's or an executable's resource hint set to anything (wrong types, odd strings)."""
    rel = data.draw(
        st.sampled_from(
            sorted(
                p.relative_to(lab).as_posix()
                for p in lab.glob("revision/metadata-*.json")
                if p.name != "metadata-top.json"
            )
        ),
        label="file",
    )
    doc = json.loads((lab / rel).read_text())
    job = doc["jobs"][data.draw(st.sampled_from(sorted(doc["jobs"])), label="job")]
    holders = [job] + list(job.get("executables", {}).values())
    holder = data.draw(st.sampled_from(holders), label="holder").setdefault("resource_hints", {})
    key = data.draw(st.sampled_from(["mem", "cpus", "time", "partition", "sbatch_opts", "gpus"]), label="key")
    holder[key] = data.draw(
        st.one_of(json_values, st.sampled_from(["4 G", "8GB", "1-0", "a,b", "x y", 0, -1])), label="hint"
    )
    replace_file(lab / rel, dump(doc, 3).encode())


def assert_links_stay_inside_on_a_target(lab: Path, where: Path) -> None:
    """Copy the loaded Lab as the sync does (links kept) to <where>/base/artifacts, a different
    name and depth than here, and check there that no link leads out and that every listed file
    is reached through real directories only."""
    artifacts = where / "base" / "artifacts"
    shutil.copytree(lab, artifacts, symlinks=True, copy_function=os.link)
    for path in artifacts.rglob("*"):
        if path.is_symlink():
            real = Path(os.path.realpath(path))
            assert real == artifacts or artifacts in real.parents, f"{path} -> {os.readlink(path)} leaves {artifacts}"
    manifest = json.loads(next((artifacts / "lab").glob("*lab-metadata.json")).read_text())
    for entry in manifest["files"]:
        parent = (artifacts / entry["path"]).parent
        assert os.path.realpath(parent) == str(parent), f"{entry['path']} is reached through a link"


def load_and_use(source: Path) -> None:
    """Lab.load, then what the front ends and the SLURM submission do with a loaded Lab: only
    LabError may come out, and only from load (what it accepts, submission must take as is)."""
    lab = Lab.load(source)
    json.dumps(lab.to_summary())
    for job in lab.jobs.values():
        _ = job.short_id, lab.image_for_job(job.id), lab.upstream(job.id)
        if job.is_scatter_gather:
            _ = job.step_order, sink_step(job)
        checked_directives(job.id, job_directives(Resources(), job, "target")[0])
        json.dumps({"params": job.params, "outputs": [e.outputs for e in job.executables.values()]})
    try:
        lab.resolve(list(lab.runs) + [f"@{g}" for g in lab.groups])
    except LabError as exc:
        raise AssertionError(f"a loaded Lab failed to resolve its own runs: {exc}") from None


def check(base: Path, data: st.DataObject, mutate) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "work").mkdir()  # the Lab and its siblings: where escaping links would lead
        lab = copy_lab(base, tmp / "work")
        mutate(lab, data)
        as_tar = data.draw(st.booleans(), label="as tar")
        source = labgen.write_lab_tar(lab, tmp / "lab.tar") if as_tar else lab
        before = snapshot(tmp / "work")
        saved = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        try:
            load_and_use(source)
            loaded = True
        except LabError as exc:
            assert "\n" not in exc.message and "\n" not in (exc.hint or ""), exc.message
            loaded = False
        finally:
            if saved is None:
                del os.environ["XDG_CACHE_HOME"]
            else:
                os.environ["XDG_CACHE_HOME"] = saved
        assert snapshot(tmp / "work") == before  # nothing created, changed into a dir or removed
        assert set(os.listdir(tmp)) <= {"work", "lab.tar", "cache"}
        labs = tmp / "cache" / "repx-tui" / "labs"
        for entry in os.listdir(labs) if labs.exists() else []:
            assert re.fullmatch(r"[0-9a-f]{64}", entry)  # complete entries only: no staging left
        if loaded:
            assert_links_stay_inside_on_a_target(lab, tmp / "target")


@SETTINGS
@given(data=st.data())
def test_mutated_json_loads_or_fails_with_one_line(base, data):
    check(base, data, mutate_json)


@SETTINGS
@given(data=st.data())
def test_mutated_text_loads_or_fails_with_one_line(base, data):
    check(base, data, mutate_text)


@SETTINGS
@given(data=st.data())
def test_mutated_files_and_links_load_or_fail_with_one_line(base, data):
    check(base, data, mutate_files)


@SETTINGS
@given(data=st.data())
def test_mutated_resource_hints_load_or_fail_with_one_line(base, data):
    check(base, data, mutate_hints)
