"""When each caller last reached each buyer (SPEC §3.5 duplicate callers): ``callerseen``,
one row per (caller, buyer) with the time of its last ping, connection and conversion.
A buyer with a ``duplicate_window`` skips a caller who reached its ``duplicate_after`` point
within the window: one primary-key read per batch of pings, never a scan of the calls.

Marks move with the event that makes them, in its transaction, through the transaction's
:class:`~rtbridge.storage.counters.Tally` (written first, in key order: every transaction
takes these rows, then the rollups', then the counters', in one order). A connection and a
conversion are always marked (calls are few; a rule set later finds their history); a ping
only for a buyer whose rule counts pings (pings are the hot path)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rtbridge.storage.sql import Db
from rtbridge.storage.trips import BulkInsert, Rows, Trip

POINTS = ("ping", "connected", "converted")  # duplicate_after: what a previous call reached
COLUMN = {"ping": "pinged_at", "connected": "connected_at", "converted": "converted_at"}
Seen = dict[tuple[str, str], dict[str, Any]]  # (caller, buyer) -> its row


def _upsert(column: str) -> BulkInsert:
    return BulkInsert(
        "callerseen",
        [("caller_number", "c"), ("buyer_id", "b"), (column, "at")],
        f"ON CONFLICT (caller_number, buyer_id) DO UPDATE SET {column} = excluded.{column}",
    )


_UPSERTS = {point: _upsert(column) for point, column in COLUMN.items()}


class Marks:
    """One transaction's marks, by point: (caller, buyer) -> time, until :meth:`flush`."""

    def __init__(self) -> None:
        self._marks: dict[str, dict[tuple[str, str], Any]] = {}

    def add(self, point: str, caller: str | None, buyer: str | None, at: Any) -> None:
        if caller and buyer:
            self._marks.setdefault(point, {})[(caller, buyer)] = at

    def flush(self, trip: Trip) -> None:
        for point in POINTS:  # one order of points, each in key order
            marks = self._marks.get(point)
            if marks:
                rows = [{"c": c, "b": b, "at": at} for (c, b), at in sorted(marks.items())]
                _UPSERTS[point].add(trip, rows)
        self._marks.clear()


def query(trip: Trip, callers: Iterable[str]) -> Rows | None:
    """Ask, in ``trip``, for every mark of these callers (a batch's)."""
    names = sorted(set(callers))
    if not names:
        return None
    params: dict[str, Any] = {}
    listed = trip.db.in_list("c", names, params)
    return trip.query(
        f"{_SELECT} WHERE caller_number IN {listed}",
        params,
        by_index=True,
    )


_SELECT = "SELECT caller_number, buyer_id, pinged_at, connected_at, converted_at FROM callerseen"


def read(db: Db, rows: Rows | None) -> Seen:
    return _seen(db, rows.get() if rows is not None else ())


def of(db: Db, caller: str, buyer: str) -> Seen:
    """One caller's mark for one buyer, read now (an INVITE's check)."""
    found = db.one(f"{_SELECT} WHERE caller_number = :c AND buyer_id = :b",
                   {"c": caller, "b": buyer})  # fmt: skip
    return _seen(db, [found] if found is not None else [])


def _seen(db: Db, rows: Iterable[dict[str, Any]]) -> Seen:
    seen: Seen = {}
    for row in rows:
        for column in COLUMN.values():
            row[column] = db.read_ts(row[column])
        seen[(row["caller_number"], row["buyer_id"])] = row
    return seen


def last(seen: Mapping[tuple[str, str], Mapping[str, Any]], caller: str, buyer: str,
         point: str) -> datetime | None:  # fmt: skip
    """When ``caller`` last reached ``point`` with ``buyer`` (or a later point: a call
    converted was connected, and pinged, too)."""
    row = seen.get((caller, buyer))
    if row is None:
        return None
    times = [row[COLUMN[p]] for p in POINTS[POINTS.index(point) :] if row[COLUMN[p]]]
    return max(times) if times else None
