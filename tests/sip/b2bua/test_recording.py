"""Recording through the agent (SPEC §4.8, issue 24): real SIP, real RTP, real files.

The publisher sends 440 Hz and the buyer 1 kHz; the stereo file must hold the publisher on
the left and the buyer on the right (Goertzel, ``tests/support/tone.py``), last as long as
the talk time (within 0.5 s), and its record must say its size and SHA-256. A directory the
agent cannot write to fails the recording, never the call."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.recordings import wav_header
from rtbridge.sip.router import BridgeTo, CallEvent, IncomingInvite
from tests.sip.b2bua.support import UUID, AgentFactory, ScriptedRouter, bridge_to
from tests.sip.rawsip import SipPeer, wait_until
from tests.support.tone import HEARD, RATE, WINDOW, powers, share_with, wav_channels

pytestmark = pytest.mark.sip

PUBLISHER_TONE, BUYER_TONE = 440, 1000
TALK = 1.5


NOTICE_TONE, NOTICE_SECONDS = 2000, 1.0


def recording(target: str, announcement: str = "") -> Callable[[IncomingInvite], BridgeTo]:
    """``bridge_to``'s plan, recorded (after ``announcement``, when one is named)."""
    plan = bridge_to(target)
    return lambda invite: replace(plan(invite), record=True, announcement=announcement)


def notice_file(path: Path) -> Path:
    """A recording notice that is a tone, so an ear can tell it from the parties' tones."""
    n = int(RATE * NOTICE_SECONDS)
    samples = array("h", (int(8000 * math.sin(2 * math.pi * NOTICE_TONE * i / RATE))
                          for i in range(n)))  # fmt: skip
    path.write_bytes(wav_header(RATE, 1, 2 * n) + samples.tobytes())
    return path


def first_heard(samples: Sequence[int], freq: float) -> float | None:
    """Seconds into ``samples`` of the first window holding a ``freq`` Hz tone."""
    found = powers(samples, freq)
    return next((i * WINDOW / RATE for i, p in enumerate(found) if p > HEARD), None)


@pytest.fixture
def peers() -> Iterator[tuple[SipPeer, SipPeer]]:
    publisher = SipPeer("127.0.0.1", answer=None, tone=PUBLISHER_TONE)
    buyer = SipPeer("127.0.0.1", tone=BUYER_TONE)
    yield publisher, buyer
    publisher.close()
    buyer.close()


def _talk(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], directory: Path,
    announcement: str = "",
) -> tuple[Agent, ScriptedRouter, CallEvent]:  # fmt: skip
    """Bridge a recorded call, let both tones cross for a while, and hang up (publisher);
    the call's "recorded" event, which follows its "ended"."""
    publisher, buyer = peers
    router = ScriptedRouter(recording(f"sip:buyer@127.0.0.1:{buyer.port}", announcement))
    agent, router = make_agent(router, recordings_directory=str(directory))
    dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID)
    assert final.status == 200, final.first_line
    assert wait_until(lambda: publisher.ear.seconds_of(BUYER_TONE) >= TALK, 20), "no buyer audio"
    assert wait_until(lambda: buyer.ear.seconds_of(PUBLISHER_TONE) >= 1.5, 10), "no caller audio"
    bye = publisher.request(dialog, "BYE")
    assert bye is not None and bye.status == 200
    assert router.ended().recording is None, "the call's end does not wait for the join"
    recorded = router.recorded()
    kinds = [e.kind for e in router.events]
    assert kinds.index("recorded") > kinds.index("ended"), kinds
    return agent, router, recorded


