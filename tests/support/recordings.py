"""A recorded call as the agent leaves it, without the agent: a pinged reservation claimed,
answered and ended through the storage calls the agent makes, a real stereo WAV under the
app's recordings directory, and the outcome written on the call record."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.recordings import stereo_path, wav_header
from rtbridge.storage import calls
from rtbridge.storage.recordings import save_outcome
from tests.support.demo import KEY_OPEN

RATE = 8000


@dataclass(frozen=True)
class Recorded:
    uuid: str
    data: bytes  # the whole file
    path: Path  # where it is (or would be)


def state_of(client: TestClient) -> Any:
    return client.app.state.rtbridge  # type: ignore[attr-defined]


def ended_call(client: TestClient, key: str = KEY_OPEN, publisher: str = "pub-1") -> str:
    """A ping's reservation, claimed, answered and ended 2 s later."""
    answer = client.post("/rtbs.json", data={"key": key})
    assert answer.status_code == 200, answer.text
    uuid = str(answer.json().get("rtb", answer.json())["uuid"])
    state = state_of(client)
    now = state.reservations.clock()
    claimed = calls.claim(state.engine, uuid=uuid, publisher_id=publisher, now=now, agent="t",
                          source="198.51.100.7:5060/UDP")  # fmt: skip
    assert isinstance(claimed, calls.Claimed), claimed
    calls.answered(state.engine, uuid=uuid, at=now)
    calls.ended(state.engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=2),
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=2.0)  # fmt: skip
    return uuid


def recorded_call(
    client: TestClient, outcome: str = "completed", *, write: bool = True, seconds: float = 1.0,
    key: str = KEY_OPEN, publisher: str = "pub-1",
) -> Recorded:  # fmt: skip
    """An ended call whose recording ended as ``outcome`` ("completed": its file written
    unless not ``write``; "failed", "recording", "purged": the record only)."""
    state = state_of(client)
    uuid = ended_call(client, key, publisher)
    samples = os.urandom(int(RATE * seconds) * 4)  # stereo PCM16
    data = wav_header(RATE, 2, len(samples)) + samples
    relative = stereo_path(uuid, state.reservations.clock())
    path = state.recordings / relative
    if outcome == "completed":
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        written = RecordingOutcome("completed", path=relative, size=len(data), seconds=seconds,
                                   sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    elif outcome == "failed":
        written = RecordingOutcome.failed("No space left on device", relative)
    else:
        written = RecordingOutcome(outcome, path=relative if outcome == "recording" else None)  # type: ignore[arg-type]
    save_outcome(state.engine, uuid, written)
    return Recorded(uuid, data, path)
