"""The pjsua2 agent against real SIP peers: SIPp as publisher (UAC) and buyer (UAS).

The router is scripted (tests/sip/b2bua/support.py): the agent's contract is the Router
interface. Everything SIP is real: pjsua2 on loopback sockets, SIPp on the other end, RTP too.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from rtbridge.http.metrics import sip_families
from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.auth.digest import ha1
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.dialogs import Dialog, next_hop
from rtbridge.sip.router import BridgeTo, IncomingInvite, OutboundAuth, Reject
from rtbridge.sip.status import AgentStatus
from tests.sip.b2bua.support import (
    CALLER,
    UUID,
    AgentFactory,
    ScriptedRouter,
    assert_ok,
    bridge_to,
    options,
    start_uac,
    start_uas,
)
from tests.sip.error_watch import ErrorWatch
from tests.sip.rawsip import wait_until
from tests.sip.rtp import RtpPeer
from tests.sip.sipp import SippResult
from tests.support.metrics import Exposition
from tests.support.net import free_port

pytestmark = pytest.mark.sip


# -- bridging ---------------------------------------------------------------------------


def test_call_bridged_and_publisher_hangs_up(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    uac = start_uac(tmp_path, agent, "uac_call.xml", duration_ms=1000)
    pub, buyer = uac.wait(), uas.wait()
    assert_ok(pub, buyer)

    # Progress relayed: the publisher saw the buyer's 180 before the 200.
    assert pub.statuses() == [100, 180, 200, 200], pub.log
    # What the router was told about the INVITE.
    (invite,) = router.invites
    assert invite.ruri_user == UUID
    assert invite.from_user == CALLER and invite.from_display == "Alice"
    assert (invite.source_ip, invite.source_port, invite.transport) == (
        ip_address("127.0.0.1"),  # parsed once, at intake
        uac.port,
        "UDP",
    )
    assert invite.authorization is None
    assert invite.headers["x-source-tag"] == "sipp-uac"
    # What the buyer got: caller id in From, the reservation headers, no injected header.
    (offer,) = buyer.requests("INVITE")
    assert f"<sip:{CALLER}@sip.rtb.example.com>" in (offer.header("From") or "")
    assert offer.header("X-RTB-UUID") == UUID
    assert offer.header("X-RTB-Tag-caller_zip") == "10001"
    assert offer.header("X-RTB-Tag-evil") == "xInjected: yes"
    assert offer.header("Injected") is None
    assert buyer.requests("BYE"), "publisher's BYE must reach the buyer"

    ended = router.ended()
    assert [e.kind for e in router.events] == ["ringing", "answered", "ended"]
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (200, 200, "publisher")
    assert ended.answer_at is not None and ended.end_at is not None
    assert ended.invite_at <= ended.answer_at <= ended.end_at
    # from the buyer's answer to the BYE: the publisher held the call 1000 ms after its ACK
    assert ended.duration == pytest.approx((ended.end_at - ended.answer_at).total_seconds())
    assert ended.duration >= 1.0
    assert ended.call_id == invite.call_id
    router.wait_for(lambda: agent.active_bridges == 0)


def test_buyer_hangs_up(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_hangup.xml", duration_ms=800)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = start_uac(tmp_path, agent, "uac_remote_bye.xml").wait(), uas.wait()
    assert_ok(pub, buyer)
    assert pub.requests("BYE"), "buyer's BYE must reach the publisher"
    ended = router.ended()
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (200, 200, "buyer")
    assert ended.duration >= 0.8  # the buyer hung up 800 ms after its answer


@pytest.mark.parametrize(("code", "reason"), [(486, "Busy Here"), (603, "Decline")])
def test_buyer_refusal_relayed(
    make_agent: AgentFactory, tmp_path: Path, code: int, reason: str
) -> None:
    uas = start_uas(tmp_path, "uas_reject.xml", rewrite={"486 Busy Here": f"{code} {reason}"})
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = start_uac(tmp_path, agent, "uac_failure.xml").wait(), uas.wait()
    assert_ok(pub, buyer)
    assert pub.statuses()[-1] == code
    assert 180 in pub.statuses()
    ended = router.ended()
    assert [e.kind for e in router.events] == ["ringing", "ended"]
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (code, code, "buyer")
    assert ended.answer_at is None and ended.duration == 0.0


def test_ring_timeout_cancels_buyer_and_answers_408(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    uas = start_uas(tmp_path, "uas_noanswer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri(), ring_timeout=1.0)))
    started = time.monotonic()
    pub, buyer = start_uac(tmp_path, agent, "uac_failure.xml").wait(), uas.wait()
    assert_ok(pub, buyer)
    assert pub.statuses()[-1] == 408
    assert buyer.requests("CANCEL")
    assert time.monotonic() - started >= 1.0  # not before the ring timeout (hangup_by below)
    ended = router.ended()
    # buyer_code 408: we stopped waiting (the buyer's 487 to our CANCEL is not its answer)
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (408, 408, "timeout")
    assert [(a.kind, a.final_code) for a in ended.attempts] == [("no-answer", 408)]


def test_publisher_cancel_cancels_buyer(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_noanswer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = start_uac(tmp_path, agent, "uac_cancel.xml").wait(), uas.wait()
    assert_ok(pub, buyer)
    assert buyer.requests("CANCEL"), "the publisher's CANCEL must reach the buyer"
    ended = router.ended()
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (487, 487, "publisher")


_TRUNK_HA1 = ha1("trunkuser", "buyer.example.net", "trunkpass", "MD5")


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (OutboundAuth("trunkuser", "trunkpass"), 200),
        (OutboundAuth("trunkuser", "wrong"), 403),
        # How trunks are stored: HA1 for the carrier's realm, never the password.
        (OutboundAuth("trunkuser", _TRUNK_HA1, "buyer.example.net", hashed=True), 200),
    ],
    ids=["password", "wrong", "ha1"],
)
def test_outbound_digest_auth(
    make_agent: AgentFactory, tmp_path: Path, auth: OutboundAuth, code: int
) -> None:
    """BridgeTo.auth answers the buyer's 401 (SIPp verifies only Authorization, not
    Proxy-Authorization); a wrong password surfaces as the buyer's 403."""
    uas = start_uas(tmp_path, "uas_auth.xml")
    plain = bridge_to(uas.uri())

    def decide(invite: IncomingInvite) -> BridgeTo:
        return dataclasses.replace(plain(invite), auth=auth)

    agent, router = make_agent(ScriptedRouter(decide))
    scenario = "uac_call.xml" if code == 200 else "uac_failure.xml"
    pub, buyer = start_uac(tmp_path, agent, scenario).wait(), uas.wait()
    assert_ok(pub, buyer)
    assert pub.statuses()[-1] == 200 if code == 200 else pub.statuses()[-1] == 403
    retry = buyer.requests("INVITE")[-1]
    assert 'username="trunkuser"' in (retry.header("Authorization") or "")
    assert router.ended().buyer_code == code


