"""Numbers read from a target's output: ASCII digits only.

`str.isdigit()` also accepts digits such as "²" that `int()` refuses, so a check with it lets
odd output through to a ValueError (a traceback for the user). Every parser of remote text
goes through these instead; likewise `float()` takes "nan" and "inf", which no target means.
"""

from __future__ import annotations

import re

_UNSIGNED = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:[.,][0-9]*)?|-?[.,][0-9]+")


def unsigned(text: str) -> int | None:
    """ "42" -> 42; anything else (empty, signs, spaces, non-ASCII digits) -> None."""
    return int(text) if _UNSIGNED.fullmatch(text) else None


def signed(text: str) -> int | None:
    """ "-3" or "42" -> the number; anything else -> None."""
    return int(text) if _SIGNED.fullmatch(text) else None


def decimal(text: str) -> float | None:
    """ "1.5", "-2", "1733051502,123456" (bash's EPOCHREALTIME in a locale with a decimal comma)
    -> the number; "nan", "inf", "1e9", "" and the like -> None (float() would take some)."""
    return float(text.replace(",", ".")) if _DECIMAL.fullmatch(text) else None


__all__ = ["decimal", "signed", "unsigned"]
