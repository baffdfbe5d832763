"""The webhooks' outbox in the database: events become deliveries, deliveries are claimed,
sent and settled. Every step is one short transaction, so a process killed at any point
loses nothing: an event is either still pending or has its deliveries, a claimed delivery
comes back when its lease runs out.

Where events come from: ``reservationevent`` rows, written in the transaction of the status
change they record, and new ``reservation`` rows (a ping writes no history row). Both carry
``webhook_pending``, and a partial index holds only the pending rows. History rows are
pending by the column default (one per call event: not the hot path); a ping sets its row
pending only when the catalog says an enabled webhook wants it (``Catalog.wants_creation``),
so pings pay for the index only where someone subscribes. A flag, not an "id > last seen" cursor: PostgreSQL hands out
sequence values before commit, so a smaller id can become visible after a larger one, and a
cursor would skip it. On PostgreSQL the pending rows are taken ``FOR UPDATE SKIP LOCKED``:
any number of processes may dispatch and send, each taking rows no other holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.storage.models import WEBHOOK_PENDING
from rtbridge.storage.sql import Db, transaction
from rtbridge.storage.uuids import uuid7
from rtbridge.webhooks import events

_DELIVERY = (
    "INSERT INTO webhookdelivery (id, webhook_id, event_type, reservation_uuid, body, status, "
    "attempts, next_at, created_at) VALUES (:id, :webhook_id, :event_type, :uuid, :body, "
    "'pending', 0, :now, :now)"
)
_RESERVATION = (
    "SELECT r.uuid, r.publisher_id, r.campaign_id, r.buyer_id, r.reason, r.payout, r.seconds, "
    "r.inbound_number, r.caller_number, r.tags, r.created_at, r.expires_at, c.invite_at, "
    "c.answer_at, c.end_at, c.duration, c.converted, c.payout AS call_payout, c.publisher_code, "
    "c.buyer_code, c.hangup_by FROM reservation r LEFT JOIN callrecord c "
    "ON c.reservation_uuid = r.uuid WHERE r.uuid IN "
)
_TIMES = ("created_at", "expires_at", "invite_at", "answer_at", "end_at")


@dataclass(frozen=True)
class Subscription:
    id: int
    owner_kind: str
    owner_id: str
    events: frozenset[str]
    created_at: datetime

    def wants(self, name: str, row: dict[str, Any], at: datetime) -> bool:
        owner = row["publisher_id"] if self.owner_kind == "publisher" else row["buyer_id"]
        # events from before the subscription existed are not its business
        return owner == self.owner_id and name in self.events and at >= self.created_at


@dataclass(frozen=True)
class Claim:
    """A delivery taken for one attempt (``attempts`` counts this one)."""

    id: str
    webhook_id: int
    url: str
    salt: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Result:
    """An attempt's outcome; ``retry_at`` None and no success means: give up (failed)."""

    claim: Claim
    ok: bool
    code: int | None = None
    error: str | None = None
    retry_at: datetime | None = None


def _skip_locked(db: Db) -> str:
    return "" if db.sqlite else " FOR UPDATE SKIP LOCKED"


def has_pending(engine: Engine) -> bool:
    """One read through each partial index: the common idle case takes no write lock."""
    with transaction(engine, write=False) as db:
        return any(
            db.one(f"SELECT {key} FROM {table} WHERE {WEBHOOK_PENDING} LIMIT 1") is not None
            for table, key in (("reservation", "uuid"), ("reservationevent", "id"))
        )


def _subscriptions(db: Db) -> list[Subscription]:
    rows = db.rows("SELECT id, owner_kind, owner_id, events, created_at FROM webhook WHERE enabled")
    return [
        Subscription(r["id"], r["owner_kind"], r["owner_id"],
                     frozenset(db.read_js(r["events"]) or ()), db.read_ts(r["created_at"]))  # type: ignore[arg-type]
        for r in rows
    ]  # fmt: skip


