"""The business figures (storage/rollups.py) move with every event, in its transaction, and
equal their recount from the rows (storage/rollup_recount.py); ``stats`` sums them by any
grouping. Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from rtbridge.admin.apply import apply_file
from rtbridge.domain.failover import Attempt
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import attempts, calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.reservations import Reservations
from rtbridge.storage.rollup_recount import check_rollups
from rtbridge.storage.rollups import Moves, hour_of
from rtbridge.storage.sql import transaction
from rtbridge.storage.stats import FIGURES, Stats, hour_range, stats
from rtbridge.storage.trips import Trip
from rtbridge.timestamps import utcnow
from tests.conftest import write_config

KEY = "rollup-key-0000000000000001"
CONFIG = f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "first"
destination = "sip:first@127.0.0.1:5071"
payout = 90.0
revenue = 110.0
seconds = 30
concurrency = 3
priority = 1

[[campaigns.buyers]]
id = "backup"
destination = "sip:backup@127.0.0.1:5072"
payout = 95.0
revenue = 125.0
seconds = 30
priority = 2
hours = "Mon-Sun 00:00-00:01 UTC"

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
"""


def _figures(engine: Engine, **query: object) -> dict:
    with Session(engine) as session:
        return stats(session, **query).totals  # type: ignore[arg-type]


def _busy(buyer: str) -> Attempt:
    now = utcnow()
    return Attempt(buyer, f"sip:{buyer}@127.0.0.1", now - timedelta(seconds=1), now, "busy", 486,
                   "Busy Here")  # fmt: skip


def _end(engine: Engine, uuid: str, seconds: float, answered: bool = True) -> None:
    now = utcnow()
    if answered:
        calls.answered(engine, uuid=uuid, at=now)
    calls.ended(engine, uuid=uuid, answer_at=now if answered else None,
                end_at=now + timedelta(seconds=seconds), publisher_code=200 if answered else 486,
                buyer_code=200 if answered else 486, hangup_by="publisher",
                duration=seconds if answered else 0.0)  # fmt: skip


def test_every_event_moves_its_figures_and_they_equal_the_recount(engine: Engine) -> None:
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    # 5 pings: "first" takes 3 (its concurrency), then no buyer is open (backup's hours)
    out = ops.ping_many([PingRequest(KEY, f"+1202555010{i}", None) for i in range(5)])
    uuids = [o.uuid for o in out if getattr(o, "status", None) == "reserved"]
    assert len(uuids) == 3
    assert _figures(engine)["pings"] == 5 and _figures(engine)["no_target"] == 2
    for uuid in uuids:
        assert isinstance(calls.claim(engine, uuid=uuid, publisher_id="p1", now=utcnow(),
                                      agent="a", source="t"), calls.Claimed)  # fmt: skip
    _end(engine, uuids[0], 45.5)  # converted
    _end(engine, uuids[1], 12.0)  # answered, too short
    _end(engine, uuids[2], 0.0, answered=False)  # the buyer refused
    figures = _figures(engine)
    assert figures == {
        "pings": 5, "reserved": 3, "no_target": 2, "calls": 3, "answered": 2, "converted": 1,
        "talk_seconds": 57.5, "payout": 90.0, "revenue": 110.0, "margin": 20.0,
    }  # fmt: skip
    report = check_rollups(engine)
    assert report.differences == () and report.compared == 4  # first's, no-target's: hour, day
    with Session(engine) as session:
        by = stats(session, group_by=["buyer", "reason"]).rows
    # sorted by key: no buyer (the no-target pings, with their reason) first
    assert [(r["buyer"], r["reason"], r["pings"]) for r in by] == [
        (None, "concurrency-cap-reached", 2),
        ("first", None, 3),
    ]


