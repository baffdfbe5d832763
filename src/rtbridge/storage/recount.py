"""The counters checked against the reservations they summarise: every counter recomputed with
one ``GROUP BY``, differences reported and, on request, rewritten (``rtbridge check
--counters [--repair]``). A full scan, so an admin's tool, never a ping's.

Both run while servers keep serving. The check reads counters and reservations in one
snapshot (a SQLite read transaction; ``REPEATABLE READ`` on PostgreSQL): a reservation and its
counter move commit together, so any snapshot sees them agree. The repair blocks counter
writers first (SQLite's write lock; ``LOCK TABLE … EXCLUSIVE`` on PostgreSQL, which waits for
every transaction that has moved a counter to end), then recounts: a transaction that changed
a reservation but has not moved its counter yet is not in the recount, and adds its move to
the repaired value afterwards."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from rtbridge.storage.models import LIVE_ROWS
from rtbridge.storage.sql import Db, transaction

_USED_ROWS = "status IN ('reserved', 'confirmed', 'claimed', 'connected', 'completed', 'failed')"
_SET_LIVE = (
    "INSERT INTO buyerlive (buyer_id, units) VALUES (:b, :n) "
    "ON CONFLICT (buyer_id) DO UPDATE SET units = excluded.units"
)
_SET_DAY = (
    "INSERT INTO buyerday (buyer_id, day, units) VALUES (:b, :d, :n) "
    "ON CONFLICT (buyer_id, day) DO UPDATE SET units = excluded.units"
)

Counts = dict[tuple[str, str | None], int]  # (buyer, None) live; (buyer, day) that day


@dataclass(frozen=True)
class Difference:
    buyer_id: str
    day: str | None  # None: the live counter
    counter: int
    recounted: int


@dataclass(frozen=True)
class CounterReport:
    compared: int  # counters compared (live and per day)
    differences: tuple[Difference, ...]
    repaired: bool

    @property
    def ok(self) -> bool:
        return not self.differences or self.repaired


def recount(db: Db) -> Counts:
    """What every counter should hold, from the reservations alone."""
    day = (
        "substr(created_at, 1, 10)"
        if db.sqlite
        else "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    )
    counts: Counts = {}
    for row in db.rows(
        "SELECT buyer_id, count(*) AS n FROM reservation "
        f"WHERE buyer_id IS NOT NULL AND {LIVE_ROWS} GROUP BY buyer_id"
    ):
        counts[(row["buyer_id"], None)] = int(row["n"])
    for row in db.rows(
        f"SELECT buyer_id, {day} AS day, count(*) AS n FROM reservation "
        f"WHERE buyer_id IS NOT NULL AND {_USED_ROWS} GROUP BY buyer_id, {day}"
    ):
        counts[(row["buyer_id"], row["day"])] = int(row["n"])
    return counts


def stored(db: Db) -> Counts:
    """What the counters hold."""
    counts: Counts = {(r["buyer_id"], None): int(r["units"]) for r in db.rows(
        "SELECT buyer_id, units FROM buyerlive")}  # fmt: skip
    for row in db.rows("SELECT buyer_id, day, units FROM buyerday"):
        counts[(row["buyer_id"], row["day"])] = int(row["units"])
    return counts


def _differences(counters: Counts, truth: Counts) -> list[Difference]:
    found = []
    for buyer_id, day in sorted(counters.keys() | truth.keys(), key=lambda k: (k[0], k[1] or "")):
        have, want = counters.get((buyer_id, day), 0), truth.get((buyer_id, day), 0)
        if have != want:
            found.append(Difference(buyer_id, day, have, want))
    return found


def check_counters(engine: Engine, *, repair: bool = False) -> CounterReport:
    """Compare every counter with its recount; with ``repair``, rewrite those that differ."""
    with transaction(engine, write=repair) as db:
        if not db.sqlite:
            db.execute(
                "LOCK TABLE buyerlive, buyerday IN EXCLUSIVE MODE"
                if repair
                else "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
            )
        counters, truth = stored(db), recount(db)
        differences = _differences(counters, truth)
        if repair:
            live = [{"b": d.buyer_id, "n": d.recounted} for d in differences if d.day is None]
            days = [
                {"b": d.buyer_id, "d": d.day, "n": d.recounted}
                for d in differences
                if d.day is not None
            ]
            if days:
                db.execute_many(_SET_DAY, days)
            if live:
                db.execute_many(_SET_LIVE, live)
    return CounterReport(
        len(counters.keys() | truth.keys()),
        tuple(differences),
        repaired=repair and bool(differences),
    )
