"""The running agent's orphan sweep: a call this agent has open in the database that none of
its bridges carries is closed within a few heartbeats, as crash recovery would close it;
a call the agent does carry — bridged, or still routing with its claim committed — is not.

A real agent (pjsua2, in this process) with the database-backed router on SQLite and
PostgreSQL, SIPp as publisher and buyer. The lost acknowledgement of a claim (the
connection dropped after COMMIT) is reproduced by committing exactly the claim the router
would have, for the agent's own name, with no SIP call behind it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.logs import JsonFormatter
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.sip.router import BridgeTo, CallEvent, Carried, IncomingInvite, Reject
from rtbridge.storage import calls
from rtbridge.storage.calls import ORPHAN_ANSWERED, ORPHAN_CLAIMED
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.sip.b2bua.support import AgentFactory, start_uas
from tests.sip.rawsip import Dialog, Message, SipPeer
from tests.support.sqlite_lock import Locker

pytestmark = pytest.mark.sip

KEY = "orphan-test-key-00000000001"
AGENT = "orphans-test:5060"
BEAT = 0.3  # heartbeat_interval: the grace is two of them
GRACE = 2 * BEAT
SWEPT = "closed a call no bridge of this agent carries"


def _config(buyer_uri: str) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "{buyer_uri}"
payout = 12.5
seconds = 1
concurrency = 2

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 600
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


class World:
    """The database, the reservations API and a router named ``AGENT`` over them."""

    def __init__(self, db_url: str, tmp_path: Path, buyer_uri: str) -> None:
        self.engine: Engine = open_database(db_url)
        apply_file(self.engine, write_config(tmp_path, _config(buyer_uri)))
        self.catalog = CatalogCache(self.engine)
        self.reservations = Reservations(self.engine, self.catalog)
        self.router = ReservationRouter(
            self.engine, self.catalog, secret=b"k" * 32, agent_id=AGENT, ring_timeout=5
        )

    def ping(self) -> str:
        outcome = self.reservations.ping(PingRequest(key=KEY, caller_number=None,
                                                     inbound_number=None))  # fmt: skip
        return f"{outcome.status} {outcome.uuid}"

    def call(self, uuid: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT r.status, c.hangup_by, c.invite_at, c.end_at, c.duration "
                    "FROM reservation r JOIN callrecord c ON c.reservation_uuid = r.uuid "
                    "WHERE r.uuid = :u"
                ),
                {"u": uuid},
            ).one()
        return dict(row._mapping)

    def wait_status(self, uuid: str, wanted: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (call := self.call(uuid))["status"] not in wanted and time.monotonic() < deadline:
            time.sleep(0.05)
        return call

    def history(self, uuid: str) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status, detail FROM reservationevent WHERE reservation_uuid = :u "
                     "ORDER BY id"), {"u": uuid},
            )  # fmt: skip
            return [(r.status, r.detail) for r in rows]


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    buyer = start_uas(tmp_path, "uas_answer.xml", rtp_echo=True, timeout=60)
    w = World(db_url, tmp_path, buyer.uri())
    yield w
    w.engine.dispose()


def _ts(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _swept(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The sweep's log lines, as the JSON the production handler writes."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(r))
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage() == SWEPT
    ]


def test_a_claim_whose_answer_was_lost_is_closed_and_its_unit_given_back(
    make_agent: AgentFactory, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Two calls of this agent open in the database, neither carried by a bridge: a claim
    (what the router committed before the connection dropped) and an answered call whose
    end was lost. Both hold one of the buyer's two live units, so the next ping finds the
    buyer full; within a few heartbeats both are closed — ``failed`` and ``completed`` up
    to the sweep, ``hangup_by = "fault"`` — the counters equal their recount, and the
    buyer takes calls again."""
    caplog.set_level(logging.WARNING, logger="rtbridge")
    router = Watched(world.router)
    make_agent(router, heartbeat_interval=BEAT)  # type: ignore[arg-type]
    claimed, answered = (world.ping().split()[1] for _ in range(2))
    for uuid in (claimed, answered):
        result = calls.claim(world.engine, uuid=uuid, publisher_id="p1", now=datetime.now(UTC),
                             agent=AGENT, source="127.0.0.1:5070/UDP")  # fmt: skip
        assert isinstance(result, calls.Claimed), result
    calls.answered(world.engine, uuid=answered, at=datetime.now(UTC))
    assert world.ping().startswith("no-target"), "the buyer's two units are held"

    lost = world.wait_status(claimed, {"failed"}, timeout=10 * BEAT + 5)
    done = world.wait_status(answered, {"completed"}, timeout=2)
    assert lost["status"] == "failed" and lost["hangup_by"] == "fault", lost
    assert done["status"] == "completed" and done["hangup_by"] == "fault", done
    # not before the grace: a claim that young might still be on its way to its bridge
    # (the grace runs from the INVITE; the answered call's duration starts a little later)
    for closed in (lost, done):
        assert (_ts(closed["end_at"]) - _ts(closed["invite_at"])).total_seconds() >= GRACE
    assert world.history(claimed)[-1] == ("failed", f"failed: {ORPHAN_CLAIMED}")
    assert world.history(answered)[-1] == ("completed", f"completed: {ORPHAN_ANSWERED}")
    report = check_counters(world.engine)
    assert report.ok, report
    assert world.ping().startswith("reserved"), "the live units were given back"

    router.wait_sweeps(3)  # more sweeps: closed once, logged once
    lines = _swept(caplog)
    assert sorted((line["uuid"], line["status"]) for line in lines) == sorted(
        [(claimed, "failed"), (answered, "completed")]
    ), lines
    by_uuid = {line["uuid"]: line for line in lines}
    assert by_uuid[claimed]["why"] == ORPHAN_CLAIMED
    assert by_uuid[answered]["why"] == ORPHAN_ANSWERED
    assert all(line["level"] == "warning" and line["agent"] == AGENT for line in lines)
    assert check_counters(world.engine).ok