# -- refusals before any bridge -----------------------------------------------------------


def test_reject_carries_status_and_headers(make_agent: AgentFactory, tmp_path: Path) -> None:
    challenge = 'Digest realm="sip.rtb.example.com", nonce="n0nce", qop="auth", algorithm=MD5'
    router = ScriptedRouter(
        lambda _: Reject(401, "Unauthorized", (("WWW-Authenticate", challenge),))
    )
    agent, _ = make_agent(router)
    pub = start_uac(tmp_path, agent, "uac_failure.xml").wait()
    assert_ok(pub)
    response = pub.response(401)
    assert response.header("WWW-Authenticate") == challenge
    assert router.events == []  # nothing claimed, nothing to record


@pytest.mark.allow_agent_errors("^router failed for ")
def test_router_exception_answers_500(make_agent: AgentFactory, tmp_path: Path) -> None:
    def boom(_: IncomingInvite) -> Reject:
        raise RuntimeError("database down")

    agent, router = make_agent(ScriptedRouter(boom))
    pub = start_uac(tmp_path, agent, "uac_failure.xml").wait()
    assert_ok(pub)
    assert pub.statuses()[-1] == 500
    # …and the agent still serves the next INVITE.
    router.decide = lambda _: Reject(404, "Not Found")
    assert start_uac(tmp_path, agent, "uac_failure.xml").wait().statuses()[-1] == 404


