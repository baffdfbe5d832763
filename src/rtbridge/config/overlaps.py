"""The two safety rules of an allowlist entry (issue 12), in one place for the admin API, the
CLI, the console and ``apply``:

- a network that overlaps a live entry of *another* publisher (contains it, sits inside it,
  or equals it) is refused unless the caller says ``allow_overlap``: the agent picks the
  longest prefix, so a nested entry silently takes those sources away from the other
  publisher (SPEC §4.2);
- an expiry that is not after now is refused: the entry would never let anyone in.

The first also holds between a publisher's entry and a carrier trunk's network (issue 17):
both are trusted without a challenge, but for different things — a source inside a trunk
that dials a number (not a reservation uuid) is taken as the carrier's PSTN arrival
(SPEC §4.3), one inside an entry is the publisher — so a network in both mixes two trust
boundaries, and is refused the same way unless either side says ``allow_overlap``. Two
trunks may overlap each other: both are carriers.

Pure functions over plain values; the callers read the rows and decide what to do."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from rtbridge.timestamps import iso_utc

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PUBLISHER, TRUNK = "publisher", "trunk"  # whose network a claim is


@dataclass(frozen=True)
class Claim:
    """One allowlist entry, or one network of a trunk (``kind``), as the rules see it."""

    publisher: str  # the owner's id: a publisher's, or a trunk's
    cidr: str
    expires_at: datetime | None = None
    allow_overlap: bool = False  # accepted knowing it overlaps (acknowledges its pairs)
    kind: str = PUBLISHER

    @property
    def owner(self) -> str:
        """How messages name the owner: ``pub-1``, ``trunk carrier``."""
        return self.publisher if self.kind == PUBLISHER else f"{TRUNK} {self.publisher}"

    @cached_property  # parsed once: a bulk add compares every item with every entry
    def network(self) -> Network:
        return ipaddress.ip_network(self.cidr)

    @cached_property
    def span(self) -> tuple[int, int, int]:
        """(IP version, first address, last address) as integers: cheap to compare."""
        net = self.network
        return net.version, int(net.network_address), int(net.broadcast_address)

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2]


def _crosses(kind: str, owner: str, other: Claim) -> bool:
    """Does a network of ``owner`` (a ``kind``) conflict with ``other`` when they overlap?
    Another publisher's entry, or a network across the publisher/trunk boundary."""
    if other.kind != kind:
        return True
    return kind == PUBLISHER and other.publisher != owner


def overlapping(
    publisher: str, cidr: str, claims: Iterable[Claim], now: datetime, *, kind: str = PUBLISHER
) -> list[Claim]:
    """The live claims that ``cidr`` of ``publisher`` (a ``kind``: a trunk's id with
    :data:`TRUNK`) conflicts with: other publishers' entries, and across the publisher/trunk
    boundary; narrowest first."""
    span = Claim(publisher, cidr).span
    found = [
        c for c in claims
        if _crosses(kind, publisher, c) and c.live(now) and _overlap(span, c.span)
    ]  # fmt: skip
    return sorted(found, key=lambda c: (-c.network.prefixlen, c.kind, c.publisher, c.cidr))


def unacknowledged(allow_overlap: bool, others: list[Claim]) -> list[Claim]:
    """The overlaps that refuse an entry: none when it carries ``allow_overlap``; else those
    with an entry that does not carry it either (a pair is accepted once, by either side)."""
    return [] if allow_overlap else [o for o in others if not o.allow_overlap]


def overlap_message(cidr: str, others: list[Claim], *, kind: str = PUBLISHER) -> str:
    """Why ``cidr`` (a ``kind``'s) is refused (or, when accepted with the flag, what the
    audit records)."""
    network = ipaddress.ip_network(cidr)
    parts = []
    for other in others:
        if other.kind != kind:
            parts.append(
                f"{cidr} overlaps {other.owner}'s {other.cidr} (a source in both is trusted "
                "without a challenge as the carrier for calls to pool DIDs and as the publisher "
                "for reservation uuids)"
            )
            continue
        if network == other.network:
            how = "is the same network as"
        elif network.prefixlen > other.network.prefixlen:
            how = "sits inside (and by longest prefix takes those sources from)"
        else:
            how = "contains (and is shadowed by)"
        parts.append(f"{cidr} {how} {other.owner}'s {other.cidr}")
    return "; ".join(parts)


def trunk_claims(trunks: Iterable[tuple[str, Iterable[str], bool]]) -> list[Claim]:
    """``(trunk id, its networks, allow_overlap)`` as claims (a trunk's networks never
    expire)."""
    return [
        Claim(trunk_id, cidr, None, allow_overlap, TRUNK)
        for trunk_id, cidrs, allow_overlap in trunks
        for cidr in cidrs
    ]


def shadow_warnings(
    address: Address, winner: Claim, claims: Iterable[Claim], now: datetime
) -> list[str]:
    """For the dry-run check: other publishers' live entries that also contain ``address``
    but lose to the winning rule by longest prefix, and trunks' networks that contain it."""
    out = []
    for c in sorted(claims, key=lambda c: (-c.network.prefixlen, c.kind, c.publisher, c.cidr)):
        if (c.kind == PUBLISHER and c.publisher == winner.publisher) or not c.live(now):
            continue
        if c.network.version == address.version and address in c.network:
            if c.kind == TRUNK:
                out.append(
                    f"also inside {c.owner}'s {c.cidr}: a call from here to a number that is "
                    "not a reservation uuid is taken as the carrier's PSTN arrival"
                )
            else:
                out.append(f"also matches {c.owner}'s {c.cidr} (shadowed by longest prefix)")
    return out


def expiry_problem(expires_at: datetime | None, now: datetime) -> str | None:
    """``None`` when the expiry is absent or still ahead."""
    if expires_at is not None and expires_at <= now:
        return (
            f"expires_at: {iso_utc(expires_at)} is not in the future "
            "(the entry would never match); give a later time or none"
        )
    return None
