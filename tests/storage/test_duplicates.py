"""Duplicate callers (issue 23): a buyer with a ``duplicate_window`` skips a caller who
reached its ``duplicate_after`` point (ping, connected, converted) with it within the window
— the campaign's rule by default, the buyer's own over it — on both databases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock

KEY = "duplicates-key-00000000000001"
OTHER_KEY = "duplicates-key-00000000000002"
CALLER = "+12025550177"
CONFIG = f"""
[[campaigns]]
id = "c1"
duplicate_window = 3600        # an hour, after a connection (the default point)

[[campaigns.buyers]]
id = "first"
destination = "sip:first@127.0.0.1:5070"
payout = 20.0
seconds = 30
priority = 1

[[campaigns.buyers]]
id = "second"
destination = "sip:second@127.0.0.1:5071"
payout = 10.0
seconds = 30
priority = 2
duplicate_after = "converted"  # its own point, the campaign's window

[[campaigns.buyers]]
id = "pinged"
destination = "sip:pinged@127.0.0.1:5072"
payout = 5.0
seconds = 30
priority = 3
duplicate_window = 60
duplicate_after = "ping"

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"

[[keys]]
key = "{OTHER_KEY}"
publisher = "p1"
campaign = "c1"
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ops(engine: Engine, clock: Clock) -> Reservations:
    return Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)


def _call(engine: Engine, uuid: str, clock: Clock, *, seconds: float) -> None:
    """Claimed, answered and ended after ``seconds`` (30 or more converts)."""
    claimed = calls.claim(engine, uuid=uuid, publisher_id="p1", now=clock(), agent="t",
                          source="x")  # fmt: skip
    assert isinstance(claimed, calls.Claimed)
    calls.answered(engine, uuid=uuid, at=clock())
    calls.ended(engine, uuid=uuid, answer_at=clock(), end_at=clock() + timedelta(seconds=seconds),
                publisher_code=200, buyer_code=200, hangup_by="publisher", duration=seconds)  # fmt: skip


def _buyer(ops: Reservations, key: str = KEY) -> str:
    got = ops.ping(PingRequest(key, CALLER, None))
    return got.reason if got.status == "no-target" else str(got.buyer_id)


def test_a_connected_caller_skips_the_buyer_within_the_window(
    ops: Reservations, engine: Engine, clock: Clock
) -> None:
    first = ops.ping(PingRequest(KEY, CALLER, None))
    assert first.buyer_id == "first"
    _call(engine, first.uuid, clock, seconds=10)  # connected, not converted
    clock.advance(120)
    # first: connected an hour ago at most; second counts conversions only; pinged: its
    # 60 s after the ping have passed
    again = ops.ping(PingRequest(KEY, CALLER, None))
    assert again.buyer_id == "second"
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT verdicts FROM reservation WHERE uuid = :u"),
                              {"u": again.uuid}).scalar_one()  # fmt: skip
    verdicts = stored if isinstance(stored, dict) else json.loads(stored)  # PostgreSQL: a dict
    assert verdicts["first"] == "duplicate-caller" and verdicts["second"] == "chosen"
    ops.update(again.uuid, KEY, "cancelled")
    clock.advance(3600)  # out of the window: first takes the caller again
    assert _buyer(ops) == "first"
    assert check_counters(engine).differences == ()


def test_a_converted_caller_and_the_ping_rule(
    ops: Reservations, engine: Engine, clock: Clock
) -> None:
    first = ops.ping(PingRequest(KEY, CALLER, None))
    _call(engine, first.uuid, clock, seconds=45)  # converted with first
    # second has no mark yet (its rule counts its own conversions): it takes the caller
    second = ops.ping(PingRequest(KEY, CALLER, None))
    assert second.buyer_id == "second"
    _call(engine, second.uuid, clock, seconds=45)
    # first (connected) and second (converted) skip the caller: pinged, by priority
    third = ops.ping(PingRequest(KEY, CALLER, None))
    assert third.buyer_id == "pinged"
    ops.update(third.uuid, KEY, "cancelled")
    # pinged skips it too for 60 s after that ping, and nobody is left
    assert _buyer(ops) == "duplicate-caller"
    clock.advance(61)
    assert _buyer(ops) == "pinged"


def test_pings_of_one_batch_see_each_others_marks(ops: Reservations, engine: Engine) -> None:
    """Two keys, one caller, one batch: the "ping" rule holds within the batch too."""
    with engine.begin() as conn:  # only "pinged" may take the caller (no tag matches the others)
        conn.execute(
            text("""UPDATE buyer SET filters = '{"state": ["ZZ"]}' WHERE id <> 'pinged'""")
        )
    ops.catalog.invalidate()
    answers = ops.ping_many([PingRequest(KEY, CALLER, None), PingRequest(OTHER_KEY, CALLER, None)])
    assert [a.buyer_id or a.reason for a in answers] == ["pinged", "duplicate-caller"]  # type: ignore[union-attr]


def test_no_caller_no_rule(ops: Reservations, engine: Engine, clock: Clock) -> None:
    """A ping without a caller number cannot be a duplicate (nothing to compare)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE postbackkey SET allow_missing_caller_number = true"))
    ops.catalog.invalidate()
    for _ in range(2):
        got = ops.ping(PingRequest(KEY, None, None))
        assert got.buyer_id == "first"
        _call(engine, got.uuid, clock, seconds=45)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM callerseen")).scalar_one() == 0
