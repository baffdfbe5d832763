"""Dialogs kept for crash recovery (sip/dialogs.py): read from the ACKs pjsua2 hands over,
and the BYE rebuilt from them — sent over real UDP, TCP and TLS sockets to far ends in the
test, which answer as RFC 3261 §18.2.2 says (to the Via; on the connection), stay silent,
or answer with garbage."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.dialogs import (
    Dialog,
    TlsClient,
    build_bye,
    buyer_leg,
    end_legs,
    next_hop,
    publisher_leg,
    split_values,
)
from rtbridge.sip.messages import parse_request, split_host_port
from tests.support.net import free_port

SENT_ACK = (
    "ACK sip:buyer@192.0.2.10:5070;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1\r\n"
    "Max-Forwards: 70\r\n"
    "Route: <sip:192.0.2.1;lr>\r\n"
    "Route: <sip:192.0.2.2;lr;r2=on>\r\n"
    'From: "Alice" <sip:+12025550102@sip.rtb.example.com>;tag=ours-1\r\n'
    "To: <sip:buyer@192.0.2.10:5070>;tag=theirs-1\r\n"
    "Call-ID: out-call-1\r\n"
    "CSeq: 4711 ACK\r\n"
    "Content-Length:  0\r\n\r\n"
)
RECEIVED_ACK = (
    "ACK sip:rtbridge@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bK-2\r\n"
    'f: "Pub" <sip:+12025550100@198.51.100.7>;tag=pub-tag\r\n'
    "t: <sip:uuid@sip.rtb.example.com>;tag=our-tag\r\n"
    "i: in-call-1\r\n"
    "CSeq: 1 ACK\r\n"
    "Content-Length: 0\r\n\r\n"
)
INVITE_HEADERS = {
    "contact": "<sip:+12025550100@198.51.100.7:5080;transport=udp>",
    "record-route": "<sip:203.0.113.5;lr;did=a, b>, <sip:203.0.113.6;lr>",
}


def test_buyer_leg_from_the_ack_we_sent() -> None:
    dialog = buyer_leg(SENT_ACK)
    assert dialog is not None
    assert dialog.call_id == "out-call-1"
    assert dialog.local.endswith(";tag=ours-1") and dialog.remote.endswith(";tag=theirs-1")
    assert dialog.target == "sip:buyer@192.0.2.10:5070;transport=udp"
    assert dialog.routes == ("<sip:192.0.2.1;lr>", "<sip:192.0.2.2;lr;r2=on>")
    assert dialog.cseq > 4711  # above anything the dead process sent
    assert next_hop(dialog) == ("192.0.2.1", 5060, "UDP")  # loose routing: the first route


def test_a_cseq_that_is_not_ascii_digits_counts_from_one() -> None:
    dialog = buyer_leg(SENT_ACK.replace("CSeq: 4711 ACK", "CSeq: \u00b2 ACK"))
    assert dialog is not None and dialog.cseq > 1


@pytest.mark.parametrize("message", ["ok", "ack"])
def test_publisher_leg_from_our_200_or_its_ack_and_the_invite(message: str) -> None:
    text = (
        RECEIVED_ACK
        if message == "ack"
        else RECEIVED_ACK.replace(
            "ACK sip:rtbridge@127.0.0.1:5060 SIP/2.0", "SIP/2.0 200 OK"
        ).replace("CSeq: 1 ACK", "CSeq: 1 INVITE")
    )
    dialog = publisher_leg(text, INVITE_HEADERS)
    assert dialog is not None
    assert dialog.call_id == "in-call-1"
    assert dialog.local == "<sip:uuid@sip.rtb.example.com>;tag=our-tag"  # our To is our From
    assert dialog.remote.endswith(";tag=pub-tag")
    assert dialog.target == "sip:+12025550100@198.51.100.7:5080;transport=udp"
    # Record-Route in received order; a comma inside <> is not a separator
    assert dialog.routes == ("<sip:203.0.113.5;lr;did=a, b>", "<sip:203.0.113.6;lr>")
    assert Dialog.from_json(dialog.to_json()) == dialog


def test_unusable_messages_give_no_dialog() -> None:
    assert buyer_leg("INVITE sip:x@y SIP/2.0\r\n\r\n") is None
    assert buyer_leg(SENT_ACK.replace(";tag=theirs-1", "")) is None  # no remote tag
    assert publisher_leg(RECEIVED_ACK, {}) is None  # no Contact: no remote target
    assert publisher_leg("", INVITE_HEADERS) is None
    assert (
        publisher_leg(
            RECEIVED_ACK.replace("ACK sip:rtbridge@127.0.0.1:5060", "SIP/2.0 180"), INVITE_HEADERS
        )
        is None
    )


def test_next_hop_without_routes_and_over_tcp_and_tls() -> None:
    plain = Dialog("c", "<sip:a@b>;tag=1", "<sip:c@d>;tag=2", "sip:x@192.0.2.9")
    assert next_hop(plain) == ("192.0.2.9", 5060, "UDP")
    tcp = Dialog("c", "l", "r", "sip:x@[2001:db8::9]:5072;transport=TCP")
    assert next_hop(tcp) == ("2001:db8::9", 5072, "TCP")
    assert next_hop(Dialog("c", "l", "r", "sips:x@192.0.2.9")) == ("192.0.2.9", 5061, "TLS")


def test_bye_is_an_in_dialog_request() -> None:
    dialog = buyer_leg(SENT_ACK)
    assert dialog is not None
    msg = parse_request(build_bye(dialog, "127.0.0.1", 40000, "UDP", "z9hG4bK-x").decode())
    assert (msg.method, msg.request_uri) == ("BYE", dialog.target)
    assert msg.headers["route"] == list(dialog.routes)
    assert msg.first("from") == dialog.local and msg.first("to") == dialog.remote
    assert msg.first("call-id") == "out-call-1"
    assert msg.first("cseq") == f"{dialog.cseq} BYE"
    assert msg.first("via") == "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-x;rport"


def test_strict_router_becomes_the_request_uri() -> None:
    dialog = Dialog("c", "l", "r", "sip:x@192.0.2.9", routes=("<sip:192.0.2.1>",))
    msg = parse_request(build_bye(dialog, "127.0.0.1", 1, "UDP", "b").decode())
    assert msg.request_uri == "sip:192.0.2.1"
    assert msg.headers["route"] == ["<sip:x@192.0.2.9>"]


def test_split_values_keeps_quoted_and_bracketed_commas() -> None:
    assert split_values('"a, b" <sip:x>, <sip:y;p=1,2>,,<sip:z>') == [
        '"a, b" <sip:x>',
        "<sip:y;p=1,2>",
        "<sip:z>",
    ]


def _ok(request: str, call_id: str | None = None, status: str = "200 OK") -> bytes:
    """The 200 a far end sends for a BYE (``call_id``: another dialog's, for a stray one;
    ``status``: another answer)."""
    msg = parse_request(request)
    return (
        f"SIP/2.0 {status}\r\nVia: {msg.first('via')}\r\nFrom: {msg.first('from')}\r\n"
        f"To: {msg.first('to')}\r\nCall-ID: {call_id or msg.first('call-id')}\r\n"
        f"CSeq: {msg.first('cseq')}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _leg(call_id: str, port: int, transport: str = "udp") -> Dialog:
    scheme = "sips" if transport == "tls" else "sip"
    target = f"{scheme}:c@127.0.0.1:{port};transport={transport}"
    return Dialog(call_id, "<sip:a@b>;tag=1", "<sip:c@d>;tag=2", target)


@dataclass
class FarEnd:
    """A far end on loopback in a thread: what it received, when, and where from."""

    port: int = 0
    requests: list[str] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def heard(self, data: bytes, source: tuple[str, int]) -> str:
        self.requests.append(data.decode())
        self.sources.append(source[:2])
        self.times.append(time.monotonic())
        return self.requests[-1]


@contextlib.contextmanager
def udp_far_end(reply: Callable[[str, int], list[bytes]]) -> Iterator[FarEnd]:
    """Answers the ``n``-th datagram (``reply(request, n)``) to its Via's sent-by — not to
    the source: end_legs' Via must name the socket it listens on."""
    far, stop = FarEnd(), threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        far.port = sock.getsockname()[1]

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, source = sock.recvfrom(65535)
                except TimeoutError:
                    continue
                request = far.heard(data, source)
                sent_by = (parse_request(request).first("via") or "").split()[1].split(";")[0]
                for answer in reply(request, len(far.requests)):
                    sock.sendto(answer, split_host_port(sent_by))

        worker = threading.Thread(target=serve)
        worker.start()
        try:
            yield far
        finally:
            stop.set()
            worker.join()


