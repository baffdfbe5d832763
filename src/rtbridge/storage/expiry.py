"""Writing ``expired`` down: one set-based statement shared by the sweeper (all buyers, one
after the other) and by a reserving transaction relieving one full buyer
(``storage/counters.py`` explains why).

The ``UPDATE … RETURNING`` reports exactly the rows this statement changed, so counter moves
follow what happened, not what was selected: a reservation claimed or expired by another
process meanwhile is not given back twice. On PostgreSQL the rows are picked ``FOR UPDATE
SKIP LOCKED``: the sweeper and a ping never wait for each other's rows (a row another
transaction holds is left to it).

No history row is written for an expiry: ``expires_at`` already says when it happened (the
sweep time is only when it was noticed), and the sweeper touches nearly every reservation,
so this keeps it to one row write each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rtbridge.domain import lifecycle as st
from rtbridge.storage.counters import Tally
from rtbridge.storage.models import UNCLAIMED_ROWS
from rtbridge.storage.sql import Db

# The partial index's own condition, spelled as in models.py so SQLite uses it.
DUE = f"{UNCLAIMED_ROWS} AND expires_at <= :now"
# Every buyer that ever held a unit has a counter row: the sweeper walks the index buyer by
# buyer (ix_reservation_unclaimed_buyer), and no index by TTL alone is written on every ping.
_BUYERS = "SELECT buyer_id FROM buyerlive"
DUE_ANY = f"{DUE} AND buyer_id IN ({_BUYERS})"


def expire(
    db: Db, tally: Tally, now: datetime, *, limit: int, buyer_id: str | None = None,
    exclude: str | None = None,
) -> int:  # fmt: skip
    """Expire up to ``limit`` due reservations (of ``buyer_id`` only, when given; never
    ``exclude``), oldest TTL first; moves ``tally``. Returns how many."""
    params: dict[str, Any] = {"now": db.ts(now), "limit": limit, "b": buyer_id, "x": exclude}
    where = f"{DUE} AND buyer_id {'= :b' if buyer_id is not None else f'IN ({_BUYERS})'}"
    if exclude is not None:
        where += " AND uuid <> :x"
    lock = "" if db.sqlite else " FOR UPDATE SKIP LOCKED"
    rows = db.rows(
        "UPDATE reservation SET status = 'expired', updated_at = :now WHERE uuid IN "
        f"(SELECT uuid FROM reservation WHERE {where} ORDER BY expires_at LIMIT :limit{lock}) "
        f"AND {DUE} RETURNING buyer_id, created_at",
        params,
    )
    for r in rows:
        # Both unclaimed statuses hold the same units, so "reserved" stands for either.
        tally.transition(r["buyer_id"], r["created_at"], st.RESERVED, st.EXPIRED)
    return len(rows)
