"""The SIP dialog of an answered leg, kept with its call record, and the BYE that ends it
when the process that owned it is gone.

A crashed agent leaves both legs of its calls up: the publisher's SBC and the buyer keep
their dialogs until a session timer or their own media timeout fires — minutes, or never.
pjsua2 cannot send a request in a dialog it did not create, so the restarted agent (or a
live one taking over the dead one's calls, or an operator's tool) rebuilds the BYE from what
was stored while the call was up (RFC 3261 §12.2.1.1): Request-URI = the remote target,
Route = the route set, From/To with both tags, the Call-ID, and a CSeq above any the dead
process can have used. :func:`end_legs` sends them beside pjsua2, on sockets of its own.

What is stored comes from the messages pjsua2 hands to ``onCallState``: on the buyer leg
the ACK we *sent* for its 200, with the CONFIRMED state (our From tag, the buyer's To tag;
its Request-URI and Route headers are exactly the remote target and route set); on the
publisher leg the 200 we *sent*, with the CONNECTING state (its To carries our tag),
completed by the INVITE's Contact and Record-Route (RFC 3261 §12.1.1).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rtbridge.numerals import as_int
from rtbridge.sip.messages import parse_request, split_host_port, split_name_addr

if TYPE_CHECKING:
    from rtbridge.sip.agent_config import AgentConfig

log = logging.getLogger("rtbridge.sip.dialogs")

# A BYE must carry a CSeq above every request the dead process sent in the dialog (the
# INVITE, session refreshes). Session refreshes come every few minutes at most, so this
# margin outlasts any call; RFC 3261 §8.1.1.5 keeps CSeq below 2**31.
_CSEQ_MARGIN = 100_000
_CSEQ_MAX = 2**31 - 1
# Timer E of RFC 3261 §17.1.2.2 for a non-INVITE request over UDP: T1 = 0.5 s doubling to
# T2 = 4 s (end_legs gives up at its own deadline, well before Timer F's 32 s).
_T1, _T2 = 0.5, 4.0
# What a stream far end may send before its answer: a BYE's is a few hundred bytes, and a
# peer streaming garbage must not grow the buffer without end.
_STREAM_BUFFER = 65536


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
        'Reason: SIP;cause=500;text="rtbridge agent lost; call closed after a fault"',
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


def _take_message(buffer: bytearray) -> bytes | None:
    """The first whole message in a stream's buffer (head and Content-Length body, RFC 3261
    §18.3), removed from it; None until it has all arrived."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[: end + 4])
    length = as_int(parse_request(head.decode("utf-8", "replace")).first("content-length") or "")
    if len(buffer) < end + 4 + (length or 0):
        return None
    del buffer[: end + 4 + (length or 0)]
    return head


