"""Event names and bodies. A subscription lists short names (``answered``); a body says the
full type (``call.answered``). Bodies carry the reservation as the publisher API's look-up
shows it, read when the event is dispatched; ``data.status`` is the event's own status.

``converted`` is derived, not stored: dispatching a ``completed`` event whose call record says
``converted`` emits ``call.converted`` too (the call's end is one history row; a second row
would only repeat it).

``attempt_failed`` is a buyer of the call failing (busy, rejected, no answer, unreachable)
while the reservation stays claimed and the call goes on to the next buyer: its history row
is not a status, and its body adds the ``attempt``. ``call.attempts`` leaves out the buyers
and their destinations, as the publisher's look-up does.

``recording_completed`` is the ``recorded`` history row the call's recording adds when its
file is complete (``storage/recordings.py``); its body is the file's facts and a signed,
expiring link to it (``domain/recording_links.py``), never a token. Only a buyer's webhook
gets the link (``url``; null for a publisher's, whose access is its key's ``recordings``
setting, ``GET /rtbs/<uuid>/recording``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from rtbridge.storage.attempts import ATTEMPT_FAILED
from rtbridge.storage.recordings import RECORDED
from rtbridge.timestamps import iso_utc

# short name -> type in the body
TYPES: Final = {
    "reserved": "reservation.reserved",
    "no-target": "reservation.no-target",
    "confirmed": "reservation.confirmed",
    "cancelled": "reservation.cancelled",
    "claimed": "call.claimed",
    "attempt_failed": "call.attempt_failed",
    "answered": "call.answered",
    "completed": "call.completed",
    "converted": "call.converted",
    "failed": "call.failed",
    "recording_completed": "recording.completed",
}
NAMES: Final = tuple(TYPES)
# reservationevent.status -> short name (statuses without webhooks are left out)
FROM_HISTORY: Final = {
    "confirmed": "confirmed",
    "cancelled": "cancelled",
    "claimed": "claimed",
    ATTEMPT_FAILED: "attempt_failed",
    "connected": "answered",
    "completed": "completed",
    "failed": "failed",
    RECORDED: "recording_completed",
}
# short name -> the status the reservation had at that event
STATUS: Final = {
    "reserved": "reserved", "no-target": "no-target", "confirmed": "confirmed",
    "cancelled": "cancelled", "claimed": "claimed", "attempt_failed": "claimed",
    "answered": "connected", "completed": "completed", "converted": "completed",
    "failed": "failed", "recording_completed": "completed",
}  # fmt: skip


def utc_text(value: datetime | None) -> str | None:
    """The API's format (:func:`rtbridge.timestamps.iso_utc`), or None."""
    return None if value is None else iso_utc(value)


def attempt_data(attempt: Mapping[str, Any]) -> dict[str, Any]:
    """A failed attempt (a ``storage.attempts.of_calls`` row) as ``data.attempt``."""
    return {
        "n": attempt["n"],
        "buyer": attempt["buyer_id"],
        "started_at": utc_text(attempt["started_at"]),
        "provisional_at": utc_text(attempt["provisional_at"]),
        "final_code": attempt["final_code"],
        "reason": attempt["reason"],
        "kind": attempt["kind"],
        "ended_at": utc_text(attempt["ended_at"]),
    }


def _public_attempt(attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "n": attempt["n"],
        "started_at": utc_text(attempt["started_at"]),
        "provisional_at": utc_text(attempt["provisional_at"]),
        "final_code": attempt["final_code"],
        "kind": attempt["kind"],
        "ended_at": utc_text(attempt["ended_at"]),
    }


def reservation_data(
    row: Mapping[str, Any], name: str, attempts: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The ``data`` of a body from a reservation row joined with its call record (the
    keys ``outbox`` selects; times already read as datetimes) and the call's attempts."""
    data: dict[str, Any] = {
        "uuid": row["uuid"],
        "status": STATUS[name],
        "publisher": row["publisher_id"],
        "campaign": row["campaign_id"],
        "buyer": row["buyer_id"],
        "reason": row["reason"],
        "payout": row["payout"],
        "seconds": row["seconds"],
        "inbound_number": row["inbound_number"],
        "caller_number": row["caller_number"],
        "tags": row["tags"] or {},
        "created_at": utc_text(row["created_at"]),
        "expires_at": utc_text(row["expires_at"]),
    }
    if row["invite_at"] is not None:
        converted = None if row["converted"] is None else bool(row["converted"])
        data["duration"] = row["duration"]
        data["converted"] = converted
        data["call"] = {
            "invite_at": utc_text(row["invite_at"]),
            "answered_at": utc_text(row["answer_at"]),
            "ended_at": utc_text(row["end_at"]),
            "duration": row["duration"],
            "converted": converted,
            "payout": row["call_payout"],
            "sip_code": row["publisher_code"],
            "buyer_sip_code": row["buyer_code"],
            "hangup_by": row["hangup_by"],
            "attempts": [_public_attempt(a) for a in attempts],
        }
    return data


def recording_data(row: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    """The ``data`` of ``recording.completed``: the file's facts from the call record (the
    keys ``outbox`` selects) and ``url``, the signed link or None."""
    return {
        "uuid": row["uuid"],
        "publisher": row["publisher_id"],
        "campaign": row["campaign_id"],
        "buyer": row["buyer_id"],
        "seconds": row["recording_seconds"],
        "bytes": row["recording_bytes"],
        "sha256": row["recording_sha256"],
        "url": url,
    }


def body(msg_id: str, name: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The exact text sent (and signed) on every attempt."""
    message = {"id": msg_id, "type": TYPES[name], "at": utc_text(at), "data": data}
    return json.dumps(message, separators=(",", ":"), sort_keys=False)
