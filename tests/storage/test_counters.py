"""Buyer counters (storage/counters.py) on both databases: every status transition moves them
as the recount says it should, a full buyer gets its due reservations' units back without a
sweep, the daily counter follows the UTC day, and check/repair find and fix any drift."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import Difference, check_counters
from rtbridge.storage.reservations import Outcome, Reservations
from tests.conftest import Clock, write_config
from tests.support.demo import KEY_OPEN, one_buyer_config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@dataclass
class World:
    engine: Engine
    ops: Reservations
    clock: Clock

    def ping(self, caller: str | None = None) -> Outcome:
        return self.ops.ping(PingRequest(key=KEY_OPEN, caller_number=caller, inbound_number=None))

    def counters(self, buyer: str = "b1", on: datetime | None = None) -> tuple[int, int]:
        """(live, the day's) units of ``buyer`` as stored, after checking they equal the
        recount; the day is the clock's unless ``on`` names an instant in another."""
        report = check_counters(self.engine)
        assert report.differences == (), report
        day = (on or self.clock()).date().isoformat()
        with self.engine.connect() as conn:
            live = conn.execute(
                text("SELECT units FROM buyerlive WHERE buyer_id = :b"), {"b": buyer}
            ).scalar()
            used = conn.execute(
                text("SELECT units FROM buyerday WHERE buyer_id = :b AND day = :d"),
                {"b": buyer, "d": day},
            ).scalar()
        return live or 0, used or 0

    def claim(self, uuid: str, agent: str = "t") -> calls.Claimed:
        claimed = calls.claim(
            self.engine, uuid=uuid, publisher_id="p1", now=self.clock(), agent=agent, source="x"
        )
        assert isinstance(claimed, calls.Claimed), claimed
        return claimed

    def end(self, uuid: str, *, answered: bool) -> None:
        at = self.clock()
        calls.ended(self.engine, uuid=uuid, answer_at=at if answered else None,
                    end_at=at + timedelta(seconds=5), publisher_code=200 if answered else 486,
                    buyer_code=200 if answered else 486, hangup_by="buyer", duration=5.0)  # fmt: skip


def _world(url: str, tmp_path: Path, clock: Clock, buyer: str, key: str = "ttl_seconds = 30"):  # type: ignore[no-untyped-def]
    engine = open_database(url)
    apply_file(engine, write_config(tmp_path, one_buyer_config(buyer=buyer, key=key, pool="")))
    return World(engine, Reservations(engine, CatalogCache(engine, recheck=0), clock=clock), clock)


@pytest.fixture
def world(db_url: str, tmp_path: Path, clock: Clock) -> Iterator[World]:
    w = _world(db_url, tmp_path, clock, "concurrency = 3\ndaily_cap = 100")
    yield w
    w.engine.dispose()


def test_every_transition_moves_the_counters(world: World) -> None:
    w = world
    assert w.counters() == (0, 0)
    a = w.ping("+12025550101")
    assert a.status == "reserved" and w.counters() == (1, 1)
    assert w.ping("+12025550101").ping_shield and w.counters() == (1, 1)  # shield: no move
    assert w.ops.update(a.uuid, KEY_OPEN, "confirmed").status == "confirmed"
    assert w.counters() == (1, 1)
    w.claim(a.uuid)
    assert w.counters() == (1, 1)  # a call in progress holds the unit
    calls.answered(w.engine, uuid=a.uuid, at=w.clock())
    assert w.counters() == (1, 1)
    w.end(a.uuid, answered=True)  # completed: live back, today's stays used
    assert w.ops.lookup(a.uuid, KEY_OPEN).status == "completed" and w.counters() == (0, 1)
    w.end(a.uuid, answered=True)  # a second report of the same end moves nothing
    assert w.counters() == (0, 1)

    b = w.ping()
    w.claim(b.uuid)
    w.end(b.uuid, answered=False)  # failed: the buyer was reached, today's stays used
    assert w.ops.lookup(b.uuid, KEY_OPEN).status == "failed" and w.counters() == (0, 2)

    c = w.ping()
    assert w.counters() == (1, 3)
    assert w.ops.update(c.uuid, KEY_OPEN, "cancelled").status == "cancelled"
    assert w.counters() == (0, 2)  # cancelled gives both units back
    assert w.ops.update(c.uuid, KEY_OPEN, "cancelled").status == "cancelled"
    assert w.counters() == (0, 2)

    d = w.ping()
    w.clock.advance(31)
    assert w.counters() == (1, 3)  # due but not swept: still counted (the safe side)
    assert w.ops.expire_due() == 1
    assert w.counters() == (0, 2)  # the sweeper gives both back
    assert w.ops.update(d.uuid, KEY_OPEN, "confirmed").status == "confirmed"  # re-reserved
    assert w.counters() == (1, 3)

    e = w.ping()
    w.claim(e.uuid, agent="crashed")
    assert w.counters() == (2, 4)
    assert calls.recover(w.engine, agent="crashed", now=w.clock()).closed == 1
    assert w.counters() == (1, 4)  # recovered as failed: live back
    assert calls.recover(w.engine, agent="crashed", now=w.clock()).closed == 0
    assert w.counters() == (1, 4)


def test_a_no_target_ping_moves_nothing(db_url: str, tmp_path: Path, clock: Clock) -> None:
    w = _world(db_url, tmp_path, clock, "concurrency = 1")
    w.ping()
    assert w.ping().reason == "concurrency-cap-reached"
    assert w.counters() == (1, 1)
    w.engine.dispose()


def test_a_full_buyer_gets_due_units_back_without_the_sweeper(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    w = _world(db_url, tmp_path, clock, "concurrency = 2", key="ttl_seconds = 10")
    first = [w.ping(), w.ping()]
    assert w.ping().reason == "concurrency-cap-reached"
    clock.advance(11)
    assert w.counters() == (2, 2)  # nobody swept
    third = w.ping()
    assert third.status == "reserved"  # the ping expired the two due ones itself
    assert w.counters() == (1, 1)
    for old in first:
        assert w.ops.lookup(old.uuid, KEY_OPEN).status == "expired"
    assert w.ops.expire_due() == 0  # already written down
    w.engine.dispose()


def test_daily_cap_gets_expired_units_back_and_resets_at_utc_midnight(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    clock.now = datetime(2026, 11, 24, 23, 59, 0, tzinfo=UTC)
    w = _world(db_url, tmp_path, clock, "daily_cap = 2", key="ttl_seconds = 20")
    a = w.ping()
    clock.advance(10)
    w.ping()
    assert w.ping().reason == "daily-cap-reached"
    clock.advance(11)  # a's hold lapsed, not the second one's: a's daily unit comes back
    assert w.ping().status == "reserved"
    assert w.ops.lookup(a.uuid, KEY_OPEN).status == "expired"
    assert w.counters() == (2, 2)
    assert w.ping().reason == "daily-cap-reached"
    clock.now = datetime(2026, 11, 25, 0, 0, 5, tzinfo=UTC)  # a new UTC day
    assert w.ping().status == "reserved"
    assert w.ping().status == "reserved"
    assert w.ping().reason == "daily-cap-reached"  # after expiring yesterday's two due ones
    assert w.counters() == (2, 2)
    w.engine.dispose()


def test_confirming_an_expired_reservation_counts_only_others(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    w = _world(db_url, tmp_path, clock, "concurrency = 3")
    held = [w.ping() for _ in range(3)]
    clock.advance(31)  # all three due, none swept
    # The cap drops to 2: the other two (due) now fill it by the counters. Confirming the
    # first must not count itself, and relieving the buyer must not expire it.
    apply_file(w.engine, write_config(tmp_path, one_buyer_config(
        buyer="concurrency = 2", key="ttl_seconds = 30", pool="")))  # fmt: skip
    assert w.ops.update(held[0].uuid, KEY_OPEN, "confirmed").status == "confirmed"
    assert [w.ops.lookup(h.uuid, KEY_OPEN).status for h in held] == [
        "confirmed",
        "expired",
        "expired",
    ]
    assert w.counters() == (1, 1)
    w.engine.dispose()


def test_check_reports_and_repair_rewrites_drift(world: World) -> None:
    w = world
    w.ping()
    w.ping()
    assert check_counters(w.engine).ok
    day = w.clock().date().isoformat()
    with w.engine.begin() as conn:
        conn.execute(text("UPDATE buyerlive SET units = units + 5"))
        conn.execute(text("DELETE FROM buyerday"))
        conn.execute(text("INSERT INTO buyerlive (buyer_id, units) VALUES ('gone', 1)"))
    report = check_counters(w.engine)
    assert not report.ok and not report.repaired
    assert set(report.differences) == {
        Difference("b1", None, 7, 2),
        Difference("b1", day, 0, 2),
        Difference("gone", None, 1, 0),
    }
    repaired = check_counters(w.engine, repair=True)
    assert repaired.ok and repaired.repaired and len(repaired.differences) == 3
    assert w.counters() == (2, 2)


def test_recovery_bills_answered_calls_up_to_the_last_heartbeat(world: World) -> None:
    """Issue 11: calls a dead agent left open end at its last heartbeat, not at the restart:
    an answered call keeps its duration, conversion (buyer requires 60 s) and payout, with
    its dialogs returned for the BYEs; one still ringing fails. Counters follow. The restart
    falls on the next day, which must not move the calls' day."""
    w = world
    w.clock.now = t0 = datetime(2026, 11, 24, 23, 55, 0, tzinfo=UTC)
    long_call, short_call, ringing = w.ping(), w.ping(), w.ping()
    legs = {"publisher": {"call_id": "p", "local": "l", "remote": "r", "target": "sip:x@h"}}
    for reservation in (long_call, short_call, ringing):
        w.claim(reservation.uuid, agent="crashed")
    calls.answered(w.engine, uuid=long_call.uuid, at=t0, dialogs=legs)
    calls.answered(w.engine, uuid=short_call.uuid, at=t0 + timedelta(seconds=30))
    for beat in (10, 70, 75):
        calls.heartbeat(w.engine, agent="crashed", at=t0 + timedelta(seconds=beat))
    calls.heartbeat(w.engine, agent="crashed", at=t0 + timedelta(seconds=5))  # never back
    assert w.counters() == (3, 3)

    w.clock.advance(600)  # restarted ten minutes later
    recovery = calls.recover(w.engine, agent="crashed", now=w.clock())
    assert recovery.closed == 3 and recovery.dialogs == [legs]
    assert recovery.last_seen == t0 + timedelta(seconds=75)
    assert w.counters(on=t0) == (0, 3)  # live units back; the calls' day keeps all three

    def record(uuid: str) -> tuple[object, ...]:
        with w.engine.connect() as conn:
            row = conn.execute(
                text("SELECT r.status, c.duration, c.converted, c.payout, c.hangup_by "
                     "FROM reservation r JOIN callrecord c ON c.reservation_uuid = r.uuid "
                     "WHERE r.uuid = :u"), {"u": uuid},
            ).one()  # fmt: skip
        return (row[0], row[1], bool(row[2]), row[3], row[4])

    assert record(long_call.uuid) == ("completed", 75.0, True, 12.5, "fault")
    assert record(short_call.uuid) == ("completed", 45.0, False, 0.0, "fault")
    assert record(ringing.uuid) == ("failed", 0.0, False, 0.0, "fault")
    assert w.ops.lookup(long_call.uuid, KEY_OPEN).details["converted"] is True
    # The new run is registered: its own calls are not the previous run's.
    assert calls.recover(w.engine, agent="crashed", now=w.clock()).closed == 0
