"""The display lines of one log stream, bounded whatever the job writes.

`\\n`, `\\r\\n` and a lone `\\r` each end a display line, so a progress bar that redraws itself with
`\\r` gives one line per update instead of one line that never ends. A line longer than
MAX_LINE_CHARS is cut there and marked with an ellipsis; the rest of it is dropped until its
line break. At most MAX_LINES lines and MAX_CHARS characters are kept, the oldest go first.
"""

from __future__ import annotations

import re

MAX_LINES = 10_000
MAX_LINE_CHARS = 64 * 1024
MAX_CHARS = 16 * 1024 * 1024
ELLIPSIS = "…"

_BREAK = re.compile(r"\r\n|\r|\n")


class LogLines:
    def __init__(
        self, max_lines: int = MAX_LINES, max_line_chars: int = MAX_LINE_CHARS, max_chars: int = MAX_CHARS
    ) -> None:
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self.max_chars = max_chars
        self.lines: list[str] = []
        self.chars = 0  # characters in self.lines
        self._partial = ""  # the line being written, at most max_line_chars
        self._clipped = False  # the line being written went past max_line_chars
        self._after_cr = False  # the text so far ended with \r: a \n first in the next is its pair

    @property
    def partial(self) -> str:
        """The unterminated last line as it would be shown (empty when there is none)."""
        return self._partial + ELLIPSIS if self._clipped else self._partial

    def clear(self) -> None:
        self.lines.clear()
        self.chars = 0
        self._partial, self._clipped, self._after_cr = "", False, False

    def feed(self, text: str) -> list[str]:
        """Add text; returns the display lines it completed that are still kept."""
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        if text:
            self._after_cr = text.endswith("\r")
        pieces = _BREAK.split(text)
        done = [self._finish(piece) for piece in pieces[:-1]]
        self._extend(pieces[-1])
        done = done[-self.max_lines :]
        self.lines.extend(done)
        self.chars += sum(map(len, done))
        self._trim()
        return done[max(0, len(done) - len(self.lines)) :]  # self.lines ends with what is kept of done

    def _finish(self, piece: str) -> str:
        line = self._partial + piece[: self.max_line_chars - len(self._partial)] if not self._clipped else self._partial
        clipped = self._clipped or len(self._partial) + len(piece) > self.max_line_chars
        self._partial, self._clipped = "", False
        return line + ELLIPSIS if clipped else line

    def _extend(self, piece: str) -> None:
        if self._clipped or not piece:
            return
        room = self.max_line_chars - len(self._partial)
        self._partial += piece[:room]
        self._clipped = len(piece) > room

    def _trim(self) -> None:
        """Drop the oldest lines past the limits."""
        drop = max(0, len(self.lines) - self.max_lines)
        chars = self.chars - sum(len(line) for line in self.lines[:drop])
        while chars > self.max_chars and drop < len(self.lines) - 1:
            chars -= len(self.lines[drop])
            drop += 1
        if drop:
            del self.lines[:drop]
            self.chars = chars
