"""Hostile and odd Labs on this machine: tars that try to write outside the cache, links that
would lead elsewhere on the target, metadata of the wrong type, FIFOs, devices, huge and deeply
nested files. Each gets one LabError line (or exit 1 from the CLI), never a traceback or a hang,
and nothing is created outside the Lab cache."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from repx_tui.backend.errors import LabError
from repx_tui.backend.lab import Lab, lab_cache_dir
from tests import labgen

CLI_TIMEOUT = 60  # a FIFO or device that is opened blocks forever: the deadline is the failure


@pytest.fixture
def quick_lab(tmp_path) -> Path:
    path = labgen.make_lab(tmp_path / "lab", "quick")
    labgen.make_writable(path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The Lab cache right under tmp_path, so 'outside the cache' is tmp_path's other entries."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def one_line_error(call, *args) -> LabError:
    with pytest.raises(LabError) as caught:
        call(*args)
    assert "\n" not in caught.value.message and (caught.value.hint is None or "\n" not in caught.value.hint)
    return caught.value


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )


def assert_cli_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], result.stderr


def first_job(lab: Path, pname: str = "stage-A-producer") -> str:
    return labgen.job_ids(lab, pname)[0]


# ------------------------------------------------------------------------ tar members


def add(
    tf: tarfile.TarFile,
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    link: str = "",
    mode: int | None = None,
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    info.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    tf.addfile(info, io.BytesIO(data))


def evil_tar(path: Path, members: list[tuple]) -> Path:
    """A tar with a Lab manifest (so it is taken for a Lab tar), then the given members."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "result/lab/lab-metadata.json", data=b"{}")
        for member in members:
            add(tf, *member)
    return path


def symlink_chain_tar(path: Path, levels_up: int) -> Path:
    """CVE-2025-4517's shape: short links that expand to very long directory names, so
    os.path.realpath gives up (name too long) and takes the last links for plain names,
    while the kernel follows them: `escape` leads levels_up directories above the Lab."""
    long = "d" * 247
    letters = "abcdefghijklmnop"
    members: list[tuple] = []
    here = ""
    for letter in letters:
        members += [(f"result/{here}{long}", tarfile.DIRTYPE), (f"result/{here}{letter}", tarfile.SYMTYPE, b"", long)]
        here += long + "/"
    deep = "/".join(letters) + "/" + "l" * 254
    members.append((f"result/{deep}", tarfile.SYMTYPE, b"", "../" * len(letters)))
    members.append(("result/escape", tarfile.SYMTYPE, b"", deep + "/.." * levels_up))
    members.append(("result/escape/pwned", tarfile.REGTYPE, b"owned\n"))
    return evil_tar(path, members)


def assert_nothing_outside(tmp_path: Path, cache: Path, *expected: str) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cache", *expected])
    assert list((cache / "repx-tui" / "labs").iterdir()) == []  # no entry, no staging left over


def test_symlink_chain_with_long_names_cannot_write_outside(tmp_path, cache):
    # staging is cache/repx-tui/labs/.<key>-xxx: four levels up is tmp_path itself
    tar = symlink_chain_tar(tmp_path / "evil.tar", levels_up=4)
    error = one_line_error(Lab.load, tar)
    assert error.message.startswith(f"{tar}: tar member ") and "refusing to unpack" in error.message
    assert len(error.message) < 400  # the 4000-character member name is shortened
    assert not (tmp_path / "pwned").exists()
    assert_nothing_outside(tmp_path, cache, "evil.tar")


