"""The repair step at the agent's start: recordings a crash left unfinished (SPEC §4.8).

A call whose agent died mid-recording left its two parts in the recordings directory, their
WAV headers never finished (pjmedia fixes them only when a recorder is closed). Once the
agent's lease is held — the previous run's open calls closed by then — every part whose call
is closed is joined (``recordings.join`` reads the data size from the file's size) and the
call record gets the outcome; then the parts go. Parts of a call whose outcome was written
already (a crash between that write and their removal) just go. Parts of calls still open
are left alone: agents sharing the directory and the database may be recording them now.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from rtbridge.sip.recordings import discard_parts, join, leftover_parts, stereo_path
from rtbridge.storage.recordings import KEPT_OR_PURGED, closed_recordings, save_outcome

log = logging.getLogger("rtbridge.sip.recordings")


def repair_leftovers(directory: Path, engine: Engine) -> int:
    """Join the parts of closed calls in ``directory``; how many calls were repaired."""
    parts = leftover_parts(directory)
    if not parts:
        return 0
    found = closed_recordings(engine, parts.keys())
    closed = {u: path for u, (status, path) in found.items() if status in (None, "recording")}
    written = {u for u, (status, _) in found.items() if status in KEPT_OR_PURGED}
    for uuid in sorted(written):  # a crash after the outcome's write, before the parts went
        discard_parts(directory, uuid)
    for uuid in sorted(parts.keys() - closed.keys() - written):
        log.info("recording parts left alone: the call is open or unknown", extra={"uuid": uuid})
    for uuid, relative in sorted(closed.items()):
        if relative is None:  # the crash came before the answer's record: by the part's age
            made = min(p.stat().st_mtime for p in parts[uuid].values())
            relative = stereo_path(uuid, datetime.fromtimestamp(made, UTC))
        outcome = join(directory, uuid, relative, close_wait=0)  # no writer left
        save_outcome(engine, uuid, outcome)
        if outcome.status == "completed":
            discard_parts(directory, uuid)
        log.warning("recording repaired after a crash", extra={
            "uuid": uuid, "status": outcome.status, "path": outcome.path,
            "seconds": outcome.seconds, "error": outcome.error})  # fmt: skip
    return len(closed)
