"""The rollups checked against the rows they summarise: every figure recomputed from the
reservations and their call records with one ``GROUP BY``, differences reported and, on
request, rewritten (``rtbridge check --rollups [--repair]``). A full scan: an admin's tool.

Like the counters' check (``storage/recount.py``): the check reads in one snapshot, the
repair first blocks the rollups' writers (SQLite's write lock; ``LOCK TABLE … EXCLUSIVE`` on
PostgreSQL, which waits for every transaction that has moved a rollup), then rewrites the
whole tables from the recount. It also fills them on a site that had rows before rollups
existed (migration 0016). The days' table (``rollupday``) is checked against the same
recount summed by day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from rtbridge.storage.rollups import COUNTS, DAY_KEYS, KEYS, MEASURES, Key, Moves, by_day
from rtbridge.storage.sql import Db, transaction
from rtbridge.storage.trips import Trip

Figures = dict[Key, dict[str, float]]

_NO_TARGET = "r.status = 'no-target'"
_RECOUNT = f"""
SELECT {{hour}} AS hour, r.publisher_id, r.campaign_id,
  CASE WHEN {_NO_TARGET} THEN '' ELSE COALESCE(r.buyer_id, '') END AS buyer_id,
  CASE WHEN {_NO_TARGET} THEN COALESCE(r.reason, '') ELSE '' END AS reason,
  count(*) AS pings,
  sum(CASE WHEN {_NO_TARGET} THEN 0 ELSE 1 END) AS reserved,
  sum(CASE WHEN {_NO_TARGET} THEN 1 ELSE 0 END) AS no_target,
  count(c.id) AS calls,
  sum(CASE WHEN c.answer_at IS NOT NULL THEN 1 ELSE 0 END) AS answered,
  sum(CASE WHEN c.converted THEN 1 ELSE 0 END) AS converted,
  sum(CASE WHEN c.answer_at IS NOT NULL AND c.end_at IS NOT NULL THEN c.duration ELSE 0 END)
    AS talk_seconds,
  sum(COALESCE(c.payout, 0)) AS payout,
  sum(COALESCE(c.revenue, c.payout, 0)) AS revenue
FROM reservation r LEFT JOIN callrecord c ON c.reservation_uuid = r.uuid
GROUP BY 1, 2, 3, 4, 5
"""
_TOLERANCE = 0.005  # sums of money and seconds: floating point, compared to the cent


@dataclass(frozen=True)
class Difference:
    key: Key  # its first part: the hour ("YYYY-MM-DD HH") or, in rollupday, the day
    measure: str
    stored: float
    recounted: float


@dataclass(frozen=True)
class RollupReport:
    compared: int  # rows compared, of both tables
    differences: tuple[Difference, ...]
    repaired: bool

    @property
    def ok(self) -> bool:
        return not self.differences or self.repaired


def recount(db: Db) -> Figures:
    """What every rollup row should hold, from the reservations and call records alone."""
    hour = (
        "substr(r.created_at, 1, 13)"
        if db.sqlite
        else "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"
    )
    return _figures(db.rows(_RECOUNT.format(hour=hour)))


def stored(db: Db) -> Figures:
    return _figures(db.rows(f"SELECT {', '.join((*KEYS, *MEASURES))} FROM rollup"))


def stored_days(db: Db) -> Figures:
    columns = ", ".join((*DAY_KEYS, *MEASURES))
    return _figures(db.rows(f"SELECT {columns} FROM rollupday"), first="day")


def _figures(rows: list[dict[str, Any]], first: str = "hour") -> Figures:
    figures: Figures = {}
    for row in rows:
        key: Key = (row[first], row["publisher_id"], row["campaign_id"], row["buyer_id"],
                    row["reason"])  # fmt: skip
        figures[key] = {m: (int if m in COUNTS else float)(row[m] or 0) for m in MEASURES}
    return figures


def _differences(have: Figures, want: Figures) -> list[Difference]:
    zero = dict.fromkeys(MEASURES, 0.0)
    found = []
    for key in sorted(have.keys() | want.keys()):
        a, b = have.get(key, zero), want.get(key, zero)
        found += [Difference(key, m, a[m], b[m]) for m in MEASURES if abs(a[m] - b[m]) > _TOLERANCE]
    return found


def check_rollups(engine: Engine, *, repair: bool = False) -> RollupReport:
    """Compare every rollup row, hourly and daily, with its recount; with ``repair``,
    rewrite both tables."""
    with transaction(engine, write=repair) as db:
        if not db.sqlite:
            db.execute(
                "LOCK TABLE rollup, rollupday IN EXCLUSIVE MODE"
                if repair
                else "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
            )
        have, want = stored(db), recount(db)
        have_days, want_days = stored_days(db), by_day(want)
        differences = _differences(have, want) + _differences(have_days, want_days)
        if repair and differences:
            db.execute("DELETE FROM rollup")
            db.execute("DELETE FROM rollupday")
            trip = Trip(db)
            moves = Moves()
            for key, figures in want.items():
                moves.add(key, **figures)
            moves.flush(trip)
            trip.run()
    compared = len(have.keys() | want.keys()) + len(have_days.keys() | want_days.keys())
    return RollupReport(compared, tuple(differences), repaired=repair and bool(differences))
