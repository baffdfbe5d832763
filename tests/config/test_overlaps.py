"""The overlap and expiry rules of allowlist entries, alone (config/overlaps.py)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from rtbridge.config.overlaps import (
    TRUNK,
    Claim,
    expiry_problem,
    overlap_message,
    overlapping,
    shadow_warnings,
    trunk_claims,
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


CARRIER = Claim("carrier", "127.0.0.0/24", kind=TRUNK)


def test_a_trunk_and_a_publisher_overlap_across_the_boundary() -> None:
    """Issue 17: a network in a trunk and in an allowlist is trusted twice over; two trunks
    overlapping are both carriers, and a publisher's own entries never conflict."""
    trunks = trunk_claims([("carrier", ["127.0.0.0/24"], False), ("backup", ["10.0.0.0/8"], True)])
    assert trunks == [CARRIER, Claim("backup", "10.0.0.0/8", None, True, TRUNK)]
    assert overlapping("pub-1", "127.0.0.1/32", trunks, NOW) == [CARRIER]
    assert overlapping("carrier", "127.0.0.0/16", CLAIMS, NOW, kind=TRUNK) == [PUB1]
    assert overlapping("carrier", "127.0.0.0/16", trunks, NOW, kind=TRUNK) == []  # trunks
    # a trunk named like a publisher is still the other side of the boundary
    assert overlapping("pub-1", "127.0.0.0/24", [Claim("pub-1", "127.0.0.0/24", kind=TRUNK)],
                       NOW) == [Claim("pub-1", "127.0.0.0/24", kind=TRUNK)]  # fmt: skip
    # either side's flag accepts the pair, as between publishers
    assert unacknowledged(False, overlapping("pub-9", "10.1.0.0/16", trunks, NOW)) == []
    assert overlapping("carrier", "10.0.0.0/8", CLAIMS, NOW, kind=TRUNK) == []  # lapsed entry


def test_overlap_messages_name_the_trunk_and_what_mixing_means() -> None:
    assert overlap_message("127.0.0.1/32", [CARRIER]) == (
        "127.0.0.1/32 overlaps trunk carrier's 127.0.0.0/24 (a source in both is trusted "
        "without a challenge as the carrier for calls to pool DIDs and as the publisher for "
        "reservation uuids)"
    )
    assert overlap_message("127.0.0.0/16", [PUB1], kind=TRUNK).startswith(
        "127.0.0.0/16 overlaps pub-1's 127.0.0.0/24 (a source in both"
    )


def test_the_check_warns_of_a_trunk_around_an_accepted_address() -> None:
    address = ipaddress.ip_address("127.0.0.7")
    assert shadow_warnings(address, PUB1, [PUB1, CARRIER], NOW) == [
        "also inside trunk carrier's 127.0.0.0/24: a call from here to a number that is not a "
        "reservation uuid is taken as the carrier's PSTN arrival"
    ]
