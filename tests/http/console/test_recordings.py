"""The call page's recording: a completed one's player (its source the console's own route,
behind the session), length and SHA-256; a failed one's error; a purged one's date."""

from __future__ import annotations

from datetime import timedelta

from rtbridge.admin.recording_purge import purge
from tests.conftest import Clock
from tests.http.console.conftest import Console
from tests.support.recordings import recorded_call, state_of


def test_a_completed_recording_plays(console: Console) -> None:
    call = recorded_call(console.client, seconds=2.0)
    page = console.client.get(f"/console/calls/{call.uuid}").text
    source = f"/console/calls/{call.uuid}/recording"
    assert f'<audio controls preload="none" src="{source}">' in page
    assert call.path.exists() and "SHA-256 <code>" in page
    got = console.client.get(source, headers={"Range": "bytes=0-3"})
    assert got.status_code == 206 and got.content == b"RIFF"
    assert console.client.get(source).content == call.data


def test_the_player_needs_a_session(console: Console) -> None:
    call = recorded_call(console.client)
    console.client.cookies.clear()
    got = console.client.get(f"/console/calls/{call.uuid}/recording", follow_redirects=False)
    assert got.status_code in (302, 303, 401) and got.content != call.data


def test_failed_and_purged(console: Console, clock: Clock) -> None:
    failed = recorded_call(console.client, "failed")
    page = console.client.get(f"/console/calls/{failed.uuid}").text
    assert "No space left on device" in page and "<audio" not in page
    done = recorded_call(console.client)
    state = state_of(console.client)
    assert purge(state.engine, state.recordings, 1, now=clock() + timedelta(days=2)) == 1
    page = console.client.get(f"/console/calls/{done.uuid}").text
    assert "purged</span> on" in page and "<audio" not in page
    plain = console.client.get(f"/console/calls/{failed.uuid}/recording")
    assert plain.status_code == 404
