"""Integers from outside are read only from ASCII digits, at most 18 of them."""

from __future__ import annotations

import pytest

from rtbridge.numerals import as_int, int_or_text, is_digits
from rtbridge.settings import parse_hostport


@pytest.mark.parametrize("text", ["0", "7", "0042", "9" * 18])
def test_ascii_digits_are_read(text: str) -> None:
    assert is_digits(text)
    assert as_int(text) == int(text)
    assert int_or_text(text) == int(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "²",  # isdigit() is true; int() raises
        "1²",
        "٣",  # Arabic-Indic three: isdigit() is true and int() reads 3
        "\uff11\uff12",  # fullwidth 12: the same
        "9" * 19,  # beyond a 64-bit column
        "9" * 5000,  # beyond int()'s 4300-digit limit for strings
        " 1",
        "1 ",
        "+1",
        "-1",
        "1.0",
        "0x10",
        "1_000",
    ],
)
def test_anything_else_is_not(text: str) -> None:
    assert not is_digits(text)
    assert as_int(text) is None
    assert int_or_text(text) == text


@pytest.mark.parametrize(
    ("text", "value"), [("+5", 5), ("-5", -5), ("-" + "9" * 18, -(10**18 - 1))]
)
def test_signed_integers(text: str, value: int) -> None:
    assert as_int(text, signed=True) == value
    assert as_int(text) is None


@pytest.mark.parametrize("text", ["-", "+-1", "-²", "-" + "9" * 19, "--1"])
def test_signed_refusals(text: str) -> None:
    assert as_int(text, signed=True) is None


@pytest.mark.parametrize("port", ["²", "٨٠٨٠", "99999999999999999999"])
def test_a_port_of_other_digits_is_refused_with_the_usual_message(port: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        parse_hostport(f"127.0.0.1:{port}", what="--http")
