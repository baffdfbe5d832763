"""The overlap and expiry rules of allowlist entries, alone (config/overlaps.py)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from rtbridge.config.overlaps import (
    Claim,
    expiry_problem,
    overlap_message,
    overlapping,
    shadow_warnings,
    unacknowledged,
)

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
PUB1 = Claim("pub-1", "127.0.0.0/24")
CLAIMS = [
    PUB1,
    Claim("pub-1", "2001:db8::/32"),
    Claim("pub-2", "10.0.0.0/8", NOW - timedelta(seconds=1)),  # lapsed: never in the way
    Claim("pub-2", "192.0.2.0/24", allow_overlap=True),
]


def test_nested_containing_and_equal_networks_of_others_overlap() -> None:
    assert overlapping("pub-3", "127.0.0.64/26", CLAIMS, NOW) == [PUB1]  # inside
    assert overlapping("pub-3", "127.0.0.0/16", CLAIMS, NOW) == [PUB1]  # around
    assert overlapping("pub-3", "127.0.0.0/24", CLAIMS, NOW) == [PUB1]  # the same
    assert overlapping("pub-3", "127.0.1.0/24", CLAIMS, NOW) == []  # beside
    assert overlapping("pub-1", "127.0.0.64/26", CLAIMS, NOW) == []  # its own: fine
    assert overlapping("pub-3", "10.1.0.0/16", CLAIMS, NOW) == []  # expired
    assert overlapping("pub-3", "::/0", CLAIMS, NOW) == [Claim("pub-1", "2001:db8::/32")]
    assert overlapping("pub-3", "0.0.0.0/0", CLAIMS, NOW) == [
        PUB1,
        Claim("pub-2", "192.0.2.0/24", allow_overlap=True),
    ]  # narrowest first, then by publisher


def test_a_pair_is_accepted_by_the_flag_on_either_side() -> None:
    others = overlapping("pub-3", "0.0.0.0/0", CLAIMS, NOW)
    assert unacknowledged(True, others) == []
    assert unacknowledged(False, others) == [PUB1]


def test_messages_name_the_other_publisher_and_its_network() -> None:
    assert overlap_message("127.0.0.64/26", [PUB1]) == (
        "127.0.0.64/26 sits inside (and by longest prefix takes those sources from) "
        "pub-1's 127.0.0.0/24"
    )
    assert "contains (and is shadowed by) pub-1's" in overlap_message("127.0.0.0/16", [PUB1])
    assert "is the same network as pub-1's" in overlap_message("127.0.0.0/24", [PUB1])


def test_shadow_warnings_for_the_check() -> None:
    claims = [*CLAIMS, Claim("pub-3", "127.0.0.64/26")]
    winner = Claim("pub-3", "127.0.0.64/26")
    address = ipaddress.ip_address("127.0.0.70")
    assert shadow_warnings(address, winner, claims, NOW) == [
        "also matches pub-1's 127.0.0.0/24 (shadowed by longest prefix)"
    ]
    assert shadow_warnings(ipaddress.ip_address("127.0.0.1"), PUB1, claims, NOW) == []


def test_expiry_must_be_ahead() -> None:
    assert expiry_problem(None, NOW) is None
    assert expiry_problem(NOW + timedelta(seconds=1), NOW) is None
    problem = expiry_problem(NOW, NOW)
    assert problem is not None and problem.startswith("expires_at: 2026-12-02T07:00:00.000Z ")
