"""Caller lists' entries where the hot paths meet them (SPEC §3.10; the rules:
domain/caller_lists.py): a ping batch asks for its callers' entries in its first round trip,
by value through ``ix_callerlistentry_value`` (each caller's number, its prefixes and nothing
else: at most 15 index probes, whatever the lists' size), an INVITE asks for one caller's,
and a conversion adds its caller to the block lists that auto-block in its scope, in its
transaction, through the :class:`~rtbridge.storage.counters.Tally` (written first of all, in
key order)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from rtbridge.domain.caller_lists import CallerList, CallerLists, candidates
from rtbridge.storage.sql import Db
from rtbridge.storage.trips import BulkInsert, Rows, Trip

AUTO = "auto"  # the source of an entry a conversion added
Listed = dict[str, list[tuple[str, datetime | None]]]  # value -> (list id, expiry) each

_SELECT = "SELECT list_id, value, expires_at FROM callerlistentry WHERE value IN "
# A conversion's entry: new, or a later expiry for an expiring one (one that never expires,
# or expires later, stays as it is: the admin's word wins over the automatic one)
_AUTO_ADD = BulkInsert(
    "callerlistentry",
    [("list_id", "l"), ("value", "v"), ("expires_at", "e"), ("note", "n"), ("source", "s"),
     ("created_at", "at")],
    "ON CONFLICT (list_id, value) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE callerlistentry.expires_at IS NOT NULL "
    "AND callerlistentry.expires_at < excluded.expires_at",
)  # fmt: skip


def query(trip: Trip, lists: CallerLists, callers: Iterable[str]) -> Rows | None:
    """Ask, in ``trip``, for every entry that matches one of these callers (a batch's)."""
    values = sorted({value for caller in callers for value in lists.candidates(caller)})
    if not values:
        return None
    params: dict[str, Any] = {}
    return trip.query(_SELECT + trip.db.in_list("v", values, params), params,
                      by_index=True)  # fmt: skip


def read(db: Db, rows: Rows | None) -> Listed:
    return _listed(db, rows.get() if rows is not None else ())


def of(db: Db, lists: CallerLists, caller: str | None) -> Listed:
    """One caller's entries (a number, or None: anonymous), read now (an INVITE's check)."""
    params: dict[str, Any] = {}
    values = lists.candidates(caller)
    return _listed(db, db.rows(_SELECT + db.in_list("v", values, params), params))


def _listed(db: Db, rows: Iterable[Mapping[str, Any]]) -> Listed:
    found: Listed = {}
    for row in rows:
        found.setdefault(row["value"], []).append((row["list_id"], db.read_ts(row["expires_at"])))
    return found


def matched(listed: Listed, caller: str | None, now: datetime) -> frozenset[str]:
    """The lists whose unexpired entries match ``caller``."""
    return frozenset(
        list_id
        for value in candidates(caller)
        for list_id, expires in listed.get(value, ())
        if expires is None or expires > now
    )


class AutoBlocks:
    """One transaction's conversions' callers for the auto-blocking lists, until
    :meth:`flush`."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, db: Db, reservation: Mapping[str, Any], at: datetime) -> None:
        """The caller of a conversion (``reservation``'s) goes onto every block list with
        ``auto_block_converted`` in its scope. The lists are read from the table (a few rows;
        conversions are rare, and the SIP agent's writers hold no catalog)."""
        caller = reservation["caller_number"]
        if not caller:
            return
        rules = db.rows(
            "SELECT id, kind, campaign_id, buyer_id, auto_block_converted FROM callerlist "
            "WHERE auto_block_converted IS NOT NULL"
        )
        lists = CallerLists({r["id"]: _rule(r) for r in rules})
        for rule in lists.auto_blocking(reservation["campaign_id"], reservation["buyer_id"]):
            assert rule.auto_block is not None
            self._rows[(rule.id, caller)] = {
                "l": rule.id, "v": caller, "e": db.ts(at + timedelta(seconds=rule.auto_block)),
                "n": "a converted call", "s": AUTO,
                "at": db.ts(at),
            }  # fmt: skip

    def flush(self, trip: Trip) -> None:
        if self._rows:
            _AUTO_ADD.add(trip, [row for _, row in sorted(self._rows.items())])
            self._rows.clear()


def _rule(row: Mapping[str, Any]) -> CallerList:
    return CallerList(row["id"], row["kind"], row["campaign_id"], row["buyer_id"],
                      row["auto_block_converted"])  # fmt: skip
