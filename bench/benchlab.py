"""Labs for the benchmarks: the demo Lab (tests/labgen.py) with layers of a chosen kind.

* incompressible: the demo's own padding, seeded random bytes;
* compressible: text-like padding (words of a Zipf-weighted vocabulary, numbers, line breaks)
  that gzip -6 packs about 2.2 : 1 and zstd -3 about 2.5 : 1, like the scripts, logs and data
  files of a real Lab's closure.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repx_tui import demoimage
from tests import labgen

VOCABULARY = 50_000
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class TextReader:
    """A file-like source of seeded text-like bytes (the demo's padding reader, another content)."""

    def __init__(self, seed: str, size: int) -> None:
        self.rng = random.Random(seed)
        self.left = size
        self.vocab = [
            "".join(self.rng.choice(_LETTERS) for _ in range(self.rng.randint(2, 10))) for _ in range(VOCABULARY)
        ]
        self.weights = [1 / (rank + 1) for rank in range(VOCABULARY)]
        self.pending = b""

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        while len(self.pending) < n:
            self.pending += self._paragraph()
        data, self.pending = self.pending[:n], self.pending[n:]
        self.left -= n
        return data

    def _paragraph(self) -> bytes:
        words = self.rng.choices(self.vocab, self.weights, k=4000)
        out = []
        for i, word in enumerate(words):
            out.append(word)
            if i % 7 == 6:
                out.append(str(self.rng.getrandbits(18)))
            if i % 12 == 11:
                out.append("\n")
        return " ".join(out).encode()


@contextlib.contextmanager
def _padding(reader: type) -> Iterator[None]:
    original = demoimage._RandomReader
    demoimage._RandomReader = reader  # type: ignore[misc]
    try:
        yield
    finally:
        demoimage._RandomReader = original  # type: ignore[misc]


def make_lab(dest: Path, kind: str, *, layers: int, layer_mib: int, **options: Any) -> Path:
    """A Lab with `layers` data layers of `layer_mib` MiB (plus the rootfs layer) of `kind` content."""
    reader = TextReader if kind == "compressible" else demoimage._RandomReader
    with _padding(reader):
        return labgen.make_lab(dest, "big_layers", image_layers=layers + 1, layer_size_kib=layer_mib * 1024, **options)
