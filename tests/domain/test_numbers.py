"""Caller-number normalisation to E.164 (SPEC §3.1)."""

from __future__ import annotations

import pytest

from rtbridge.domain.errors import InvalidInput
from rtbridge.domain.numbers import is_e164, normalise_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12025550102", "+12025550102"),  # NANP with its country code
        ("2025550102", "+12025550102"),  # NANP without it
        ("+1 202-555-0102", "+12025550102"),
        ("(202) 555-0102", "+12025550102"),
        ("202.555.0102", "+12025550102"),
        ("+12025550102", "+12025550102"),
        (" 35924930101", "+35924930101"),  # '+' from a query string arrives as a space
        ("+35924930101", "+35924930101"),
        ("35924930101", "+35924930101"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+123456789012345", "+123456789012345"),  # 15 digits: the E.164 maximum
        ("+1234567", "+1234567"),  # 7 digits: the minimum accepted
    ],
)
def test_normalises(raw: str, expected: str) -> None:
    assert normalise_e164(raw, field="caller_number") == expected
    assert is_e164(expected)


def test_leading_space_is_a_plus_not_a_nanp_prefix() -> None:
    # Ten digits read as NANP only without an explicit '+' (a space counts as one).
    assert normalise_e164(" 2025550102", field="caller_number") == "+2025550102"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("202555010A", "digits and an optional leading +"),
        ("call me", "digits and an optional leading +"),
        ("", "digits and an optional leading +"),
        ("   ", "digits and an optional leading +"),
        ("1+2025550102", "digits and an optional leading +"),
        ("++12025550102", "digits and an optional leading +"),
        ("12345", "7 to 15 digits"),
        ("+123456", "7 to 15 digits"),
        ("+1234567890123456", "7 to 15 digits"),
        ("0201234567", "cannot start with 0"),
        ("+0201234567", "cannot start with 0"),
        ("5" * 5000, "too long"),
    ],
)
def test_refuses_with_field_named(raw: str, detail: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalise_e164(raw, field="caller_number")
    assert info.value.message.startswith("caller_number: ")
    assert detail in info.value.message
    assert info.value.status == 422


def test_error_names_the_given_field() -> None:
    with pytest.raises(InvalidInput, match=r"^inbound_number: "):
        normalise_e164("abc", field="inbound_number")


def test_non_string_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^caller_number: must be a string$"):
        normalise_e164(12025550102, field="caller_number")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("+12025550102", True),
        ("+1234567", True),
        ("+123456789012345", True),
        ("12025550102", False),
        ("+0201234567", False),
        ("+123456", False),
        ("+1234567890123456", False),
        ("+1 202 555 0102", False),
        ("", False),
        ("+12025550102\n", False),
    ],
)
def test_is_e164(value: str, ok: bool) -> None:
    assert is_e164(value) is ok
