"""Numbers in a target's output: ASCII digits or nothing, never a ValueError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from repx_tui.backend.textnum import decimal, signed, unsigned


def test_ascii_numbers_and_nothing_else():
    assert unsigned("0") == 0 and unsigned("042") == 42 and signed("-7") == -7 and signed("12") == 12
    for odd in ("", "²", "٣", "1²", " 1", "1 ", "+1", "-", "1.5", "0x1", "1_000"):
        assert unsigned(odd) is None, odd
    assert unsigned("-1") is None and signed("--1") is None and signed("-²") is None


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=12))
def test_any_text_gives_a_number_or_none(text):
    value, maybe_negative = unsigned(text), signed(text)
    if text.isascii() and text.isdigit():
        assert value == int(text) and maybe_negative == int(text)
    else:
        assert value is None


def test_decimals_as_targets_print_them_and_not_what_only_float_takes():

    assert decimal("1.5") == 1.5 and decimal("-2") == -2.0 and decimal("1733051502,25") == 1733051502.25
    assert decimal(".5") == 0.5 and decimal("3.") == 3.0
    for odd in ("nan", "NAN", "inf", "-Infinity", "1e9", "", ".", "-", "1.2.3", "١", " 1"):
        assert decimal(odd) is None, odd
