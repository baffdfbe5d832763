"""The few pieces of a SIP request the agent needs, read from pjsua2's raw message text.

pjsua2 hands Python the whole INVITE as text (``OnIncomingCallParam.rdata.wholeMsg``) and
the packet source as ``"ip:port"``; it does not expose parsed headers. pjsip has already
parsed and validated the message before the callback runs (a request it cannot parse gets
400 from pjsip itself), so this module only has to split what is there, tolerantly: a
surprising header must never raise out of a pjsua2 callback.

Also here: sanitising headers the agent *sends*, because reservation tags come from
publishers' HTTP pings and end up as ``X-RTB-Tag-*`` headers — a CR/LF in a tag value must
not become a header injection on the buyer leg.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from rtbridge.numerals import as_int

# RFC 3261 §7.3.3 compact header forms.
_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "y": "identity",  # RFC 8224 §4.1
}

# RFC 3261 §25.1 token: what a header name may contain.
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VIA_TRANSPORT = re.compile(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9]+)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedRequest:
    """Request line and headers of one SIP request (body ignored)."""

    method: str
    request_uri: str
    headers: dict[str, list[str]]  # lower-cased full names → values in arrival order

    def first(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        values = self.headers.get(name)
        return values[0] if values else None


def parse_request(whole_msg: str) -> ParsedRequest:
    """Split a request into its request line and headers; never raises."""
    head = whole_msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    parts = lines[0].split() if lines else []
    method = parts[0] if parts else ""
    request_uri = parts[1] if len(parts) > 1 else ""
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last is not None:  # folded continuation (RFC 3261 §7.3.1)
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        headers.setdefault(key, []).append(value.strip())
        last = key
    return ParsedRequest(method=method, request_uri=request_uri, headers=headers)


def offers_srtp(whole_msg: str) -> bool:
    """Whether a message's SDP asks for SRTP: an RTP/SAVP(F) media line or SDES crypto
    attributes (RFC 4568), which some SBCs put on RTP/AVP lines as "best effort" SRTP."""
    _, sep, body = whole_msg.replace("\r\n", "\n").partition("\n\n")
    if not sep:
        return False
    for line in body.split("\n"):
        if (line.startswith("m=") and "RTP/SAVP" in line) or line.startswith("a=crypto:"):
            return True
    return False


def split_name_addr(value: str) -> tuple[str, str]:
    """``'"Alice" <sip:a@h>;tag=x'`` → ``("Alice", "sip:a@h")``; bare URIs lose their params."""
    value = value.strip()
    if "<" in value and ">" in value:
        display, _, rest = value.partition("<")
        uri = rest.partition(">")[0]
        display = display.strip()
        if len(display) >= 2 and display[0] == display[-1] == '"':
            display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return display, uri.strip()
    return "", value.split(";", 1)[0].strip()


def uri_user(uri: str) -> str:
    """User part of a SIP URI, percent-decoded; "" when the URI has none."""
    _, sep, rest = uri.partition(":")
    if not sep:
        return ""
    userinfo, at, _ = rest.partition("@")
    if not at:
        return ""
    user = userinfo.split(":", 1)[0]  # drop a (deprecated) password
    user = user.split(";", 1)[0]  # user parameters (RFC 4694 style) are not part of the id
    return unquote(user)


def split_host_port(address: str) -> tuple[str, int]:
    """``"1.2.3.4:5060"`` / ``"[::1]:5060"`` / ``"::1:5060"`` → (ip, port).

    pjsua2 prints IPv6 socket addresses without brackets in some places
    (``TransportInfo.localName``), so an unbracketed address with several colons is read as
    "IPv6 address, then the port after the last colon" — callers pass addresses that carry
    a port. Port 0 when there is none.
    """
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = address.rpartition(":")
        if not host:
            host, port = port, ""
    return host, as_int(port) or 0


def parse_source(value: str | None) -> tuple[str, int, str | None] | None:
    """A proxy's source header (``203.0.113.7``, ``203.0.113.7:5060;transport=tls``,
    ``[2001:db8::7]:5060``, a bare IPv6 address) as (ip, port, transport or None); None
    unless it names an IP address."""
    if not value:
        return None
    address, _, params = value.strip().partition(";")
    transport = None
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "transport" and arg.strip().isalpha():
            transport = arg.strip().upper()
    if address.count(":") > 1 and not address.startswith("["):
        host, port = address, 0  # a bare IPv6 address
    else:
        host, port = split_host_port(address)
    try:
        return str(ipaddress.ip_address(host)), port, transport
    except ValueError:
        return None


def via_transport(via: str | None) -> str:
    """Transport named by the top Via (``SIP/2.0/TCP …`` → "TCP"); "UDP" when unreadable."""
    if via:
        top = via.split(",", 1)[0]
        match = _VIA_TRANSPORT.match(top)
        if match:
            return match.group(1).upper()
    return "UDP"


def safe_header(name: str, value: str) -> tuple[str, str] | None:
    """A header safe to put on the wire, or None when ``name`` is not a token.

    Control characters (CR/LF above all) are removed from the value: they would let a tag
    value start a header of its own (RFC 3261 §7.3.1 only allows folding whitespace).
    """
    if not _TOKEN.match(name):
        return None
    return name, _CONTROL.sub("", value).strip()
