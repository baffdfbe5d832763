"""A call's recording as its call record keeps it (SPEC §4.8): plain data, so the agent that
makes the file (``sip/recordings.py``), the storage that keeps the row
(``storage/recordings.py``) and whoever serves it later speak of the same thing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "recording": in progress, or its agent died (the next start repairs and joins it);
# "completed": the stereo file is there; "failed": no file (``error`` says why) while the call
# itself went on; "purged": removed by retention.
RecordingStatus = Literal["recording", "completed", "failed", "purged"]
RECORDING_STATUSES: tuple[RecordingStatus, ...] = ("recording", "completed", "failed", "purged")
ERROR_LENGTH = 512  # the column's


@dataclass(frozen=True)
class RecordingOutcome:
    """``path``: relative to the recordings directory (``<yyyy>/<mm>/<uuid>.wav``)."""

    status: RecordingStatus
    path: str | None = None
    error: str | None = None
    size: int | None = None  # bytes of the stereo WAV file
    seconds: float | None = None  # its length
    sha256: str | None = None  # hex digest of the whole file

    @classmethod
    def failed(cls, error: str, path: str | None = None) -> RecordingOutcome:
        return cls("failed", path=path, error=error[:ERROR_LENGTH])
