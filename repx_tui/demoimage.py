"""The demo Lab's container image: an exploded docker archive of a few layers (a small rootfs
with bash and the tools the demo stages use, then padding layers), in upstream's image layout."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

from repx_tui.backend.hashing import sha256_file
from repx_tui.demolab import _NOT_IN_IMAGE, HOST_TOOLS, IMAGE_NAME, DemoOptions, compact_json, fake_store_hash

# -------------------------------------------------------------------------------- image


class _RandomReader:
    """A file-like source of seeded pseudo-random bytes, so big layers never sit in memory."""

    def __init__(self, seed: str, size: int) -> None:
        self.rng = random.Random(seed)
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


class ImageWriter:
    """Writes images/<h>-repx-shared-image.tar/ with layers in store/, like lab-packagers.nix."""

    def __init__(self, root: Path, options: DemoOptions) -> None:
        self.root = root
        self.options = options

    def write(self) -> str:
        count = self.options.image_layers
        digests = [self.write_layer(i, count) for i in range(1, count + 1)]
        config = {
            "architecture": "amd64",
            "created": "1970-01-01T00:00:01Z",
            "os": "linux",
            "config": {"Cmd": ["/bin/bash"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in digests]},
        }
        config_text = compact_json(config)
        config_name = hashlib.sha256(config_text.encode()).hexdigest() + ".json"
        image = f"images/{fake_store_hash('image', config_text)}-{IMAGE_NAME}.tar"
        image_dir = self.root / image
        image_dir.mkdir(parents=True)
        (image_dir / config_name).write_text(config_text)
        manifest = [
            {"Config": config_name, "Layers": [f"{d}/layer.tar" for d in digests], "RepoTags": [f"{IMAGE_NAME}:latest"]}
        ]
        (image_dir / "manifest.json").write_text(compact_json(manifest))
        for digest in digests:
            (image_dir / digest).mkdir()
            (image_dir / digest / "layer.tar").symlink_to(f"../../../store/{digest}-layer.tar")
        return image

    def write_layer(self, index: int, count: int) -> str:
        tmp = self.root / "store" / f".layer-{index}.tmp"
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
            if index == 1:
                _add_rootfs(tf)
            if index > 1 or count == 1:
                self.add_data(tf, index, seed=self.options.layer_seed if index == count else 0)
        digest = sha256_file(tmp)
        tmp.rename(self.root / "store" / f"{digest}-layer.tar")
        return digest

    def add_data(self, tf: tarfile.TarFile, index: int, seed: int | str) -> None:
        base = f"opt/repx-demo/layer-{index}"
        _add_dirs(tf, base, set())
        _add_bytes(tf, f"{base}/info.txt", f"demo data layer {index}, seed {seed}\n".encode(), 0o444)
        size = self.options.layer_size_kib * 1024
        if size:
            info = _tar_info(f"{base}/padding.bin", tarfile.REGTYPE, 0o444)
            info.size = size
            tf.addfile(info, _RandomReader(f"{index}:{seed}", size))


def _tar_info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 1
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_dirs(tf: tarfile.TarFile, rel: str, done: set[str]) -> None:
    parts = PurePosixPath(rel).parts
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name not in done:
            done.add(name)
            tf.addfile(_tar_info(name, tarfile.DIRTYPE, 0o1777 if name in ("tmp", "var/tmp") else 0o755))


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = _tar_info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _add_rootfs(tf: tarfile.TarFile) -> None:
    """Layer 1: the stage scripts' tools and their shared libraries at their host paths."""
    files = _rootfs_files()
    done: set[str] = set()
    for rel in ("tmp", "proc", "dev", "sys", "etc", "root", "home", "run", "var/tmp"):
        _add_dirs(tf, rel, done)
    if not any(rel.startswith("bin/") for rel in files):
        _add_symlink(tf, "bin", "usr/bin")
    for rel, source in sorted(files.items()):
        _add_dirs(tf, str(PurePosixPath(rel).parent), done)
        _add_bytes(tf, rel, Path(source).read_bytes(), 0o444 if rel.startswith("etc/") else 0o555)
    _add_bytes(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n", 0o444)
    _add_bytes(tf, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o444)


def _add_symlink(tf: tarfile.TarFile, name: str, target: str) -> None:
    info = _tar_info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    tf.addfile(info)


def _rootfs_files() -> dict[str, str]:
    """Image path (no leading '/') -> host file to copy, for tools, libraries and the loader."""
    files: dict[str, str] = {}
    tools = [t for t in HOST_TOOLS if t not in _NOT_IN_IMAGE]
    binaries = [p for t in tools if (p := shutil.which(t))]
    if os.path.exists("/usr/bin/env"):
        binaries.append("/usr/bin/env")  # the scripts' #! line
    for binary in binaries:
        files[os.path.abspath(binary).lstrip("/")] = os.path.realpath(binary)
        for lib in _shared_libraries(binary):
            files[lib.lstrip("/")] = os.path.realpath(lib)
    if os.path.isfile("/etc/ld.so.cache"):
        files["etc/ld.so.cache"] = "/etc/ld.so.cache"
    return files


def _shared_libraries(binary: str) -> list[str]:
    try:
        result = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    libs = []
    for line in result.stdout.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match and os.path.isfile(match.group(1)):
            libs.append(match.group(1))
    return libs
