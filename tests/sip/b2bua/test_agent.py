"""The pjsua2 agent against real SIP peers: SIPp as publisher (UAC) and buyer (UAS).

The router here is a test double on purpose: this layer's contract *is* the Router
interface (route → Reject | BridgeTo, on_event), and the DB-backed router is tested on its
own. Everything SIP is real: pjsua2 on loopback sockets, SIPp on the other end, RTP too.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtbridge.sip.agent import Agent
from rtbridge.sip.digest import ha1
from rtbridge.sip.router import BridgeTo, CallEvent, IncomingInvite, OutboundAuth, Reject
from rtbridge.sip.settings import AgentConfig
from tests.sip.sipp import Sipp, hostport, sipp_binary
from tests.support.net import free_port

pytestmark = pytest.mark.sip

UUID = "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30"
CALLER = "+12025550102"


@dataclass
class ScriptedRouter:
    """Answers every INVITE with ``decide(invite)``; records invites and events."""

    decide: Callable[[IncomingInvite], Reject | BridgeTo] = lambda _: Reject(404, "Not Found")
    gate: threading.Event | None = None  # when set: route() blocks until the gate opens
    invites: list[IncomingInvite] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def route(self, invite: IncomingInvite) -> Reject | BridgeTo:
        with self._cond:
            self.invites.append(invite)
            self._cond.notify_all()
        if self.gate is not None:
            self.gate.wait(15)
        return self.decide(invite)

    def on_event(self, event: CallEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out; invites={self.invites} events={self.events}")

    def ended(self, timeout: float = 10.0) -> CallEvent:
        self.wait_for(lambda: any(e.kind == "ended" for e in self.events), timeout)
        return next(e for e in self.events if e.kind == "ended")


def bridge_to(target: str, *, ring_timeout: float = 10.0) -> Callable[[IncomingInvite], BridgeTo]:
    def decide(invite: IncomingInvite) -> BridgeTo:
        return BridgeTo(
            reservation_uuid=invite.ruri_user,
            target_uri=target,
            caller_id=invite.from_user,
            headers=(
                ("X-RTB-UUID", invite.ruri_user),
                ("X-RTB-Tag-caller_zip", "10001"),
                ("X-RTB-Tag-evil", "x\r\nInjected: yes"),  # a publisher-supplied tag value
            ),
            ring_timeout=ring_timeout,
        )

    return decide


@pytest.fixture(scope="module")
def sipp() -> str:
    path = sipp_binary()
    if path is None:
        pytest.fail("sipp not installed (Debian package sip-tester); scripts/ installs it")
    return path


AgentFactory = Callable[..., tuple[Agent, ScriptedRouter]]


@pytest.fixture
def make_agent(sipp: str) -> Iterator[AgentFactory]:
    """Start an agent on free loopback ports; stopped (libDestroy) at teardown.

    One pjsua2 Endpoint exists per process, so each test gets its own agent in turn.
    """
    agents: list[Agent] = []

    def make(
        router: ScriptedRouter | None = None, **overrides: object
    ) -> tuple[Agent, ScriptedRouter]:
        router = router or ScriptedRouter()
        rtp = free_port(count=1)
        options: dict[str, object] = {
            "hosts": ("127.0.0.1", "::1"),
            "port": 0,
            "media_address": "127.0.0.1",
            "rtp_port_min": rtp,
            "rtp_port_max": rtp + 40,
            "drain_timeout": 2.0,
        }
        options.update(overrides)
        agent = Agent(AgentConfig(**options), router)  # type: ignore[arg-type]
        agent.start()
        agents.append(agent)
        return agent, router

    yield make
    for agent in agents:
        agent.stop()


_spawned: list[Sipp] = []


@pytest.fixture(autouse=True)
def _reap_sipp() -> Iterator[None]:
    yield
    while _spawned:
        _spawned.pop().kill()


def _uac(tmp_path: Path, agent: Agent, scenario: str, **kw: object) -> Sipp:
    host = str(kw.pop("host", "127.0.0.1"))
    service = str(kw.pop("service", UUID))
    uac = Sipp(
        scenario, tmp_path, host=host, remote=hostport(host, agent.port), service=service, **kw
    )  # type: ignore[arg-type]
    _spawned.append(uac)
    return uac


def _uas(tmp_path: Path, scenario: str, **kw: object) -> Sipp:
    uas = Sipp(scenario, tmp_path, **kw)  # type: ignore[arg-type]
    _spawned.append(uas)
    uas.wait_listening()
    return uas


def _assert_ok(*results: object) -> None:
    for result in results:
        assert result.returncode == 0, result.log  # type: ignore[attr-defined]


# -- bridging ---------------------------------------------------------------------------


def test_call_bridged_and_publisher_hangs_up(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    uac = _uac(tmp_path, agent, "uac_call.xml", duration_ms=1000)
    pub, buyer = uac.wait(), uas.wait()
    _assert_ok(pub, buyer)

    # Progress relayed: the publisher saw the buyer's 180 before the 200.
    assert pub.statuses() == [100, 180, 200, 200], pub.log
    # What the router was told about the INVITE.
    (invite,) = router.invites
    assert invite.ruri_user == UUID
    assert invite.from_user == CALLER and invite.from_display == "Alice"
    assert (invite.source_ip, invite.source_port, invite.transport) == (
        "127.0.0.1",
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
    assert 0.8 <= ended.duration <= 5.0
    assert ended.call_id == invite.call_id
    router.wait_for(lambda: agent.active_bridges == 0)


def test_buyer_hangs_up(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_hangup.xml", duration_ms=800)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = _uac(tmp_path, agent, "uac_remote_bye.xml").wait(), uas.wait()
    _assert_ok(pub, buyer)
    assert pub.requests("BYE"), "buyer's BYE must reach the publisher"
    ended = router.ended()
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (200, 200, "buyer")
    assert 0.5 <= ended.duration <= 5.0


@pytest.mark.parametrize(("code", "reason"), [(486, "Busy Here"), (603, "Decline")])
def test_buyer_refusal_relayed(
    make_agent: AgentFactory, tmp_path: Path, code: int, reason: str
) -> None:
    uas = _uas(tmp_path, "uas_reject.xml", rewrite={"486 Busy Here": f"{code} {reason}"})
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = _uac(tmp_path, agent, "uac_failure.xml").wait(), uas.wait()
    _assert_ok(pub, buyer)
    assert pub.statuses()[-1] == code
    assert 180 in pub.statuses()
    ended = router.ended()
    assert [e.kind for e in router.events] == ["ringing", "ended"]
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (code, code, "buyer")
    assert ended.answer_at is None and ended.duration == 0.0


def test_ring_timeout_cancels_buyer_and_answers_408(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    uas = _uas(tmp_path, "uas_noanswer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri(), ring_timeout=1.0)))
    started = time.monotonic()
    pub, buyer = _uac(tmp_path, agent, "uac_failure.xml").wait(), uas.wait()
    _assert_ok(pub, buyer)
    assert pub.statuses()[-1] == 408
    assert buyer.requests("CANCEL")
    assert 0.9 <= time.monotonic() - started < 8
    ended = router.ended()
    assert (ended.publisher_code, ended.buyer_code, ended.hangup_by) == (408, 487, "timeout")


def test_publisher_cancel_cancels_buyer(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_noanswer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub, buyer = _uac(tmp_path, agent, "uac_cancel.xml").wait(), uas.wait()
    _assert_ok(pub, buyer)
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
    uas = _uas(tmp_path, "uas_auth.xml")
    plain = bridge_to(uas.uri())

    def decide(invite: IncomingInvite) -> BridgeTo:
        return dataclasses.replace(plain(invite), auth=auth)

    agent, router = make_agent(ScriptedRouter(decide))
    scenario = "uac_call.xml" if code == 200 else "uac_failure.xml"
    pub, buyer = _uac(tmp_path, agent, scenario).wait(), uas.wait()
    _assert_ok(pub, buyer)
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
    pub = _uac(tmp_path, agent, "uac_failure.xml").wait()
    _assert_ok(pub)
    response = pub.response(401)
    assert response.header("WWW-Authenticate") == challenge
    assert router.events == []  # nothing claimed, nothing to record


def test_router_exception_answers_500(make_agent: AgentFactory, tmp_path: Path) -> None:
    def boom(_: IncomingInvite) -> Reject:
        raise RuntimeError("database down")

    agent, router = make_agent(ScriptedRouter(boom))
    pub = _uac(tmp_path, agent, "uac_failure.xml").wait()
    _assert_ok(pub)
    assert pub.statuses()[-1] == 500
    # …and the agent still serves the next INVITE.
    router.decide = lambda _: Reject(404, "Not Found")
    assert _uac(tmp_path, agent, "uac_failure.xml").wait().statuses()[-1] == 404


def test_at_capacity_503_without_routing(make_agent: AgentFactory, tmp_path: Path) -> None:
    """One INVITE being routed fills the default capacity (4 slots, 2 kept free to refuse);
    the next two are refused with 503 + Retry-After *before* route(), so their
    reservations stay unclaimed."""
    router = ScriptedRouter(lambda _: Reject(404, "Not Found"), gate=threading.Event())
    agent, _ = make_agent(router, max_bridges=0)
    assert agent.config.bridge_capacity == 1
    first = [_uac(tmp_path, agent, "uac_failure.xml", service="held-0")]
    router.wait_for(lambda: len(router.invites) == 1)
    third = _uac(tmp_path, agent, "uac_failure.xml", service="third").wait()
    _assert_ok(third)
    assert third.statuses()[-1] == 503
    assert third.response(503).header("Retry-After") == "5"
    assert [i.ruri_user for i in router.invites] == ["held-0"]
    assert router.gate is not None
    router.gate.set()
    for uac in first:
        result = uac.wait()
        _assert_ok(result)
        assert result.statuses()[-1] == 404


def test_pjsua_slot_cap(make_agent: AgentFactory, tmp_path: Path) -> None:
    """Measures the wheel's real per-process call cap: ask pjsua for 32 slots, hold six
    INVITEs in routing, count how many reach the router. pjsua answers the rest with a
    stateless 486 before any Python callback runs (which is why the agent's own capacity
    check must keep a slot free to send its 503)."""
    router = ScriptedRouter(lambda _: Reject(404, "Not Found"), gate=threading.Event())
    agent, _ = make_agent(router, max_calls=32, max_bridges=16)
    uac = _uac(tmp_path, agent, "uac_failure.xml", calls=6, rate=50)
    router.wait_for(lambda: len(router.invites) >= 4)
    time.sleep(0.8)  # give the other two time to arrive
    admitted = len(router.invites)
    assert router.gate is not None
    router.gate.set()
    result = uac.wait()
    print(f"pjsua2 wheel call slots per process: {admitted} (asked for 32)")
    assert admitted == 4
    assert sorted(code for code in result.statuses() if code >= 400) == [404] * 4 + [486] * 2


# -- transports ----------------------------------------------------------------------------


def test_tcp_transport(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_answer.xml", transport="TCP")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri(transport="TCP"))))
    pub = _uac(tmp_path, agent, "uac_call.xml", transport="TCP").wait()
    buyer = uas.wait()
    _assert_ok(pub, buyer)
    assert router.invites[0].transport == "TCP"
    assert "SIP/2.0/TCP" in (buyer.requests("INVITE")[0].header("Via") or "")
    assert router.ended().hangup_by == "publisher"


def test_ipv6_loopback(make_agent: AgentFactory, tmp_path: Path) -> None:
    """IPv6 signalling on both legs. Media stays IPv4: the wheel has no IPv6 media."""
    uas = _uas(tmp_path, "uas_answer.xml", host="::1", media_host="127.0.0.1")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    pub = _uac(tmp_path, agent, "uac_call.xml", host="::1", media_host="127.0.0.1").wait()
    buyer = uas.wait()
    _assert_ok(pub, buyer)
    invite = router.invites[0]
    assert invite.source_ip == "::1"
    assert "[::1]" in invite.request_uri
    assert "[::1]" in (pub.response(200).header("Contact") or "")
    assert "SIP/2.0/UDP [::1]" in (buyer.requests("INVITE")[0].header("Via") or "")
    assert router.ended().publisher_code == 200


# -- robustness ------------------------------------------------------------------------------


def test_garbage_does_not_stop_the_agent(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_answer.xml")
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
    pub, buyer = _uac(tmp_path, agent, "uac_call.xml").wait(), uas.wait()
    _assert_ok(pub, buyer)
    assert router.ended().publisher_code == 200


def test_stop_hangs_up_calls(make_agent: AgentFactory, tmp_path: Path) -> None:
    uas = _uas(tmp_path, "uas_answer.xml")
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    uac = _uac(tmp_path, agent, "uac_remote_bye.xml")
    router.wait_for(lambda: any(e.kind == "answered" for e in router.events))
    agent.stop()
    pub, buyer = uac.wait(), uas.wait()
    _assert_ok(pub, buyer)
    ended = router.ended(timeout=1.0)  # delivered before stop() returned
    assert (ended.publisher_code, ended.hangup_by) == (200, "agent")


def test_foreground_run_until_stop(sipp: str, tmp_path: Path) -> None:
    """run() blocks on the calling thread (the CLI's foreground mode) until stop()."""
    router = ScriptedRouter()
    rtp = free_port()
    agent = Agent(
        AgentConfig(hosts=("127.0.0.1",), port=0, rtp_port_min=rtp, rtp_port_max=rtp + 20),
        router,
    )
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while agent.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        pub = _uac(tmp_path, agent, "uac_failure.xml").wait()
        _assert_ok(pub)
        assert pub.statuses()[-1] == 404
    finally:
        agent.stop()
        runner.join(10)
    assert not runner.is_alive()


# -- media -------------------------------------------------------------------------------------

_ULAW_SILENCE = {0xFF, 0x7F}


def _ulaw(sample: int) -> int:
    """G.711 mu-law encode one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def test_media_bridged_both_ways(make_agent: AgentFactory, tmp_path: Path) -> None:
    """A tone sent as RTP by the 'publisher' goes through the agent to the buyer, which
    echoes it (SIPp -rtp_echo), and comes back through the agent. Only bridged audio can
    come back non-silent: the agent itself generates silence."""
    uas = _uas(tmp_path, "uas_answer.xml", rtp_echo=True)
    agent, router = make_agent(ScriptedRouter(bridge_to(uas.uri())))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(0.02)
    payload = bytes(_ulaw(int(8000 * math.sin(2 * math.pi * 440 * n / 8000))) for n in range(160))
    uac = _uac(
        tmp_path,
        agent,
        "uac_call.xml",
        duration_ms=3000,
        keys={"rtp_port": str(rtp.getsockname()[1])},
    )
    sent = voiced = 0
    agent_rtp: tuple[str, int] | None = None
    next_send = deadline = time.monotonic() + 6
    next_send = 0.0
    try:
        while time.monotonic() < deadline and uac.proc.poll() is None:
            try:
                data, source = rtp.recvfrom(2048)
                agent_rtp = source  # symmetric RTP: the agent sends from its RTP socket
                if len(data) > 12 and set(data[12:]) - _ULAW_SILENCE:
                    voiced += 1
            except TimeoutError:
                pass
            if agent_rtp is not None and time.monotonic() >= next_send:
                next_send = max(next_send + 0.02, time.monotonic() - 0.02)
                header = struct.pack("!BBHII", 0x80, 0, sent & 0xFFFF, sent * 160, 0x1234)
                rtp.sendto(header + payload, agent_rtp)
                sent += 1
    finally:
        rtp.close()
    pub, buyer = uac.wait(), uas.wait()
    _assert_ok(pub, buyer)
    assert sent > 50, "the agent never sent RTP to the publisher"
    assert voiced > sent // 3, f"sent {sent} voiced packets, got {voiced} voiced back"
    assert router.ended().publisher_code == 200
