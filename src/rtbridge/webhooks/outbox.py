"""The webhooks' outbox in the database: events become deliveries, deliveries are claimed,
sent and settled. Events are read and their bodies built in a read-only transaction; one
short write transaction then marks them, inserts their deliveries, settles the last
outcomes and claims the next (:func:`exchange`), so a process killed at any point loses
nothing: an event is either still pending or has its deliveries, a claimed delivery comes
back when its lease runs out.

Where events come from: ``reservationevent`` rows, written in the transaction of the status
change they record, and new ``reservation`` rows (a ping writes no history row). Both carry
``webhook_pending``, and a partial index holds only the pending rows. History rows are
pending by the column default (one per call event: not the hot path); a ping sets its row
pending only when the catalog says an enabled webhook wants it (``Catalog.wants_creation``),
so pings pay for the index only where someone subscribes. A flag, not an "id > last seen" cursor: PostgreSQL hands out
sequence values before commit, so a smaller id can become visible after a larger one, and a
cursor would skip it. A sender inserts deliveries only for the rows its own write marked
(``UPDATE ... RETURNING``; on PostgreSQL ``FOR UPDATE SKIP LOCKED``), and claims
deliveries the same way: any number of processes may dispatch and send, each taking rows
no other holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.domain.recording_links import RecordingLinks
from rtbridge.storage.attempts import ATTEMPT_FAILED, of_calls
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
    "c.buyer_code, c.hangup_by, c.recording_bytes, c.recording_seconds, c.recording_sha256 "
    "FROM reservation r LEFT JOIN callrecord c "
    "ON c.reservation_uuid = r.uuid WHERE r.uuid IN "
)
_TIMES = ("created_at", "expires_at", "invite_at", "answer_at", "end_at")
Attempt = dict[str, Any]  # a row of storage.attempts.of_calls
_BEFORE_THE_CALL = ("reserved", "confirmed", "claimed")  # the reservation's own buyer's


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


@dataclass(frozen=True)
class Dispatch:
    """Pending events read and turned into delivery rows outside any write transaction
    (bodies built and ids drawn there), so the write that follows holds the lock only for
    the marks and the inserts. ``due``: some delivery of an enabled webhook is due now."""

    created: tuple[str, ...] = ()  # reservation uuids read as pending
    history: tuple[int, ...] = ()  # reservationevent ids read as pending
    inserts: tuple[tuple[str, Any, dict[str, Any]], ...] = ()  # (table, key, row)
    due: bool = False

    @property
    def events(self) -> bool:
        return bool(self.created or self.history)


def prepare(
    engine: Engine, *, now: datetime, limit: int = 500, due: bool = False,
    links: RecordingLinks | None = None,
) -> Dispatch:  # fmt: skip
    """Read up to ``limit`` pending reservations and history rows and build their deliveries
    (one per matching subscription), in a read-only transaction: the common idle case, and
    all of the body building, take no write lock. ``due``: also look whether a delivery is
    due, so an idle sender opens no write transaction at all. ``links``: signs the
    recordings' links (none: ``url`` null)."""
    with transaction(engine, write=False) as db:
        params = {"n": limit}
        created = db.rows(
            f"SELECT uuid, buyer_id, created_at FROM reservation WHERE {WEBHOOK_PENDING} "
            "ORDER BY uuid LIMIT :n",
            params,
        )
        history = db.rows(
            "SELECT id, reservation_uuid, status, at FROM reservationevent "
            f"WHERE {WEBHOOK_PENDING} ORDER BY id LIMIT :n",
            params,
        )
        found: list[tuple[str, Any, str, str, datetime]] = [
            ("reservation", r["uuid"], r["uuid"], "reserved" if r["buyer_id"] else "no-target",
             db.read_ts(r["created_at"]))  # type: ignore[misc]
            for r in created
        ]  # fmt: skip
        found += [
            ("reservationevent", e["id"], e["reservation_uuid"], events.FROM_HISTORY[e["status"]],
             db.read_ts(e["at"]))  # type: ignore[misc]
            for e in history
            if e["status"] in events.FROM_HISTORY
        ]  # fmt: skip
        inserts = _deliveries(db, found, now, links)
        is_due = due and (
            db.one(
                "SELECT id FROM webhookdelivery WHERE status = 'pending' AND next_at <= :now "
                "AND webhook_id IN (SELECT id FROM webhook WHERE enabled) LIMIT 1",
                {"now": db.ts(now)},
            )
            is not None
        )
    return Dispatch(
        tuple(r["uuid"] for r in created), tuple(e["id"] for e in history), tuple(inserts), is_due
    )


