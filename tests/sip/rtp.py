"""A publisher's media in tests: a real RTP socket that sends a 440 Hz tone and DTMF and
records what comes back.

SIPp sends no audio of its own in our scenarios; the buyer side runs SIPp with
``-rtp_echo``, which returns every RTP packet it receives. So the tone (or a DTMF event)
found in what comes back left this socket, crossed the agent to the buyer and came back
through the agent: the bridge carried audio both ways. The agent itself only ever generates
silence, which has no 440 Hz in it (tests/support/tone.py measures).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from tests.support.tone import Ear, frames

TONE_HZ = 440
PCMU = 0
TELEPHONE_EVENT = 101  # the payload type our scenarios' SDP gives telephone-event
_EVENT_CODES = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
_EVENT_DIGITS = {code: digit for digit, code in _EVENT_CODES.items()}


@dataclass
class RtpPeer:
    """Symmetric RTP on ``host``: sends 20 ms PCMU frames of a 440 Hz tone to whoever sends
    to it first (the agent), and keeps what arrives (``ear``). ``start()`` runs it on a
    thread."""

    host: str = "127.0.0.1"
    sent: int = 0
    received: int = 0
    ear: Ear = field(default_factory=Ear)  # the PCMU audio that came back
    events: list[tuple[str, int]] = field(default_factory=list)  # (digit, duration ms), ends
    _dtmf: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.settimeout(0.01)
        self.port = self.sock.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self._seq = 0
        self._ts = 0
        self._seen_events: set[tuple[int, int]] = set()
        self._tone = iter(frames(TONE_HZ))

    def tone_seconds(self, since: int = 0) -> float:
        """Seconds of the 440 Hz tone that came back (after ``ear.mark()`` ``since``)."""
        return self.ear.seconds_of(TONE_HZ, since)

    def send_dtmf(self, digits: str) -> None:
        """Queue digits, sent as RFC 4733 events (100 ms each) between tone frames."""
        self._dtmf.extend(digits)

    def start(self, seconds: float = 60.0) -> RtpPeer:
        """Run for at most ``seconds`` (calls longer than a minute: benchmarks)."""
        self._thread = threading.Thread(target=self.run, args=(seconds,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()

    def run(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        next_send = 0.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(2048)
                self.remote = self.remote or source[:2]
                self._receive(data)
            except (TimeoutError, OSError):
                pass
            if self.remote is not None and time.monotonic() >= next_send:
                next_send = max(next_send + 0.02, time.monotonic() - 0.02)
                if self._dtmf:
                    self._send_event(self._dtmf.pop(0))
                else:
                    self._send(PCMU, next(self._tone), marker=False)
                    self._ts += 160

    def _send(self, pt: int, payload: bytes, *, marker: bool, ts: int | None = None) -> None:
        header = struct.pack(
            "!BBHII", 0x80, pt | (0x80 if marker else 0), self._seq & 0xFFFF,
            (self._ts if ts is None else ts) & 0xFFFFFFFF, 0x1234,
        )  # fmt: skip
        self._seq += 1
        assert self.remote is not None
        with contextlib.suppress(OSError):  # the far end went away mid-test
            self.sock.sendto(header + payload, self.remote)
        self.sent += 1

    def _send_event(self, digit: str) -> None:
        """One 100 ms event: start, updates, three end packets (RFC 4733 §2.5.1.4)."""
        code, start = _EVENT_CODES[digit], self._ts
        for n, duration in enumerate(range(160, 801, 160)):
            end = duration == 800
            payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
            for _ in range(3 if end else 1):
                self._send(TELEPHONE_EVENT, payload, marker=n == 0, ts=start)
            time.sleep(0.02)
        self._ts += 800

    def _receive(self, data: bytes) -> None:
        if len(data) < 12:
            return
        self.received += 1
        pt, ts, payload = data[1] & 0x7F, struct.unpack("!I", data[4:8])[0], data[12:]
        if pt == PCMU:
            self.ear.hear(payload)
        elif pt not in (PCMU, 8, 13) and len(payload) >= 4 and payload[1] & 0x80:
            code, duration = payload[0], struct.unpack("!H", payload[2:4])[0]
            if (ts, code) not in self._seen_events and code in _EVENT_DIGITS:
                self._seen_events.add((ts, code))
                self.events.append((_EVENT_DIGITS[code], duration // 8))