def test_at_capacity_503_without_routing(make_agent: AgentFactory, tmp_path: Path) -> None:
    """One INVITE being routed fills a capacity of one bridge; the next is refused with
    503 + Retry-After *before* route(), so its reservation stays unclaimed."""
    router = ScriptedRouter(lambda _: Reject(404, "Not Found"), gate=threading.Event())
    agent, _ = make_agent(router, max_bridges=1)
    assert agent.capacity.bridges == 1
    first = [start_uac(tmp_path, agent, "uac_failure.xml", service="held-0")]
    router.wait_for(lambda: len(router.invites) == 1)
    third = start_uac(tmp_path, agent, "uac_failure.xml", service="third").wait()
    assert_ok(third)
    assert third.statuses()[-1] == 503
    assert third.response(503).header("Retry-After") == "5"
    assert [i.ruri_user for i in router.invites] == ["held-0"]
    assert router.gate is not None
    router.gate.set()
    for uac in first:
        result = uac.wait()
        assert_ok(result)
        assert result.statuses()[-1] == 404


def test_every_slot_taken_503_not_486(make_agent: AgentFactory, tmp_path: Path) -> None:
    """pjsua answers an INVITE for which it has no call slot itself, before any Python runs.
    Stock pjsua says 486 Busy Here — which a publisher reads as "the buyer is busy";
    rtbridge's build says 503 + Retry-After (pjproject/patches/0001-slots-full-503.patch).
    Two bridged calls fill four slots; a third INVITE never reaches the agent."""
    uas = start_uas(tmp_path, "uas_answer.xml", calls=2)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())), max_calls=4, max_bridges=2)
    assert agent.capacity.spare_slots == 0
    held = start_uac(tmp_path, agent, "uac_call.xml", calls=2, rate=20, duration_ms=3000)
    router.wait_for(lambda: sum(e.kind == "answered" for e in router.events) == 2)
    third = start_uac(tmp_path, agent, "uac_failure.xml", service="third").wait()
    assert_ok(third)
    assert third.statuses()[-1] == 503, third.statuses()
    assert third.response(503).header("Retry-After") == "5"
    status = agent.status()
    assert status.invites == 2  # refused inside pjsua, not by the agent...
    assert status.refused["capacity"] == 1 and status.answers[503] == 1  # ...and counted
    assert_ok(held.wait(), uas.wait())


# -- transports ----------------------------------------------------------------------------