def dispatch(
    engine: Engine, *, now: datetime, limit: int = 500, links: RecordingLinks | None = None
) -> int:
    """Turn up to ``limit`` pending reservations and history rows into deliveries and mark
    them seen (:func:`prepare`, then one write transaction). Returns deliveries made."""
    work = prepare(engine, now=now, limit=limit, links=links)
    if not work.events:
        return 0
    with transaction(engine, write=True) as db:
        return record(db, work)


def record(db: Db, work: Dispatch) -> int:
    """Inside a write transaction: mark the rows ``work`` read as seen and insert the
    deliveries of those this transaction marked. A row another sender marked since it was
    read (or holds, PostgreSQL: SKIP LOCKED) gets no delivery from here, so two senders
    never make one event's deliveries twice; one it holds stays pending for a later round."""
    marked: set[tuple[str, Any]] = set()
    for table, key, keys in (
        ("reservation", "uuid", work.created),
        ("reservationevent", "id", work.history),
    ):
        if not keys:
            continue
        params: dict[str, Any] = {}
        names = db.in_list("k", list(keys), params)
        where = f"{key} IN {names} AND {WEBHOOK_PENDING}"
        if not db.sqlite:
            where = f"{key} IN (SELECT {key} FROM {table} WHERE {where} FOR UPDATE SKIP LOCKED)"
        rows = db.rows(
            f"UPDATE {table} SET webhook_pending = false WHERE {where} RETURNING {key}", params
        )
        marked.update((table, r[key]) for r in rows)
    inserts = [row for table, key, row in work.inserts if (table, key) in marked]
    if inserts:
        db.execute_many(_DELIVERY, [{**row, "now": db.ts(row["now"])} for row in inserts])
    return len(inserts)


def _failed_attempts(
    db: Db, wanted: Sequence[tuple[int, str, datetime]], attempts: Mapping[str, list[Attempt]]
) -> dict[int, Attempt]:
    """The attempt row each ``attempt-failed`` history row (id, reservation, time) records.
    ``storage.attempts.record`` writes a failed attempt and its history row together, in
    order, so the k-th such row of a reservation is its k-th failed attempt, which ended at
    the row's time; when the two disagree, the failed attempt that ended then, if one did
    (never a guess: the event goes to that attempt's buyer)."""
    if not wanted:
        return {}
    params: dict[str, Any] = {"s": ATTEMPT_FAILED}
    names = db.in_list("u", sorted({uuid for _, uuid, _ in wanted}), params)
    order: dict[str, list[int]] = {}
    for e in db.rows(
        "SELECT id, reservation_uuid FROM reservationevent "
        f"WHERE status = :s AND reservation_uuid IN {names} ORDER BY id",
        params,
    ):
        order.setdefault(e["reservation_uuid"], []).append(e["id"])
    found: dict[int, Attempt] = {}
    for key, uuid, at in wanted:
        failed = [a for a in attempts.get(uuid, []) if a["kind"] in FAILOVER_KINDS]
        ids = order.get(uuid, [])
        k = ids.index(key) if key in ids else -1
        in_order = failed[k] if 0 <= k < len(failed) else None
        if in_order is not None and in_order["ended_at"] == at:
            found[key] = in_order
            continue
        same_time = next((a for a in failed if a["ended_at"] == at), None)
        if same_time is not None:
            found[key] = same_time
    return found


def _buyer_then(name: str, row: Mapping[str, Any], tried: Sequence[Attempt],
                attempt: Attempt | None) -> str | None:  # fmt: skip
    """The reservation's buyer when the event happened, read after a failover may have
    moved it on: a failed attempt's is that attempt's buyer (None when it cannot be told),
    the events up to the claim are the first buyer dialled's, and the call's end is the
    buyer's it has now (the one that answered, or the last one tried)."""
    if name == "attempt_failed":
        return None if attempt is None else str(attempt["buyer_id"])
    if name in _BEFORE_THE_CALL and tried:
        return str(tried[0]["buyer_id"])
    buyer: str | None = row["buyer_id"]
    return buyer


def _data(
    name: str, row: Mapping[str, Any], sub: Subscription, at: datetime, tried: Sequence[Attempt],
    attempt: Attempt | None, links: RecordingLinks | None,
) -> dict[str, Any]:  # fmt: skip
    """One event's ``data`` for ``sub``: a recording's link only for a buyer's webhook."""
    if name == "recording_completed":
        signed = links is not None and sub.owner_kind == "buyer"
        return events.recording_data(row, links.url(row["uuid"], at) if signed and links else None)
    data = events.reservation_data(row, name, tried)
    if name == "attempt_failed":
        data["attempt"] = None if attempt is None else events.attempt_data(attempt)
    return data


