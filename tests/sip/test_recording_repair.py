"""Recording through the database router: a campaign's ``record`` and a buyer's override
reach the plan, the outcome reaches the call record in the event's transaction, and the
repair at the agent's start joins what a crash left (a part made by hand, its header never
finished) for a closed call only."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.recording_repair import repair_leftovers
from rtbridge.sip.recordings import part_paths, wav_header
from rtbridge.sip.router import BridgeTo, CallEvent
from rtbridge.storage.database import open_database
from rtbridge.storage.recordings import recording_of
from tests.conftest import Clock, write_config
from tests.sip.test_reservation_router import CONFIG, World
from tests.support.tone import wav_channels

RECORDED = CONFIG.replace('id = "c1"\n', 'id = "c1"\nrecord = true\n').replace(
    'id = "b2"\n', 'id = "b2"\nrecord = true\n'
)


def _site(sqlite_url: str, tmp_path: Path, clock: Clock, config: str) -> Iterator[World]:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, config))
    yield World(engine, clock)
    engine.dispose()


@pytest.fixture
def site(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[World]:
    """test_reservation_router's world: campaign c1 with buyer b1, recording nothing."""
    yield from _site(sqlite_url, tmp_path, clock, CONFIG)


@pytest.fixture
def recording_site(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[World]:
    """The same, campaign c1 recording."""
    yield from _site(sqlite_url, tmp_path, clock, RECORDED)


_CALLERS = itertools.count(2025550110)


def _plan(world: World) -> BridgeTo:
    """A claimed reservation of campaign c1, each from a caller of its own."""
    plan = world.invite(world.ping(caller=f"+1{next(_CALLERS)}"))
    assert isinstance(plan, BridgeTo)
    return plan


def test_a_campaigns_record_reaches_the_plan(site: World, tmp_path: Path) -> None:
    world = site
    assert _plan(world).record is False  # the default
    apply_file(world.engine, write_config(tmp_path, RECORDED))
    assert _plan(world).record is True  # c1's own
    overridden = RECORDED.replace('id = "b1"\n', 'id = "b1"\nrecord = false\n')
    apply_file(world.engine, write_config(tmp_path, overridden))
    assert _plan(world).record is False  # b1's over c1's


def test_the_outcome_is_written_by_the_recorded_event_after_the_end(
    recording_site: World,
) -> None:
    """The agent's order: the answer marks it recording; the end leaves it so (the join is
    under way); "recorded" brings the outcome and the history row of its webhook."""
    world = recording_site
    plan = _plan(world)
    uuid = plan.reservation_uuid
    start = world.clock()
    path = f"{start:%Y/%m}/{uuid}.wav"
    world.router.on_event(_event(world, plan, "answered", answer_at=start,
                                 recording=RecordingOutcome("recording", path=path)))  # fmt: skip
    end = start + timedelta(seconds=75)
    ended = _event(world, plan, "ended", answer_at=start, end_at=end, publisher_code=200,
                   buyer_code=200, hangup_by="buyer", duration=75.0)  # fmt: skip
    world.router.on_events([ended])
    assert recording_of(world.engine, uuid) == RecordingOutcome("recording", path=path)
    done = RecordingOutcome("completed", path=path, size=1644, seconds=0.2, sha256="ab" * 32)
    world.router.on_events([replace(ended, kind="recorded", recording=done)])
    assert recording_of(world.engine, uuid) == done
    with world.engine.connect() as conn:
        history = [row[0] for row in conn.exec_driver_sql(
            "SELECT status FROM reservationevent WHERE reservation_uuid = ? ORDER BY id",
            (uuid,))]  # fmt: skip
    assert history[-1] == "recorded" and history.count("recorded") == 1, history


def test_the_outcome_is_written_with_the_end_of_call(recording_site: World) -> None:
    world = recording_site
    plan = _plan(world)
    start = world.clock()
    path = f"{start:%Y/%m}/{plan.reservation_uuid}.wav"
    world.router.on_event(_event(world, plan, "answered", answer_at=start,
                                 recording=RecordingOutcome("recording", path=path)))  # fmt: skip
    assert recording_of(world.engine, plan.reservation_uuid) == RecordingOutcome(
        "recording", path=path)  # fmt: skip
    done = RecordingOutcome("completed", path=path, size=1644, seconds=0.2, sha256="ab" * 32)
    world.router.on_event(_event(world, plan, "ended", answer_at=start,
                                 end_at=start + timedelta(seconds=75), publisher_code=200,
                                 buyer_code=200, hangup_by="buyer", duration=75.0,
                                 recording=done))  # fmt: skip
    assert recording_of(world.engine, plan.reservation_uuid) == done
    assert recording_of(world.engine, "00000000-0000-4000-8000-000000000000") is None


def _event(world: World, plan: BridgeTo, kind: str, **kw: object) -> CallEvent:
    return CallEvent(reservation_uuid=plan.reservation_uuid, kind=kind,  # type: ignore[arg-type]
                     call_id="c-1", invite_at=world.clock(), **kw)  # type: ignore[arg-type]  # fmt: skip


def _crashed_parts(directory: Path, uuid: str) -> None:
    """What a killed agent leaves: both parts, their headers' sizes still 0."""
    directory.mkdir(exist_ok=True)
    for part, value in zip(part_paths(directory, uuid), (100, -100), strict=True):
        head = bytearray(wav_header(8000, 1, 0))
        head[4:8] = bytes(4)
        part.write_bytes(bytes(head) + array("h", [value] * 4000).tobytes())


def test_the_repair_joins_a_closed_calls_parts_and_leaves_open_ones(
    recording_site: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, directory = recording_site, tmp_path / "recordings"
    closed, still_up = _plan(world), _plan(world)
    start = world.clock()
    path = f"{start:%Y/%m}/{closed.reservation_uuid}.wav"
    for plan in (closed, still_up):
        world.router.on_event(_event(world, plan, "answered", answer_at=start,
                                     recording=RecordingOutcome("recording", path=path)))  # fmt: skip
        _crashed_parts(directory, plan.reservation_uuid)
    # the restart's recovery closed the first call (no recording outcome: the agent died)
    world.router.on_event(_event(world, closed, "ended", answer_at=start,
                                 end_at=start + timedelta(seconds=3), publisher_code=200,
                                 buyer_code=200, hangup_by="fault", duration=3.0))  # fmt: skip
    caplog.set_level("INFO", "rtbridge.sip.recordings")
    assert repair_leftovers(directory, world.engine) == 1
    outcome = recording_of(world.engine, closed.reservation_uuid)
    assert outcome is not None and (outcome.status, outcome.path, outcome.seconds) == (
        "completed", path, 0.5)  # fmt: skip
    rate, left, right = wav_channels(directory / path)
    assert (rate, set(left), set(right)) == (8000, {100}, {-100})
    assert "recording repaired after a crash" in caplog.messages
    assert not any(p.exists() for p in part_paths(directory, closed.reservation_uuid))
    # the open call's parts stay for whoever carries it
    assert all(p.exists() for p in part_paths(directory, still_up.reservation_uuid))
    assert recording_of(world.engine, still_up.reservation_uuid) == RecordingOutcome(
        "recording", path=path)  # fmt: skip


def test_the_repair_drops_the_parts_of_a_call_whose_outcome_was_written(
    recording_site: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash after a call's "recorded" write, before its parts went: they just go (the
    file and its record stand), with no "left alone" line at every start."""
    world, directory = recording_site, tmp_path / "recordings"
    plan = _plan(world)
    start = world.clock()
    path = f"{start:%Y/%m}/{plan.reservation_uuid}.wav"
    done = RecordingOutcome("completed", path=path, size=1644, seconds=0.2, sha256="ab" * 32)
    world.router.on_events([
        _event(world, plan, "answered", answer_at=start,
               recording=RecordingOutcome("recording", path=path)),
        _event(world, plan, "ended", answer_at=start, end_at=start + timedelta(seconds=3),
               publisher_code=200, buyer_code=200, hangup_by="buyer", duration=3.0),
        _event(world, plan, "recorded", answer_at=start, recording=done),
    ])  # fmt: skip
    _crashed_parts(directory, plan.reservation_uuid)
    caplog.set_level("INFO", "rtbridge.sip.recordings")
    assert repair_leftovers(directory, world.engine) == 0
    assert not any(p.exists() for p in part_paths(directory, plan.reservation_uuid))
    assert recording_of(world.engine, plan.reservation_uuid) == done
    assert not [m for m in caplog.messages if "left alone" in m]