def test_tcp_transport(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml", transport="TCP")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri(transport="TCP"))))
    pub = start_uac(tmp_path, agent, "uac_call.xml", transport="TCP").wait()
    buyer = uas.wait()
    assert_ok(pub, buyer)
    assert router.invites[0].transport == "TCP"
    assert "SIP/2.0/TCP" in (buyer.requests("INVITE")[0].header("Via") or "")
    assert router.ended().hangup_by == "publisher"


# -- robustness ------------------------------------------------------------------------------


def test_garbage_does_not_stop_the_agent(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    target = ("127.0.0.1", agent.port)
    headerless = (
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad\r\n"
        b"To: <sip:x@127.0.0.1>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )  # no From, no Call-ID: nothing to answer
    no_contact = (
        "INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnc\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: nc-1\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )  # well-formed but no Contact (RFC 3261 8.1.1.8): pjsip answers 400
    datagrams = [
        b"",
        b"\x00" * 10,
        bytes(range(256)) * 4,
        b"INVITE",
        b"INVITE sip:a@b SIP/2.0\r\nVia: garbage\r\nContent-Length: 99999\r\n\r\nabc",
        b"SIP/2.0 200 OK\r\n\r\n",
        "INVITE sip:\u00e9@h SIP/2.0\r\nFrom: \xff\r\n\r\n".encode("utf-8", "replace"),
        b"A" * 60000,
        headerless,
        b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nContact: <<<>>>\r\n\r\n",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.bind(("127.0.0.1", 0))
        datagrams.append(no_contact.format(port=sock.getsockname()[1]).encode())
        for payload in datagrams:
            sock.sendto(payload, target)
        replies = []
        try:
            while True:
                replies.append(sock.recv(65535))
        except TimeoutError:
            pass
    with socket.create_connection(target, timeout=1.0) as tcp:
        tcp.sendall(b"\xde\xad\xbe\xef" * 1000 + b"\r\n\r\nINVITE x\r\n\r\n")
    assert router.invites == []
    assert any(reply.startswith(b"SIP/2.0 400") for reply in replies), replies
    # …and a normal call still goes through.
    pub, buyer = start_uac(tmp_path, agent, "uac_call.xml").wait(), uas.wait()
    assert_ok(pub, buyer)
    assert router.ended().publisher_code == 200


def test_stop_hangs_up_calls(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    uac = start_uac(tmp_path, agent, "uac_remote_bye.xml")
    router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
    agent.stop()
    pub, buyer = uac.wait(), uas.wait()
    assert_ok(pub, buyer)
    ended = router.ended(timeout=1.0)  # delivered before stop() returned
    assert (ended.publisher_code, ended.hangup_by) == (200, "agent")


def test_foreground_run_until_stop(sipp: str, tmp_path: Path, agent_errors: ErrorWatch) -> None:
    """run() blocks on the calling thread (the CLI's foreground mode) until stop()."""
    router = ScriptedRouter()
    rtp = free_port()
    agent = Agent(
        AgentConfig(
            hosts=("127.0.0.1",), port=0, rtp_port_min=rtp, rtp_port_max=rtp + 20, max_calls=8
        ),
        router,
    )
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while agent.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        pub = start_uac(tmp_path, agent, "uac_failure.xml").wait()
        assert_ok(pub)
        assert pub.statuses()[-1] == 404
    finally:
        agent.stop()
        runner.join(10)
    assert not runner.is_alive()


# -- media ------------------------------------------------------------------------------------


def _call_with_media(
    make_agent: AgentFactory,
    tmp_path: Path,
    *,
    publisher_host: str = "127.0.0.1",
    buyer_host: str = "127.0.0.1",
    seconds: float = 3.0,
    dtmf: str = "",
) -> tuple[Agent, ScriptedRouter, RtpPeer, SippResult, SippResult]:
    """One bridged call: the publisher's RTP from an RtpPeer, the buyer SIPp echoing RTP."""
    uas = start_uas(tmp_path, "uas_answer.xml", host=buyer_host, rtp_echo=True)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    peer = RtpPeer(publisher_host).start()
    uac = start_uac(tmp_path, agent, "uac_call.xml", host=publisher_host,
               duration_ms=int(seconds * 1000), keys={"rtp_port": str(peer.port)})  # fmt: skip
    try:
        if dtmf:
            router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
            assert wait_until(lambda: peer.received > 10)  # media flowing on both legs
            peer.send_dtmf(dtmf)
        pub, buyer = uac.wait(), uas.wait()
    finally:
        peer.stop()
    assert_ok(pub, buyer)
    return agent, router, peer, pub, buyer


def test_media_bridged_both_ways(make_agent: AgentFactory, tmp_path: Path) -> None:
    """A 440 Hz tone sent as RTP by the 'publisher' goes through the agent to the buyer,
    which echoes it (SIPp -rtp_echo), and comes back through the agent. Only bridged audio
    can bring the tone back: the agent itself generates silence."""
    _, router, peer, _, _ = _call_with_media(make_agent, tmp_path)
    assert peer.sent > 50, "the agent never sent RTP to the publisher"
    assert peer.tone_seconds() >= 1.0, f"{peer.tone_seconds()} s of the 3 s tone came back"
    assert router.ended().publisher_code == 200


@pytest.mark.parametrize("buyer_host", ["::1", "127.0.0.1"], ids=["v6-v6", "v6-v4"])
def test_ipv6_signalling_and_media(
    make_agent: AgentFactory, tmp_path: Path, buyer_host: str
) -> None:
    """IPv6 end to end (SPEC §4.1): the publisher's SIP and RTP over ::1; the buyer over
    ::1 too, or over IPv4 — the agent bridges the families."""
    _, router, peer, pub, buyer = _call_with_media(
        make_agent, tmp_path, publisher_host="::1", buyer_host=buyer_host
    )
    invite = router.invites[0]
    assert invite.source_ip == ip_address("::1") and "[::1]" in invite.request_uri
    answer = pub.response(200)
    assert "[::1]" in (answer.header("Contact") or "")
    assert "c=IN IP6 ::1" in answer.text, "the agent's SDP answer must be IPv6"
    offer = buyer.requests("INVITE")[0]
    family = "IP6" if ":" in buyer_host else "IP4"
    assert f"c=IN {family} " in offer.text
    assert peer.tone_seconds() >= 1.0, f"{peer.tone_seconds()} s of the 3 s tone came back"
    assert router.ended().publisher_code == 200


def test_dtmf_relayed_both_ways(make_agent: AgentFactory, tmp_path: Path) -> None:
    """RFC 4733 digits from the publisher reach the buyer (which echoes them back as it
    echoes all RTP), and the buyer's reach the publisher: each digit crosses the agent
    twice, once per direction, with its duration kept."""
    agent, router, peer, _, _ = _call_with_media(make_agent, tmp_path, seconds=4.0, dtmf="19#")
    assert [digit for digit, _ in peer.events] == ["1", "9", "#"], peer.events
    assert all(80 <= duration <= 200 for _, duration in peer.events), peer.events
    assert agent.status().dtmf_relayed == 6  # 3 publisher -> buyer, 3 buyer -> publisher
    assert router.ended().publisher_code == 200


# -- behind a proxy, probing, draining (issue 9) ------------------------------------------------


def test_sender_named_by_a_trusted_proxy(make_agent: AgentFactory, tmp_path: Path) -> None:
    """From a trusted proxy the agent routes on the sender the proxy names; the same header
    from any other address is ignored (a spoofed allowlist source gets nothing)."""
    agent, router = make_agent(trusted_proxies=("127.0.0.2/32",))
    header = {
        "Max-Forwards: 70": "Max-Forwards: 70\n      X-RTB-Source: 198.51.100.7:5070;transport=tls"
    }
    for host in ("127.0.0.2", "127.0.0.3"):
        result = start_uac(tmp_path, agent, "uac_failure.xml", host=host, rewrite=header).wait()
        assert_ok(result)
    proxied, spoofed = router.invites
    assert (proxied.source_ip, proxied.source_port, proxied.transport, proxied.via_proxy) == (
        ip_address("198.51.100.7"),
        5070,
        "TLS",
        "127.0.0.2",
    )
    assert (spoofed.source_ip, spoofed.via_proxy) == (ip_address("127.0.0.3"), None)


def test_options_and_sigterm_drain(make_agent: AgentFactory, tmp_path: Path) -> None:
    """A dispatcher's OPTIONS probe hears 200 while the agent takes calls and 503 +
    Retry-After once it drains; a draining agent refuses new INVITEs with 503 while the
    live call runs to its end, and drain() returns when it has."""
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    assert options(agent.port).startswith("SIP/2.0 200")
    live = start_uac(tmp_path, agent, "uac_call.xml", duration_ms=2500)
    router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
    drained = []
    drainer = threading.Thread(target=lambda: drained.append(agent.drain(timeout=20)))
    drainer.start()
    # the agent thread publishes the new OPTIONS answer on its next poll: probe until then
    deadline = time.monotonic() + 10
    while (probe := options(agent.port)).startswith("SIP/2.0 200"):
        assert time.monotonic() < deadline, "OPTIONS still answered 200 while draining"
        time.sleep(0.05)  # pacing, not a wait for the answer
    assert probe.startswith("SIP/2.0 503") and "Retry-After: 5" in probe, probe
    refused = start_uac(tmp_path, agent, "uac_failure.xml", service="late").wait()
    assert refused.statuses()[-1] == 503
    assert agent.status().draining and agent.status().refused["draining"] == 1
    assert_ok(live.wait(), uas.wait())  # the live call ended on its own, normally
    drainer.join(20)
    assert drained == [0]
    assert router.ended().publisher_code == 200


# -- dead peers ---------------------------------------------------------------------------


def test_session_timers_offered_on_both_legs(make_agent: AgentFactory, tmp_path: Path) -> None:
    """RFC 4028 (SPEC §4.4): the buyer is offered a session interval; a publisher that asks
    for one gets it in the 200. A refresh that fails later ends the leg, and the bridge."""
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, _ = make_agent(ScriptedRouter(bridge_to(uas.uri())), session_expires=600)
    uac = start_uac(tmp_path, agent, "uac_call.xml", duration_ms=300,
                    rewrite={"X-Source-Tag: sipp-uac": "Supported: timer\n      Session-Expires: 900"})  # fmt: skip
    pub, buyer = uac.wait(), uas.wait()
    assert_ok(pub, buyer)
    (offer,) = buyer.requests("INVITE")
    assert (offer.header("Session-Expires") or "").startswith("600")
    assert "timer" in (offer.header("Supported") or "")
    answer = pub.response(200)
    assert (answer.header("Session-Expires") or "").startswith("900")
    assert "timer" in (answer.header("Require") or answer.header("Supported") or "")


def test_silent_leg_ends_the_call(make_agent: AgentFactory, tmp_path: Path) -> None:
    """The publisher's RTP stops mid-call without a BYE (its far end vanished): after
    rtp_timeout the agent ends both legs — a BYE each — and records ``media-timeout``."""
    uas = start_uas(tmp_path, "uas_answer.xml", rtp_echo=True)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())), rtp_timeout=2.0)
    peer = RtpPeer("127.0.0.1").start()
    uac = start_uac(tmp_path, agent, "uac_remote_bye.xml", timeout=20,
                    keys={"rtp_port": str(peer.port)})  # fmt: skip
    try:
        router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
        # audio came back through both legs, so both are being timed
        assert wait_until(lambda: peer.received > 25)
    finally:
        peer.stop()
    silent_at = time.monotonic()
    ended = router.ended(timeout=10)
    waited = time.monotonic() - silent_at
    assert ended.hangup_by == "media-timeout" and ended.publisher_code == 200, ended
    assert waited >= 1.5, f"ended {waited:.1f} s after the RTP stopped (timeout 2 s)"
    assert ended.duration >= 1.0
    pub, buyer = uac.wait(), uas.wait()
    assert_ok(pub, buyer)  # the publisher was waiting for our BYE; the buyer got one too
    assert buyer.requests("BYE")


def test_answered_event_carries_both_dialogs(make_agent: AgentFactory, tmp_path: Path) -> None:
    """What crash recovery will need to BYE each leg, reported once the publisher ACKed."""
    uas = start_uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    uac = start_uac(tmp_path, agent, "uac_call.xml", duration_ms=500)
    pub, buyer = uac.wait(), uas.wait()
    assert_ok(pub, buyer)
    (answered,) = [e for e in router.events if e.kind == "answered"]
    assert answered.dialogs is not None
    publisher = Dialog.from_json(answered.dialogs["publisher"])
    buyer_leg = Dialog.from_json(answered.dialogs["buyer"])
    (invite,) = router.invites
    assert publisher.call_id == invite.call_id
    assert publisher.remote == invite.headers["from"]  # the publisher's tag
    our_tag = (pub.response(200).header("To") or "").rpartition(";tag=")[2]
    assert our_tag and publisher.local.endswith(f";tag={our_tag}")
    assert publisher.target.startswith(f"sip:{CALLER}@127.0.0.1:{uac.port}")
    (offer,) = buyer.requests("INVITE")
    (ok,) = [m for m in buyer.messages if m.direction == "sent" and m.status == 200 and
             (m.header("CSeq") or "").endswith("INVITE")]  # fmt: skip
    assert buyer_leg.call_id == offer.header("Call-ID")
    assert buyer_leg.local == offer.header("From") and buyer_leg.remote == ok.header("To")
    assert next_hop(buyer_leg) == ("127.0.0.1", uas.port, "UDP")


def test_a_taken_port_is_named_with_what_to_do(sipp: str, agent_errors: ErrorWatch) -> None:
    """Another process holds the SIP port: the agent refuses to start with a message that
    names the port and the ways out, not a bare pjsua2 error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        rtp = free_port(count=1)
        agent = Agent(AgentConfig(hosts=("127.0.0.1",), port=port, rtp_port_min=rtp,
                                  rtp_port_max=rtp + 40, max_calls=16), ScriptedRouter())  # fmt: skip
        with pytest.raises(RuntimeError) as failed:
            agent.start()
    message = str(failed.value)
    assert f"SIP port {port} is already in use on 127.0.0.1" in message
    assert "--sip HOST:PORT" in message and "--sip off" in message


def test_answers_and_setup_times_are_counted(
    make_agent: AgentFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/metrics: final codes sent to publishers and the set-up time histogram, after real
    calls; and one "call ended" line per claimed call."""
    caplog.set_level(logging.INFO, logger="rtbridge.sip.b2bua.agent")
    uas = start_uas(tmp_path, "uas_answer.xml")
    known = bridge_to(uas.uri())
    agent, router = make_agent(ScriptedRouter(
        lambda i: known(i) if i.ruri_user == UUID else Reject(404, "Not Found")))  # fmt: skip
    assert_ok(start_uac(tmp_path, agent, "uac_call.xml", duration_ms=200).wait(), uas.wait())
    start_uac(tmp_path, agent, "uac_failure.xml", service="nobody").wait()
    router.wait_for(lambda: agent.active_bridges == 0)
    status = agent.status()
    assert status.answers == {200: 1, 404: 1}
    assert status.auth_failures == {}  # a 404 is not authentication's refusal
    assert status.setup is not None and status.setup.cumulative()[-1][1] == 1
    registry = CollectorRegistry()
    registry.register(_Snapshot(status))
    metrics = Exposition(generate_latest(registry).decode())
    assert metrics.labelled("rtbridge_sip_answers_total", "code") == {"200": 1, "404": 1}
    assert metrics.value("rtbridge_sip_setup_seconds_count") == 1
    assert metrics.value("rtbridge_sip_setup_seconds_bucket", le="+Inf") == 1
    assert metrics.value("rtbridge_sip_setup_seconds_sum") == status.setup.sum
    (ended,) = [r for r in caplog.records if r.getMessage() == "call ended"]
    assert ended.uuid == UUID and ended.code == 200 and ended.hangup_by == "publisher"  # type: ignore[attr-defined]


class _Snapshot:
    """The agent's series as /metrics renders them, without the HTTP app around them."""

    def __init__(self, status: AgentStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        return sip_families(self._status)
