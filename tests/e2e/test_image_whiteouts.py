"""Whiteouts in image layers (OCI image-spec layer.md) as the executor applies them to a bwrap rootfs.

Real parts only: crafted layer tars on top of a Lab's image, a job run by the detached agent on this
machine (target `local`), the real executor.sh and bwrap. A whiteout that is not applied leaves a job
running on files the image says are deleted; one applied through a link would delete host files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests import labgen
from tests.e2e.test_images_trust import Member, append_layers, image_lab, producer, run_job, wait_marker, write_config

OPQ = ".wh..wh..opq"


def run_with_layers(tmp_path: Path, *layers: list[Member], listing: str = "") -> tuple[str, Path, Path]:
    """Run the image's producer with these layers on top; -> (marker, rootfs, the job's dir)."""
    lab_dir = image_lab(tmp_path / "lab")
    append_layers(lab_dir, *layers)
    job = producer(lab_dir)
    if listing:  # what the job itself sees
        script = lab_dir / "jobs" / job / "bin" / "stage-B-producer"
        script.write_text(script.read_text() + f'(cd {listing} && ls -A) > "$out/listing.txt"\n')
        labgen.rewrite_manifest(lab_dir)
    base, node_local = tmp_path / "store", tmp_path / "node"
    run_job(write_config(tmp_path, base, node_local), lab_dir, job)
    (image,) = Lab.load(lab_dir).images.values()
    return wait_marker(base, job), node_local / "cache" / "images" / image.tag / "rootfs", base / "outputs" / job


def whiteouts_left(rootfs: Path) -> list[str]:
    return [str(p.relative_to(rootfs)) for p in rootfs.rglob(".wh.*")]


def stderr_of(job_dir: Path) -> str:
    return (job_dir / "repx" / "stderr.log").read_text()


def test_an_opaque_directory_hides_what_lower_layers_put_in_it(tmp_path):
    lower: list[Member] = [
        ("opt/wh", "dir", ""),
        ("opt/wh/keep", "file", "beside the opaque dir\n"),
        ("opt/wh/dir", "dir", ""),
        ("opt/wh/dir/a", "file", "a\n"),
        ("opt/wh/dir/b", "file", "b\n"),
        ("opt/wh/dir/sub", "dir", ""),
        ("opt/wh/dir/sub/deep", "file", "deep\n"),
        ("opt/wh/empty", "dir", ""),
        ("opt/wh/empty/gone", "file", "gone\n"),
    ]
    upper: list[Member] = [
        ("opt/wh/dir", "dir", ""),
        (f"opt/wh/dir/{OPQ}", "file", ""),
        ("opt/wh/dir/c", "file", "from the upper layer\n"),
        (f"opt/wh/empty/{OPQ}", "file", ""),  # only the marker: the dir stays, empty
    ]
    state, rootfs, job_dir = run_with_layers(tmp_path, lower, upper, listing="/opt/wh/dir")

    assert state == "SUCCESS", stderr_of(job_dir)
    assert sorted(p.name for p in (rootfs / "opt/wh/dir").iterdir()) == ["c"]
    assert (rootfs / "opt/wh/dir/c").read_text() == "from the upper layer\n"
    assert (rootfs / "opt/wh/empty").is_dir() and list((rootfs / "opt/wh/empty").iterdir()) == []
    assert (rootfs / "opt/wh/keep").read_text() == "beside the opaque dir\n"
    assert whiteouts_left(rootfs) == []
    assert (job_dir / "out" / "listing.txt").read_text() == "c\n"


def test_a_whiteout_removes_a_lower_file_dir_or_link_and_only_from_lower_layers(tmp_path):
    lower: list[Member] = [
        ("opt/wh", "dir", ""),
        ("opt/wh/file", "file", "old\n"),
        ("opt/wh/tree", "dir", ""),
        ("opt/wh/tree/x", "dir", ""),
        ("opt/wh/tree/x/y", "file", "y\n"),
        ("opt/wh/link", "link", "file"),
        ("opt/wh/again", "file", "lower\n"),
        ("opt/wh/stays", "file", "not whited out\n"),
    ]
    upper: list[Member] = [
        ("opt/wh/.wh.file", "file", ""),
        ("opt/wh/.wh.tree", "file", ""),
        ("opt/wh/.wh.link", "file", ""),
        ("opt/wh/.wh.again", "file", ""),
        ("opt/wh/again", "file", "made again by the upper layer\n"),  # same layer: not hidden
        ("opt/wh/.wh.never-there", "file", ""),
    ]
    state, rootfs, job_dir = run_with_layers(tmp_path, lower, upper, listing="/opt/wh")

    assert state == "SUCCESS", stderr_of(job_dir)
    assert sorted(p.name for p in (rootfs / "opt/wh").iterdir()) == ["again", "stays"]
    assert (rootfs / "opt/wh/again").read_text() == "made again by the upper layer\n"
    assert whiteouts_left(rootfs) == []
    assert (job_dir / "out" / "listing.txt").read_text() == "again\nstays\n"


@pytest.mark.parametrize("whiteout", [OPQ, ".wh.sentinel"])
@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_a_whiteout_through_a_lower_layers_link_is_refused_and_removes_nothing_outside(tmp_path, link, whiteout):
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    node_local = tmp_path / "node"
    node_local.mkdir()
    # the rootfs is <node>/cache/images/<tag>/rootfs: four levels up is <node> itself
    escape, outside = (str(host_dir), host_dir) if link == "absolute" else ("../../../..", node_local)
    (outside / "sentinel").write_text("must survive\n")
    state, rootfs, job_dir = run_with_layers(
        tmp_path, [("escape", "link", escape)], [("opt/after", "dir", ""), (f"escape/{whiteout}", "file", "")]
    )

    assert state == "FAIL"
    stderr = stderr_of(job_dir)
    assert "FAIL: image" in stderr and "whiteout below a link (escape)" in stderr, stderr
    assert (outside / "sentinel").read_text() == "must survive\n"
    assert (node_local / "store").is_dir() and any((node_local / "store").iterdir())
    assert not (rootfs.parent / "SUCCESS").exists()


def test_a_whiteout_naming_dotdot_is_refused(tmp_path):
    state, rootfs, job_dir = run_with_layers(tmp_path, [("opt/wh", "dir", ""), ("opt/wh/.wh...", "file", "")])

    assert state == "FAIL"
    assert "whiteout naming no file: opt/wh/.wh..." in stderr_of(job_dir)
    assert (rootfs / "opt" / "repx-demo").is_dir()  # "opt/wh/.." is opt: still there


def test_a_rootfs_cache_left_by_an_older_executor_is_unpacked_again(tmp_path):
    """An older executor marked its rootfs with an empty SUCCESS and ignored opaque whiteouts:
    such a cache is not trusted but rebuilt (a stale file in it must not reach the job)."""
    lab_dir = image_lab(tmp_path / "lab")
    append_layers(lab_dir, [("opt/wh", "dir", ""), ("opt/wh/fresh", "file", "from the layer\n")])
    job = producer(lab_dir)
    script = lab_dir / "jobs" / job / "bin" / "stage-B-producer"
    script.write_text(script.read_text() + '(cd /opt/wh && ls -A) > "$out/listing.txt"\n')
    labgen.rewrite_manifest(lab_dir)
    (image,) = Lab.load(lab_dir).images.values()
    base, node_local = tmp_path / "store", tmp_path / "node"
    old_cache = node_local / "cache" / "images" / image.tag
    (old_cache / "rootfs" / "opt" / "wh").mkdir(parents=True)
    (old_cache / "rootfs" / "opt" / "wh" / "stale").write_text("left by the old unpacking\n")
    (old_cache / "SUCCESS").write_text("")

    run_job(write_config(tmp_path, base, node_local), lab_dir, job)

    assert wait_marker(base, job) == "SUCCESS", stderr_of(base / "outputs" / job)
    assert (base / "outputs" / job / "out" / "listing.txt").read_text() == "fresh\n"
    assert not (old_cache / "rootfs" / "opt" / "wh" / "stale").exists()
    assert (old_cache / "SUCCESS").read_text().startswith("repx-tui rootfs")
