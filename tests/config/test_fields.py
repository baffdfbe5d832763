"""Single-value validation shared by apply, the admin API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rtbridge.config import fields as f


def refuses(check: Any, value: Any) -> str:
    with pytest.raises(f.FieldError) as info:
        check(value)
    return str(info.value)


@pytest.mark.parametrize("value", ["a", "pub-1", "A.b_c-9", "x" * 64])
def test_identifier_ok(value: str) -> None:
    assert f.identifier(value) == value


@pytest.mark.parametrize("value", ["", "-a", "_a", "a b", "x" * 65, 5, None, "é"])
def test_identifier_bad(value: Any) -> None:
    assert "1-64 characters" in refuses(f.identifier, value)


def test_string() -> None:
    assert f.string("x") == "x"
    assert "non-empty" in refuses(f.string, "")
    assert "at most 256" in refuses(f.string, "x" * 257)
    assert "at most 4" in refuses(lambda v: f.string(v, max_len=4), "abcde")
    refuses(f.string, 3)


def test_boolean() -> None:
    assert f.boolean(True) is True
    assert f.boolean(False) is False
    for bad in (1, 0, "true", None):
        assert refuses(f.boolean, bad) == "must be true or false"


def test_integer() -> None:
    assert f.integer(5, minimum=1) == 5
    assert refuses(lambda v: f.integer(v, minimum=1), True) == "must be an integer"
    assert refuses(lambda v: f.integer(v, minimum=1), 1.0) == "must be an integer"
    assert refuses(lambda v: f.integer(v, minimum=1), "3") == "must be an integer"
    assert refuses(lambda v: f.integer(v, minimum=1), 0) == "must be >= 1"
    assert refuses(lambda v: f.integer(v, minimum=1, maximum=3), 4) == "must be between 1 and 3"


def test_number() -> None:
    assert f.number(3, minimum=0) == 3.0
    assert isinstance(f.number(3, minimum=0), float)
    assert refuses(lambda v: f.number(v, minimum=0), float("nan")) == "must be a finite number"
    assert refuses(lambda v: f.number(v, minimum=0), float("inf")) == "must be a finite number"
    assert refuses(lambda v: f.number(v, minimum=0), True) == "must be a number"
    assert refuses(lambda v: f.number(v, minimum=0), "1") == "must be a number"
    assert refuses(lambda v: f.number(v, minimum=0), -0.5) == "must be >= 0"


def test_e164() -> None:
    assert f.e164("+18005551234") == "+18005551234"
    for bad in ("18005551234", "+1 800 555 1234", 18005551234, "+0123456789"):
        assert "not an E.164 number" in refuses(f.e164, bad)


@pytest.mark.parametrize("value", ["sip:queue@buyer.example.net:5060", "sips:a@b", "+18005550100"])
def test_destination_ok(value: str) -> None:
    assert f.destination(value) == value


@pytest.mark.parametrize("value", ["http://x", "18005550100", "sip:a b@c", "", None, 5])
def test_destination_bad(value: Any) -> None:
    assert refuses(f.destination, value) == (
        "must be a SIP URI (sip:...) or an E.164 number (+1...)"
    )


def test_domain() -> None:
    assert f.domain("SIP.rtb.Example.com") == "sip.rtb.example.com"
    assert f.domain("localhost") == "localhost"
    for bad in ("", "-a.com", "a..b", "a b", "x" * 64 + ".com", "a_b.com", None):
        assert "not a host name" in refuses(f.domain, bad)


def test_cidr() -> None:
    assert f.cidr("203.0.113.0/24") == "203.0.113.0/24"
    assert f.cidr("203.0.113.7") == "203.0.113.7/32"
    assert f.cidr("2001:DB8::/32") == "2001:db8::/32"
    assert f.cidr("::1") == "::1/128"
    assert "not a CIDR network" in refuses(f.cidr, "203.0.113.7/24")  # host bits set
    assert "not a CIDR network" in refuses(f.cidr, "300.0.0.0/8")
    assert "must be a CIDR string" in refuses(f.cidr, 5)


def test_timestamp() -> None:
    assert f.timestamp("2026-12-31T23:59:00Z") == datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    plus2 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert f.timestamp(plus2) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert f.timestamp(plus2).tzinfo is UTC
    assert "time zone offset" in refuses(f.timestamp, "2026-12-31T23:59:00")
    assert "ISO 8601" in refuses(f.timestamp, "tomorrow")
    assert "date-time" in refuses(f.timestamp, 5)


def test_hours_field() -> None:
    assert f.hours("Mon-Fri 09:00-17:00 America/New_York") == "Mon-Fri 09:00-17:00 America/New_York"
    assert "unknown time zone" in refuses(f.hours, "Mon 09:00-17:00 No/Where")
    assert "must be a string" in refuses(f.hours, 9)


def test_username() -> None:
    assert f.username("pub1+x.y_z-1") == "pub1+x.y_z-1"
    for bad in ("", "a b", "a:b", "x" * 129, None):
        assert "1-128 characters" in refuses(f.username, bad)


@pytest.mark.parametrize(
    "value", ["s3cret-Pass-123", "abcdefghij1A", "ABCDEFGHIJ1!", "abcdefghij!!1"]
)
def test_password_ok(value: str) -> None:
    assert f.password(value) == value


@pytest.mark.parametrize("value", ["short1A!", "abcdefghijkl", "abcdefghijk1", "ABCDEFGHIJKL!"])
def test_password_weak(value: str) -> None:
    assert refuses(f.password, value) == (
        "too weak: use at least 12 characters mixing three of lower case, upper case, digits "
        "and symbols"
    )


def test_password_other_limits() -> None:
    assert refuses(f.password, "Aa1" + "x" * 254) == "must be at most 256 printable characters"
    assert refuses(f.password, "Abcdefghij1\nx") == "must be at most 256 printable characters"
    assert refuses(f.password, 5) == "must be a string"


def test_response_root() -> None:
    assert f.response_root("rtb") == "rtb"
    assert f.response_root(None) is None
    assert f.response_root("") is None
    assert f.response_root("none") is None
    assert refuses(f.response_root, "data") == 'must be "rtb" or absent'


def test_seconds() -> None:
    assert f.seconds(20, maximum=600) == 20.0
    assert isinstance(f.seconds(20, maximum=600), float)
    assert f.seconds(0.5, maximum=60) == 0.5
    assert f.seconds(600, maximum=600) == 600.0
    for bad in (0, -1, 600.5, float("inf"), float("nan")):
        assert refuses(lambda v: f.seconds(v, maximum=600), bad) == (
            "must be more than 0 and at most 600 seconds"
        )
    for bad in ("20", True, None, [20]):
        assert refuses(lambda v: f.seconds(v, maximum=600), bad) == "must be a number of seconds"


def test_failover() -> None:
    """The kinds come back in one order, so a set has one spelling; [] is off."""
    assert f.failover(["no-answer", "busy", "rejected", "unreachable"]) == (
        "no-answer", "busy", "rejected", "unreachable")  # fmt: skip
    assert f.failover(["unreachable", "busy"]) == ("busy", "unreachable")
    assert f.failover([]) == ()
    allowed = "is not a failure kind (allowed: no-answer, busy, rejected, unreachable)"
    assert refuses(f.failover, ["busy", "voicemail"]) == f"'voicemail' {allowed}"
    assert refuses(f.failover, ["Busy"]) == f"'Busy' {allowed}"
    assert refuses(f.failover, [486]) == f"486 {allowed}"
    assert refuses(f.failover, ["busy", "no-answer", "busy"]) == "'busy' is listed twice"
    for bad in ("busy", None, {"busy": True}, 1):
        assert refuses(f.failover, bad) == (
            "must be an array of failure kinds (no-answer, busy, rejected, unreachable), "
            "or [] for no failover"
        )