def test_a_failover_moves_the_call_to_the_buyer_that_took_it(
    engine: Engine, tmp_path: Path
) -> None:
    apply_file(
        engine, write_config(tmp_path, CONFIG.replace('hours = "Mon-Sun 00:00-00:01 UTC"\n', ""))
    )
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    uuid = ops.ping(PingRequest(KEY, None, None)).uuid
    calls.claim(engine, uuid=uuid, publisher_id="p1", now=utcnow(), agent="a", source="t")
    moved = attempts.fail_over(engine, CatalogCache(engine).get(), uuid=uuid, failed=_busy("first"),
                               tried=["first"], now=utcnow())  # fmt: skip
    assert moved.buyer is not None and moved.buyer.rule.id == "backup"
    _end(engine, uuid, 40)
    assert _figures(engine, buyer="first")["calls"] == 0
    backup = _figures(engine, buyer="backup")
    assert (backup["pings"], backup["calls"], backup["converted"]) == (1, 1, 1)
    assert (backup["payout"], backup["revenue"]) == (90.0, 125.0)  # the publisher's quote kept
    assert check_rollups(engine).differences == ()


def test_a_crashed_agents_calls_count_as_recovery_closes_them(engine: Engine) -> None:
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    uuid = ops.ping(PingRequest(KEY, None, None)).uuid
    calls.claim(engine, uuid=uuid, publisher_id="p1", now=utcnow(), agent="a", source="t")
    answered_at = utcnow() - timedelta(seconds=100)
    calls.answered(engine, uuid=uuid, at=answered_at)
    calls.heartbeat(engine, agent="a", at=answered_at + timedelta(seconds=60))
    calls.recover(engine, agent="a", now=utcnow())
    figures = _figures(engine)
    assert (figures["answered"], figures["converted"], figures["talk_seconds"]) == (1, 1, 60.0)
    assert check_rollups(engine).differences == ()


def test_check_finds_a_wrong_figure_and_repair_rewrites_it(engine: Engine) -> None:
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    ops.ping_many([PingRequest(KEY, None, None) for _ in range(4)])
    with engine.begin() as conn:
        conn.execute(text("UPDATE rollup SET pings = pings + 7 WHERE buyer_id = 'first'"))
        conn.execute(text("INSERT INTO rollup VALUES ('2020-01-01 00', 'p1', 'c1', 'gone', '', "
                          "1, 1, 0, 0, 0, 0, 0, 0, 0)"))  # fmt: skip
    report = check_rollups(engine)
    assert not report.ok
    assert {(d.key[3], d.measure, d.stored, d.recounted) for d in report.differences} == {
        ("first", "pings", 10.0, 3.0),
        ("gone", "pings", 1.0, 0.0),
        ("gone", "reserved", 1.0, 0.0),
    }
    assert check_rollups(engine, repair=True).repaired
    assert check_rollups(engine).differences == ()
    assert _figures(engine)["pings"] == 4


def test_rows_from_before_rollups_are_filled_by_repair(engine: Engine) -> None:
    """A site upgraded with reservations already there: the table starts empty."""
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    ops.ping_many([PingRequest(KEY, None, None) for _ in range(2)])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rollup"))
        conn.execute(text("DELETE FROM rollupday"))
    assert _figures(engine)["pings"] == 0
    assert check_rollups(engine, repair=True).repaired
    assert _figures(engine)["pings"] == 2


def test_check_finds_a_wrong_day_and_repair_rewrites_it(engine: Engine) -> None:
    """The days' table is checked against the same recount, summed by day."""
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    ops.ping_many([PingRequest(KEY, None, None) for _ in range(2)])
    with engine.begin() as conn:
        conn.execute(text("UPDATE rollupday SET converted = converted + 1"))
    day = utcnow().strftime("%Y-%m-%d")
    report = check_rollups(engine)
    assert {(d.key[0], d.key[3], d.measure, d.stored, d.recounted) for d in report.differences} == {
        (day, "first", "converted", 1.0, 0.0)
    }
    assert check_rollups(engine, repair=True).repaired
    assert check_rollups(engine).differences == ()


