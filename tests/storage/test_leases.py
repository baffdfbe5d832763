"""Agents' leases on both databases (storage/leases.py, sip/lease.py): start, heartbeat,
fence, takeover by a peer that watched the lease stand still, and a claim refused to an
agent whose lease was taken."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from rtbridge.domain.ping import PingRequest
from rtbridge.sip.lease import Holder, LeaseKeeper, LeaseRefused
from rtbridge.storage import calls, leases
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock
from tests.support.demo import KEY_OPEN, one_buyer_config

CONFIG = one_buyer_config(buyer="concurrency = 5")


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _keeper(engine: Engine, name: str, clock: Clock, mono: Monotonic, **kw: object) -> LeaseKeeper:
    def sleep(seconds: float) -> None:
        mono.now += seconds
        clock.advance(seconds)

    return LeaseKeeper(engine, name, takeover_after=3.0, clock=clock, monotonic=mono,
                       sleep=sleep, **kw)  # type: ignore[arg-type]  # fmt: skip


def _connected_call(engine: Engine, clock: Clock, agent: str, epoch: int) -> str:
    ops = Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)
    uuid = ops.ping(PingRequest(key=KEY_OPEN, caller_number=None, inbound_number=None)).uuid
    assert uuid is not None
    claimed = calls.claim(engine, uuid=uuid, publisher_id="p1", now=clock(), agent=agent,
                          source="x", epoch=epoch)  # fmt: skip
    assert isinstance(claimed, calls.Claimed), claimed
    dialog = {"call_id": "c1", "local": "<sip:a@x>;tag=1", "remote": "<sip:b@y>;tag=2",
              "target": "sip:b@127.0.0.1:5999"}  # fmt: skip
    calls.answered(engine, uuid=uuid, at=clock(), dialogs={"publisher": dialog, "buyer": dialog})
    return uuid


_CALL = (
    "SELECT r.status, c.hangup_by, c.duration, c.end_at FROM reservation r "
    "JOIN callrecord c ON c.reservation_uuid = r.uuid WHERE r.uuid = :u"
)


def _row(engine: Engine, uuid: str) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(text(_CALL), {"u": uuid}).one()._mapping)


def test_a_silent_agent_is_taken_over_once_and_fenced(engine: Engine, clock: Clock) -> None:
    mono = Monotonic()
    dead, peer, other = (_keeper(engine, n, clock, mono) for n in ("a1", "a2", "a3"))
    for keeper in (dead, peer, other):
        assert keeper.acquire().closed == 0 and keeper.epoch == 1
    uuid = _connected_call(engine, clock, "a1", dead.epoch)
    clock.advance(5)
    assert dead.beat(clock())  # carried until here
    last_beat = clock()

    # The peers first see the lease, then watch it stand still for its takeover_after.
    assert peer.take_over_silent() == [] and other.take_over_silent() == []
    mono.now += 2.9
    clock.advance(2.9)
    assert peer.beat(clock()) and other.beat(clock())
    assert peer.take_over_silent() == []
    mono.now += 0.2
    clock.advance(0.2)
    taken = peer.take_over_silent()
    assert [t.lease.name for t in taken] == ["a1"] and taken[0].recovery.closed == 1
    assert len(taken[0].recovery.dialogs) == 1
    assert other.take_over_silent() == []  # exactly one winner

    row = _row(engine, uuid)
    assert row["status"] == "completed" and row["hangup_by"] == "fault"
    assert row["duration"] == pytest.approx(5.0)  # billed up to the last heartbeat
    lease = leases.read(engine, "a1")
    assert lease is not None and lease.holder is None and lease.taken_by == "a2"
    assert lease.epoch == 2 and lease.seen_at == last_beat

    # The paused agent comes back: fenced at its next claim and heartbeat; writes are no-ops.
    ops = Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)
    fresh = ops.ping(PingRequest(key=KEY_OPEN, caller_number=None, inbound_number=None)).uuid
    assert fresh is not None
    refused = calls.claim(engine, uuid=fresh, publisher_id="p1", now=clock(), agent="a1",
                          source="x", epoch=dead.epoch)  # fmt: skip
    assert refused is calls.FENCED and ops.lookup(fresh, KEY_OPEN).status == "reserved"
    assert not dead.beat(clock())
    calls.ended(engine, uuid=uuid, answer_at=clock(), end_at=clock(), publisher_code=200,
                buyer_code=200, hangup_by="buyer", duration=99.0)  # fmt: skip
    assert _row(engine, uuid)["duration"] == pytest.approx(5.0)  # the first word stands

    # It rejoins under a new epoch and takes calls again.
    assert dead.rejoin().closed == 0 and dead.epoch == 3
    assert dead.beat(clock())
    _connected_call(engine, clock, "a1", dead.epoch)
    assert check_counters(engine).differences == ()


def test_a_restart_on_this_machine_takes_a_dead_holders_lease_at_once(
    engine: Engine, clock: Clock
) -> None:
    mono = Monotonic()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    here = Holder.this_process()
    dead_holder = Holder(here.host, int(gone.stdout), "1", here.boot, here.namespace)
    first = _keeper(engine, "a1", clock, mono, holder=dead_holder)
    first.acquire()
    uuid = _connected_call(engine, clock, "a1", first.epoch)
    clock.advance(2)
    first.beat(clock())

    restarted = _keeper(engine, "a1", clock, mono)
    recovery = restarted.acquire()
    assert mono.now == 1000.0  # no wait: the holder is known dead
    assert recovery.closed == 1 and restarted.epoch == 2
    assert _row(engine, uuid)["status"] == "completed"


def test_a_second_agent_under_a_live_agents_id_is_refused(engine: Engine, clock: Clock) -> None:
    mono = Monotonic()
    live = _keeper(engine, "a1", clock, mono)
    live.acquire()
    with pytest.raises(LeaseRefused, match="agent_id 'a1' is held by another agent"):
        _keeper(engine, "a1", clock, mono, holder=Holder("h", 1, "2", "3", "4")).acquire()
    # elsewhere (another machine): refused once its heartbeats are seen going on
    elsewhere = Holder("other-host", 42, "7", "feedbeef", "pid:[1]")
    engine_lease = leases.read(engine, "a1")
    assert engine_lease is not None
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE sipagent SET holder = :h WHERE name = 'a1'"), {"h": str(elsewhere)}
        )

    def beating(seconds: float) -> None:
        mono.now += seconds
        clock.advance(seconds)
        assert leases.beat(engine, name="a1", epoch=live.epoch, at=clock())

    second = LeaseKeeper(engine, "a1", takeover_after=3.0, clock=clock, monotonic=mono,
                         sleep=beating)  # fmt: skip
    with pytest.raises(LeaseRefused, match="its heartbeats go on"):
        second.acquire()
    # ... and taken over once it proved silent for its takeover_after (the default's 6 s)
    with engine.begin() as conn:
        conn.execute(text("UPDATE sipagent SET takeover_after = 6.0 WHERE name = 'a1'"))
    third = _keeper(engine, "a1", clock, mono)
    started = mono.now
    third.acquire()
    assert 6.0 <= mono.now - started <= 6.5 and third.epoch == 2


def test_a_released_lease_is_free_and_not_taken_over(engine: Engine, clock: Clock) -> None:
    mono = Monotonic()
    stopped, peer = _keeper(engine, "a1", clock, mono), _keeper(engine, "a2", clock, mono)
    stopped.acquire()
    peer.acquire()
    stopped.release()
    peer.take_over_silent()
    mono.now += 10
    assert peer.take_over_silent() == []  # released with no open call: nothing to watch
    elsewhere = _keeper(engine, "a1", clock, mono, holder=Holder("h2", 9, "9", "9", "9"))
    elsewhere.acquire()
    assert mono.now == 1010.0 and elsewhere.epoch == 2


def test_heartbeats_never_move_back(engine: Engine, clock: Clock) -> None:
    keeper = _keeper(engine, "a1", clock, Monotonic())
    keeper.acquire()
    keeper.beat(clock() + timedelta(seconds=5))
    assert keeper.beat(clock())  # an older beat still counts as alive, but seen_at stays
    lease = leases.read(engine, "a1")
    assert lease is not None and lease.seen_at == clock() + timedelta(seconds=5)
    assert lease.beats == 2


def test_an_agent_from_before_leases_is_not_taken_over_while_it_beats(
    engine: Engine, clock: Clock
) -> None:
    """A rolling upgrade: an old agent writes seen_at only (no epoch, no beats, no holder)
    while carrying calls; upgraded peers see it alive for as long as seen_at moves."""
    mono = Monotonic()
    calls.heartbeat(engine, agent="old:5060", at=clock())
    _connected_call(engine, clock, "old:5060", epoch=0)
    peer = _keeper(engine, "new:5060", clock, mono)
    peer.acquire()
    for _ in range(8):
        assert peer.take_over_silent() == []
        mono.now += 1.0
        clock.advance(1.0)
        calls.heartbeat(engine, agent="old:5060", at=clock())
    assert peer.take_over_silent() == []  # the last beat seen; then it stops beating
    mono.now += 5.9
    assert peer.take_over_silent() == []
    mono.now += 0.2  # a row from before leases waits the default: 6 s
    (taken,) = peer.take_over_silent()
    assert taken.lease.name == "old:5060" and taken.recovery.closed == 1
