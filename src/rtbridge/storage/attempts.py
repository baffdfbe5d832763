"""Call attempts (SPEC §4.4 failover): every buyer dialled for a call is a ``callattempt``
row, and a failed one may hand the reservation to the next buyer of its campaign.

:func:`fail_over` is the whole move in one transaction, under the campaign lock a ping
takes: the failed attempt recorded (with a history row, ``attempt-failed``, which is also
the ``call.attempt_failed`` webhook's outbox entry), the next buyer chosen by the ping's
rules among those paying at least the quoted payout, the reservation moved to it and the
two buyers' units moved with it. So caps hold across any number of agents exactly as they
do for pings, and the counters stay equal to their recount (they count by the
reservation's buyer)."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain.failover import Attempt
from rtbridge.domain.selection import Chosen, choose_buyer
from rtbridge.storage.catalog import BuyerInfo, Catalog
from rtbridge.storage.counters import Tally, day_of
from rtbridge.storage.reservations import capped_usage, record_event
from rtbridge.storage.rollups import key_of
from rtbridge.storage.sql import Db, transaction
from rtbridge.storage.transactions import lock_campaign

# the history row of a failed attempt: not a status (the reservation stays claimed)
ATTEMPT_FAILED = "attempt-failed"
# (:same is :u again: PostgreSQL types each parameter once, and the two uses differ)
_INSERT = (
    "INSERT INTO callattempt (reservation_uuid, n, buyer_id, destination, started_at, "
    "provisional_at, final_code, reason, kind, ended_at) VALUES (:u, "
    "(SELECT COALESCE(MAX(n), 0) + 1 FROM callattempt WHERE reservation_uuid = :same), :buyer, "
    ":dest, :started, :prov, :code, :reason, :kind, :ended)"
)
COLUMNS = (
    "n", "buyer_id", "destination", "started_at", "provisional_at", "final_code", "reason",
    "kind", "ended_at",
)  # fmt: skip


def record(db: Db, uuid: str, attempts: Iterable[Attempt]) -> None:
    """Add attempts to a call, numbered on from those it has; a failed one gets its
    history row too."""
    for a in attempts:
        db.execute(_INSERT, {
            "u": uuid, "same": uuid, "buyer": a.buyer_id, "dest": a.destination[:512],
            "started": db.ts(a.started_at), "prov": db.ts(a.provisional_at),
            "code": a.final_code, "reason": a.reason[:256] or None, "kind": a.kind,
            "ended": db.ts(a.ended_at),
        })  # fmt: skip
        if a.failed:
            what = f"buyer {a.buyer_id}: {a.kind}, {a.final_code or '-'} {a.reason}"
            record_event(db, uuid, ATTEMPT_FAILED, a.ended_at, what.strip()[:256])


def of_calls(db: Db, uuids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The attempts of each call, in order (times as datetimes)."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not uuids:
        return found
    params: dict[str, Any] = {}
    names = db.in_list("u", list(uuids), params)
    for row in db.rows(
        f"SELECT reservation_uuid, {', '.join(COLUMNS)} FROM callattempt "
        f"WHERE reservation_uuid IN {names} ORDER BY reservation_uuid, n",
        params,
    ):
        uuid = row.pop("reservation_uuid")
        for name in ("started_at", "provisional_at", "ended_at"):
            row[name] = db.read_ts(row[name])
        found.setdefault(uuid, []).append(row)
    return found


@dataclass(frozen=True)
class FailedOver:
    """What :func:`fail_over` did: the failed attempt is recorded; ``buyer`` is the one the
    reservation now belongs to, None when no buyer may take the call (the call fails)."""

    buyer: BuyerInfo | None
    why: str = ""


def fail_over(
    engine: Engine, catalog: Catalog, *, uuid: str, failed: Attempt, tried: Collection[str],
    now: datetime, rng: random.Random | None = None,
) -> FailedOver:  # fmt: skip
    """Record ``failed`` and move the reservation to the next eligible buyer, if any and
    if the call has attempts left (``tried``: the buyers dialled so far, this one included)."""
    with transaction(engine, write=True) as db:
        row = db.one(
            "SELECT status, reason, publisher_id, campaign_id, buyer_id, payout, tags, created_at "
            "FROM reservation WHERE uuid = :u",
            {"u": uuid},
        )
        if row is None:
            return FailedOver(None, "no such reservation")
        record(db, uuid, [failed])
        if row["status"] != "claimed" or row["buyer_id"] != failed.buyer_id:
            return FailedOver(None, f"reservation {row['status']}")  # ended meanwhile
        campaign = catalog.campaigns.get(row["campaign_id"])
        if campaign is None:
            return FailedOver(None, "campaign removed")
        if len(tried) >= campaign.max_attempts:
            return FailedOver(None, f"max_attempts {campaign.max_attempts} reached")
        quoted = row["payout"] or 0.0
        # static buyers only: an RTB buyer's price and destination came with its bid
        candidates = [
            b for b in campaign.buyers
            if b.rule.id not in tried and b.payout is not None and b.payout >= quoted
        ]  # fmt: skip
        if not candidates:
            return FailedOver(None, "no other buyer pays the quoted payout")
        lock_campaign(db, campaign.id)
        tally = Tally(db)
        capped = [b.rule for b in candidates if b.rule in campaign.capped]
        usage = capped_usage(db, tally, capped, now, day_of(now)) if capped else {}
        tags = db.read_js(row["tags"]) or {}
        chosen = choose_buyer([b.rule for b in candidates], usage, tags, now, rng)
        if not isinstance(chosen, Chosen):
            return FailedOver(None, chosen.reason)
        buyer = campaign.buyer(chosen.buyer.id)
        assert buyer is not None
        moved = db.execute(
            "UPDATE reservation SET buyer_id = :new, seconds = :s, revenue = :r, "
            "updated_at = :now WHERE uuid = :u AND status = 'claimed' AND buyer_id = :old",
            {"new": buyer.rule.id, "s": buyer.seconds, "r": buyer.asks, "now": db.ts(now),
             "u": uuid, "old": failed.buyer_id},
        ).rowcount  # fmt: skip
        if moved != 1:
            return FailedOver(None, "reservation ended meanwhile")
        day = day_of(row["created_at"])
        tally.move(failed.buyer_id, day, -1, -1)
        tally.move(buyer.rule.id, day, 1, 1)
        # its reservation and its call count for the buyer that has it now
        tally.rollup.add(key_of(row), pings=-1, reserved=-1, calls=-1)
        tally.rollup.add(key_of(row, buyer_id=buyer.rule.id), pings=1, reserved=1, calls=1)
        tally.flush()
    return FailedOver(buyer)