class Watched:
    """The database router, with the heartbeats it completed counted (each one writes the
    heartbeat and sweeps), and — ``held`` — its answers to INVITEs held back until the
    test opens ``gate``: the window in which a call is claimed but its bridge (still
    routing) does not know its uuid (a slow catalog read after the claim, a busy pool)."""

    def __init__(self, router: ReservationRouter, *, held: bool = False) -> None:
        self.router = router
        self.committed = threading.Event()  # a claim is in the database
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.sweeps: list[datetime] = []  # the ``at`` of each heartbeat done, in order
        self._cond = threading.Condition()

    def route(self, invite: IncomingInvite) -> Reject | BridgeTo:
        result = self.router.route(invite)
        self.committed.set()
        self.gate.wait(30)
        return result

    def on_event(self, event: CallEvent) -> None:
        self.router.on_event(event)

    def on_events(self, events: Sequence[CallEvent]) -> None:
        self.router.on_events(events)

    def heartbeat(self, at: datetime, carried: Carried) -> bool:
        held = self.router.heartbeat(at, carried)
        with self._cond:
            self.sweeps.append(at)
            self._cond.notify_all()
        return held

    def hangups_asked(self) -> frozenset[str]:
        return self.router.hangups_asked()

    def rejoin(self) -> None:
        self.router.rejoin()

    def wait_sweeps(self, count: int, *, after: datetime | None = None) -> None:
        """Until ``count`` more sweeps are done than now, each of a heartbeat stamped after
        ``after`` when given: the event that proves the moment a test waits for passed,
        however slow the machine."""
        with self._cond:
            done = len(self.sweeps)

            def enough() -> bool:
                new = self.sweeps[done:]
                return sum(after is None or at > after for at in new) >= count

            assert self._cond.wait_for(enough, 30), f"{count} sweeps did not come"


