"""Audio proven on a sample of a benchmark's calls, not just bytes counted.

The bulk of a benchmark's calls is SIPp, which either sends nothing or streams a file and
never looks at what comes back; the agent's own bridge count says a call is up, not that
audio crosses it. So a few calls of each run are placed by SIPp with their SDP pointing at
an :class:`~tests.sip.rtp.RtpPeer`, which sends a 440 Hz tone and keeps what comes back. The
buyers echo RTP (SIPp ``-rtp_echo``), so the tone found in what comes back went publisher ->
agent -> buyer and back buyer -> agent -> publisher: both directions of both legs. The agent
itself only ever sends silence, which has no 440 Hz in it (Goertzel, tests/support/tone.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.verdict import Verdict

from tests.sip.rtp import RtpPeer
from tests.sip.sipp import Sipp

# A sampled call passes when at least this share of the window measured held the tone back:
# under load a few packets may be late or lost, a bridge that carries nothing holds none.
MIN_SHARE = 0.5


@dataclass(frozen=True)
class Heard:
    answers: list[int | None]  # final answer to each sampled INVITE (None: no answer)
    seconds: list[float]  # seconds of tone back per call, over the window
    window: float  # seconds measured


class ToneSample:
    """``uuids``' calls to ``target`` (host:port), each held ``hold_ms`` with its own RTP peer.

    What counts is the tone heard over the whole call, or between :meth:`mark` and
    :meth:`close_window` when the calls must prove something at a given moment (while every
    bulk call is up, during a flood). :meth:`finish` waits for the calls and says."""

    def __init__(self, work: Path, target: str, uuids: Sequence[str], hold_ms: int,
                 *, host: str = "127.0.0.1") -> None:  # fmt: skip
        seconds = hold_ms / 1000 + 60
        self.peers = [RtpPeer(host).start(seconds) for _ in uuids]
        self.calls = [
            Sipp("uac_call.xml", work, host=host, remote=target, service=uuid,
                 keys={"rtp_port": str(peer.port)}, duration_ms=hold_ms, timeout=seconds)
            for uuid, peer in zip(uuids, self.peers, strict=True)
        ]  # fmt: skip
        self.hold = hold_ms / 1000
        self._since = [0 for _ in uuids]
        self._started = 0.0
        self._heard: Heard | None = None

    def mark(self) -> None:
        """The window starts now."""
        self._since = [peer.ear.mark() for peer in self.peers]
        self._started = time.monotonic()

    def close_window(self) -> None:
        """The window ends now (the calls are still up)."""
        self._heard = self._hear(time.monotonic() - self._started)

    def _hear(self, window: float) -> Heard:
        seconds = [peer.tone_seconds(s) for peer, s in zip(self.peers, self._since, strict=True)]
        return Heard([], seconds, window)

    def finish(self) -> Heard:
        results = [call.wait(self.hold + 90) for call in self.calls]
        heard = self._heard or self._hear(self.hold)
        for peer in self.peers:
            peer.stop()
        answers: list[int | None] = [next(iter(r.invite_answers()), None) for r in results]
        return Heard(answers, heard.seconds, heard.window)


def judge(verdict: Verdict, label: str, heard: Heard) -> None:
    """Two checks: every sampled call answered 200; every one heard its tone back."""
    n = len(heard.answers)
    verdict.check(f"{label}: sampled calls answered 200", heard.answers == [200] * n,
                  f"answers {heard.answers}")  # fmt: skip
    need = MIN_SHARE * heard.window
    verdict.check(
        f"{label}: tone back both ways on every sampled call (>= {MIN_SHARE:.0%} of the window)",
        n > 0 and all(s >= need for s in heard.seconds),
        f"{', '.join(f'{s:.1f}' for s in heard.seconds) or 'no call'} s of tone back "
        f"in {heard.window:.1f} s",
    )
