"""The SIP dialog of an answered leg, kept with its call record, and the BYE that ends it
when the process that owned it is gone.

A crashed agent leaves both legs of its calls up: the publisher's SBC and the buyer keep
their dialogs until a session timer or their own media timeout fires — minutes, or never.
pjsua2 cannot send a request in a dialog it did not create, so the restarted agent (or an
operator's tool) rebuilds the BYE from what was stored while the call was up (RFC 3261
§12.2.1.1): Request-URI = the remote target, Route = the route set, From/To with both tags,
the Call-ID, and a CSeq above any the dead process can have used.

What is stored comes from the messages pjsua2 hands to ``onCallState``: on the buyer leg
the ACK we *sent* for its 200, with the CONFIRMED state (our From tag, the buyer's To tag;
its Request-URI and Route headers are exactly the remote target and route set); on the
publisher leg the 200 we *sent*, with the CONNECTING state (its To carries our tag),
completed by the INVITE's Contact and Record-Route (RFC 3261 §12.1.1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rtbridge.numerals import as_int
from rtbridge.sip.messages import parse_request, split_host_port, split_name_addr

log = logging.getLogger("rtbridge.sip.dialogs")

# A BYE must carry a CSeq above every request the dead process sent in the dialog (the
# INVITE, session refreshes). Session refreshes come every few minutes at most, so this
# margin outlasts any call; RFC 3261 §8.1.1.5 keeps CSeq below 2**31.
_CSEQ_MARGIN = 100_000
_CSEQ_MAX = 2**31 - 1
# Timer E/F of RFC 3261 §17.1.2 for a non-INVITE request over UDP: T1 = 0.5 s doubling to
# T2 = 4 s, giving up after 64*T1 = 32 s.
_T1, _T2, _TIMER_F = 0.5, 4.0, 32.0


@dataclass(frozen=True)
class Dialog:
    """What a BYE in one dialog needs. ``local``/``remote`` are whole From/To values as this
    side sends them (with tags); ``routes`` are Route values in the order they are sent."""

    call_id: str
    local: str
    remote: str
    target: str
    routes: tuple[str, ...] = ()
    cseq: int = 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["routes"] = list(self.routes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dialog:
        return cls(
            call_id=str(data["call_id"]),
            local=str(data["local"]),
            remote=str(data["remote"]),
            target=str(data["target"]),
            routes=tuple(str(r) for r in data.get("routes") or ()),
            cseq=int(data.get("cseq") or 1),
        )


def split_values(value: str) -> list[str]:
    """A header's comma-separated values (``Record-Route: <a>, <b>`` or values that arrived
    in separate headers and were joined with ", "), commas inside <> or quotes left alone."""
    values: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            values.append(value[start:i].strip())
            start = i + 1
    values.append(value[start:].strip())
    return [v for v in values if v]


def _tag(value: str) -> str:
    for param in value.rpartition(">")[2].split(";") if ">" in value else value.split(";")[1:]:
        name, _, arg = param.partition("=")
        if name.strip().lower() == "tag":
            return arg.strip()
    return ""


def _cseq_number(value: str | None) -> int:
    number = (value or "").split()[0] if value and value.split() else ""
    return as_int(number) or 1


def buyer_leg(ack: str) -> Dialog | None:
    """The buyer leg (we were the UAC), from the ACK we sent for its 200."""
    msg = parse_request(ack)
    if msg.method != "ACK":
        return None
    local, remote, call_id = msg.first("from"), msg.first("to"), msg.first("call-id")
    if not (local and remote and call_id and _tag(local) and _tag(remote) and msg.request_uri):
        return None
    routes = [v for value in msg.headers.get("route", []) for v in split_values(value)]
    return Dialog(call_id, local, remote, msg.request_uri, tuple(routes),
                  _cseq_number(msg.first("cseq")) + _CSEQ_MARGIN)  # fmt: skip


def publisher_leg(answer: str, invite_headers: Mapping[str, str]) -> Dialog | None:
    """The publisher leg (we were the UAS), from the 200 we sent it (or its ACK: To and From
    play the same parts) and the headers of its INVITE (lower-case names, values of
    repeated headers joined by ", ")."""
    msg = parse_request(answer)
    if msg.method not in ("SIP/2.0", "ACK") or (
        msg.method == "SIP/2.0" and msg.request_uri != "200"
    ):
        return None
    ours, call_id = msg.first("to"), msg.first("call-id")
    theirs = invite_headers.get("from") or msg.first("from")  # as they wrote it
    contact = split_values(invite_headers.get("contact", ""))
    target = split_name_addr(contact[0])[1] if contact else ""
    if not (ours and theirs and call_id and _tag(ours) and target):
        return None
    routes = split_values(invite_headers.get("record-route", ""))  # UAS: in received order
    return Dialog(call_id, ours, theirs, target, tuple(routes), _CSEQ_MARGIN)


def _uri_params(uri: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for param in uri.split(";")[1:]:
        name, _, value = param.partition("=")
        params[name.strip().lower()] = value.strip().split("?")[0]
    return params


def next_hop(dialog: Dialog) -> tuple[str, int, str]:
    """(host, port, transport) the BYE goes to: the first route when it is a loose router,
    else the remote target (RFC 3261 §12.2.1.1, §8.1.2 — numeric hosts only here: agents
    are configured with IP literals and record-routing proxies insert theirs)."""
    first = split_name_addr(dialog.routes[0])[1] if dialog.routes else ""
    uri = first if first and "lr" in _uri_params(first) else dialog.target
    scheme, _, rest = uri.partition(":")
    hostport = rest.partition("@")[2] or rest
    hostport = hostport.split(";", 1)[0].split("?", 1)[0]
    host, port = split_host_port(hostport)
    transport = _uri_params(uri).get("transport", "").upper()
    if scheme.lower() == "sips":
        transport = "TLS"
    transport = transport or "UDP"
    return host, port or (5061 if transport == "TLS" else 5060), transport


def build_bye(dialog: Dialog, via_host: str, via_port: int, transport: str, branch: str) -> bytes:
    """The BYE for ``dialog`` as sent from ``via_host:via_port`` (RFC 3261 §12.2.1.1)."""
    routes = list(dialog.routes)
    request_uri = dialog.target
    if routes and "lr" not in _uri_params(split_name_addr(routes[0])[1]):
        # strict router: it becomes the Request-URI, the remote target the last Route
        request_uri = split_name_addr(routes[0])[1]
        routes = [*routes[1:], f"<{dialog.target}>"]
    host = f"[{via_host}]" if ":" in via_host else via_host
    lines = [
        f"BYE {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {host}:{via_port};branch={branch};rport",
        "Max-Forwards: 70",
        *(f"Route: {route}" for route in routes),
        f"From: {dialog.local}",
        f"To: {dialog.remote}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {min(dialog.cseq, _CSEQ_MAX)} BYE",
        'Reason: SIP;cause=500;text="rtbridge agent restarted after a fault"',
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _final_status(data: bytes) -> tuple[str, int] | None:
    """(Call-ID, code) of a final response to a BYE, else None."""
    msg = parse_request(data.decode("utf-8", "replace"))
    code, call_id = msg.request_uri, msg.first("call-id")
    status = as_int(code)
    if msg.method != "SIP/2.0" or status is None or status < 200 or call_id is None:
        return None
    if not (msg.first("cseq") or "").upper().endswith("BYE"):
        return None
    return call_id, status


def _bind(family: socket.AddressFamily, hosts: Sequence[str], port: int) -> socket.socket:
    """A UDP socket on the agent's own SIP address of that family when it is free (the
    agent has not bound it yet), else on an ephemeral port."""
    host = next((h for h in hosts if (":" in h) == (family == socket.AF_INET6)), "")
    sock = socket.socket(family, socket.SOCK_DGRAM)
    for candidate in ((host, port), (host, 0), ("", 0)):
        try:
            sock.bind(candidate)
            return sock
        except OSError:
            continue
    return sock


def end_legs(
    dialogs: Iterable[Dialog], *, hosts: Sequence[str] = (), port: int = 0, timeout: float = 4.0
) -> dict[str, int | None]:
    """Send each leg its BYE and wait up to ``timeout`` s for the answers; Call-ID → final
    status, None where nobody answered (that far end may be gone as well).

    UDP legs go out of one socket per address family bound to the agent's own SIP address
    (``hosts``/``port``) — call this before pjsua2 binds it — so that a far end answering
    where it knows us from rather than to the Via (SIPp does) still reaches us; RFC 3261
    Timer E retransmissions, every leg at once. TCP legs get a connection each; TLS legs
    are not handled (logged): their peers would need the agent's certificate.
    """
    deadline = time.monotonic() + timeout
    results: dict[str, int | None] = {}
    socks: dict[socket.AddressFamily, socket.socket] = {}
    pending: dict[str, tuple[bytes, tuple[str, int], socket.socket]] = {}
    tcp: list[Dialog] = []
    try:
        for dialog in dialogs:
            results[dialog.call_id] = None
            host, hop_port, transport = next_hop(dialog)
            if transport == "TCP":
                tcp.append(dialog)
                continue
            if transport != "UDP":
                log.warning("cannot end a %s leg left up by a dead process", transport,
                            extra={"call_id": dialog.call_id})  # fmt: skip
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socks.get(family) or socks.setdefault(family, _bind(family, hosts, port))
            via_host, via_port = sock.getsockname()[:2]
            if via_host in ("0.0.0.0", "::"):
                via_host = _local_address_towards(family, host, hop_port) or via_host
            branch = "z9hG4bK-rtb-" + os.urandom(8).hex()
            request = build_bye(dialog, via_host, via_port, "UDP", branch)
            pending[dialog.call_id] = (request, (host, hop_port), sock)
        interval, next_send = _T1, 0.0
        while pending and (now := time.monotonic()) < deadline:
            if now >= next_send:
                for request, dest, sock in pending.values():
                    with contextlib.suppress(OSError):
                        sock.sendto(request, dest)
                next_send, interval = now + interval, min(interval * 2, _T2)
            ready, _, _ = select.select(list(socks.values()), [], [],
                                        max(0.0, min(next_send, deadline) - time.monotonic()))  # fmt: skip
            for sock in ready:
                with contextlib.suppress(OSError):
                    answer = _final_status(sock.recv(65535))
                    if answer is not None and answer[0] in pending:
                        del pending[answer[0]]
                        results[answer[0]] = answer[1]
    finally:
        for sock in socks.values():
            sock.close()
    for dialog in tcp:
        results[dialog.call_id] = send_bye(dialog, timeout=max(0.5, deadline - time.monotonic()))
    return results


def send_bye(dialog: Dialog, *, timeout: float = _TIMER_F) -> int | None:
    """One BYE over TCP (a connection of its own) and its final status, None without."""
    host, port, _ = next_hop(dialog)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_connection((host, port), timeout=min(5.0, timeout)) as sock:
            via_host, via_port = sock.getsockname()[:2]
            branch = "z9hG4bK-rtb-" + os.urandom(8).hex()
            sock.sendall(build_bye(dialog, via_host, via_port, "TCP", branch))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data = sock.recv(65535)
                if not data:
                    return None
                answer = _final_status(data)
                if answer is not None and answer[0] == dialog.call_id:
                    return answer[1]
    except OSError as exc:
        log.warning("BYE to %s:%d failed: %s", host, port, exc,
                    extra={"call_id": dialog.call_id, "family": family.name})  # fmt: skip
    return None


def _local_address_towards(family: socket.AddressFamily, host: str, port: int) -> str | None:
    """The source address the kernel would use to reach ``host`` (for the Via)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
        except OSError:
            return None
