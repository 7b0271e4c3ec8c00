"""Numbers read from a target's output: ASCII digits only.

`str.isdigit()` also accepts digits such as "²" that `int()` refuses, so a check with it lets
odd output through to a ValueError (a traceback for the user). Every parser of remote text
goes through these instead."""

from __future__ import annotations

import re

_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")


def unsigned(text: str) -> int | None:
    """ "42" -> 42; anything else (empty, signs, spaces, non-ASCII digits) -> None."""
    return int(text) if _UNSIGNED.fullmatch(text) else None


def signed(text: str) -> int | None:
    """ "-3" or "42" -> the number; anything else -> None."""
    return int(text) if _SIGNED.fullmatch(text) else None


__all__ = ["signed", "unsigned"]