def test_a_call_routing_or_bridged_past_the_grace_is_not_touched(
    make_agent: AgentFactory, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A real call whose claim is committed while its bridge waits for the router's answer
    until two sweeps ran past the grace; then bridged until two more sweeps ran: none
    closes it. It connects, and ends normally when the publisher hangs up."""
    caplog.set_level(logging.WARNING, logger="rtbridge")
    router = Watched(world.router, held=True)
    agent, _ = make_agent(router, heartbeat_interval=BEAT)  # type: ignore[arg-type]
    uuid = world.ping().split()[1]
    publisher = SipPeer("127.0.0.1", answer=None)
    answers: list[tuple[Dialog, Message]] = []
    dialling = threading.Thread(
        target=lambda: answers.append(publisher.invite(("127.0.0.1", agent.port), uuid))
    )
    dialling.start()
    try:
        assert router.committed.wait(10)
        claimed = world.call(uuid)
        assert claimed["status"] == "claimed"
        # still routing: two sweeps of heartbeats stamped past the grace of its INVITE
        router.wait_sweeps(2, after=_ts(claimed["invite_at"]) + timedelta(seconds=GRACE))
        assert world.call(uuid)["status"] == "claimed"
        router.gate.set()
        dialling.join(15)
        ((dialog, final),) = answers
        assert final.status == 200, final.first_line
        connected = world.wait_status(uuid, {"connected", "failed", "completed"}, timeout=5)
        assert connected["status"] == "connected", connected
        up_since = time.monotonic()
        router.wait_sweeps(2)  # bridged, long past the grace: each sweep would close it
        assert world.call(uuid)["status"] == "connected"
        held_for = time.monotonic() - up_since
        bye = publisher.request(dialog, "BYE")
        assert bye is not None and bye.status == 200
    finally:
        router.gate.set()
        dialling.join(15)
        publisher.close()
    ended = world.wait_status(uuid, {"completed", "failed"}, timeout=5)
    assert ended["status"] == "completed" and ended["hangup_by"] == "publisher", ended
    assert ended["duration"] >= held_for  # answered before it was seen connected
    assert _swept(caplog) == []
    assert check_counters(world.engine).ok


def test_the_sweep_skips_an_outage_and_waits_for_held_call_events(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The end of a call, written while another process holds the SQLite write lock, is
    held in the router. While locked, neither heartbeat nor sweep is written; once the lock
    is gone the heartbeat is, but the call its held event will close is left to that event
    (no bridge carries it any more, yet it is not an orphan): it ends ``failed`` as the
    buyer said, not as a fault."""
    w = World(f"{sqlite_url}?timeout=0.2", tmp_path, "sip:buyer@127.0.0.1:5999")
    router = ReservationRouter(w.engine, w.catalog, secret=b"k" * 32, agent_id=AGENT,
                               event_retry=2.0)  # fmt: skip
    uuid = w.ping().split()[1]
    t0 = datetime.now(UTC)
    calls.claim(w.engine, uuid=uuid, publisher_id="p1", now=t0, agent=AGENT, source="x")
    ended = CallEvent(reservation_uuid=uuid, kind="ended", call_id="c1", invite_at=t0,
                      end_at=t0, publisher_code=486, buyer_code=486, hangup_by="buyer")  # fmt: skip

    def beat() -> None:
        at = datetime.now(UTC)
        router.heartbeat(at, Carried(frozenset(), at))  # nothing carried, everything settled

    def seen_at() -> object:
        with w.engine.connect() as conn:
            return conn.execute(
                text("SELECT seen_at FROM sipagent WHERE name = :a"), {"a": AGENT}
            ).scalar()

    locker = Locker(tmp_path / "rtbridge.db")
    try:
        router.on_events([ended])
        assert router.backlog == 1
        beat()
        assert seen_at() is None and w.call(uuid)["status"] == "claimed"
    finally:
        locker.release()
    beat()  # the database is back, the event still waits for its retry
    assert seen_at() is not None and w.call(uuid)["status"] == "claimed"
    call = w.wait_status(uuid, {"failed", "completed"}, timeout=5)
    assert call["status"] == "failed" and call["hangup_by"] == "buyer", call
    assert w.history(uuid)[-1][0] == "failed"
    beat()
    assert w.call(uuid)["hangup_by"] == "buyer"
    assert check_counters(w.engine).ok
    w.engine.dispose()
