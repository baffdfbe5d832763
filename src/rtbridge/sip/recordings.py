"""Call recordings on disk (SPEC §4.8): where they go, and the one step that makes a file.

No pjsua2 here: the agent's recorders (``b2bua/recorder.py``) write one mono WAV per leg
while the call is up, ``<dir>/<uuid>.left.wav`` (the publisher) and ``<uuid>.right.wav``
(the buyer). When the call ends, :func:`join` — on a worker thread, never the pjsua2 one —
interleaves them into ``<dir>/<yyyy>/<mm>/<uuid>.wav`` (PCM16 stereo at the conference
clock, 8 kHz by default) and takes its SHA-256, size and length; the parts are deleted
(:func:`discard_parts`) once that outcome is written.

Crash safety: pjmedia's WAV writer fixes the RIFF and data sizes in its header only when the
recorder is closed, so a part left by a crash says 0 (or too little) there. The samples are
all on disk up to the writer's last flush (at most 2 s: pjproject/config_site.h
PJMEDIA_FILE_PORT_BUFSIZE), so :func:`read_part` takes the data size from the file's size
instead, and :func:`repair_leftovers` (the agent's start) joins whatever parts a crash left.
A crash therefore loses at most the seconds the writer had not flushed.

Layout (for whoever serves or purges recordings): the call record's ``recording_path`` is
relative to the recordings directory; the directory is created 0700 and files are 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.agent_config import config_path, load_agent_config
from rtbridge.storage.recordings import stored_recordings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from rtbridge.settings import Settings

LEFT, RIGHT = "left", "right"  # the publisher, the buyer
_PART = re.compile(r"^(?P<uuid>[0-9a-fA-F-]{36})\.(?P<side>left|right)\.wav$")
_SAMPLE_BYTES = 2  # PCM16
_WAVE_FORMAT_PCM = 1
# pjsua2 destroys a recorder's conference port on the media thread's next tick, and the WAV
# writer flushes its last buffer and fixes the header only then: the join waits for that.
CLOSE_WAIT = 2.0


def directory_for(configured: str, database_url: str) -> Path:
    """The recordings directory: the agent's ``recordings_directory`` when set; else a
    ``recordings`` folder beside the SQLite database file; else (PostgreSQL, or an
    in-memory SQLite) ``recordings`` in the working directory."""
    if configured:
        return Path(configured)
    prefix = "sqlite:///"
    if database_url.startswith(prefix):
        file = database_url[len(prefix) :].split("?", 1)[0]
        if file and file != ":memory:":
            return Path(file).resolve().parent / "recordings"
    return Path.cwd() / "recordings"


def directory_of(
    settings: Settings, configured: str | None = None, *, engine: Engine | None = None
) -> Path:
    """The one answer to "where are the recordings?" for every process of a deployment:
    the agent that writes them and the HTTP side that serves and purges them, each asking
    once, at its start. ``--recordings-dir`` (``$RTBRIDGE_RECORDINGS_DIR``) first; else the
    configuration file's ``[recordings] directory`` as ``apply`` stored it (read from
    ``engine``'s database; without one, not consulted); else the agent file's
    ``recordings_directory`` (``configured`` when the caller has read the file, else read
    here from ``--sip-config``/``$RTBRIDGE_SIP_CONFIG``); else :func:`directory_for`'s
    default."""
    if settings.recordings_dir:
        return Path(settings.recordings_dir)
    stored = stored_recordings(engine).directory if engine is not None else None
    if stored:
        return Path(stored)
    if configured is None:
        path = config_path(settings.sip_config)
        configured = load_agent_config(path).recordings_directory if path is not None else ""
    return directory_for(configured, settings.db_url)


def stored_file(directory: Path, relative: str) -> Path | None:
    """A call record's ``recording_path`` joined to ``directory``, when it resolves inside it
    (no ``..``, no absolute path, no symlink out of it); else None. Whoever serves or
    deletes a recording goes through here: a database row is no reason to open, or
    remove, any file on the host."""
    root = directory.resolve()
    target = (root / relative).resolve()
    return target if target.is_relative_to(root) and target != root else None


def prepare_directory(directory: Path) -> str | None:
    """Create ``directory`` (0700) if needed and check that files can be created in it;
    None when they can, else why not."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        return _why(exc)
    return None


def part_paths(directory: Path, uuid: str) -> tuple[Path, Path]:
    """Where a call's recorders write while it is up: the publisher's, the buyer's."""
    return directory / f"{uuid}.{LEFT}.wav", directory / f"{uuid}.{RIGHT}.wav"


def stereo_path(uuid: str, answered: datetime) -> str:
    """The stereo file's path relative to the directory: by the month of the answer (UTC)."""
    at = answered.astimezone(UTC)
    return f"{at:%Y}/{at:%m}/{uuid}.wav"