@pytest.mark.parametrize(
    "members,why",
    [
        ([("result/../../escaped", tarfile.REGTYPE, b"x")], "points outside the Lab"),
        ([("/tmp/escaped-abs", tarfile.REGTYPE, b"x")], "points outside the Lab"),
        ([("result/jobs/link", tarfile.SYMTYPE, b"", "../../escaped")], "escapes the Lab"),
        ([("result/jobs/link", tarfile.SYMTYPE, b"", "/tmp")], "escapes the Lab"),
        # each link stays inside by itself; '..' after following d/s climbs above the Lab
        (
            [("result/d/s", tarfile.SYMTYPE, b"", ".."), ("result/t", tarfile.SYMTYPE, b"", "d/s/..")],
            "escapes the Lab: it leaves the Lab",
        ),
        ([("result/loop", tarfile.SYMTYPE, b"", "loop/x")], "is a loop of links"),
        # a link to a directory inside, then a file through it: never written through a link
        (
            [("result/jobs/link", tarfile.SYMTYPE, b"", "../store"), ("result/jobs/link/f", tarfile.REGTYPE, b"x")],
            "would be written through 'jobs/link'",
        ),
        ([("result/jobs/hard", tarfile.LNKTYPE, b"", "/etc/passwd")], "hard link"),
        ([("result/jobs/hard", tarfile.LNKTYPE, b"", "result/../../escaped")], "hard link"),
        (
            [("other/file", tarfile.REGTYPE, b"x"), ("result/jobs/hard", tarfile.LNKTYPE, b"", "other/file")],
            "hard link",
        ),
        (
            [
                ("result/jobs/hard", tarfile.LNKTYPE, b"", "result/jobs/later"),
                ("result/jobs/later", tarfile.REGTYPE, b"x"),
            ],
            "hard link",
        ),
        ([("result/dev/zero", tarfile.CHRTYPE)], "is a character device"),
        ([("result/dev/fifo", tarfile.FIFOTYPE)], "is a FIFO"),
        (
            [("result/readme/x", tarfile.REGTYPE, b"1"), ("result/readme/x", tarfile.SYMTYPE, b"", "../lab")],
            "names a path the tar already holds",
        ),
    ],
)
def test_tar_escapes_are_refused_before_anything_is_written(tmp_path, cache, members, why):
    tar = evil_tar(tmp_path / "evil.tar", members)
    error = one_line_error(Lab.load, tar)
    assert error.message.startswith(f"{tar}: tar member ") and why in error.message
    assert not Path("/tmp/escaped-abs").exists()
    assert_nothing_outside(tmp_path, cache, "evil.tar")


def append_to_tar(tar: Path, *members: tuple) -> None:
    with tarfile.open(tar, "a", format=tarfile.PAX_FORMAT) as tf:
        for member in members:
            add(tf, *member)


def test_tar_modes_are_sanitised_and_inner_hard_links_kept(tmp_path, cache):
    tar = labgen.make_lab_tar(tmp_path / "src", "quick")
    append_to_tar(
        tar,
        ("result/readme/suid", tarfile.REGTYPE, b"#!/bin/sh\n", "", 0o6777),
        ("result/readme/again", tarfile.LNKTYPE, b"", "result/readme/README.md"),
    )
    lab = Lab.load(tar)
    assert stat.S_IMODE(os.lstat(lab.root / "readme" / "suid").st_mode) == 0o755
    assert os.stat(lab.root / "readme" / "again").st_ino == os.stat(lab.root / "readme" / "README.md").st_ino
    assert (lab.host_tools_path / "bash").is_symlink()  # the Lab's own links to files are kept
    lab.verify()


def test_truncated_tar_is_one_line(tmp_path, cache):
    tar = labgen.make_lab_tar(tmp_path / "src", "quick")
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2])
    error = one_line_error(Lab.load, tar)
    assert error.message.startswith(f"{tar}: ")
    assert list((cache / "repx-tui" / "labs").iterdir()) == []


# ------------------------------------------------------------------------------ the cache


