"""An admin's hand on a call in progress: hang it up (``POST /admin/calls/<uuid>/hangup``,
the console's live calls). Only asked here, audited: the call belongs to the agent whose
pjsua2 thread carries it, which reads the request at its next heartbeat (every 2 s by
default) and ends both legs, recorded ``hangup_by = "admin"`` (``sip/b2bua/supervision.py``).
The agent may be another process on another host; the database is what they share."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from rtbridge.admin import audit
from rtbridge.domain.errors import Conflict, NotFound
from rtbridge.storage.models import CallRecord
from rtbridge.timestamps import utcnow


def request_hangup(session: Session, *, actor: str, uuid: str) -> dict[str, Any]:
    """``{"uuid", "agent", "requested_at"}``; 404 without such a call, 409 once it ended."""
    call = session.exec(
        select(CallRecord).where(col(CallRecord.reservation_uuid) == uuid.strip().lower())
    ).first()
    if call is None:
        raise NotFound(f"no call for reservation {uuid[:40]!r}")
    if call.end_at is not None:
        raise Conflict(f"call {call.reservation_uuid}: ended already ({call.hangup_by} hung up)")
    first = call.hangup_requested_at is None
    if first:
        call.hangup_requested_at = utcnow()
        session.add(call)
        audit.record(session, actor=actor, action="hangup",
                     resource=f"call/{call.reservation_uuid}", new={"agent": call.agent})  # fmt: skip
    answer = {"uuid": call.reservation_uuid, "agent": call.agent,
              "requested_at": call.hangup_requested_at}  # fmt: skip
    session.commit()  # not a configuration change: no version bump, no catalog reload
    return answer