def leftover_parts(directory: Path) -> dict[str, dict[str, Path]]:
    """Parts a crash left behind, by call uuid then side ("left", "right")."""
    found: dict[str, dict[str, Path]] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in sorted(names):
        match = _PART.match(name)
        if match:
            found.setdefault(match["uuid"].lower(), {})[match["side"]] = directory / name
    return found


@dataclass(frozen=True)
class Pcm:
    """A part's samples: mono PCM16 at ``rate`` Hz."""

    rate: int
    samples: array[int]
    repaired: bool  # its header's sizes were wrong (the recorder was never closed)


def read_part(path: Path) -> Pcm:
    """Read a mono PCM16 WAV as pjmedia writes it, trusting the file's size over the
    header's when the header was never finished. Raises ValueError for anything else."""
    raw = path.read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path.name}: not a WAV file")
    rate, offset, pos = 0, -1, 12
    declared = 0
    while pos + 8 <= len(raw):
        chunk, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, pos + 8)
            if (fmt, channels, bits) != (_WAVE_FORMAT_PCM, 1, 16):
                raise ValueError(f"{path.name}: not mono PCM16 (format {fmt}, {channels} ch)")
        elif chunk == b"data":
            offset, declared = pos + 8, size
            break
        pos += 8 + size + (size & 1)
    if offset < 0 or not rate:
        raise ValueError(f"{path.name}: no fmt or data chunk")
    available = len(raw) - offset
    available -= available % _SAMPLE_BYTES
    riff_ok = struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    usable = declared if 0 < declared <= available else available
    samples = array("h", raw[offset : offset + usable])
    if sys.byteorder == "big":
        samples.byteswap()
    return Pcm(rate, samples, repaired=not riff_ok or declared != usable)


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """A canonical 44-byte PCM16 WAV header."""
    block = channels * _SAMPLE_BYTES
    return b"".join((
        b"RIFF", struct.pack("<I", 36 + data_bytes), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, _WAVE_FORMAT_PCM, channels, rate, rate * block,
                             block, 8 * _SAMPLE_BYTES),
        b"data", struct.pack("<I", data_bytes),
    ))  # fmt: skip


def interleave(left: array[int], right: array[int]) -> array[int]:
    """Two mono channels as one stereo stream (L R L R …); the shorter is padded with
    silence (the recorders start and stop together, so they differ by a frame at most)."""
    frames = max(len(left), len(right))
    stereo = array("h", bytes(2 * frames * _SAMPLE_BYTES))
    stereo[0 : 2 * len(left) : 2] = left
    stereo[1 : 2 * len(right) : 2] = right
    return stereo


def wait_closed(path: Path, timeout: float) -> bool:
    """Wait up to ``timeout`` s for the WAV writer to close ``path`` (its RIFF size set);
    False when it did not (a crash's part, or a writer still busy: read as it is)."""
    deadline = time.monotonic() + timeout
    while True:
        with path.open("rb") as part:
            head = part.read(8)
        if len(head) == 8 and struct.unpack_from("<I", head, 4)[0] != 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def join(
    directory: Path, uuid: str, relative: str, *, close_wait: float = CLOSE_WAIT
) -> RecordingOutcome:
    """Make ``directory/relative`` (stereo) from the call's parts; parts a recorder is still
    closing are waited for (``close_wait`` s). The parts stay: whoever writes the outcome
    deletes them once it is written (:func:`discard_parts`), so a crash in between leaves
    them for the repair. Never raises: a failure (a part unreadable, the disk full) is the
    outcome."""
    left_path, right_path = part_paths(directory, uuid)
    target = directory / relative
    try:
        for part in (left_path, right_path):
            wait_closed(part, close_wait)
        left, right = read_part(left_path), read_part(right_path)
        if left.rate != right.rate:
            raise ValueError(f"parts at {left.rate} and {right.rate} Hz")
        stereo = interleave(left.samples, right.samples)
        if sys.byteorder == "big":
            stereo.byteswap()
        data = stereo.tobytes()
        header = wav_header(left.rate, 2, len(data))
        digest = hashlib.sha256(header)
        digest.update(data)
        _write_atomically(target, header, data)
    except (OSError, ValueError) as exc:
        return RecordingOutcome.failed(_why(exc), relative)
    return RecordingOutcome(
        "completed", path=relative, size=len(header) + len(data),
        seconds=round(len(data) / (4 * left.rate), 3), sha256=digest.hexdigest(),
    )  # fmt: skip


def discard_parts(directory: Path, uuid: str) -> None:
    """Remove a call's parts (its outcome written, or a recording that failed to start), as
    far as it can."""
    for part in part_paths(directory, uuid):
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)


def _write_atomically(target: Path, header: bytes, data: bytes) -> None:
    """Write to a temporary name beside ``target``, fsync, then rename: a reader (or a
    crash) never sees half a file under the final name."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(header)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__