def test_cache_is_keyed_by_content_not_size_and_mtime(tmp_path, cache):
    first = labgen.make_lab(tmp_path / "v1", "quick")
    second = tmp_path / "v2"
    shutil.copytree(first, second, symlinks=True)
    labgen.make_writable(second)
    manifest = second / "lab" / "lab-metadata.json"
    manifest.write_text(manifest.read_text().replace('"lab_version":"1.0.0"', '"lab_version":"9.9.9"'))
    os.utime(manifest, (1, 1))
    tar = tmp_path / "lab.tar"
    sizes = []
    for source, version in ((first, "1.0.0"), (second, "9.9.9")):
        labgen.write_lab_tar(source, tar)
        os.utime(tar, (1, 1))  # Nix: every output has mtime 1
        sizes.append(tar.stat().st_size)
        lab = Lab.load(tar)
        assert lab.lab_version == version
        assert lab.root.name == hashlib.sha256(tar.read_bytes()).hexdigest()
    assert sizes[0] == sizes[1]
    entries = sorted(p.name for p in lab_cache_dir().iterdir())
    assert len(entries) == 2 and not any(e.startswith(".") for e in entries)  # two complete entries, no staging


# ---------------------------------------------------------- links judged as on the target


def move_and_link(lab: Path, rel: str, hidden: str) -> str:
    """Move the directory rel to hidden (both Lab-relative) and leave a relative link in its place."""
    shutil.move(lab / rel, lab / hidden)
    target = os.path.relpath(lab / hidden, (lab / rel).parent)
    (lab / rel).symlink_to(target)
    return target


def test_absolute_link_into_the_lab_is_refused(quick_lab):
    (quick_lab / "readme" / "abs").symlink_to(quick_lab / "readme" / "README.md")
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"readme/abs: symlink points outside the Lab (to {quick_lab}/readme/README.md)")
    assert "absolute" in error.message


def test_link_that_leaves_and_reenters_the_lab_is_refused(quick_lab):
    # here ../../lab/ is the Lab itself; on the target the Lab is <base>/artifacts
    (quick_lab / "readme" / "again").symlink_to(f"../../{quick_lab.name}/readme/README.md")
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"readme/again: symlink points outside the Lab (to ../../{quick_lab.name}/")


def test_images_link_to_base_bin_is_refused(quick_lab):
    (quick_lab / "images").symlink_to("../bin")
    (quick_lab.parent / "bin").mkdir()
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith("images: symlink points outside the Lab (to ../bin)")
    result = run_cli("lab", str(quick_lab), "--verify")
    assert_cli_error(result, "images", "../bin")


@pytest.mark.parametrize("kind", ["base-bin", "reenter", "absolute"])
def test_sync_refuses_such_a_lab_before_writing_anything(quick_lab, tmp_path, kind):
    target = {"base-bin": "../bin", "reenter": f"../{quick_lab.name}/store", "absolute": f"{quick_lab}/store"}[kind]
    (quick_lab / "images").symlink_to(target)
    base = tmp_path / "base"
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{base}"\n')
    result = run_cli("--config", str(config), "sync", "--lab", str(quick_lab), "--target", "local")
    assert_cli_error(result, f"images: symlink points outside the Lab (to {target})")
    assert not base.exists() and not (tmp_path / "bin").exists()


@pytest.mark.parametrize("place", ["images", "revision", "job", "job-bin", "host-tools-bin"])
def test_link_in_place_of_a_directory_the_sync_writes_into(quick_lab, place):
    job = first_job(quick_lab)
    tools = next((quick_lab / "host-tools").iterdir()).name
    rel, hidden = {
        "images": ("images", "store/images"),
        "revision": ("revision", "store/revision"),
        "job": (f"jobs/{job}", f"store/{job}"),
        "job-bin": (f"jobs/{job}/bin", f"jobs/{job}/real-bin"),
        "host-tools-bin": (f"host-tools/{tools}/bin", f"host-tools/{tools}/real-bin"),
    }[place]
    if place == "images":
        (quick_lab / "store" / "images").mkdir()
        (quick_lab / "images").symlink_to("store/images")
        target = "store/images"
    elif place == "host-tools-bin":  # keep its links to ../../../store/<tool> resolving
        (quick_lab / hidden).mkdir()
        (quick_lab / rel).rename(quick_lab / hidden / "bin")
        (quick_lab / rel).symlink_to("real-bin/bin")
        target = "real-bin/bin"
    else:
        target = move_and_link(quick_lab, rel, hidden)
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"{rel}: is a symlink (to {target}) where the Lab must have a directory")


