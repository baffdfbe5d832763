"""Failover: a call one buyer fails goes to the next buyer of the campaign (SPEC §4.4).

A real agent (pjsua2, in this process) with the database-backed router on SQLite, SIPp as
the publisher and as each buyer; buyers answer 486, 503, never answer, are a closed port,
answer late, or answer. What is checked is what the publisher heard (SIPp's trace), what
each buyer got, the call's attempts in the database, and the buyers' counters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.sip.b2bua.support import AgentFactory, assert_ok, start_uac, start_uas
from tests.sip.rtp import RtpPeer
from tests.sip.sipp import Sipp
from tests.support.net import free_port

pytestmark = pytest.mark.sip

KEY = "failover-test-key-0000000001"


@dataclass
class Buyer:
    """One buyer of the campaign: its destination and, for a SIPp one, the process."""

    id: str
    uri: str
    sipp: Sipp | None = None
    priority: int = 1
    payout: float = 10.0
    ring_timeout: float | None = None
    connect_timeout: float | None = None


def answering(tmp_path: Path, id: str, **kw: Any) -> Buyer:
    uas = start_uas(tmp_path, "uas_answer.xml", rtp_echo=True, timeout=30)
    return Buyer(id, uas.uri(), uas, **kw)


def refusing(tmp_path: Path, id: str, status: str = "486 Busy Here", **kw: Any) -> Buyer:
    uas = start_uas(tmp_path, "uas_reject.xml", rewrite={"486 Busy Here": status}, timeout=30)
    return Buyer(id, uas.uri(), uas, **kw)


def ringing(tmp_path: Path, id: str, **kw: Any) -> Buyer:
    uas = start_uas(tmp_path, "uas_noanswer.xml", timeout=30)
    return Buyer(id, uas.uri(), uas, **kw)


def closed_port(id: str, **kw: Any) -> Buyer:
    """Nothing listens there: the INVITE goes unanswered (UDP)."""
    return Buyer(id, f"sip:buyer@127.0.0.1:{free_port()}", **kw)


def _config(buyers: list[Buyer], failover: list[str] | None, max_attempts: int) -> str:
    kinds = "" if failover is None else f"failover = {json.dumps(failover)}\n"
    lines = [
        '[sip]\ndomain = "sip.rtb.example.com"\n',
        f'[[campaigns]]\nid = "c1"\n{kinds}max_attempts = {max_attempts}\n',
    ]
    for b in buyers:
        timeouts = "".join(
            f"{name} = {value}\n"
            for name, value in (
                ("ring_timeout", b.ring_timeout),
                ("connect_timeout", b.connect_timeout),
            )
            if value is not None
        )
        lines.append(
            f'[[campaigns.buyers]]\nid = "{b.id}"\ndestination = "{b.uri}"\n'
            f"payout = {b.payout}\nseconds = 1\nconcurrency = 5\npriority = {b.priority}\n"
            f"{timeouts}"
        )
    lines.append(
        '[[publishers]]\nid = "p1"\nips = ["127.0.0.1/32"]\n\n'
        f'[[keys]]\nkey = "{KEY}"\npublisher = "p1"\ncampaign = "c1"\n'
        "allow_missing_caller_number = true\nttl_seconds = 600\n"
    )
    return "\n".join(lines)


class World:
    """The database with the campaign applied, the ping API, and the agent's router."""

    def __init__(
        self, tmp_path: Path, buyers: list[Buyer], *, failover: list[str] | None = None,
        max_attempts: int = 5,
    ) -> None:  # fmt: skip
        self.engine: Engine = open_database(f"sqlite:///{tmp_path / 'failover.db'}")
        apply_file(self.engine, write_config(tmp_path, _config(buyers, failover, max_attempts)))
        self.catalog = CatalogCache(self.engine)
        self.reservations = Reservations(self.engine, self.catalog)
        self.router = ReservationRouter(
            self.engine, self.catalog, secret=b"k" * 32, agent_id="failover-test", ring_timeout=5
        )

    def ping(self) -> str:
        outcome = self.reservations.ping(PingRequest(key=KEY, caller_number=None,
                                                     inbound_number=None))  # fmt: skip
        assert outcome.status == "reserved", outcome
        return outcome.uuid

    def rows(self, sql: str, **params: object) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def attempts(self, uuid: str) -> list[tuple[int, str, int | None, str]]:
        return [
            (r["n"], r["buyer_id"], r["final_code"], r["kind"])
            for r in self.rows(
                "SELECT n, buyer_id, final_code, kind FROM callattempt "
                "WHERE reservation_uuid = :u ORDER BY n",
                u=uuid,
            )
        ]

    def ended(self, uuid: str, timeout: float = 10.0) -> dict[str, Any]:
        """The reservation and its call record once the call has ended."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.rows(
                "SELECT r.status, r.buyer_id, r.seconds, c.publisher_code, c.buyer_code, "
                "c.hangup_by, c.end_at FROM reservation r JOIN callrecord c "
                "ON c.reservation_uuid = r.uuid WHERE r.uuid = :u",
                u=uuid,
            )
            if row and row[0]["end_at"] is not None:
                return row[0]
            assert time.monotonic() < deadline, f"call {uuid} not ended: {row}"
            time.sleep(0.05)

    def assert_counters(self) -> None:
        report = check_counters(self.engine)
        assert report.differences == (), report
        live = self.rows("SELECT buyer_id, units FROM buyerlive WHERE units <> 0")
        assert live == [], f"units still held after every call ended: {live}"


def _at(value: str) -> datetime:
    """A time as SQLite's raw rows give it (UTC text)."""
    return datetime.fromisoformat(value)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _world(engines: list[Engine], *args: Any, **kw: Any) -> World:
    world = World(*args, **kw)
    engines.append(world.engine)
    return world