def test_the_publisher_is_left_and_the_buyer_right(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    directory = tmp_path / "recordings"
    agent, router, recorded = _talk(make_agent, peers, directory)
    answered = next(e for e in router.events if e.kind == "answered")
    assert answered.recording is not None and answered.recording.status == "recording"
    outcome = recorded.recording
    assert outcome is not None and outcome.status == "completed", outcome
    assert outcome.path is not None and outcome.path.endswith(f"/{UUID}.wav")
    path = directory / outcome.path
    rate, left, right = wav_channels(path)
    assert rate == 8000
    assert share_with(left, PUBLISHER_TONE) > 0.6 and share_with(left, BUYER_TONE) < 0.1
    assert share_with(right, BUYER_TONE) > 0.6 and share_with(right, PUBLISHER_TONE) < 0.1
    assert outcome.seconds is not None and abs(outcome.seconds - recorded.duration) <= 0.5, (
        outcome.seconds, recorded.duration)  # fmt: skip
    data = path.read_bytes()
    assert (outcome.size, outcome.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert wait_until(lambda: sorted(p.name for p in directory.iterdir()) == [path.parts[-3]],
                      5), "the parts go once the outcome is written"  # fmt: skip
    assert directory.stat().st_mode & 0o777 == 0o700
    status = agent.status()
    assert (status.recordings, status.recording_bytes, status.recording_failures) == (
        0, len(data), 0)  # fmt: skip
    assert status.describe()["recordings"]["writable"] is True


def test_an_unwritable_directory_fails_the_recording_not_the_call(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    """Root writes through permission bits, so the directory sits under a regular file:
    nothing can be created there, as on a read-only or full disk."""
    (tmp_path / "not-a-directory").write_text("")
    directory = tmp_path / "not-a-directory" / "recordings"
    agent, _, recorded = _talk(make_agent, peers, directory)  # both ways heard: bridged
    assert (recorded.publisher_code, recorded.buyer_code) == (200, 200)
    outcome = recorded.recording
    assert outcome is not None and outcome.status == "failed", outcome
    assert outcome.error and "Not a directory" in outcome.error
    status = agent.status()
    assert (status.recordings, status.recording_failures, status.recordings_writable) == (
        0, 1, False)  # fmt: skip
    health = status.describe()["recordings"]
    assert health["writable"] is False and "Not a directory" in health["last_error"]


def test_a_plan_without_record_writes_nothing(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    publisher, buyer = peers
    directory = tmp_path / "recordings"
    agent, router = make_agent(ScriptedRouter(bridge_to(f"sip:buyer@127.0.0.1:{buyer.port}")),
                               recordings_directory=str(directory))  # fmt: skip
    dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID)
    assert final.status == 200
    publisher.request(dialog, "BYE")
    assert router.ended().recording is None
    assert "recorded" not in [e.kind for e in router.events]
    assert not directory.exists()


def test_the_notice_is_heard_by_both_before_the_other_party(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    """The notice plays to both parties from the answer; their audio is joined after it,
    and the recording starts with it on both channels."""
    publisher, buyer = peers
    notice = notice_file(tmp_path / "notice.wav")
    _, _, recorded = _talk(make_agent, peers, tmp_path / "recordings", str(notice))
    for ear, other in ((publisher.ear, BUYER_TONE), (buyer.ear, PUBLISHER_TONE)):
        heard_notice, heard_other = first_heard(ear.samples, NOTICE_TONE), first_heard(
            ear.samples, other)  # fmt: skip
        assert heard_notice is not None and heard_other is not None, (heard_notice, heard_other)
        assert heard_other - heard_notice >= NOTICE_SECONDS - 0.2, (heard_notice, heard_other)
        assert NOTICE_SECONDS - 0.3 <= ear.seconds_of(NOTICE_TONE) <= NOTICE_SECONDS + 0.3
    outcome = recorded.recording
    assert outcome is not None and outcome.status == "completed" and outcome.path, outcome
    _, left, right = wav_channels(tmp_path / "recordings" / outcome.path)
    opening = int(RATE * NOTICE_SECONDS * 0.8)
    for channel, party in ((left, PUBLISHER_TONE), (right, BUYER_TONE)):
        assert share_with(channel[:opening], NOTICE_TONE) > 0.6
        assert share_with(channel[-RATE:], party) > 0.6


def test_a_notice_that_cannot_be_played_bridges_at_once_and_records_nothing(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    """A recording nobody was told about is not made: the call goes on, unrecorded."""
    publisher, _ = peers
    directory = tmp_path / "recordings"
    missing = tmp_path / "gone.wav"
    agent, router, recorded = _talk(make_agent, peers, directory, str(missing))
    heard = first_heard(publisher.ear.samples, BUYER_TONE)
    assert heard is not None and heard < 0.5, heard
    answered = next(e for e in router.events if e.kind == "answered")
    for outcome in (answered.recording, recorded.recording):
        assert outcome is not None and outcome.status == "failed", outcome
        assert outcome.error and "notice" in outcome.error and str(missing) in outcome.error
    assert not directory.exists() or not any(directory.rglob("*.wav"))
    assert agent.status().recording_failures == 1


def test_a_call_that_ends_during_the_notice_ends_cleanly(
    make_agent: AgentFactory, peers: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    """A caller who hangs up while the notice plays (as a prank dialer does, again and
    again): the call ends, its short recording is kept, the parties were never joined, and
    the agent takes the next call as ever."""
    publisher, buyer = peers
    notice = notice_file(tmp_path / "notice.wav")
    router = ScriptedRouter(recording(f"sip:buyer@127.0.0.1:{buyer.port}", str(notice)))
    agent, router = make_agent(router, recordings_directory=str(tmp_path / "recordings"))
    for _ in range(3):
        router.events.clear()
        mark = publisher.ear.mark()
        dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID)
        assert final.status == 200, final.first_line
        assert wait_until(lambda m=mark: publisher.ear.seconds_of(NOTICE_TONE, m) >= 0.2, 10)
        bye = publisher.request(dialog, "BYE")
        assert bye is not None and bye.status == 200
        recorded = router.recorded()
        assert recorded.recording is not None and recorded.recording.status == "completed"
        assert publisher.ear.seconds_of(BUYER_TONE, mark) == 0.0, "joined during the notice"
    assert wait_until(lambda: agent.active_bridges == 0, 5)


def test_early_media_that_joined_the_parties_is_cut_for_the_notice(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    """A buyer that sends audio from its 183: the publisher hears it before the answer (the
    agent bridges early media), then the notice alone, then the buyer again."""
    publisher = SipPeer("127.0.0.1", answer=None, tone=PUBLISHER_TONE)
    buyer = SipPeer("127.0.0.1", tone=BUYER_TONE, early_media=True, ring=1.0)
    try:
        notice = notice_file(tmp_path / "notice.wav")
        router = ScriptedRouter(recording(f"sip:buyer@127.0.0.1:{buyer.port}", str(notice)))
        agent, router = make_agent(router, recordings_directory=str(tmp_path / "recordings"))
        dialog, final = publisher.invite(("127.0.0.1", agent.port), UUID)
        assert final.status == 200, final.first_line
        ear = publisher.ear
        assert wait_until(lambda: ear.seconds_of(NOTICE_TONE) >= NOTICE_SECONDS - 0.3, 10)
        assert wait_until(lambda: ear.seconds_of(BUYER_TONE, ear.mark() - RATE // 2) > 0, 10)
        publisher.request(dialog, "BYE")
        router.recorded()
        windows = powers(ear.samples, BUYER_TONE)
        notice_at = first_heard(ear.samples, NOTICE_TONE)
        assert notice_at is not None
        start = int(notice_at * RATE / WINDOW)
        early = first_heard(ear.samples, BUYER_TONE)
        assert early is not None and early < start * WINDOW / RATE, "early media heard first"
        during = windows[start + 1 : start + int(NOTICE_SECONDS * RATE / WINDOW) - 2]
        assert during and max(during) < HEARD, "the buyer was cut while the notice played"
    finally:
        publisher.close()
        buyer.close()
