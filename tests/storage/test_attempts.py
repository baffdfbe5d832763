"""Failover in the database (``storage/attempts.fail_over``): the failed attempt recorded,
the reservation moved to the next eligible buyer with its units, in one transaction under
the campaign lock — on both databases, and from many threads at once (the agents of a
site), where no buyer may end above its cap and every counter equals its recount."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from rtbridge.domain.failover import Attempt
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import attempts, calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from rtbridge.timestamps import utcnow

KEY = "attempts-test-key-000000001"


def _config(first_cap: int = 100) -> str:
    return f"""
[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "first"
destination = "sip:first@127.0.0.1:5070"
payout = 10.0
seconds = 30
concurrency = {first_cap}

[[campaigns.buyers]]
id = "b2"
destination = "sip:b2@127.0.0.1:5071"
payout = 12.0
seconds = 60
concurrency = 3
priority = 2

[[campaigns.buyers]]
id = "b3"
destination = "sip:b3@127.0.0.1:5072"
payout = 10.0
seconds = 45
concurrency = 2
daily_cap = 50
priority = 3

[[campaigns.buyers]]
id = "cheap"
destination = "sip:cheap@127.0.0.1:5073"
payout = 9.5
seconds = 30
priority = 4

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 600
"""


CONFIG = _config()


def claimed(engine: Engine, n: int) -> list[str]:
    """``n`` reservations of ``first`` (priority 1), each claimed by a call."""
    ops = Reservations(engine, CatalogCache(engine))
    uuids = []
    for _ in range(n):
        out = ops.ping(PingRequest(key=KEY, caller_number=None, inbound_number=None))
        assert out.status == "reserved"
        got = calls.claim(engine, uuid=out.uuid, publisher_id="p1", now=utcnow(), agent="a",
                          source="test")  # fmt: skip
        assert isinstance(got, calls.Claimed) and got.buyer_id == "first"
        uuids.append(out.uuid)
    return uuids


def busy(buyer: str) -> Attempt:
    now = utcnow()
    return Attempt(buyer, f"sip:{buyer}@127.0.0.1", now - timedelta(seconds=1), now, "busy", 486,
                   "Busy Here")  # fmt: skip


def live_units(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT buyer_id, units FROM buyerlive WHERE units <> 0"))
        return {r.buyer_id: r.units for r in rows}


def test_the_reservation_moves_to_the_next_buyer_with_its_unit(engine: Engine) -> None:
    (uuid,) = claimed(engine, 1)
    catalog = CatalogCache(engine).get()
    moved = attempts.fail_over(engine, catalog, uuid=uuid, failed=busy("first"),
                               tried=["first"], now=utcnow())  # fmt: skip
    assert moved.buyer is not None and moved.buyer.rule.id == "b2"
    assert live_units(engine) == {"b2": 1}
    with engine.connect() as conn:
        row = conn.execute(text("SELECT buyer_id, seconds, payout, status FROM reservation"
                                " WHERE uuid = :u"), {"u": uuid}).one()  # fmt: skip
        history = conn.execute(text("SELECT status, detail FROM reservationevent WHERE "
                                    "reservation_uuid = :u ORDER BY id"), {"u": uuid}).all()  # fmt: skip
    # the answering buyer's seconds, the quoted payout, still claimed
    assert tuple(row) == ("b2", 60, 10.0, "claimed")
    assert history[-1] == ("attempt-failed", "buyer first: busy, 486 Busy Here")
    # the end of call records its last attempt after the first, and gives b2's unit back
    now = utcnow()
    calls.ended(engine, uuid=uuid, answer_at=now - timedelta(seconds=61), end_at=now,
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=61,
                attempts=[Attempt("b2", "sip:b2@127.0.0.1", now, now, "answered", 200)])  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT n, buyer_id, final_code, kind FROM callattempt "
                                 "WHERE reservation_uuid = :u ORDER BY n"), {"u": uuid}).all()  # fmt: skip
        record = conn.execute(text("SELECT converted, payout FROM callrecord WHERE "
                                   "reservation_uuid = :u"), {"u": uuid}).one()  # fmt: skip
    assert [tuple(r) for r in rows] == [(1, "first", 486, "busy"), (2, "b2", 200, "answered")]
    assert tuple(record) == (True, 10.0)
    assert live_units(engine) == {}
    assert check_counters(engine).differences == ()


def test_tried_buyers_payout_and_max_attempts(engine: Engine) -> None:
    """Never a buyer tried already, never one paying less than quoted (cheap), never more
    attempts than the campaign allows."""
    (uuid,) = claimed(engine, 1)
    catalog = CatalogCache(engine).get()
    first = attempts.fail_over(engine, catalog, uuid=uuid, failed=busy("first"),
                               tried=["first"], now=utcnow())  # fmt: skip
    assert first.buyer is not None and first.buyer.rule.id == "b2"
    second = attempts.fail_over(engine, catalog, uuid=uuid, failed=busy("b2"),
                                tried=["first", "b2"], now=utcnow())  # fmt: skip
    assert second.buyer is not None and second.buyer.rule.id == "b3"
    third = attempts.fail_over(engine, catalog, uuid=uuid, failed=busy("b3"),
                               tried=["first", "b2", "b3"], now=utcnow())  # fmt: skip
    assert third.buyer is None and "max_attempts 3" in third.why
    assert live_units(engine) == {"b3": 1}  # the call still holds its last buyer until it ends
    assert check_counters(engine).differences == ()


def test_no_buyer_pays_the_quoted_payout(engine: Engine, tmp_path: Path) -> None:
    (uuid,) = claimed(engine, 1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE campaign SET max_attempts = 10"))
    catalog = CatalogCache(engine).get()
    moved = attempts.fail_over(engine, catalog, uuid=uuid, failed=busy("first"),
                               tried=["first", "b2", "b3"], now=utcnow())  # fmt: skip
    assert moved.buyer is None and moved.why == "no other buyer pays the quoted payout"
    assert live_units(engine) == {"first": 1}


def test_a_call_ended_meanwhile_is_not_moved(engine: Engine) -> None:
    (uuid,) = claimed(engine, 1)
    now = utcnow()
    calls.ended(engine, uuid=uuid, answer_at=None, end_at=now, publisher_code=487,
                buyer_code=487, hangup_by="publisher", duration=0)  # fmt: skip
    moved = attempts.fail_over(engine, CatalogCache(engine).get(), uuid=uuid,
                               failed=busy("first"), tried=["first"], now=now)  # fmt: skip
    assert moved.buyer is None and moved.why == "reservation failed"
    assert live_units(engine) == {}
    assert check_counters(engine).differences == ()


def test_many_agents_at_once_never_overfill_a_buyer(engine: Engine) -> None:
    """40 calls whose first buyer fails, failed over from 8 threads at once: b2 takes 3,
    b3 takes 2 (their caps), the other 35 find nobody (cheap pays less); counters equal
    their recount."""
    uuids = claimed(engine, 40)
    cache = CatalogCache(engine)
    got: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def agent(mine: list[str]) -> None:
        try:
            for uuid in mine:
                moved = attempts.fail_over(engine, cache.get(), uuid=uuid, failed=busy("first"),
                                           tried=["first"], now=utcnow())  # fmt: skip
                with lock:
                    got[moved.buyer.rule.id if moved.buyer else moved.why] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(uuids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert got == {"b2": 3, "b3": 2, "concurrency-cap-reached": 35}, got
    assert live_units(engine) == {"b2": 3, "b3": 2, "first": 35}
    assert check_counters(engine).differences == ()
