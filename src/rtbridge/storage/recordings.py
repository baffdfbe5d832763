"""A call's recording in its call record (SPEC §4.8): written with the call's events, read by
whoever serves or repairs the file.

The agent writes ``recording`` with the answer (so a crash leaves a trace to repair) and the
outcome with the call's "recorded" event, after its end, in that event's own transaction.
The columns are the call record's (``storage/models.py`` ``CallRecord.recording_*``); the
file's path is relative to the agent's recordings directory (``sip/recordings.py``). The
configuration file's ``[recordings]`` section is kept here too, as settings rows
(:func:`stored_recordings`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from rtbridge.domain.recording import RecordingOutcome
from rtbridge.storage.models import Setting
from rtbridge.storage.reservations import record_event
from rtbridge.storage.sql import Db, transaction
from rtbridge.timestamps import utcnow

# The history row a completed recording adds (not a status: the reservation stays completed),
# which makes the ``recording.completed`` webhook (webhooks/events.py), as every call event
# becomes one: written in the outcome's own transaction, so the outbox misses none.
RECORDED = "recorded"

# The file's ``[recordings]`` as settings rows (storage/models.py Setting), by key: what
# ``apply`` stores and every process reads (sip/recordings.py directory_of, the purge).
RECORDINGS_SETTINGS = {
    "directory": "recordings.directory",
    "retention_days": "recordings.retention_days",
    "format": "recordings.format",
}


@dataclass(frozen=True)
class StoredRecordings:
    """``[recordings]`` as the database holds it; None: that key is not set."""

    directory: str | None = None
    retention_days: int | None = None
    format: str | None = None


def stored_recordings(engine: Engine) -> StoredRecordings:
    """The stored ``[recordings]`` settings (one short read)."""
    names = {name: key for key, name in RECORDINGS_SETTINGS.items()}
    with Session(engine) as session:
        rows = session.exec(select(Setting).where(col(Setting.name).in_(names)))
        found = {names[row.name]: row.value for row in rows}
    days = found.get("retention_days")
    return StoredRecordings(found.get("directory"), int(days) if days else None,
                            found.get("format"))  # fmt: skip


_COLUMNS = (
    "recording_status, recording_path, recording_error, recording_bytes, recording_seconds, "
    "recording_sha256"
)


def write_outcome(db: Db, uuid: str, outcome: RecordingOutcome, at: datetime) -> None:
    """Keep ``outcome`` on the call record of reservation ``uuid`` (every column: a failed
    recording clears nothing it did not have); a completed one also gets its history row
    (:data:`RECORDED`) at ``at``."""
    db.execute(
        "UPDATE callrecord SET recording_status = :s, recording_path = :p, "
        "recording_error = :e, recording_bytes = :b, recording_seconds = :sec, "
        "recording_sha256 = :h WHERE reservation_uuid = :u",
        {"s": outcome.status, "p": outcome.path, "e": outcome.error, "b": outcome.size,
         "sec": outcome.seconds, "h": outcome.sha256, "u": uuid},
    )  # fmt: skip
    if outcome.status == "completed":
        record_event(db, uuid, RECORDED, at, outcome.path)


def save_outcome(engine: Engine, uuid: str, outcome: RecordingOutcome) -> None:
    """:func:`write_outcome` in a transaction of its own (a repair after a crash), now."""
    with transaction(engine, write=True) as db:
        write_outcome(db, uuid, outcome, utcnow())


def recording_of(
    engine: Engine, uuid: str, publisher: str | None = None
) -> RecordingOutcome | None:
    """The recording of reservation ``uuid``'s call; None when it was not recorded (or there
    is no such call, or with ``publisher``, none of that publisher's). The seam for serving
    the file (``http/recordings.py``): join ``path`` to the directory."""
    query = f"SELECT {_COLUMNS} FROM callrecord WHERE reservation_uuid = :u"
    params = {"u": uuid}
    if publisher is not None:  # the reservation's publisher: its key's
        query += " AND reservation_uuid IN (SELECT uuid FROM reservation WHERE uuid = :u AND publisher_id = :p)"
        params["p"] = publisher
    with transaction(engine, write=False) as db:
        row = db.one(query, params)
    if row is None or row["recording_status"] is None:
        return None
    return RecordingOutcome(
        row["recording_status"], path=row["recording_path"], error=row["recording_error"],
        size=row["recording_bytes"], seconds=row["recording_seconds"],
        sha256=row["recording_sha256"],
    )  # fmt: skip


# Recording statuses whose outcome is written and whose parts, if any are left (a crash after
# the outcome's write), are of no use: the file was made (and may be purged since).
KEPT_OR_PURGED = ("completed", "purged")


def closed_recordings(
    engine: Engine, uuids: Collection[str]
) -> dict[str, tuple[str | None, str | None]]:
    """Of ``uuids``, the calls that are closed (their agent's restart, or a peer's takeover,
    ended them if it was not the call's own end): their recording's status and path. A
    status of None or ``recording`` is a recording a crash left unfinished (in progress, or
    not written at all). Calls still open are left out: their agent, perhaps a live peer
    sharing the directory, is recording them."""
    if not uuids:
        return {}
    params: dict[str, object] = {}
    with transaction(engine, write=False) as db:
        where = db.in_list("u", sorted(uuids), params)
        rows = db.rows(
            "SELECT reservation_uuid, recording_status, recording_path FROM callrecord "
            f"WHERE reservation_uuid IN {where} AND end_at IS NOT NULL",
            params,
        )
    return {
        row["reservation_uuid"]: (row["recording_status"], row["recording_path"]) for row in rows
    }
