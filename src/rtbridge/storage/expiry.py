"""Writing ``expired`` down: one set-based statement shared by the sweeper (all buyers) and by
a reserving transaction relieving one full buyer (``storage/counters.py`` explains why).

The ``UPDATE … RETURNING`` reports exactly the rows this statement changed, so history rows
and counter moves follow what happened, not what was selected: a reservation claimed or
expired by another process meanwhile is neither written twice nor given back twice. On
PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``: the sweeper and a ping never wait
for each other's rows (a row another transaction holds is left to it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rtbridge.domain import lifecycle as st
from rtbridge.storage.counters import Tally
from rtbridge.storage.models import UNCLAIMED_ROWS
from rtbridge.storage.sql import Db

# The partial indexes' own condition, spelled as in models.py so SQLite uses them.
DUE = f"{UNCLAIMED_ROWS} AND expires_at <= :now"
_EVENT = (
    "INSERT INTO reservationevent (reservation_uuid, status, at, detail) "
    "VALUES (:u, 'expired', :now, 'ttl passed')"
)


def expire(
    db: Db, tally: Tally, now: datetime, *, limit: int, buyer_id: str | None = None,
    exclude: str | None = None,
) -> int:  # fmt: skip
    """Expire up to ``limit`` due reservations (of ``buyer_id`` only, when given; never
    ``exclude``), oldest TTL first, with their history rows; moves ``tally``. Returns how many."""
    params: dict[str, Any] = {"now": db.ts(now), "limit": limit, "b": buyer_id, "x": exclude}
    where = DUE
    if buyer_id is not None:
        where += " AND buyer_id = :b"
    if exclude is not None:
        where += " AND uuid <> :x"
    lock = "" if db.sqlite else " FOR UPDATE SKIP LOCKED"
    rows = db.rows(
        "UPDATE reservation SET status = 'expired', updated_at = :now WHERE uuid IN "
        f"(SELECT uuid FROM reservation WHERE {where} ORDER BY expires_at LIMIT :limit{lock}) "
        f"AND {DUE} RETURNING uuid, buyer_id, created_at",
        params,
    )
    if not rows:
        return 0
    db.execute_many(_EVENT, [{"u": r["uuid"], "now": params["now"]} for r in rows])
    for r in rows:
        # Both unclaimed statuses hold the same units, so "reserved" stands for either.
        tally.transition(r["buyer_id"], r["created_at"], st.RESERVED, st.EXPIRED)
    return len(rows)