def _spread(engine: Engine) -> None:
    """Figures in every hour of 2026-11-28 .. 2026-12-03 (publisher p1 or p2 by the hour),
    written as events write them: hours and days alike."""
    with transaction(engine, write=True) as db:
        moves = Moves()
        start = datetime(2026, 11, 28, tzinfo=UTC)
        for n in range(6 * 24):
            at = start + timedelta(hours=n)
            moves.add((hour_of(at), f"p{1 + n % 2}", "c1", "first", ""), pings=1 + n % 5,
                      calls=n % 3, revenue=0.5 * n)  # fmt: skip
        trip = Trip(db)
        moves.flush(trip)
        trip.run()


def _by_hours(engine: Engine, group_by: tuple[str, ...], **query: Any) -> Stats:
    """The same question asked of the hours alone: each hour's row, added up here."""
    hours = stats_of(engine, group_by=("hour", *[g for g in group_by if g != "day"]), **query)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in hours.rows:
        row = {**row, "day": row["hour"][:10]}
        key = tuple(row[g] for g in group_by)
        into = found.setdefault(key, dict.fromkeys(FIGURES, 0))
        for m in FIGURES:
            into[m] = round(into[m] + row[m], 3)
    return Stats([{**dict(zip(group_by, k, strict=True)), **found[k]} for k in sorted(found)],
                 hours.totals)  # fmt: skip


def stats_of(engine: Engine, **query: Any) -> Stats:
    with Session(engine) as session:
        return stats(session, **query)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        ("2026-11-29T00:00:00Z", "2026-12-02T00:00:00Z"),  # whole days only
        ("2026-11-28T05:30:00Z", "2026-12-02T17:00:00Z"),  # partial days at both ends
        ("2026-11-30T03:00:00Z", "2026-11-30T09:00:00Z"),  # within one day
        ("2026-11-30T22:00:00Z", "2026-12-01T02:00:00Z"),  # across midnight, no whole day
        (None, "2026-11-30T12:00:00Z"),
        ("2026-12-01T06:00:00Z", None),
    ],
)
def test_days_and_their_partial_ends_add_up_as_the_hours_do(
    engine: Engine, since: str | None, until: str | None
) -> None:
    """Whole days are read from the days' table, the partial days at either end from the
    hours': any range, grouped any way, sums as the hours alone do."""
    _spread(engine)
    query: dict[str, Any] = {
        "since": since and datetime.fromisoformat(since),
        "until": until and datetime.fromisoformat(until),
    }
    for group_by in [("day",), ("publisher",), ("day", "publisher", "buyer")]:
        got = stats_of(engine, group_by=group_by, **query)
        assert got == _by_hours(engine, group_by, **query), (group_by, since, until)
        assert got.totals["pings"] > 0
    got = stats_of(engine, group_by=("publisher",), publisher="p2", **query)
    assert got == _by_hours(engine, ("publisher",), publisher="p2", **query)


def test_whole_days_are_read_from_the_days_table(engine: Engine) -> None:
    """Shown by a day row made wrong on purpose: whole days see it, the hours do not."""
    _spread(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE rollupday SET pings = pings + 1000 "
                "WHERE day = '2026-11-30' AND publisher_id = 'p1'"
            )
        )
    whole = {
        "since": datetime(2026, 11, 30, tzinfo=UTC),
        "until": datetime(2026, 12, 1, tzinfo=UTC),
    }
    assert (
        stats_of(engine, **whole).totals["pings"] - 1000
        == stats_of(engine, group_by=("hour",), **whole).totals["pings"]
    )


def test_ranges_cover_the_hours_they_overlap() -> None:
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert hour_range(at, at + timedelta(hours=2)) == ("2026-12-07 10", "2026-12-07 12")
    # a range ending at 12:30 covers the 12 o'clock hour; one starting at 10:30 the 10 o'clock
    assert hour_range(at + timedelta(minutes=30), at + timedelta(hours=2, minutes=30)) == (
        "2026-12-07 10",
        "2026-12-07 13",
    )
    assert hour_range(None, None) == (None, None)
