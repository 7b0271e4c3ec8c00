"""Reading TOML with errors that name the file, the line and the key."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from repx_tui.backend.errors import ConfigError

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


class TomlDoc:
    """A parsed TOML file that can say on which line a table or key was written."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.text = text
        self.data = data
        self._lines = text.splitlines()

    @classmethod
    def load(cls, path: Path) -> "TomlDoc":
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        return cls.parse(path, text)

    @classmethod
    def parse(cls, path: Path, text: str) -> "TomlDoc":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        return cls(path, text, data)

    def line_of(self, table: tuple[str, ...], key: str | None = None) -> int | None:
        """1-based line of `key` inside `[table]` (or of the table header when key is None)."""
        wanted = ".".join(table)
        current = ""
        header_line: int | None = None
        for number, line in enumerate(self._lines, start=1):
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
            if current == wanted and re.match(rf'^"?{re.escape(key)}"?\s*=', stripped):
                return number
            # dotted keys in a parent table: targets.x.base_path = ...
            dotted = ".".join(part for part in (current, stripped.split("=", 1)[0].strip()) if part)
            if "=" in stripped and _normalise_table(dotted) == f"{wanted}.{key}".strip("."):
                return number
        return header_line

    def error(self, table: tuple[str, ...], key: str | None, message: str) -> ConfigError:
        line = self.line_of(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        name = ".".join((*table, key) if key else table)
        return ConfigError(f"{where}: {name}: {message}")


def _normalise_table(name: str) -> str:
    return ".".join(part.strip().strip('"').strip("'") for part in name.split("."))


def check_keys(
    doc: TomlDoc,
    table: tuple[str, ...],
    values: Mapping[str, Any],
    allowed: Mapping[str, Callable[[Any], bool] | type | tuple[type, ...]],
) -> None:
    """Reject unknown keys and values of the wrong type, naming file, line and key."""
    for key, value in values.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise doc.error(table, key, f"unknown key (known keys: {known})")
        check = allowed[key]
        ok = check(value) if callable(check) and not isinstance(check, type) else isinstance(value, check)  # type: ignore[arg-type]
        if isinstance(value, bool) and check in (int, (int,)):
            ok = False
        if not ok:
            raise doc.error(table, key, f"wrong type ({type(value).__name__}: {value!r})")