@contextlib.contextmanager
def stream_far_end(
    reply: Callable[[str], bytes | None], context: ssl.SSLContext | None = None
) -> Iterator[FarEnd]:
    """A TCP (TLS with ``context``) far end: reads one request per connection and answers
    ``reply(request)`` on that connection; None: it keeps the connection and says nothing."""
    far, stop = FarEnd(), threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.05)
        far.port = server.getsockname()[1]

        def talk(conn: socket.socket, source: tuple[str, int]) -> None:
            conn.settimeout(3)
            with contextlib.ExitStack() as closing:
                closing.enter_context(conn)
                with contextlib.suppress(OSError):  # a handshake the client gave up on
                    if context is not None:
                        conn = closing.enter_context(context.wrap_socket(conn, server_side=True))
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65535) or b"\r\n\r\n"
                    answer = reply(far.heard(data, source))
                    if answer is None:
                        stop.wait()
                    else:
                        conn.sendall(answer)
                        stop.wait()

        def serve() -> None:
            talkers = []
            while not stop.is_set():
                try:
                    conn, source = server.accept()
                except TimeoutError:
                    continue
                talkers.append(threading.Thread(target=talk, args=(conn, source)))
                talkers[-1].start()
            for talker in talkers:
                talker.join()

        worker = threading.Thread(target=serve)
        worker.start()
        try:
            yield far
        finally:
            stop.set()
            worker.join()