@dataclass(frozen=True)
class TlsClient:
    """How a BYE goes out over TLS: the certificate offered to a far end that asks for one
    and how the far end's is checked — the agent's own TLS settings (:meth:`from_config`),
    so the far end meets the client it met during the call."""

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""  # "" = OpenSSL's default store
    verify_server: bool = True

    @classmethod
    def from_config(cls, config: AgentConfig) -> TlsClient:
        return cls(cert_file=config.tls_cert_file, key_file=config.tls_key_file,
                   ca_file=config.tls_ca_file, verify_server=config.tls_verify_server)  # fmt: skip

    def context(self) -> ssl.SSLContext:
        """Raises OSError or ssl.SSLError when a file cannot be read."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # as the agent's TLS transport
        if not self.verify_server:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        else:
            context.load_default_certs()
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        return context


def _branch() -> str:
    return "z9hG4bK-rtb-" + os.urandom(8).hex()


def _source_host(family: socket.AddressFamily, hosts: Sequence[str]) -> str:
    """The agent's address of that family ("" = any): BYEs leave from the address the far
    end knows the agent by, which its allowlist may hold."""
    return next((h for h in hosts if (":" in h) == (family == socket.AF_INET6)), "")


def _resolve(host: str, port: int, kind: socket.SocketKind) -> tuple[socket.AddressFamily, Any]:
    if not host:  # getaddrinfo would take it for this machine, the agent itself maybe
        raise ValueError("no host to send the BYE to")
    (family, _, _, _, address), *_ = socket.getaddrinfo(host, port, type=kind)
    return family, address


def _udp_socket(family: socket.AddressFamily, hosts: Sequence[str]) -> socket.socket:
    """An ephemeral UDP socket on the agent's host address: never its SIP port, which
    pjsua2 holds while the agent runs."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.bind((_source_host(family, hosts), 0))
        except OSError:  # that address is not this machine's (a peer taking over)
            sock.bind(("", 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(eq=False)
class _Stream:
    """One BYE over a TCP or TLS connection of its own, advanced by ``end_legs``' selector:
    connect, TLS handshake, send, read until the final answer."""

    dialog: Dialog
    transport: str
    host: str  # what a TLS certificate must name
    sock: socket.socket
    stage: str = "connect"
    out: bytes = b""
    received: bytearray = field(default_factory=bytearray)
    status: int | None = None

    @classmethod
    def open(cls, dialog: Dialog, host: str, port: int, transport: str,
             hosts: Sequence[str]) -> _Stream:  # fmt: skip
        family, address = _resolve(host, port, socket.SOCK_STREAM)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if source := _source_host(family, hosts):
                with contextlib.suppress(OSError):
                    sock.bind((source, 0))
            if (err := sock.connect_ex(address)) not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        except BaseException:
            sock.close()
            raise
        return cls(dialog, transport, host, sock)

    def step(self, tls: ssl.SSLContext | None) -> int:
        """Go as far as the socket allows: the selector events to wait for next, 0 once
        answered. Raises OSError (ssl.SSLError among them) when the leg cannot be ended."""
        if self.stage == "connect":
            if err := self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError(err, os.strerror(err))
            via_host, via_port = self.sock.getsockname()[:2]
            self.out = build_bye(self.dialog, via_host, via_port, self.transport, _branch())
            self.stage = "send"
            if self.transport == "TLS":
                if tls is None:
                    raise OSError("no TLS client context")
                self.sock = tls.wrap_socket(self.sock, server_hostname=self.host,
                                            do_handshake_on_connect=False)  # fmt: skip
                self.stage = "handshake"
        try:
            if isinstance(self.sock, ssl.SSLSocket) and self.stage == "handshake":
                self.sock.do_handshake()
                self.stage = "send"
            while self.stage == "send":
                self.out = self.out[self.sock.send(self.out) :]
                self.stage = "send" if self.out else "read"
            while True:
                data = self.sock.recv(_STREAM_BUFFER)
                if not data:
                    raise ConnectionError("closed without a final answer")
                self.received += data
                while (message := _take_message(self.received)) is not None:
                    answer = _final_status(message)
                    if answer is not None and answer[0] == self.dialog.call_id:
                        self.status = answer[1]
                        return 0
                if len(self.received) > _STREAM_BUFFER:
                    raise ConnectionError("no SIP message in the first 64 KiB")
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except BlockingIOError:
            return selectors.EVENT_WRITE if self.stage == "send" else selectors.EVENT_READ


def end_legs(
    dialogs: Iterable[Dialog],
    *,
    hosts: Sequence[str] = (),
    tls: TlsClient | None = None,
    timeout: float = 4.0,
) -> dict[str, int | None]:
    """Send each leg its BYE, every leg at once, and wait up to ``timeout`` s for the
    answers; Call-ID → final status, None where nobody answered (that far end may be gone
    as well). Safe from any thread while the agent runs: it binds no port of the agent's.

    UDP legs go out of one ephemeral socket per address family on the agent's address
    (``hosts``), the Via naming that socket with ``rport``: compliant far ends answer there
    (RFC 3261 §18.2.2, RFC 3581); Timer E retransmits (§17.1.2.2) until the deadline. TCP
    and TLS legs get a connection each, answered on it (§18.2.2); TLS as ``tls`` says
    (:meth:`TlsClient.from_config`; None: no client certificate, the system's CAs). One log
    line sums up per transport.
    """
    deadline = time.monotonic() + timeout
    results: dict[str, int | None] = {}
    transports: dict[str, str] = {}
    failures: set[str] = set()
    udp: dict[socket.AddressFamily, socket.socket] = {}
    pending: dict[str, _Datagram] = {}  # Call-ID → the BYE still to be answered
    streams: set[_Stream] = set()
    tls_context: ssl.SSLContext | None = None
    selector = selectors.DefaultSelector()
    try:
        for dialog in dialogs:
            results[dialog.call_id] = None
            host, hop_port, transport = next_hop(dialog)
            transports[dialog.call_id] = transport
            try:
                if transport == "UDP":
                    family, address = _resolve(host, hop_port, socket.SOCK_DGRAM)
                    if family not in udp:
                        udp[family] = _udp_socket(family, hosts)
                        selector.register(udp[family], selectors.EVENT_READ, udp[family])
                    sock = udp[family]
                    via_host, via_port = sock.getsockname()[:2]
                    if via_host in ("0.0.0.0", "::"):
                        via_host = _local_address_towards(family, host, hop_port) or via_host
                    pending[dialog.call_id] = _Datagram(dialog, via_host, via_port, address, sock)
                elif transport in ("TCP", "TLS"):
                    if transport == "TLS" and tls_context is None:
                        tls_context = (tls or TlsClient()).context()
                    stream = _Stream.open(dialog, host, hop_port, transport, hosts)
                    streams.add(stream)
                    # by descriptor: it stays when the TLS handshake wraps the socket
                    selector.register(stream.sock.fileno(), selectors.EVENT_WRITE, stream)
                else:
                    failures.add(f"{transport}: not a transport a BYE can take here")
            except (OSError, ValueError, OverflowError) as exc:  # a port out of range is both
                failures.add(f"{transport}: {exc}")
        _exchange(selector, pending, streams, tls_context, results, failures, deadline)
    finally:
        for stream in streams:
            stream.sock.close()
        for sock in udp.values():
            sock.close()
        selector.close()
    _summarise(results, transports, failures)
    return results


def _exchange(
    selector: selectors.BaseSelector,
    pending: dict[str, _Datagram],
    streams: set[_Stream],
    tls: ssl.SSLContext | None,
    results: dict[str, int | None],
    failures: set[str],
    deadline: float,
) -> None:
    """Drive every leg until each is answered or failed, or the deadline passes."""
    interval, next_send = _T1, 0.0
    while (pending or streams) and (now := time.monotonic()) < deadline:
        if pending and now >= next_send:
            for leg in pending.values():
                with contextlib.suppress(OSError):
                    leg.sock.sendto(leg.request, leg.address)
            next_send, interval = now + interval, min(interval * 2, _T2)
        wake = min(next_send, deadline) if pending else deadline
        for key, _ in selector.select(max(0.0, wake - time.monotonic())):
            if isinstance(key.data, socket.socket):
                _receive(key.data, pending, results)
                continue
            stream = key.data
            try:
                events = stream.step(tls)
            except (OSError, ValueError) as exc:
                failures.add(f"{stream.transport}: {exc}")
                events = 0
            if events:
                selector.modify(key.fd, events, stream)
                continue
            results[stream.dialog.call_id] = stream.status
            selector.unregister(key.fd)
            stream.sock.close()
            streams.discard(stream)


# A proxy's own answers saying the BYE did not reach the far end (yet): its transaction timed
# out (a lost packet, a slow SBC) or it is overloaded. The leg is tried again, as a new
# request, until the deadline.
_NOT_DELIVERED = frozenset({408, 503})


@dataclass
class _Datagram:
    """A UDP leg's BYE: what is sent, where, from which socket."""

    dialog: Dialog
    via_host: str
    via_port: int
    address: Any
    sock: socket.socket
    request: bytes = b""

    def __post_init__(self) -> None:
        if not self.request:
            self.request = build_bye(self.dialog, self.via_host, self.via_port, "UDP", _branch())

    def renewed(self) -> _Datagram:
        """The same BYE as a new transaction: a new branch, the next CSeq (§12.2.1.1)."""
        dialog = replace(self.dialog, cseq=self.dialog.cseq + 1)
        return _Datagram(dialog, self.via_host, self.via_port, self.address, self.sock)


def _receive(
    sock: socket.socket, pending: dict[str, _Datagram], results: dict[str, int | None]
) -> None:
    """The datagrams waiting on a UDP socket; a bounded number, so that a far end flooding
    it cannot hold the loop past its deadline."""
    for _ in range(64):
        try:
            data = sock.recv(65536)
        except OSError:  # BlockingIOError: drained; others: an ICMP error, say
            return
        answer = _final_status(data)
        if answer is None or answer[0] not in pending:
            continue
        call_id, status = answer
        results[call_id] = status
        if status in _NOT_DELIVERED:
            pending[call_id] = pending[call_id].renewed()  # sent again with the next round
        else:
            del pending[call_id]


def _summarise(
    results: Mapping[str, int | None], transports: Mapping[str, str], failures: set[str]
) -> None:
    tally: dict[str, dict[str, int]] = {}
    for call_id, status in results.items():
        counts = tally.setdefault(transports[call_id], {"answered": 0, "unanswered": 0})
        delivered = status is not None and status not in _NOT_DELIVERED
        counts["answered" if delivered else "unanswered"] += 1
    if not tally:
        return
    unanswered = sum(counts["unanswered"] for counts in tally.values())
    log.log(logging.WARNING if unanswered else logging.INFO,
            "sent BYE on legs a dead agent left up",
            extra={"legs": tally, "failures": sorted(failures)[:5]})  # fmt: skip


def _local_address_towards(family: socket.AddressFamily, host: str, port: int) -> str | None:
    """The source address the kernel would use to reach ``host`` (for the Via)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
        except OSError:
            return None