def test_upstream_links_to_files_still_load(tmp_path):
    lab = Lab.load(labgen.make_lab(tmp_path / "lab", "quick", image_layers=1))
    image = next(iter(lab.images.values()))
    layer_link = lab.root / image.path / image.layers[0].digest / "layer.tar"
    assert layer_link.is_symlink() and os.readlink(layer_link).startswith("../../../store/")
    assert (lab.host_tools_path / "bash").is_symlink()
    lab.verify()


# ------------------------------------------------------------------ job values and types


def edit_job(lab: Path, pname: str, change) -> str:
    job = first_job(lab, pname)
    labgen.edit_json(lab / "revision/metadata-simulation.json", lambda d: change(d["jobs"][job]))
    return job


@pytest.mark.parametrize(
    "hints,path,problem",
    [
        ({"mem": 4096}, "resource_hints.mem", "wrong type (int"),
        ({"mem": "4 G"}, "resource_hints.mem", "is not a memory size"),
        ({"cpus": True}, "resource_hints.cpus", "wrong type (bool"),
        ({"cpus": "2"}, "resource_hints.cpus", "wrong type (str"),
        ({"cpus": 0}, "resource_hints.cpus", "between 1 and"),
        ({"time": "2 hours"}, "resource_hints.time", "is not a SLURM time"),
        ({"time": 60}, "resource_hints.time", "wrong type (int"),
        ({"partition": "gpu\n#SBATCH --x"}, "resource_hints.partition", "control character"),
        ({"partition": "a b"}, "resource_hints.partition", "is not a partition name"),
        ({"sbatch_opts": "--exclusive"}, "resource_hints.sbatch_opts", "must be a list"),
        ({"sbatch_opts": ["--a\n#SBATCH --b"]}, "resource_hints.sbatch_opts", "control character"),
        ({"sbatch_opts": [3]}, "resource_hints.sbatch_opts", "wrong type (int"),
        ({"gpus": 1}, "resource_hints.gpus", "unknown resource hint"),
    ],
)
def test_job_resource_hints_of_the_wrong_type_or_format(quick_lab, hints, path, problem):
    job = edit_job(quick_lab, "stage-A-producer", lambda j: j["resource_hints"].update(hints))
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"revision/metadata-simulation.json: job {job}, {path}: ")
    assert problem in error.message


def test_executable_resource_hints_are_checked_too(quick_lab):
    job = edit_job(
        quick_lab, "stage-D-sum-squares", lambda j: j["executables"]["step-extract"]["resource_hints"].update(mem=512)
    )
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(
        f"revision/metadata-simulation.json: job {job}, executable step-extract, resource_hints.mem: wrong type"
    )


def test_scatter_gather_steps_need_one_final_step(quick_lab):
    job = edit_job(quick_lab, "stage-D-sum-squares", lambda j: j["executables"]["step-square"].pop("deps"))
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"revision/metadata-simulation.json: job {job}, executables: ")
    assert "exactly one final step, not 2" in error.message


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_deep_params_and_bad_outputs(quick_lab):
    job = edit_job(quick_lab, "stage-A-producer", lambda j: j["params"].update(deep=nested(200)))
    assert "params: nested more than" in one_line_error(Lab.load, quick_lab).message
    edit_job(quick_lab, "stage-A-producer", lambda j: j["params"].update(deep=nested(10)))
    Lab.load(quick_lab)  # moderate nesting is fine
    edit_job(quick_lab, "stage-A-producer", lambda j: j["executables"]["main"]["outputs"].update(data_a="$out/a\nb"))
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith(f"revision/metadata-simulation.json: job {job}, executable main, outputs.data_a:")