def _reservations(db: Db, uuids: set[str]) -> dict[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    names = db.in_list("u", sorted(uuids), params)
    found = {}
    for row in db.rows(_RESERVATION + names, params):
        for name in _TIMES:
            row[name] = db.read_ts(row[name])
        row["tags"] = db.read_js(row["tags"])
        found[row["uuid"]] = row
    return found


def dispatch(engine: Engine, *, now: datetime, limit: int = 500) -> int:
    """Turn up to ``limit`` pending reservations and history rows into deliveries (one per
    matching subscription) and mark them seen, in one transaction. Returns deliveries made."""
    if not has_pending(engine):
        return 0
    with transaction(engine, write=True) as db:
        lock, params = _skip_locked(db), {"n": limit}
        created = db.rows(
            f"SELECT uuid, buyer_id, created_at FROM reservation WHERE {WEBHOOK_PENDING} "
            f"ORDER BY uuid LIMIT :n{lock}",
            params,
        )
        history = db.rows(
            f"SELECT id, reservation_uuid, status, at FROM reservationevent "
            f"WHERE {WEBHOOK_PENDING} ORDER BY id LIMIT :n{lock}",
            params,
        )
        found: list[tuple[str, str, datetime]] = [
            (r["uuid"], "reserved" if r["buyer_id"] else "no-target", db.read_ts(r["created_at"]))  # type: ignore[misc]
            for r in created
        ]  # fmt: skip
        found += [
            (e["reservation_uuid"], events.FROM_HISTORY[e["status"]], db.read_ts(e["at"]))  # type: ignore[misc]
            for e in history
            if e["status"] in events.FROM_HISTORY
        ]  # fmt: skip
        made = _deliver(db, found, now)
        for table, key, rows in (
            ("reservation", "uuid", created),
            ("reservationevent", "id", history),
        ):
            if rows:
                marks: dict[str, Any] = {}
                names = db.in_list("k", [r[key] for r in rows], marks)
                db.execute(
                    f"UPDATE {table} SET webhook_pending = false WHERE {key} IN {names}", marks
                )
        return made


def _deliver(db: Db, found: Sequence[tuple[str, str, datetime]], now: datetime) -> int:
    subscriptions = _subscriptions(db) if found else []
    if not subscriptions:
        return 0
    rows = _reservations(db, {uuid for uuid, _, _ in found})
    inserts: list[dict[str, Any]] = []
    for uuid, name, at in found:
        row = rows.get(uuid)
        if row is None:
            continue
        names = [name, "converted"] if name == "completed" and row["converted"] else [name]
        for event in names:
            data = None
            for sub in subscriptions:
                if not sub.wants(event, row, at):
                    continue
                data = data or events.reservation_data(row, event)
                msg_id = uuid7()
                inserts.append({
                    "id": msg_id, "webhook_id": sub.id, "event_type": events.TYPES[event],
                    "uuid": uuid, "body": events.body(msg_id, event, at, data), "now": db.ts(now),
                })  # fmt: skip
    if inserts:
        db.execute_many(_DELIVERY, inserts)
    return len(inserts)


def claim(engine: Engine, *, now: datetime, limit: int, lease_until: datetime) -> list[Claim]:
    """Take up to ``limit`` due deliveries of enabled webhooks for one attempt each. The
    lease is ``next_at``: a sender killed before settling them leaves them due again then
    (so on the wire it is at least once; the receiver dedupes by ``webhook-id``)."""
    with transaction(engine, write=True) as db:
        rows = db.rows(
            "UPDATE webhookdelivery SET attempts = attempts + 1, next_at = :lease WHERE id IN "
            "(SELECT id FROM webhookdelivery WHERE status = 'pending' AND next_at <= :now "
            "AND webhook_id IN (SELECT id FROM webhook WHERE enabled) "
            f"ORDER BY next_at LIMIT :n{_skip_locked(db)}) AND status = 'pending' "
            "RETURNING id, webhook_id, body, attempts",
            {"now": db.ts(now), "lease": db.ts(lease_until), "n": limit},
        )
        if not rows:
            return []
        params: dict[str, Any] = {}
        names = db.in_list("w", sorted({r["webhook_id"] for r in rows}), params)
        hooks = {
            h["id"]: h
            for h in db.rows(f"SELECT id, url, salt FROM webhook WHERE id IN {names}", params)
        }
    rows.sort(key=lambda r: str(r["id"]))  # uuid7: creation order
    claims = []
    for r in rows:
        hook = hooks.get(r["webhook_id"])
        if hook is not None:
            claims.append(
                Claim(r["id"], r["webhook_id"], hook["url"], hook["salt"], r["body"], r["attempts"])
            )
    return claims


def settle(engine: Engine, results: Sequence[Result], *, now: datetime) -> None:
    """Write the attempts' outcomes. A failure is written only over the attempt it belongs
    to (``attempts`` unchanged): a sender whose lease ran out must not undo a later one."""
    with transaction(engine, write=True) as db:
        for r in results:
            params: dict[str, Any] = {"id": r.claim.id, "code": r.code, "now": db.ts(now),
                                      "err": (r.error or "")[:256] or None, "n": r.claim.attempts}  # fmt: skip
            if r.ok:
                db.execute(
                    "UPDATE webhookdelivery SET status = 'delivered', delivered_at = :now, "
                    "last_code = :code, last_error = NULL WHERE id = :id AND status = 'pending'",
                    params,
                )
                continue
            status, params["next"] = (
                ("pending", db.ts(r.retry_at)) if r.retry_at is not None else ("failed", db.ts(now))
            )
            db.execute(
                f"UPDATE webhookdelivery SET status = '{status}', next_at = :next, "
                "last_code = :code, last_error = :err "
                "WHERE id = :id AND status = 'pending' AND attempts = :n",
                params,
            )


def pending_count(engine: Engine) -> int:
    with transaction(engine, write=False) as db:
        row = db.one("SELECT count(*) AS n FROM webhookdelivery WHERE status = 'pending'")
    return int(row["n"]) if row else 0