def test_the_call_goes_on_until_a_buyer_answers(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """486, 503, no answer (ring timeout 1 s), a closed port (connect timeout 0.5 s), then
    a buyer that answers: the call bridges to the fifth with audio both ways, each attempt
    recorded with its code, and the publisher heard only provisional answers, then 200."""
    buyers = [
        refusing(tmp_path, "busy", priority=1),
        refusing(tmp_path, "down", "503 Service Unavailable", priority=2),
        ringing(tmp_path, "slow", priority=3, ring_timeout=1.0),
        closed_port("gone", priority=4, connect_timeout=0.5),
        answering(tmp_path, "good", priority=5),
    ]
    world = _world(engines, tmp_path, buyers)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    peer = RtpPeer().start()
    try:
        pub = start_uac(tmp_path, agent, "uac_call.xml", service=uuid, duration_ms=2000,
                        keys={"rtp_port": str(peer.port)}).wait()  # fmt: skip
    finally:
        peer.stop()
    assert_ok(pub)
    assert pub.invite_answers() == [200], pub.statuses()
    assert all(100 <= code < 200 for code in pub.statuses()[:-2]), pub.statuses()
    assert peer.tone_seconds() >= 0.5, "the tone did not come back across the bridge"
    call = world.ended(uuid)
    assert (call["status"], call["buyer_id"], call["publisher_code"]) == ("completed", "good", 200)
    assert world.attempts(uuid) == [
        (1, "busy", 486, "busy"),
        (2, "down", 503, "rejected"),
        (3, "slow", 408, "no-answer"),
        (4, "gone", 408, "unreachable"),
        (5, "good", 200, "answered"),
    ]
    # the ring and connect timeouts were the buyers' own (1 s, 0.5 s), not the agent's
    # ring timeout (5 s) nor the default connect timeout (2 s)
    rows = world.rows(
        "SELECT buyer_id, started_at, ended_at FROM callattempt WHERE reservation_uuid = :u",
        u=uuid,
    )
    waited = {
        r["buyer_id"]: (_at(r["ended_at"]) - _at(r["started_at"])).total_seconds() for r in rows
    }
    assert 1.0 <= waited["slow"] < 5.0 and 0.5 <= waited["gone"] < 2.0, waited
    slow = buyers[2].sipp
    assert slow is not None and slow.wait().requests("CANCEL"), (
        "the ringing buyer was not CANCELled"
    )
    good = buyers[4].sipp
    assert good is not None
    (invite,) = good.wait().requests("INVITE")  # the call's headers and caller id go along
    assert invite.header("X-RTB-UUID") == uuid, invite
    assert "+12025550102" in (invite.header("From") or ""), invite.header("From")
    history = [r["status"] for r in world.rows(
        "SELECT status FROM reservationevent WHERE reservation_uuid = :u ORDER BY id", u=uuid)]  # fmt: skip
    assert history.count("attempt-failed") == 4, history
    world.assert_counters()
    assert agent.legs_alive() == 0 and agent.status().legs == 0


def test_every_buyer_failing_relays_the_best_answer(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """503, then 486, then no answer: the publisher gets 486 (a busy callee beats a server
    error and a timeout, RFC 3261 §16.7), the reservation fails with every attempt."""
    buyers = [
        refusing(tmp_path, "down", "503 Service Unavailable", priority=1),
        refusing(tmp_path, "busy", priority=2),
        ringing(tmp_path, "slow", priority=3, ring_timeout=0.8),
    ]
    world = _world(engines, tmp_path, buyers)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_failure.xml", service=uuid).wait()
    assert pub.invite_answers() == [486], pub.statuses()
    call = world.ended(uuid)
    assert (call["status"], call["publisher_code"], call["hangup_by"]) == ("failed", 486, "timeout")
    assert world.attempts(uuid) == [
        (1, "down", 503, "rejected"), (2, "busy", 486, "busy"), (3, "slow", 408, "no-answer"),
    ]  # fmt: skip
    world.assert_counters()


def test_no_failover_when_the_campaign_lists_no_kind(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """``failover = []``: the first buyer's 486 is the call's answer; the next buyer is
    never dialled."""
    buyers = [refusing(tmp_path, "busy", priority=1), answering(tmp_path, "good", priority=2)]
    world = _world(engines, tmp_path, buyers, failover=[])
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_failure.xml", service=uuid).wait()
    assert pub.invite_answers() == [486], pub.statuses()
    assert world.ended(uuid)["status"] == "failed"
    assert world.attempts(uuid) == [(1, "busy", 486, "busy")]
    good = buyers[1].sipp
    assert good is not None
    good.kill()
    assert good.wait().requests("INVITE") == []
    world.assert_counters()


def test_only_listed_kinds_and_max_attempts(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """``failover = ["busy"]`` and ``max_attempts = 2``: a 486 moves the call on, the
    second buyer's 503 (rejected, not listed) ends it; a third buyer is never dialled."""
    buyers = [
        refusing(tmp_path, "busy", priority=1),
        refusing(tmp_path, "down", "503 Service Unavailable", priority=2),
        answering(tmp_path, "good", priority=3),
    ]
    world = _world(engines, tmp_path, buyers, failover=["busy"], max_attempts=2)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_failure.xml", service=uuid).wait()
    assert pub.invite_answers() == [486], pub.statuses()  # 486 beats 503
    assert world.attempts(uuid) == [(1, "busy", 486, "busy"), (2, "down", 503, "rejected")]
    world.assert_counters()


def test_only_buyers_paying_the_quoted_payout(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """The publisher is paid what it was quoted: a buyer paying less is not failed over to."""
    buyers = [
        refusing(tmp_path, "busy", priority=1, payout=10.0),
        answering(tmp_path, "cheap", priority=2, payout=9.99),
    ]
    world = _world(engines, tmp_path, buyers)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_failure.xml", service=uuid).wait()
    assert pub.invite_answers() == [486], pub.statuses()
    assert world.attempts(uuid) == [(1, "busy", 486, "busy")]
    world.assert_counters()


def test_a_late_200_is_acked_and_ended(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """A buyer silent past its connect timeout is given up on; when its 200 comes anyway
    it gets an ACK and a BYE at once, and the call goes on with the next buyer."""
    late = start_uas(tmp_path, "uas_late_answer.xml", rtp_echo=True, timeout=30)
    buyers = [
        Buyer("late", late.uri(), late, priority=1, connect_timeout=0.5),
        answering(tmp_path, "good", priority=2),
    ]
    world = _world(engines, tmp_path, buyers)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_call.xml", service=uuid, duration_ms=2500)
    gave_up = late.wait(timeout=15)
    assert_ok(gave_up)
    assert gave_up.requests("ACK") and gave_up.requests("BYE"), gave_up.log
    assert_ok(pub.wait())
    call = world.ended(uuid)
    assert (call["status"], call["buyer_id"]) == ("completed", "good")
    assert world.attempts(uuid) == [(1, "late", 408, "unreachable"), (2, "good", 200, "answered")]
    world.assert_counters()


def test_publisher_cancel_during_failover_ends_the_pending_attempt(
    make_agent: AgentFactory, tmp_path: Path, engines: list[Engine]
) -> None:
    """The first buyer refuses after 200 ms of ringing, the second rings; the publisher
    CANCELs 300 ms after its 180: the ringing buyer is CANCELled, the call ends 487, no unit
    is left held."""
    buyers = [refusing(tmp_path, "busy", priority=1), ringing(tmp_path, "slow", priority=2)]
    world = _world(engines, tmp_path, buyers)
    agent, _ = make_agent(world.router)
    uuid = world.ping()
    pub = start_uac(tmp_path, agent, "uac_cancel.xml", service=uuid).wait()
    assert_ok(pub)
    assert pub.invite_answers() == [487], pub.statuses()
    call = world.ended(uuid)
    assert (call["status"], call["hangup_by"]) == ("failed", "publisher")
    attempts = world.attempts(uuid)
    assert attempts[0] == (1, "busy", 486, "busy")
    # the CANCEL came while the second buyer rang (it was CANCELled too), or just before
    # it was dialled (then it never was)
    slow = buyers[1].sipp
    assert slow is not None
    if len(attempts) == 2:
        assert attempts[1] == (2, "slow", 487, "cancelled")
        assert_ok(slow.wait())
    else:
        slow.kill()
        assert attempts == [(1, "busy", 486, "busy")] and slow.wait().requests("INVITE") == []
    world.assert_counters()
    deadline = time.monotonic() + 5
    while agent.legs_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.legs_alive() == 0
