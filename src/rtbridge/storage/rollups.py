"""The business in figures (SPEC §3.8): pings, reservations, calls and money per hour x
publisher x campaign x buyer, kept in ``rollup`` as events happen, never by scanning.

**Where each figure moves**, always in the transaction of the event, so a crash can lose
neither the event nor its figure (and ``rtbridge check --rollups`` recounts them from the
rows): a ping batch adds ``pings`` and ``reserved`` or ``no_target`` (the reason is part of
the key); a claim adds ``calls``; a failover moves the ping, ``reserved`` and ``calls`` to
the new buyer; the buyer's answer adds ``answered``; the end of the call adds
``converted``, ``talk_seconds`` (answered calls), and what it earned: ``payout`` and
``revenue``.

**Whose hour:** every figure counts in the hour of its ping (the reservation's
``created_at``, UTC): a call lives within its reservation's TTL, and one key per
reservation is what makes the figures recountable from the rows with one ``GROUP BY``.
A ping answered from the ping shield made no reservation and is not counted again.

**By day as well:** every move is also added to the row of its day in ``rollupday``, by the
same trip: what a range of whole days is read from (``storage/stats.py``).

**Order of writes:** the moves of one transaction are summed by key and written by one
statement per table in key order (the hours', then the days'), through the transaction's
:class:`~rtbridge.storage.counters.Tally`, before its counter moves: every transaction takes
these rows, then the counters' rows, in one order (no deadlock between PostgreSQL
transactions)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rtbridge.domain import lifecycle as st
from rtbridge.storage.trips import BulkInsert, Trip

MEASURES = ("pings", "reserved", "no_target", "calls", "answered", "converted",
            "talk_seconds", "payout", "revenue")  # fmt: skip
COUNTS = MEASURES[:6]  # integers; the others are sums of seconds and money
KEYS = ("hour", "publisher_id", "campaign_id", "buyer_id", "reason")
DAY_KEYS = ("day", *KEYS[1:])  # rollupday's: the same, by day
Key = tuple[str, str, str, str, str]
_CHUNK = 1000  # rows per statement: 14 parameters each


def _upsert(table: str, keys: tuple[str, ...]) -> BulkInsert:
    return BulkInsert(
        table,
        [*((k, k) for k in keys), *((m, m) for m in MEASURES)],
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES),
    )


_HOURS = _upsert("rollup", KEYS)
_DAYS = _upsert("rollupday", DAY_KEYS)


def hour_of(at: datetime | str) -> str:
    """``YYYY-MM-DD HH`` (UTC) of a reservation created at ``at``; SQLite hands back its UTC
    text, which starts with it."""
    if isinstance(at, str):
        return at[:13]
    return (at.astimezone(UTC) if at.utcoffset() else at).strftime("%Y-%m-%d %H")


def key_of(reservation: Mapping[str, Any], *, buyer_id: str | None = None) -> Key:
    """The rollup key of a reservation row (``created_at``, ``publisher_id``,
    ``campaign_id``, ``buyer_id``, ``status``, ``reason``); ``buyer_id`` overrides its own."""
    no_target = reservation["status"] == st.NO_TARGET
    return (
        hour_of(reservation["created_at"]),
        reservation["publisher_id"],
        reservation["campaign_id"],
        (buyer_id or reservation["buyer_id"] or "") if not no_target else "",
        (reservation["reason"] or "") if no_target else "",
    )


class Moves:
    """One transaction's moves of the rollups, summed by key until :meth:`flush`."""

    def __init__(self) -> None:
        self._moves: dict[Key, dict[str, float]] = {}

    def add(self, key: Key, **measures: float) -> None:
        moved = self._moves.get(key)
        if moved is None:
            moved = self._moves[key] = dict.fromkeys(MEASURES, 0)
        for name, n in measures.items():
            moved[name] += n

    def pinged(self, reservation: Mapping[str, Any]) -> None:
        """A reservation a ping made (``no-target`` ones included)."""
        made = "no_target" if reservation["status"] == st.NO_TARGET else "reserved"
        self.add(key_of(reservation), pings=1, **{made: 1})

    def flush(self, trip: Trip) -> None:
        """Add the moves to ``trip``: the hours' rows, then the days', each in key order and
        in one statement (a repair's many rows go in statements of :data:`_CHUNK`, under
        PostgreSQL's limit of parameters)."""
        _write(trip, _HOURS, KEYS, self._moves)
        _write(trip, _DAYS, DAY_KEYS, by_day(self._moves))
        self._moves.clear()


def by_day(hours: Mapping[Key, Mapping[str, float]]) -> dict[Key, dict[str, float]]:
    """Figures by hour key summed by day key: what ``rollupday`` holds of them."""
    days: dict[Key, dict[str, float]] = {}
    for key, figures in hours.items():
        day = days.setdefault((key[0][:10], *key[1:]), dict.fromkeys(MEASURES, 0))
        for name, n in figures.items():
            day[name] += n
    return days


def _write(
    trip: Trip, upsert: BulkInsert, keys: tuple[str, ...], moves: Mapping[Key, Mapping[str, float]]
) -> None:
    rows = [{**dict(zip(keys, key, strict=True)), **moved} for key, moved in sorted(moves.items())]
    for start in range(0, len(rows), _CHUNK):
        upsert.add(trip, rows[start : start + _CHUNK])


class Earned:
    """What the calls this process ended earned, by (campaign, buyer), since it started:
    the ``rtbridge_*_earned_total`` counters of ``/metrics``, each process its own (it counts
    what it committed; Prometheus adds the processes up). Written by whichever thread
    ends a call, read by the scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, str], list[float]] = {}

    def add(self, campaign: str, buyer: str, converted: int, payout: float, revenue: float) -> None:
        with self._lock:
            figures = self._by.setdefault((campaign, buyer), [0, 0.0, 0.0])
            figures[0] += converted
            figures[1] += payout
            figures[2] += revenue

    def snapshot(self) -> dict[tuple[str, str], tuple[float, float, float]]:
        """(converted, payout, revenue) by (campaign, buyer)."""
        with self._lock:
            return {key: (c, p, r) for key, (c, p, r) in self._by.items()}


EARNED = Earned()
