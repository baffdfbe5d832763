"""The allowlist as a Kamailio ``permissions`` module address file, for sites that keep
Kamailio at their edge (``modparam("permissions", "address_file", ...)`` then
``allow_source_address(1)``).

The module's format, one record per line, ``#`` starting a comment::

    (groupid,int) (address,str) (netmask,int,o) (port,int,o) (tag,str,o)

Port 0 matches any port; the tag must be one token without whitespace. IPv6 addresses are
written in brackets as in the module's sample file. Publishers' entries go in group 1 with
the publisher id as the tag, carrier trunks in group 2 with ``trunk:<id>``. Entries expired
at export time are left out (Kamailio has no notion of expiry: export again, or on a timer).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from sqlmodel import Session, col, select

from rtbridge.storage.models import AllowlistEntry, Trunk
from rtbridge.timestamps import iso_utc, utcnow

PUBLISHER_GROUP = 1
TRUNK_GROUP = 2


def _line(group: int, cidr: str, tag: str) -> str:
    network = ipaddress.ip_network(cidr, strict=False)
    address = str(network.network_address)
    if network.version == 6:
        address = f"[{address}]"
    return f"{group} {address} {network.prefixlen} 0 {tag}"


def kamailio_permissions(session: Session, *, now: datetime | None = None) -> str:
    now = now or utcnow()
    lines = [
        "# rtbridge allowlist for the Kamailio permissions module (address_file)",
        f"# generated {iso_utc(now)}; expired entries left out",
        "# grp ip_addr mask port tag",
    ]
    query = select(AllowlistEntry).order_by(
        col(AllowlistEntry.publisher_id), col(AllowlistEntry.id)
    )
    for entry in session.exec(query):
        if entry.expires_at is not None and entry.expires_at <= now:
            continue
        lines.append(_line(PUBLISHER_GROUP, entry.cidr, entry.publisher_id))
    for trunk in session.exec(select(Trunk).order_by(col(Trunk.id))):
        for cidr in trunk.ips:
            lines.append(_line(TRUNK_GROUP, cidr, f"trunk:{trunk.id}"))
    return "\n".join(lines) + "\n"
