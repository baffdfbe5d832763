"""Which addresses are inside: ours or some private network's. A stranger who names an
address for us to reach (a bid's SIP destination, a PASSporT's ``x5u`` certificate URL)
must not be able to point us at loopback, RFC 1918 or ULA networks, link-local (cloud
metadata services live at 169.254.169.254), CGNAT, multicast, the unspecified address or
reserved space — nor at any of these behind an IPv4-mapped IPv6 address — unless an admin
trusted that network."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # is_private misses it on 3.11


def is_internal(address: Address) -> bool:
    """True for an address no outside party may send us to."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_internal(address.ipv4_mapped)
    return (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_multicast or address.is_unspecified or address.is_reserved
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
    )  # fmt: skip


def is_trusted(address: Address, networks: Iterable[str]) -> bool:
    """True when ``address`` lies in one of ``networks`` (CIDRs, host bits allowed)."""
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)
