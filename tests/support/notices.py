"""Recording notices for tests: the shipped one, and WAV files made on the spot (a good one,
and the kinds ``sip/announcements.py`` refuses)."""

from __future__ import annotations

import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "sounds" / "this-call-may-be-recorded.wav"


def write_wav(path: Path, *, seconds: float = 0.5, channels: int = 1, rate: int = 8000) -> Path:
    """A silent PCM16 WAV file (its parent made): mono by default, as a notice must be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * channels * int(seconds * rate))
    return path
