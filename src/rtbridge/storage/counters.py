"""Buyer caps as counters (SPEC §3.5): live units and per-day units kept in ``buyerlive`` and
``buyerday``, moved in the same transaction as the reservation status they follow, so a ping
reads a buyer's usage instead of counting its reservations.

**What they count** is the *stored* status, which makes them exact and recomputable with one
``GROUP BY`` (``storage/recount.py``):

- ``buyerlive.units``: the buyer's reservations stored reserved, confirmed, claimed, connected;
- ``buyerday.units`` of (buyer, UTC day): its reservations created that day and stored
  reserved, confirmed, claimed, connected, completed or failed.

Every write of a status moves them by ``units(new) - units(old)``: reserve +1/+1, claim and
connect 0, complete/fail -1 live, cancel and expire -1/-1, re-reserve an expired one +1/+1.

**Expiry.** Readers see an unclaimed reservation past its TTL as expired before the sweeper
writes it down (``lifecycle.effective_status``), so a counter may run ahead of the effective
figure by the buyer's due-but-unswept reservations. That errs on the safe side only (a buyer
looks fuller, never emptier), and the reserving transaction closes the gap where it decides
anything: when the counters say a buyer is at a cap, it expires that buyer's due reservations
itself (``storage.expiry.expire`` with ``buyer_id``: bounded, through a partial index holding
only unclaimed rows), giving their units back, before it refuses. No ping scans.

**Several processes.** Increments happen only under the campaign lock (``lock_campaign``), so
the value a ping reads cannot grow behind it; decrements (calls ending, the sweeper) may land
anywhere, which only frees units. Moves are ``units = units + :n`` upserts, applied when the
transaction ends, in one global order (days then live, by buyer): no lost updates, and no two
PostgreSQL transactions wait for each other's counter rows in opposite orders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rtbridge.domain import lifecycle as st
from rtbridge.domain.selection import Usage
from rtbridge.storage.caller_lists import AutoBlocks
from rtbridge.storage.callers import Marks
from rtbridge.storage.rollups import Moves
from rtbridge.storage.sql import Db
from rtbridge.storage.trips import BulkInsert, Rows, Trip

_HOLDS = frozenset((*st.UNCLAIMED, *st.IN_CALL))
_USES = frozenset(st.COUNTS_TODAY)

_MOVE_LIVE = BulkInsert(
    "buyerlive", [("buyer_id", "b"), ("units", "n")],
    "ON CONFLICT (buyer_id) DO UPDATE SET units = buyerlive.units + excluded.units",
)  # fmt: skip
_MOVE_DAY = BulkInsert(
    "buyerday", [("buyer_id", "b"), ("day", "d"), ("units", "n")],
    "ON CONFLICT (buyer_id, day) DO UPDATE SET units = buyerday.units + excluded.units",
)  # fmt: skip


def units(status: str) -> tuple[int, int]:
    """(live, day) units a reservation stored with ``status`` occupies."""
    return int(status in _HOLDS), int(status in _USES)


def day_of(at: datetime | str) -> str:
    """The UTC day (``YYYY-MM-DD``) a reservation created at ``at`` counts on. SQLite hands
    back its UTC text, which starts with the day."""
    if isinstance(at, str):
        return at[:10]
    return (at.astimezone(UTC) if at.utcoffset() else at).date().isoformat()


class Tally:
    """The counters as one transaction sees them, and the moves it will apply.

    Values are read once per buyer (and day) and then kept up to date with this transaction's
    own moves: under the campaign lock nobody else can raise them meanwhile, and a decrement
    committed elsewhere only makes the kept value conservative. :meth:`flush` writes the
    moves; call it last, just before the commit."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.relieved: set[str] = set()  # buyers whose due reservations this transaction expired
        self._live: dict[str, int] = {}
        self._days: dict[tuple[str, str], int] = {}
        self._moved_live: Counter[str] = Counter()
        self._moved_days: Counter[tuple[str, str]] = Counter()
        self._expected: list[tuple[Rows, list[str], str]] = []
        # the business figures this transaction moves (storage/rollups.py), written with
        # the counters, before them
        self.rollup = Moves()
        # when callers reached buyers (storage/callers.py), written first but for
        self.seen = Marks()
        # converted callers for auto-blocking lists (storage/caller_lists.py), first of all
        self.auto_blocks = AutoBlocks()

    def expect(self, trip: Trip, buyer_ids: Iterable[str], day: str) -> None:
        """Ask in ``trip`` for what :meth:`usage` will want, so that on PostgreSQL the
        question rides in the same round trip as the statements around it."""
        unread = self._unread(buyer_ids, day)
        if unread:
            self._expected.append((trip.query(*self._query(unread, day)), unread, day))

    def usage(self, buyer_ids: Iterable[str], day: str) -> dict[str, Usage]:
        """Live units and ``day``'s units of each buyer: one statement for those not read
        yet in this transaction (or not :meth:`expect`-ed), none for the rest."""
        ids = list(buyer_ids)
        while self._expected:
            expected, unread, at = self._expected.pop()
            self._take(expected.get(), unread, at)
        try:  # read already: the common case of a batch's second and later pings
            return {b: Usage(live=self._live[b], today=self._days[(b, day)]) for b in ids}
        except KeyError:
            pass
        unread = self._unread(ids, day)
        if unread:
            self._take(self.db.rows(*self._query(unread, day)), unread, day)
        return {b: Usage(live=self._live[b], today=self._days[(b, day)]) for b in ids}

    def _unread(self, buyer_ids: Iterable[str], day: str) -> list[str]:
        return [b for b in buyer_ids if b not in self._live or (b, day) not in self._days]

    def _query(self, buyer_ids: list[str], day: str) -> tuple[str, dict[str, object]]:
        params: dict[str, object] = {"day": day}
        names = self.db.in_list("b", buyer_ids, params)
        sql = (
            f"SELECT 'l' AS k, buyer_id, units FROM buyerlive WHERE buyer_id IN {names} "
            f"UNION ALL SELECT 'd' AS k, buyer_id, units FROM buyerday "
            f"WHERE day = :day AND buyer_id IN {names}"
        )
        return sql, params

    def _take(self, rows: list[dict[str, Any]], buyer_ids: list[str], day: str) -> None:
        found = {(row["k"], row["buyer_id"]): int(row["units"]) for row in rows}
        for b in buyer_ids:
            # Moves not flushed yet are not in the table: add them to what was read.
            self._live.setdefault(b, found.get(("l", b), 0) + self._moved_live[b])
            self._days.setdefault((b, day), found.get(("d", b), 0) + self._moved_days[(b, day)])

    def move(self, buyer_id: str, day: str, live: int, used: int) -> None:
        if live:
            self._moved_live[buyer_id] += live
            if buyer_id in self._live:
                self._live[buyer_id] += live
        if used:
            self._moved_days[(buyer_id, day)] += used
            if (buyer_id, day) in self._days:
                self._days[(buyer_id, day)] += used

    def transition(
        self, buyer_id: str | None, created_at: datetime | str, old: str, new: str
    ) -> None:
        """Record that a reservation of ``buyer_id`` went from ``old`` to ``new`` (stored)."""
        if buyer_id is None:
            return
        (live_old, day_old), (live_new, day_new) = units(old), units(new)
        if live_new != live_old or day_new != day_old:
            self.move(buyer_id, day_of(created_at), live_new - live_old, day_new - day_old)

    def flush(self, trip: Trip | None = None) -> None:
        """Apply the moves, in the one order every transaction uses: the auto-blocked
        callers, the callers' marks, the rollups, one for the days and one for live units, in ``trip`` if given, else at
        once."""
        days = [{"b": b, "d": d, "n": n} for (b, d), n in sorted(self._moved_days.items()) if n]
        live = [{"b": b, "n": n} for b, n in sorted(self._moved_live.items()) if n]
        now = trip is None
        trip = trip or Trip(self.db)
        self.auto_blocks.flush(trip)
        self.seen.flush(trip)
        self.rollup.flush(trip)
        if days:
            _MOVE_DAY.add(trip, days)
        if live:
            _MOVE_LIVE.add(trip, live)
        if now:
            trip.run()
        self._moved_days.clear()
        self._moved_live.clear()
