"""Who really sent an INVITE when a SIP proxy relayed it.

Behind Kamailio every INVITE arrives from the proxy's address, so allowlists, the INVITE
rate limit and the failure throttle would all see one sender. The proxy writes the
publisher's address into a header (``X-RTB-Source: 203.0.113.7:5060;transport=tls``); the
agent believes it only from ``trusted_proxies`` — from anyone else the header is a claim
and is ignored, since it would let any host pose as an allowlisted publisher.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from rtbridge.sip.auth.allowlist import IPAddress, parse_address
from rtbridge.sip.messages import ParsedRequest, parse_source, split_host_port, via_transport

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(cidrs: Iterable[str]) -> Networks:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


@dataclass(frozen=True)
class Source:
    """Who sent an INVITE: the packet's source, or the sender a trusted proxy names."""

    ip: IPAddress  # parsed once, here: every later reader takes the object
    port: int
    transport: str
    via_proxy: str | None = None
    untrusted: str | None = None  # the header's value from a sender not trusted: ignored


def source_of(msg: ParsedRequest, src_address: str, proxies: Networks, header: str) -> Source:
    """The packet's source, unless it is a trusted proxy that names the sender in ``header``
    (SPEC §4.2: the address the allowlist must see is the publisher's, not the proxy's)."""
    host, port = split_host_port(src_address)
    ip = parse_address(host)
    if ip is None:
        raise ValueError(f"not an IP address: {src_address!r}")
    transport = via_transport(msg.first("via"))
    claim = msg.first(header.lower())
    if claim is None:
        return Source(ip, port, transport)
    if proxies and in_networks(ip, proxies):
        named = parse_source(claim)
        named_ip = parse_address(named[0]) if named is not None else None
        if named is not None and named_ip is not None:
            return Source(named_ip, named[1], named[2] or transport, via_proxy=str(ip))
        return Source(ip, port, transport)
    # Kept for the decision log and the auth-failure reason: either a misconfigured
    # trusted_proxies or a host posing as a proxy.
    return Source(ip, port, transport, untrusted=claim)


def in_networks(ip: str | IPAddress, nets: Networks) -> bool:
    address = parse_address(ip)
    return address is not None and any(address in net for net in nets)
