"""Recording notices (SPEC §4.8): the WAV a recorded call plays to both parties from the
buyer's answer until their audio is bridged ("this call may be recorded").

No pjsua2 here: :func:`read_announcement` is the one check of such a file, made by whoever
names it (``apply``, the admin API) and again by the agent before it plays it, since the
file may change or be missing on the agent's host. A notice longer than
:data:`MAX_SECONDS` is refused: both parties hear nothing else while it plays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rtbridge.sip.recordings import read_part

MAX_SECONDS = 30.0
MAX_BYTES = 4 * 1024 * 1024  # 30 s of PCM16 mono at 48 kHz is 2.9 MB


@dataclass(frozen=True)
class Announcement:
    """A notice that can be played: its file, its length, and the file's identity when it
    was read (so a replaced file is read again)."""

    path: Path
    seconds: float
    stamp: tuple[int, int]  # (st_mtime_ns, st_size)


def read_announcement(path: str | Path) -> Announcement:
    """Check that ``path`` is an absolute path to a mono PCM16 WAV file of at most
    :data:`MAX_SECONDS`; raise ValueError saying what is wrong otherwise."""
    file = Path(path)
    if not file.is_absolute():
        raise ValueError(f"{path}: an announcement's path must be absolute")
    stamp = stamp_of(path)
    if not file.is_file():
        raise ValueError(f"{path}: not a file")
    if stamp[1] > MAX_BYTES:
        raise ValueError(f"{path}: {stamp[1]} bytes, more than {MAX_BYTES}")
    try:
        pcm = read_part(file)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {_words(exc, file)}") from None
    seconds = len(pcm.samples) / pcm.rate
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"{path}: {seconds:.1f} s long; a notice lasts 0 to {MAX_SECONDS:g} s")
    return Announcement(file, round(seconds, 3), stamp)


def stamp_of(path: str | Path) -> tuple[int, int]:
    """(st_mtime_ns, st_size) of ``path``: whether a file read before has changed since;
    ValueError in the words :func:`read_announcement` uses when it cannot be seen."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    return info.st_mtime_ns, info.st_size


def _words(exc: ValueError, file: Path) -> str:
    """read_part's words without its own file name prefix."""
    text = str(exc)
    prefix = f"{file.name}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
