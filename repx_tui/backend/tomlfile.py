"""Reading TOML with errors that name the file, the line and the key.

A file a user names may be anything: a FIFO or a device (reading would hang or never end), a
huge file, or text that nests deeply enough to exhaust the parser's recursion. Each of these
is one ConfigError line, never a hang or a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from repx_tui.backend.errors import ConfigError
from repx_tui.backend.files import NotRegular, open_regular_fd

MAX_TOML_BYTES = 16 << 20  # config and resources files are small; more is a mistake
MAX_DEPTH = 32  # tables and arrays; upstream's schema needs 4

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]\s*(#.*)?$")

# A validator returns True/None (fine), False (wrong type) or a string (what is wrong).
Check = Callable[[Any], "bool | str | None"] | type | tuple[type, ...]


def shown_path(path: Path | str) -> str:
    """The path as one printable line (a name with a newline would split the error line)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


class TomlDoc:
    """A parsed TOML file that can say on which line a table or key was written."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.text = text
        self.data = data
        self._lines = text.splitlines()

    @classmethod
    def load(cls, path: Path) -> TomlDoc:
        return cls.parse(path, read_text_file(path))

    @classmethod
    def parse(cls, path: Path, text: str) -> TomlDoc:
        where = shown_path(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: invalid TOML: {_one_line(str(exc))}") from None
        except RecursionError:
            raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise ConfigError(f"{where}: invalid TOML: {_one_line(str(exc))[:120]}") from None
        if _too_deep(data):
            raise ConfigError(f"{where}: tables or arrays nested more than {MAX_DEPTH} deep")
        return cls(path, text, data)

    def line_of(self, table: tuple[str, ...], key: str | None = None, index: int | None = None) -> int | None:
        """1-based line of `key` inside `[table]` (or of the table header when key is None).

        `index` picks the index-th `[[table[0]]]` entry of an array of tables (0-based)."""
        lines = list(enumerate(self._lines, start=1))
        if index is not None and table:
            lines = self._array_entry(table[0], index, lines)
        wanted = ".".join(table)
        current = ""
        header_line: int | None = None
        for number, line in lines:
            match = _HEADER.match(line)
            if match:
                current = _normalise_table(match.group(1))
                if current == wanted and header_line is None:
                    header_line = number
                    if key is None:
                        return number
                continue
            if key is None:
                continue
            stripped = line.strip()
            if current == wanted and re.match(rf'^["\']?{re.escape(key)}["\']?\s*=', stripped):
                return number
            # dotted keys in a parent table: targets.x.base_path = ...
            dotted = ".".join(part for part in (current, stripped.split("=", 1)[0].strip()) if part)
            if "=" in stripped and _normalise_table(dotted) == f"{wanted}.{key}".strip("."):
                return number
        return header_line

    def _array_entry(self, name: str, index: int, lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """The lines from the index-th `[[name]]` header up to the next one (all if not found)."""
        starts = [
            pos
            for pos, (_, line) in enumerate(lines)
            if (m := _ARRAY_HEADER.match(line)) and _normalise_table(m.group(1)) == name
        ]
        if index >= len(starts):
            return lines
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        return lines[starts[index] : end]

    def error(self, table: tuple[str, ...], key: str | None, message: str, index: int | None = None) -> ConfigError:
        line = self.line_of(table, key, index)
        where = f"{shown_path(self.path)}:{line}" if line else shown_path(self.path)
        parts = [_shown_key(part) for part in ((*table, key) if key else table)]  # the line tells which entry
        return ConfigError(f"{where}: {'.'.join(parts)}: {_one_line(message)}")


def read_text_file(path: Path, what: str = "file", limit: int = MAX_TOML_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes, else one ConfigError line.

    Opened without blocking and checked with fstat before reading, so a FIFO with no writer,
    a device or a directory is refused at once instead of hanging or reading forever."""
    where = shown_path(path)
    try:
        fd = open_regular_fd(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except NotRegular as kind:
        raise ConfigError(f"{where}: not a regular {what} ({kind})") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise ConfigError(f"{where}: {info.st_size} bytes; a {what} of more than {limit >> 20} MiB is refused")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew while we read
        raise ConfigError(f"{where}: a {what} of more than {limit >> 20} MiB is refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def _too_deep(data: Any) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split()) if not text.isprintable() else text


def _normalise_table(name: str) -> str:
    return ".".join(part.strip().strip('"').strip("'") for part in name.split("."))


def check_keys(
    doc: TomlDoc,
    table: tuple[str, ...],
    values: Mapping[str, Any],
    allowed: Mapping[str, Check],
    index: int | None = None,
) -> None:
    """Reject unknown keys and bad values, naming file, line and key.

    A check is a type (or tuple of types), or a function returning True/None when the value is
    fine, False for "wrong type", or a string saying what is wrong."""
    for key, value in values.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise doc.error(table, key, f"unknown key (known keys: {known})", index)
        check = allowed[key]
        if isinstance(check, (type, tuple)):
            ok: bool | str | None = isinstance(value, check) and not (
                isinstance(value, bool) and bool not in _types(check)
            )
        else:
            ok = check(value)
        if isinstance(ok, str):
            raise doc.error(table, key, ok, index)
        if ok is False:
            raise doc.error(table, key, f"wrong type ({type(value).__name__}: {short_repr(value)})", index)


def _types(check: type | tuple[type, ...]) -> tuple[type, ...]:
    return check if isinstance(check, tuple) else (check,)


def _shown_key(key: str) -> str:
    return key if key.isprintable() else repr(key)


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