def test_null_hints_and_upstream_values_load(quick_lab):
    edit_job(
        quick_lab,
        "stage-A-producer",
        lambda j: j["resource_hints"].update(
            mem="4G", cpus=2, time="1-12", partition="batch,debug", sbatch_opts=["--exclusive"]
        ),
    )
    edit_job(quick_lab, "stage-B-producer", lambda j: j["resource_hints"].update(partition=None))
    job = Lab.load(quick_lab).jobs[first_job(quick_lab)]
    assert job.resource_hints["time"] == "1-12"


# --------------------------------------------------------- FIFOs, devices, sizes, nesting


def test_fifo_as_the_lab_path(tmp_path):
    fifo = tmp_path / "lab.tar"
    os.mkfifo(fifo)
    assert_cli_error(run_cli("lab", str(fifo)), str(fifo), "is a FIFO")


def test_device_as_the_lab_path():
    assert_cli_error(run_cli("lab", "/dev/zero"), "/dev/zero", "is a character device")


def test_fifo_in_place_of_metadata(quick_lab):
    (quick_lab / "revision" / "metadata-top.json").unlink()
    os.mkfifo(quick_lab / "revision" / "metadata-top.json")
    assert_cli_error(run_cli("lab", str(quick_lab)), "revision/metadata-top.json: root metadata is a FIFO")


def test_device_in_place_of_metadata(quick_lab):
    target = quick_lab / "revision" / "metadata-top.json"
    target.unlink()
    try:
        os.mknod(target, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("mknod needs root")
    assert_cli_error(run_cli("lab", str(quick_lab)), "revision/metadata-top.json: root metadata is a character device")


def test_link_to_a_device_in_place_of_metadata(quick_lab):
    target = quick_lab / "revision" / "metadata-top.json"
    target.unlink()
    target.symlink_to("/dev/zero")
    assert "revision/metadata-top.json: symlink points outside" in one_line_error(Lab.load, quick_lab).message


def test_fifo_in_place_of_a_listed_file_fails_verify(quick_lab):
    (quick_lab / "readme" / "README.md").unlink()
    os.mkfifo(quick_lab / "readme" / "README.md")
    assert_cli_error(run_cli("lab", str(quick_lab), "--verify"), "readme/README.md is a FIFO")


def test_huge_metadata_is_refused_before_reading(quick_lab):
    top = quick_lab / "revision" / "metadata-top.json"
    with open(top, "r+b") as fh:
        fh.truncate(257 << 20)  # sparse: costs no disk
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith("revision/metadata-top.json: root metadata is ") and "256 MiB" in error.message


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"a":' * 100_000, "nested too deeply"),
        ('{"repx_version": ' + "9" * 5000 + "}", "too many digits"),
        ('{"repx_version": NaN}', "NaN"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["deep-array", "deep-object", "huge-int", "nan", "not-utf8"],
)
def test_unparsable_metadata_is_one_line(quick_lab, text, problem):
    top = quick_lab / "revision" / "metadata-top.json"
    top.write_bytes(text if isinstance(text, bytes) else text.encode())
    error = one_line_error(Lab.load, quick_lab)
    assert error.message.startswith("revision/metadata-top.json: ") and problem in error.message


def test_deep_nesting_through_the_cli(quick_lab):
    (quick_lab / "revision" / "metadata-top.json").write_text("[" * 100_000)
    assert_cli_error(run_cli("lab", str(quick_lab)), "revision/metadata-top.json", "nested too deeply")


def test_wrong_type_through_the_cli(quick_lab):
    edit_job(quick_lab, "stage-A-producer", lambda j: j["resource_hints"].update(mem=4096))
    result = run_cli("lab", str(quick_lab), "--json")
    assert_cli_error(result, "revision/metadata-simulation.json", "resource_hints.mem", "wrong type (int")
    assert result.stdout == ""
