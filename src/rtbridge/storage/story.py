"""A reservation's whole story on one page (``GET /admin/rtbs/<uuid>``, the console's call
page): the ping that made it, its verdict on each buyer and its RTB buyers' bids, its status
history, the call and every buyer dialled, its recording, the webhook deliveries it caused
and the admin actions that touched it. Read in one transaction, so the parts agree with one
another."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from rtbridge.storage.listings import bids_of, call_log, history, rtb_log
from rtbridge.storage.models import AuditEntry, CallRecord, Reservation, WebhookDelivery

PURGE_ACTION = "purge-recording"  # the audit entry of a retention purge (admin/recording_purge.py)


def story(session: Session, uuid: str, *, now: datetime) -> dict[str, Any] | None:
    """None when there is no such reservation."""
    found = rtb_log(session, uuid=uuid, limit=1, now=now).rows
    if not found:
        return None
    reservation = found[0]
    row = session.get(Reservation, reservation["uuid"])
    assert row is not None
    reservation["source_publisher_id"] = row.source_publisher_id
    reservation["updated_at"] = row.updated_at
    reservation["verdicts"] = row.verdicts  # each buyer's, by id (domain/selection.py)
    # a winning bid's: where the call goes, and the bidder's id for the bid
    reservation["destination"] = row.destination
    reservation["bid_id"] = row.bid_id
    made = f"no-target: {row.reason}" if row.status == "no-target" else f"reserved {row.buyer_id}"
    events = [{"at": row.created_at, "status": "pinged", "detail": made, "attempt": False}]
    calls = call_log(session, uuid=uuid, limit=1).rows
    deliveries = session.exec(
        select(WebhookDelivery)
        .where(col(WebhookDelivery.reservation_uuid) == reservation["uuid"])
        .order_by(col(WebhookDelivery.created_at))
    )
    audit = session.exec(
        select(AuditEntry)
        .where(col(AuditEntry.resource).in_([f"call/{uuid}", f"reservation/{uuid}"]))
        .order_by(col(AuditEntry.id))
    ).all()
    record = session.exec(
        select(CallRecord).where(col(CallRecord.reservation_uuid) == reservation["uuid"])
    ).first()
    return {
        "reservation": reservation,
        "bids": bids_of(session, reservation["uuid"]),
        "history": [*events, *history(session, reservation["uuid"])],
        "call": calls[0] if calls else None,
        "recording": _recording(record, audit),
        "webhooks": [
            {
                "id": d.id,
                "webhook": d.webhook_id,
                "event": d.event_type,
                "status": d.status,
                "attempts": d.attempts,
                "created_at": d.created_at,
                "delivered_at": d.delivered_at,
                "last_code": d.last_code,
                "last_error": d.last_error,
            }
            for d in deliveries
        ],
        "audit": [
            {
                "at": a.at,
                "actor": a.actor,
                "action": a.action,
                "resource": a.resource,
                "old": a.old,
                "new": a.new,
            }
            for a in audit
        ],
    }


def _recording(record: CallRecord | None, audit: Sequence[AuditEntry]) -> dict[str, Any] | None:
    """The call's recording as its record keeps it (None: not recorded); a purged one with
    when its purge was audited."""
    if record is None or record.recording_status is None:
        return None
    purges = [a.at for a in audit if a.action == PURGE_ACTION]
    return {
        "status": record.recording_status,
        "seconds": record.recording_seconds,
        "bytes": record.recording_bytes,
        "sha256": record.recording_sha256,
        "error": record.recording_error,
        "purged_at": purges[-1] if purges else None,
    }