@pytest.mark.parametrize("drop_first", [False, True], ids=["answered", "retransmitted"])
def test_end_legs_over_udp_while_the_agent_holds_its_port(drop_first: bool) -> None:
    """The agent's SIP port is taken (pjsua2 holds it): the BYE leaves from an ephemeral
    port on the agent's address, named in the Via, where the far end answers; a dropped BYE
    is retransmitted (Timer E), the same request again."""
    agent_port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent:
        agent.bind(("127.0.0.1", agent_port))
        with udp_far_end(lambda bye, n: [] if drop_first and n == 1 else [_ok(bye)]) as far:
            results = end_legs([_leg("gone-1", far.port)], hosts=("127.0.0.1",), timeout=3)
    assert results == {"gone-1": 200}
    assert len(far.requests) == (2 if drop_first else 1) and len(set(far.requests)) == 1
    via = parse_request(far.requests[0]).first("via") or ""
    assert via.startswith(f"SIP/2.0/UDP 127.0.0.1:{far.sources[0][1]};branch=z9hG4bK")
    assert far.sources[0] != ("127.0.0.1", agent_port)


def test_a_silent_far_end_holds_up_no_other_leg() -> None:
    """20 UDP legs and 2 TCP legs, a silent far end of each kind listed first: the others
    get their BYEs at once, and end_legs returns at its deadline."""
    with (
        udp_far_end(lambda bye, n: [_ok(bye)]) as udp,
        udp_far_end(lambda bye, n: []) as udp_silent,
        stream_far_end(_ok) as tcp,
        stream_far_end(lambda bye: None) as tcp_silent,
    ):
        legs = [_leg("tcp-silent", tcp_silent.port, "tcp"), _leg("udp-silent", udp_silent.port)]
        legs += [_leg(f"udp-{i}", udp.port) for i in range(19)] + [_leg("tcp", tcp.port, "tcp")]
        start = time.monotonic()
        results = end_legs(legs, hosts=("127.0.0.1",), timeout=3)
        took = time.monotonic() - start
    assert results == {
        "tcp-silent": None, "udp-silent": None, "tcp": 200,
        **{f"udp-{i}": 200 for i in range(19)},
    }  # fmt: skip
    assert 2.9 <= took < 4.0
    assert len(udp.requests) == 19  # each answered at its first BYE
    assert max(udp.times + tcp.times) - start < 1.0  # not held up by the silent ones
    assert len(udp_silent.requests) >= 3  # Timer E: 0, 0.5, 1.5 s...


def test_end_legs_over_tcp() -> None:
    """On the connection, 100 and 200 in one segment: the final answer is read out of it."""

    def trying_then_ok(bye: str) -> bytes:
        return _ok(bye).replace(b"200 OK", b"100 Trying") + _ok(bye)

    with stream_far_end(trying_then_ok) as far:
        results = end_legs([_leg("tcp-1", far.port, "tcp")], hosts=("127.0.0.1",), timeout=3)
    assert results == {"tcp-1": 200}
    via = parse_request(far.requests[0]).first("via") or ""
    assert via.startswith(f"SIP/2.0/TCP 127.0.0.1:{far.sources[0][1]};branch=")


def _tls_server(cert: str, key: str, *, client_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_cert:  # the agent's certificate is the only one it takes
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=cert)
    return context


def test_end_legs_over_tls_as_the_agent_is_configured(certificate: tuple[str, str]) -> None:
    """A sips: leg whose far end verifies the agent's client certificate, and whose own is
    verified against tls_ca_file: the agent's TLS settings, taken from its configuration."""
    cert, key = certificate
    config = AgentConfig(tls=True, tls_cert_file=cert, tls_key_file=key, tls_ca_file=cert)
    tls = TlsClient.from_config(config)
    assert tls == TlsClient(cert_file=cert, key_file=key, ca_file=cert, verify_server=True)
    with stream_far_end(_ok, _tls_server(cert, key, client_cert=True)) as far:
        dialog = Dialog(
            "tls-1", "<sip:a@b>;tag=1", "<sip:c@d>;tag=2", f"sips:c@127.0.0.1:{far.port}"
        )
        results = end_legs([dialog], hosts=("127.0.0.1",), tls=tls, timeout=3)
    assert results == {"tls-1": 200}
    via = parse_request(far.requests[0]).first("via") or ""
    assert via.startswith(f"SIP/2.0/TLS 127.0.0.1:{far.sources[0][1]};branch=")


