"""Tones through a call: proof that audio crossed the agent, not just bytes.

A side that sends a tone of its own frequency and finds the *other* side's tone in what it
receives knows that audio went through the bridge in that direction: the agent itself only
ever generates silence, and comfort noise or a stuck packet has no 440 Hz in it. The test
is Goertzel's: the power at one frequency relative to the signal's total power, per 100 ms
window (a pure tone gives about 1.0, silence and noise about 0).

:func:`frames` makes G.711 mu-law frames of a tone; :class:`Ear` decodes what arrives and
measures; :func:`wav_power` reads a recording (tests/sip/peer.py's).
"""

from __future__ import annotations

import math
import struct
import wave
from array import array
from collections.abc import Iterable, Sequence
from itertools import cycle
from pathlib import Path

RATE = 8000  # G.711
WINDOW = RATE // 10  # 100 ms
HEARD = 0.3  # relative power above which a window holds the tone
FRAME = 160  # 20 ms of samples


def ulaw(sample: int) -> int:
    """G.711 mu-law encode one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _ulaw_decode(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


ULAW = array("h", (_ulaw_decode(b) for b in range(256)))  # byte -> sample


def frames(freq: float, amplitude: int = 8000) -> Iterable[bytes]:
    """Endless 20 ms PCMU frames of a ``freq`` Hz tone, continuous across frames (a tone cut
    at every frame edge would smear its power over neighbouring frequencies)."""
    period = RATE / math.gcd(RATE, int(freq)) if float(freq).is_integer() else RATE
    samples = int(period * FRAME / math.gcd(int(period), FRAME))  # whole frames, whole cycles
    encoded = bytes(
        ulaw(int(amplitude * math.sin(2 * math.pi * freq * n / RATE))) for n in range(samples)
    )
    return cycle([encoded[i : i + FRAME] for i in range(0, samples, FRAME)])


def powers(samples: Sequence[int], freq: float, rate: int = RATE) -> list[float]:
    """Goertzel power of ``freq`` relative to the total power, per 100 ms window (0..1)."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    block = rate // 10
    out = []
    for start in range(0, len(samples) - block + 1, block):
        s1 = s2 = energy = 0.0
        for x in samples[start : start + block]:
            s1, s2 = x + coeff * s1 - s2, s1
            energy += x * x
        power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (energy * block / 2) if energy else 0.0
        out.append(power)
    return out


def wav_power(path: Path, freq: float) -> float:
    """The loudest 100 ms window's relative power of ``freq`` in a 16-bit WAV recording."""
    with wave.open(str(path)) as wav:
        rate, data = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return max(powers(samples, freq, rate), default=0.0)


def wav_channels(path: Path) -> tuple[int, array[int], array[int]]:
    """A 16-bit stereo WAV file's rate, left channel and right channel."""
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2), "not 16-bit stereo"
        rate, data = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = array("h", data)
    return rate, samples[0::2], samples[1::2]


def wav_samples(path: Path) -> int:
    """How many samples (all channels) a WAV file holds, as the standard library reads it."""
    with wave.open(str(path)) as wav:
        return int(wav.getnframes() * wav.getnchannels())


def share_with(samples: Sequence[int], freq: float, rate: int = RATE) -> float:
    """The share of 100 ms windows in which ``freq`` is the dominant tone (0..1)."""
    found = powers(samples, freq, rate)
    return sum(p > HEARD for p in found) / len(found) if found else 0.0


class Ear:
    """What one side heard: PCMU payloads decoded to samples, in arrival order."""

    def __init__(self) -> None:
        self.samples = array("h")

    def hear(self, payload: bytes) -> None:
        self.samples.extend(ULAW[b] for b in payload)

    def mark(self) -> int:
        """Where "from now on" starts, for :meth:`seconds_of`."""
        return len(self.samples)

    def seconds_of(self, freq: float, since: int = 0) -> float:
        """Seconds of what was heard after ``since`` that hold a ``freq`` Hz tone."""
        found = powers(self.samples[since:], freq)
        return sum(p > HEARD for p in found) * WINDOW / RATE
