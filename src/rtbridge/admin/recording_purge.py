"""Recordings' retention (issue 24): completed recordings whose call ended more than
``retention_days`` ago lose their file, oldest first, a bounded batch per transaction, run
by ``rtbridge serve`` once a minute (``http/app.py``) like the bids' pruning.
``retention_days`` is ``--recording-retention-days``, else the file's ``[recordings]``
(:func:`retention_days`).

What a purge keeps: the call record says ``purged`` and keeps ``recording_seconds`` and
``recording_sha256`` (what was recorded, and the digest that proves which file it was, for
a copy kept elsewhere); it clears ``recording_path`` and ``recording_bytes`` (no file any
more) and ``recording_error``. Each purge is an audit entry on ``call/<uuid>`` (actor
``retention``), which the call's page shows as "purged on …".

Order: the file is deleted before the transaction that marks the row commits. A crash in
between leaves a row still ``completed`` whose file is gone; the next run purges it again
(a missing file counts as deleted), so nothing is ever left on disk unaccounted for. A file
that cannot be deleted (permissions) keeps its row ``completed`` and is logged; a process
without the recordings directory purges nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import write_session
from rtbridge.settings import DEFAULT_RETENTION_DAYS
from rtbridge.sip.recordings import stored_file
from rtbridge.storage.models import CallRecord
from rtbridge.storage.recordings import stored_recordings
from rtbridge.storage.story import PURGE_ACTION
from rtbridge.timestamps import utcnow

log = logging.getLogger("rtbridge.recordings")

ACTOR = "retention"
BATCH = 100  # recordings per transaction: each is a file deleted while it holds the lock


def retention_days(engine: Engine, flag: int | None) -> int:
    """How many days recordings are kept: ``--recording-retention-days`` when given, else
    the file's ``[recordings] retention_days`` as ``apply`` stored it (read at every run, so
    a change applies from the next minute on), else :data:`DEFAULT_RETENTION_DAYS`."""
    if flag is not None:
        return flag
    stored = stored_recordings(engine).retention_days
    return stored if stored is not None else DEFAULT_RETENTION_DAYS


def purge(
    engine: Engine, directory: Path, retention_days: int, *, now: datetime | None = None,
    batches: int = 10,
) -> int:  # fmt: skip
    """Purge the recordings of calls that ended before ``now - retention_days`` (at most
    ``batches`` x :data:`BATCH`: the next run goes on); how many were purged. Nothing when
    ``directory`` is not there: a process that does not see the agents' directory (another
    host, nothing mounted) must not mark files it cannot reach as gone."""
    if not directory.is_dir():
        return 0
    before = (now or utcnow()) - timedelta(days=retention_days)
    purged = 0
    for _ in range(batches):
        done, taken = _batch(engine, directory, before, retention_days)
        purged += done
        if taken < BATCH or not done:  # the last batch, or one whose files all resist
            break
    return purged


def _batch(engine: Engine, directory: Path, before: datetime, days: int) -> tuple[int, int]:
    """(purged, rows read) of one transaction."""
    done = 0
    with write_session(engine) as session:
        rows = session.exec(
            select(CallRecord)
            .where(col(CallRecord.recording_status) == "completed", col(CallRecord.end_at) < before)
            .order_by(col(CallRecord.end_at))
            .limit(BATCH)
        ).all()
        for row in rows:
            old = {"status": row.recording_status, "path": row.recording_path,
                   "bytes": row.recording_bytes, "sha256": row.recording_sha256}  # fmt: skip
            why = _delete(directory, row.recording_path)
            if why is not None:
                log.warning("cannot delete an expired recording; kept",
                            extra={"uuid": row.reservation_uuid, "error": why})  # fmt: skip
                continue
            row.recording_status = "purged"
            row.recording_path = row.recording_bytes = row.recording_error = None
            session.add(row)
            audit.record(session, actor=ACTOR, action=PURGE_ACTION,
                         resource=f"call/{row.reservation_uuid}", old=old,
                         new={"status": "purged", "retention_days": days})  # fmt: skip
            done += 1
        session.commit()
    return done, len(rows)


def _delete(directory: Path, relative: str | None) -> str | None:
    """Delete a recording's file; None when it is gone (or never was), else why not. A path
    leading out of the directory deletes nothing and counts as gone."""
    path = stored_file(directory, relative) if relative else None
    if path is None:
        return None
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
