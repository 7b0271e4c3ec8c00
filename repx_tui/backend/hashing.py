"""Streaming sha256 of files: Labs hold multi-GB layers, never read one whole into memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

CHUNK_SIZE = 1 << 20


def sha256_file(path: Path, on_chunk: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file (links followed); `on_chunk(n)` after every chunk read."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest.hexdigest()