def test_a_tls_far_end_that_does_not_verify_gets_no_bye(
    certificate: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """tls_verify_server: a self-signed far end is refused against the system's CAs, and
    reached once verification is off; the summary line says why a leg went unanswered."""
    cert, key = certificate
    with stream_far_end(_ok, _tls_server(cert, key, client_cert=False)) as far:
        leg = _leg("tls-2", far.port, "tls")
        with caplog.at_level(logging.INFO, "rtbridge.sip.dialogs"):
            refused = end_legs([leg], hosts=("127.0.0.1",), tls=TlsClient(), timeout=3)
        lax = end_legs([leg], tls=TlsClient(verify_server=False), timeout=3)
    assert refused == {"tls-2": None} and lax == {"tls-2": 200}
    assert len(far.requests) == 1
    (summary,) = caplog.records
    assert summary.levelno == logging.WARNING
    assert summary.__dict__["legs"] == {"TLS": {"answered": 0, "unanswered": 1}}
    assert "CERTIFICATE_VERIFY_FAILED" in " ".join(summary.__dict__["failures"])


def test_one_summary_line_per_call(caplog: pytest.LogCaptureFixture) -> None:
    with udp_far_end(lambda bye, n: [_ok(bye)]) as far, caplog.at_level(logging.INFO):
        legs = [_leg(f"u-{i}", far.port) for i in range(3)]
        legs.append(Dialog("ws-1", "l;tag=1", "r;tag=2", "sip:c@127.0.0.1;transport=ws"))
        results = end_legs(legs, hosts=("127.0.0.1",), timeout=2)
    assert results == {"u-0": 200, "u-1": 200, "u-2": 200, "ws-1": None}
    (summary,) = [r for r in caplog.records if r.name == "rtbridge.sip.dialogs"]
    assert summary.__dict__["legs"] == {
        "UDP": {"answered": 3, "unanswered": 0},
        "WS": {"answered": 0, "unanswered": 1},
    }


def test_garbage_and_huge_answers_do_not_end_a_leg() -> None:
    """Far ends that answer with random bytes, a 64 KiB datagram, a 200 of another dialog,
    or a stream of garbage; legs with no usable address: each leg stays unanswered (or is
    refused at once), and end_legs returns at its deadline all the same."""
    huge = b"SIP/2.0 200 OK\r\nCSeq: 1 BYE\r\nCall-ID: " + b"x" * 65000 + b"\r\n\r\n"

    def abuse(bye: str, n: int) -> list[bytes]:
        return [os.urandom(1400), huge[:65507], _ok(bye, call_id="someone-else"), b"\r\n\r\n"]

    def flood(bye: str) -> bytes:
        return b"SIP/2.0 " + os.urandom(200_000)

    with udp_far_end(abuse) as udp, stream_far_end(flood) as tcp:
        legs = [
            _leg("udp-abused", udp.port),
            _leg("tcp-abused", tcp.port, "tcp"),
            _leg("bad-port", 99999),
            Dialog("no-host", "l;tag=1", "r;tag=2", "sip:c@;transport=tcp"),
        ]
        start = time.monotonic()
        results = end_legs(legs, hosts=("127.0.0.1",), timeout=1.5)
    assert results == dict.fromkeys(("udp-abused", "tcp-abused", "bad-port", "no-host"))
    assert time.monotonic() - start < 2.5
    assert udp.requests and tcp.requests


def test_end_legs_with_nothing_to_end() -> None:
    assert end_legs([], timeout=5) == {}


def test_a_proxys_408_sends_the_bye_again_as_a_new_request() -> None:
    """A proxy between us and the far end answers 408 when its own transaction timed out (a
    lost packet, a slow SBC) and 503 when overloaded: the BYE never arrived, so it goes
    again — a new branch, the next CSeq — until a real answer or the deadline."""

    def reply(bye: str, n: int) -> list[bytes]:
        return [_ok(bye, status="408 Request Timeout" if n == 1 else "503 Service Unavailable")
                if n < 3 else _ok(bye)]  # fmt: skip

    with udp_far_end(reply) as far:
        results = end_legs([_leg("via-proxy", far.port)], hosts=("127.0.0.1",), timeout=5)
    assert results == {"via-proxy": 200}
    sent = [parse_request(r) for r in far.requests]
    assert len(sent) == 3
    assert len({m.first("via") for m in sent}) == 3  # three transactions
    assert [m.first("cseq") for m in sent] == ["1 BYE", "2 BYE", "3 BYE"]
