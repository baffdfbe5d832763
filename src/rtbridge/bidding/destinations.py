"""Where a bid may send a call. A bid's destination is a stranger's instruction to our SIP
agent: dial this. Within the buyer's own networks it may say anything; but a SIP URI whose
host is an address of ours or of any private network — loopback, RFC 1918, link-local
(cloud metadata services live there), CGNAT, multicast, unspecified — would have the agent
call into the site itself (its own port: a loop; a PBX behind it: a free call), so such a
bid is invalid unless that address lies in the buyer's ``media_networks`` (the networks an
admin trusted it with). The site's own SIP domain is refused the same way.

Host names are not resolved here (a ping cannot wait for DNS): a name that resolves to a
private address is dialled. Phone numbers go out through the buyer's trunk, at the carrier's
rates: a buyer's number is its own bill, not a way into the site."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from rtbridge.netclass import is_internal, is_trusted


def refusal(destination: str, trusted: Iterable[str], sip_domain: str) -> str | None:
    """Why ``destination`` may not be dialled for this buyer, or None when it may."""
    if not destination.startswith(("sip:", "sips:")):
        return None  # a phone number
    host = _host(destination)
    if host.lower() == sip_domain.lower():
        return f"destination {host} is this site's own SIP domain"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a name
    if not is_internal(address) or is_trusted(address, trusted):
        return None
    return f"destination {host} is an internal address (not in the buyer's media_networks)"


def _host(uri: str) -> str:
    """The host of a ``sip:``/``sips:`` URI (its port and parameters left out)."""
    rest = uri.split(":", 1)[1]
    rest = rest.rsplit("@", 1)[-1]
    for stop in (";", "?", ">"):
        rest = rest.split(stop, 1)[0]
    if rest.startswith("["):
        return rest[: rest.index("]") + 1] if "]" in rest else rest
    return rest.split(":", 1)[0]
