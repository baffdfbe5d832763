"""Limits a live agent keeps (sip/admission.py, pjproject/patches/0002): the per-source
INVITE rate, and the RTP port range."""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import pytest

from rtbridge.sip.router import BridgeTo, IncomingInvite, OutboundAuth, Reject
from tests.sip.b2bua.support import (
    AgentFactory,
    ScriptedRouter,
    assert_ok,
    bridge_to,
    start_uac,
    start_uas,
)
from tests.sip.rawsip import SipPeer, wait_until
from tests.support.net import free_port

pytestmark = pytest.mark.sip

_AUDIO = re.compile(r"^m=audio (\d+) ", re.MULTILINE)
_RTCP = re.compile(r"^a=rtcp:(\d+)", re.MULTILINE)


def test_invites_beyond_a_sources_burst_are_503(make_agent: AgentFactory) -> None:
    """invite_burst INVITEs from one source are routed; past it, with the rate too slow to
    refill a token during the test (one per 1,000 s), each is refused 503 + Retry-After
    before the router sees it, and counted. Another source has its own burst."""
    agent, router = make_agent(ScriptedRouter(lambda _: Reject(404, "Not Found")),
                               invite_rate=0.001, invite_burst=3, retry_after=9)  # fmt: skip
    noisy, other = SipPeer("127.0.0.1", answer=None), SipPeer("127.0.0.2", answer=None)
    try:
        finals = [noisy.invite(("127.0.0.1", agent.port), f"n-{i}")[1] for i in range(6)]
        assert [f.status for f in finals] == [404, 404, 404, 503, 503, 503]
        assert all(f.header("retry-after") == "9" for f in finals[3:]), finals[3]
        assert [i.ruri_user for i in router.invites] == ["n-0", "n-1", "n-2"]
        _, elsewhere = other.invite(("127.0.0.1", agent.port), "o-0")
        assert elsewhere.status == 404
        assert wait_until(lambda: agent.active_bridges == 0)  # its answer counted
        status = agent.status()
        assert status.refused == {"backlog": 0, "capacity": 0, "draining": 0, "rate": 3}
        assert status.answers == {404: 4, 503: 3}
    finally:
        noisy.close()
        other.close()


def _ports_of_many_calls(
    make_agent: AgentFactory, tmp_path: Path
) -> tuple[int, int, list[int], list[int]]:
    """40 calls through a 40-port range (20 RTP/RTCP pairs; a call takes two, one per leg)
    wrap pjsua's port cursor four times, half of them on an account of their own (a buyer
    with credentials): (rtp_port_min, rtp_port_max, the RTP ports and the RTCP ports the
    agent offered or answered)."""
    calls = 40
    low = free_port(count=42)
    high = low + 40
    buyer = start_uas(tmp_path, "uas_answer.xml", calls=calls, timeout=60)
    plain = bridge_to(buyer.uri())
    accounts = itertools.cycle([None, OutboundAuth("trunkuser", "trunkpass")])

    def decide(invite: IncomingInvite) -> BridgeTo:
        return dataclasses.replace(plain(invite), auth=next(accounts))

    agent, router = make_agent(ScriptedRouter(decide), rtp_port_min=low, rtp_port_max=high,
                               max_calls=16)  # fmt: skip
    publisher = start_uac(tmp_path, agent, "uac_call.xml", calls=calls, rate=10,
                          duration_ms=300, timeout=60)  # fmt: skip
    pub, called = publisher.wait(90), buyer.wait(90)
    assert_ok(pub, called)
    assert pub.invite_answers() == [200] * calls
    sdps = [m.text for m in pub.received() if m.status == 200 and "m=audio" in m.text]
    sdps += [m.text for m in called.requests("INVITE")]
    assert len(sdps) == 2 * calls
    router.wait_for(lambda: sum(e.kind == "ended" for e in router.events) == calls)
    rtp = [int(port) for text in sdps for port in _AUDIO.findall(text)]
    rtcp = [int(port) for text in sdps for port in _RTCP.findall(text)]
    assert len(rtp) == len(rtcp) == 2 * calls
    assert len(set(rtp)) > 10, sorted(set(rtp))  # the cursor went round, not one pair reused
    return low, high, rtp, rtcp


def test_rtp_ports_stay_in_the_range_over_many_calls(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    """Patch 0002: one cursor for all accounts, wrapping inside the range."""
    low, high, rtp, _ = _ports_of_many_calls(make_agent, tmp_path)
    outside = sorted({p for p in rtp if not low <= p < high})  # rtp_port_max is exclusive
    assert not outside, f"RTP ports outside {low}..{high}: {outside}"


def test_rtcp_ports_stay_in_the_range_over_many_calls(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    low, high, _, rtcp = _ports_of_many_calls(make_agent, tmp_path)
    outside = sorted({p for p in rtcp if not low <= p < high})
    assert not outside, f"RTCP ports outside {low}..{high}: {outside}"


def _invite(agent_port: int, port: int, call_id: str) -> bytes:
    """An INVITE from 127.0.0.1:``port``, bytes for bytes the same each time it is sent."""
    return (
        f"INVITE sip:{call_id}@127.0.0.1:{agent_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n"
        f"From: <sip:+12025550102@127.0.0.1>;tag=t-{call_id}\r\nTo: <sip:{call_id}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pub@127.0.0.1:{port}>\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_retransmission_of_an_invite_refused_for_want_of_slots_stays_refused(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    """Two calls up take all 4 call slots: pjsua answers a third INVITE 503 with no
    transaction behind it. Its retransmission, arriving once the calls are over and slots
    are free, gets 503 again and never reaches the router (it would have become a call its
    publisher had given up on: claimed, bridged, billed); a new INVITE is routed."""
    import socket

    uas = start_uas(tmp_path, "uas_answer.xml", calls=2)
    plan = bridge_to(uas.uri())

    def decide(invite: IncomingInvite) -> BridgeTo | Reject:
        return Reject(404, "Not Found") if invite.call_id == "new-call" else plan(invite)

    agent, router = make_agent(ScriptedRouter(decide), max_calls=4, max_bridges=2)
    calls = start_uac(tmp_path, agent, "uac_call.xml", calls=2, rate=20, duration_ms=3000)
    router.wait_for(lambda: sum(e.kind == "answered" for e in router.events) == 2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3.0)

        def ask(data: bytes) -> str:
            sock.sendto(data, ("127.0.0.1", agent.port))
            while True:  # the final answer (a 100 may come first)
                line = sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]
                if not line.startswith("SIP/2.0 1"):
                    return line

        port = sock.getsockname()[1]
        late = _invite(agent.port, port, "late-retransmission")
        assert ask(late).startswith("SIP/2.0 503"), "every slot taken: pjsua's own 503"
        assert_ok(calls.wait(), uas.wait())
        assert wait_until(lambda: agent.legs_alive() == 0, 10)
        assert ask(late).startswith("SIP/2.0 503"), "the retransmission became a call"
        assert ask(_invite(agent.port, port, "new-call")).startswith("SIP/2.0 404")
    routed = [invite.call_id for invite in router.invites]
    assert "late-retransmission" not in routed and "new-call" in routed, routed
    assert agent.status().screened.get(("retransmission", "INVITE")) == 1
