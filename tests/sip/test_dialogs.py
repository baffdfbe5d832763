"""Dialogs kept for crash recovery (sip/dialogs.py): read from the ACKs pjsua2 hands over,
and the BYE rebuilt from them — sent over a real UDP socket to a peer in the test."""

from __future__ import annotations

import socket
import threading

import pytest

from rtbridge.sip.dialogs import (
    Dialog,
    build_bye,
    buyer_leg,
    end_legs,
    next_hop,
    publisher_leg,
    split_values,
)
from rtbridge.sip.messages import parse_request
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


def _answer_byes(far: socket.socket, seen: list[str], *, drop_first: bool, reply_to: int) -> None:
    """A far end: records BYEs, answers 200 to ``reply_to`` on loopback (0: the source)."""
    far.settimeout(3)
    try:
        while True:
            data, source = far.recvfrom(65535)
            seen.append(data.decode())
            if drop_first and len(seen) == 1:
                continue
            msg = parse_request(seen[-1])
            reply = (
                f"SIP/2.0 200 OK\r\nVia: {msg.first('via')}\r\nFrom: {msg.first('from')}\r\n"
                f"To: {msg.first('to')}\r\nCall-ID: {msg.first('call-id')}\r\n"
                f"CSeq: {msg.first('cseq')}\r\nContent-Length: 0\r\n\r\n"
            )
            far.sendto(reply.encode(), ("127.0.0.1", reply_to) if reply_to else source)
    except TimeoutError:
        pass


@pytest.mark.parametrize("drop_first", [False, True], ids=["answered", "retransmitted"])
def test_end_legs_from_the_agent_address(drop_first: bool) -> None:
    """The BYE leaves from the agent's own SIP port (free: the agent has not bound it yet),
    so a far end that answers to where it knows us from, not to the Via, is heard; a
    dropped BYE is retransmitted (Timer E), the same request again."""
    agent_port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far:
        far.bind(("127.0.0.1", 0))
        seen: list[str] = []
        worker = threading.Thread(target=_answer_byes, args=(far, seen),
                                  kwargs={"drop_first": drop_first, "reply_to": agent_port})  # fmt: skip
        worker.start()
        target = f"sip:c@127.0.0.1:{far.getsockname()[1]}"
        dialog = Dialog("gone-1", "<sip:a@b>;tag=1", "<sip:c@d>;tag=2", target)
        results = end_legs([dialog], hosts=("127.0.0.1",), port=agent_port, timeout=3)
        worker.join()
    assert results == {"gone-1": 200}
    assert len(seen) == (2 if drop_first else 1) and len(set(seen)) == 1
    assert f"127.0.0.1:{agent_port};branch=" in seen[0]  # the Via names the agent's port


def test_end_legs_to_nobody_gives_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = f"sip:c@127.0.0.1:{silent.getsockname()[1]}"
        tls = Dialog("tls-1", "l;tag=1", "r;tag=2", "sips:c@127.0.0.1")
        dialog = Dialog("gone-2", "<sip:a@b>;tag=1", "<sip:c@d>;tag=2", target)
        results = end_legs([dialog, tls], hosts=("127.0.0.1",), timeout=1.2)
    assert results == {"gone-2": None, "tls-1": None}
