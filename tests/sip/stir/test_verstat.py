"""A carrier's verdict in the caller's URI (sip/stir/verstat.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtbridge.sip.stir import Attestation, from_verstat


def carrier(level: str, why: str | None = None) -> Attestation:
    return Attestation(level, why=why, source="verstat")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("<sip:+13125550100@carrier.example;user=phone;verstat=TN-Validation-Passed>", carrier("C")),
        ("<sip:+13125550100@carrier.example;user=phone;verstat=TN-Validation-Passed-A>", carrier("A")),
        ("<sip:+13125550100@carrier.example;verstat=tn-validation-passed-b;user=phone>", carrier("B")),
        ('"Caller" <sip:+13125550100@c.example;verstat=TN-Validation-Passed-C>;tag=1', carrier("C")),
        ("<tel:+13125550100;verstat=TN-Validation-Passed-A>", carrier("A")),
        ("tel:+13125550100;verstat=No-TN-Validation", carrier("none")),
        ("<sip:+13125550100@c.example; verstat = TN-Validation-Failed>",
         carrier("failed", "carrier verstat TN-Validation-Failed")),
        ("<sip:+13125550100@c.example;verstat=TN-Validation-Passed-D>", carrier("failed", "unknown verstat value")),
        ("<sip:+13125550100@c.example;verstat=>", carrier("failed", "unknown verstat value")),
        ("<sip:+13125550100@c.example;user=phone>", None),
        ('"verstat=TN-Validation-Passed-A" <sip:+13125550100@c.example>', None),  # a display name is text
        ("<sip:+13125550100@c.example>;verstat=TN-Validation-Passed-A", None),  # a header parameter
        ("<sip:+13125550100@c.example;xverstat=TN-Validation-Passed-A>", None),
        ("", None),
        (None, None),
        ("<sip:x@c.example;verstat=TN-Validation-Passed-A>" + " " * 9000, None),  # over 8 KiB: not read
    ],
)  # fmt: skip
def test_verstat_table(header: str | None, expected: Attestation | None) -> None:
    assert from_verstat(header) == expected


@pytest.mark.parametrize(
    ("hint", "level"), [("A", "A"), ("b", "B"), (" C ", "C"), ("D", "C"), (None, "C")]
)
def test_a_plain_pass_takes_the_carriers_attest_hint(hint: str | None, level: str) -> None:
    header = "<sip:+13125550100@c.example;verstat=TN-Validation-Passed>"
    assert from_verstat(header, attest=hint) == carrier(level)


def test_the_hint_does_not_override_a_stated_level() -> None:
    header = "<sip:+13125550100@c.example;verstat=TN-Validation-Passed-C>"
    assert from_verstat(header, attest="A") == carrier("C")


@given(st.text(max_size=200))
def test_any_text_reads_as_an_attestation_or_none(header: str) -> None:
    result = from_verstat(header)
    assert result is None or result.level in ("A", "B", "C", "none", "failed")