def _deliveries(
    db: Db, found: Sequence[tuple[str, Any, str, str, datetime]], now: datetime,
    links: RecordingLinks | None,
) -> list[tuple[str, Any, dict[str, Any]]]:  # fmt: skip
    subscriptions = _subscriptions(db) if found else []
    if not subscriptions:
        return []
    rows = _reservations(db, {uuid for _, _, uuid, _, _ in found})
    called = sorted(uuid for uuid, row in rows.items() if row["invite_at"] is not None)
    attempts = of_calls(db, called)
    failed = _failed_attempts(
        db, [(key, uuid, at) for _, key, uuid, name, at in found if name == "attempt_failed"],
        attempts,
    )  # fmt: skip
    inserts: list[tuple[str, Any, dict[str, Any]]] = []
    for table, key, uuid, name, at in found:
        row = rows.get(uuid)
        if row is None:
            continue
        tried = attempts.get(uuid, [])
        attempt = failed.get(key) if name == "attempt_failed" else None
        buyer = _buyer_then(name, row, tried, attempt)
        if buyer != row["buyer_id"]:
            row = {**row, "buyer_id": buyer}
        names = [name, "converted"] if name == "completed" and row["converted"] else [name]
        for event in names:
            shared = None  # built once per event, except a recording's (per owner kind)
            for sub in subscriptions:
                if not sub.wants(event, row, at):
                    continue
                data = shared or _data(event, row, sub, at, tried, attempt, links)
                if event != "recording_completed":
                    shared = data
                msg_id = uuid7()
                inserts.append((table, key, {
                    "id": msg_id, "webhook_id": sub.id, "event_type": events.TYPES[event],
                    "uuid": uuid, "body": events.body(msg_id, event, at, data), "now": now,
                }))  # fmt: skip
    return inserts


def claim(engine: Engine, *, now: datetime, limit: int, lease_until: datetime) -> list[Claim]:
    """Take up to ``limit`` due deliveries of enabled webhooks for one attempt each. The
    lease is ``next_at``: a sender killed before settling them leaves them due again then
    (so on the wire it is at least once; the receiver dedupes by ``webhook-id``)."""
    with transaction(engine, write=True) as db:
        return take(db, now=now, limit=limit, lease_until=lease_until)


def take(db: Db, *, now: datetime, limit: int, lease_until: datetime) -> list[Claim]:
    """:func:`claim` inside a write transaction the caller holds."""
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
    """Write the attempts' outcomes in one transaction (:func:`write_results`)."""
    with transaction(engine, write=True) as db:
        write_results(db, results, now=now)


def write_results(db: Db, results: Sequence[Result], *, now: datetime) -> None:
    """Write the attempts' outcomes. A failure is written only over the attempt it belongs
    to (``attempts`` unchanged): a sender whose lease ran out must not undo a later one."""
    delivered = [{"id": r.claim.id, "code": r.code, "now": db.ts(now)} for r in results if r.ok]
    if delivered:
        db.execute_many(
            "UPDATE webhookdelivery SET status = 'delivered', delivered_at = :now, "
            "last_code = :code, last_error = NULL WHERE id = :id AND status = 'pending'",
            delivered,
        )
    for r in results:
        if r.ok:
            continue
        status, at = ("pending", r.retry_at) if r.retry_at is not None else ("failed", now)
        db.execute(
            f"UPDATE webhookdelivery SET status = '{status}', next_at = :next, "
            "last_code = :code, last_error = :err "
            "WHERE id = :id AND status = 'pending' AND attempts = :n",
            {"id": r.claim.id, "code": r.code, "next": db.ts(at),
             "err": (r.error or "")[:256] or None, "n": r.claim.attempts},
        )  # fmt: skip


def exchange(
    engine: Engine, work: Dispatch, results: Sequence[Result], *, now: datetime, limit: int,
    lease_until: datetime,
) -> tuple[int, list[Claim]]:  # fmt: skip
    """One sender round's only write transaction: settle the last round's outcomes, record
    the events ``work`` read, and claim up to ``limit`` due deliveries (none with 0).
    Returns (deliveries made, claims)."""
    with transaction(engine, write=True) as db:
        write_results(db, results, now=now)
        made = record(db, work) if work.events else 0
        claims = take(db, now=now, limit=limit, lease_until=lease_until) if limit > 0 else []
    return made, claims


def pending_count(engine: Engine) -> int:
    with transaction(engine, write=False) as db:
        row = db.one("SELECT count(*) AS n FROM webhookdelivery WHERE status = 'pending'")
    return int(row["n"]) if row else 0
