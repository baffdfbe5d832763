"""Where one party's media may go (SPEC §4.6): a re-INVITE or UPDATE may move a publisher's
or buyer's RTP only to where that party is, or the agent would stream a call's audio (or a
flood of RTP) at any address a peer names — a third party's, or one of its own.

"Where the party is": the address it signals from, the addresses its media used when the
call was set up, and the networks configured for it (a publisher's allowlisted CIDRs and
``media_networks``; a buyer's ``media_networks`` and its trunk's CIDRs). Pure Python.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from rtbridge.sip.auth.allowlist import parse_address
from rtbridge.sip.sdp import HOLD

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MediaHome:
    """The addresses and networks one leg's media may be sent to."""

    def __init__(
        self, addresses: Iterable[str | Address] = (), networks: Iterable[str] = ()
    ) -> None:
        self._addresses: set[Address] = set()
        self._networks: tuple[Network, ...] = ()
        self.add(*addresses)
        self.add_networks(networks)

    def add(self, *hosts: str | Address) -> None:
        """Addresses where this party is (its signalling source, its set-up media)."""
        for host in hosts:
            address = parse_address(host)
            if address is not None:
                self._addresses.add(address)

    def add_networks(self, cidrs: Iterable[str]) -> None:
        found = []
        for cidr in cidrs:
            try:
                found.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                continue  # validated where configured; an odd one here only narrows the rule
        self._networks = (*self._networks, *found)

    def allows(self, host: str) -> bool:
        """Whether media may be sent to ``host`` (an IP literal; a name is never allowed:
        what it resolves to is not known here, and a peer may choose the resolver's answer)."""
        if host in HOLD:
            return True
        address = parse_address(host)
        if address is None:
            return False
        return address in self._addresses or any(address in net for net in self._networks)

    def refused(self, hosts: Iterable[str]) -> list[str]:
        """The hosts of ``hosts`` media may not go to."""
        return [host for host in hosts if not self.allows(host)]
