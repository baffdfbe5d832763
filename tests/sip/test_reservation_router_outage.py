"""The router while the database is unavailable (issue 11, item 3), here a SQLite file
write-locked by another process past the busy timeout: INVITEs get ``503`` + ``Retry-After``
and leave the reservation claimable; call events wait in order and are written by themselves
once the lock is gone (PostgreSQL stopped and started: ``test_db_outage.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.sip.router import BridgeTo, Reject
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from tests.conftest import Clock, write_config
from tests.sip.test_reservation_router import CONFIG, KEY1, World, _event
from tests.support.sqlite_lock import Locker


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[World]:
    engine = open_database(f"{sqlite_url}?timeout=0.2")
    apply_file(engine, write_config(tmp_path, CONFIG))
    world = World(engine, clock)
    world.router.event_retry = 0.1
    yield world
    engine.dispose()


def test_locked_database_503_then_held_events_are_written(world: World, tmp_path: Path) -> None:
    live, waiting = world.ping(caller="+12025550141"), world.ping(caller="+12025550142")
    assert isinstance(world.invite(live), BridgeTo)
    t = world.clock()
    locker = Locker(tmp_path / "rtbridge.db")
    try:
        refused = world.invite(waiting)
        assert refused == Reject(503, "Service Unavailable (database unavailable)",
                                 (("Retry-After", "5"),))  # fmt: skip
        # The call bridged before the lock ends during it: nothing raised, the record waits.
        world.router.on_events([_event(live, "answered", world, answer_at=t)])
        world.router.on_event(_event(live, "ended", world, answer_at=t, end_at=t + timedelta(seconds=61),
                                     publisher_code=200, buyer_code=200, hangup_by="buyer",
                                     duration=61.0))  # fmt: skip
        assert world.router.backlog == 2
        assert world.reservations.lookup(live, KEY1).status == "claimed"
    finally:
        locker.release()
    deadline = time.monotonic() + 5
    while world.router.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    assert world.router.backlog == 0
    looked = world.reservations.lookup(live, KEY1)
    assert looked.status == "completed" and looked.details["converted"] is True
    assert world.reservations.lookup(waiting, KEY1).status == "reserved"  # not half-claimed
    assert isinstance(world.invite(waiting), BridgeTo)
    assert check_counters(world.engine).ok


def test_backlog_is_bounded(world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    world.router.max_backlog = 3
    uuids = [world.ping(caller=f"+120255501{i:02d}") for i in range(5)]
    for uuid in uuids:
        assert isinstance(world.invite(uuid), BridgeTo)
    t = world.clock()
    locker = Locker(tmp_path / "rtbridge.db")
    try:
        for uuid in uuids:
            world.router.on_event(_event(uuid, "ended", world, end_at=t, publisher_code=480,
                                         buyer_code=480))  # fmt: skip
        assert world.router.backlog == 3
        assert caplog.text.count("call event dropped (backlog full)") == 2
    finally:
        locker.release()
    deadline = time.monotonic() + 5
    while world.router.backlog and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses = [world.reservations.lookup(u, KEY1).status for u in uuids]
    assert statuses == ["claimed", "claimed", "failed", "failed", "failed"]
