"""Recordings' retention: completed recordings of calls that ended before the cutoff lose
their file, a batch per transaction, their rows saying purged (seconds and SHA-256 kept),
each purge audited; newer, failed and already purged ones are left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from rtbridge.admin import recording_purge
from rtbridge.admin.recording_purge import purge
from rtbridge.storage.recordings import recording_of
from tests.conftest import Clock
from tests.support.recordings import recorded_call, state_of

DAY = 86400.0


def test_old_recordings_are_purged_new_ones_kept(admin: TestClient, clock: Clock) -> None:
    state = state_of(admin)
    old = recorded_call(admin)
    failed = recorded_call(admin, "failed")
    clock.advance(30 * DAY)
    new = recorded_call(admin)
    kept = recording_of(state.engine, old.uuid)
    assert kept is not None and old.path.exists()
    # 91 days after the old call: past its 90, not the new one's
    clock.advance(61 * DAY)
    assert purge(state.engine, state.recordings, 90, now=clock()) == 1
    assert not old.path.exists() and new.path.exists()
    gone = recording_of(state.engine, old.uuid)
    assert gone is not None
    assert (gone.status, gone.path, gone.size, gone.error) == ("purged", None, None, None)
    assert (gone.seconds, gone.sha256) == (kept.seconds, kept.sha256)  # what it was, kept
    assert recording_of(state.engine, failed.uuid).status == "failed"  # type: ignore[union-attr]
    assert recording_of(state.engine, new.uuid).status == "completed"  # type: ignore[union-attr]
    assert purge(state.engine, state.recordings, 90, now=clock()) == 0  # nothing more due
    entries = admin.get("/admin/audit", params={"resource": f"call/{old.uuid}"}).json()["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [("retention", "purge-recording")]
    assert entries[0]["old"]["path"] == kept.path and entries[0]["new"]["retention_days"] == 90
    answer = admin.get(f"/admin/calls/{old.uuid}/recording")
    assert answer.status_code == 404 and "purged" in answer.json()["error"]
    story = admin.get(f"/admin/rtbs/{old.uuid}").json()["recording"]
    assert story["status"] == "purged" and story["purged_at"] is not None


def test_purged_in_batches(
    admin: TestClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording_purge, "BATCH", 2)
    state = state_of(admin)
    calls = [recorded_call(admin) for _ in range(5)]
    later = clock() + timedelta(days=91)
    assert purge(state.engine, state.recordings, 90, now=later, batches=2) == 4
    assert sum(c.path.exists() for c in calls) == 1
    assert purge(state.engine, state.recordings, 90, now=later, batches=2) == 1
    assert not any(c.path.exists() for c in calls)


def test_a_missing_file_is_purged_all_the_same(admin: TestClient, clock: Clock) -> None:
    state = state_of(admin)
    lost = recorded_call(admin, write=False)
    later = clock() + timedelta(days=2)
    # no directory at all: another host's, not mounted here; nothing is marked gone
    assert purge(state.engine, state.recordings, 1, now=later) == 0
    state.recordings.mkdir()
    assert purge(state.engine, state.recordings, 1, now=later) == 1
    assert recording_of(state.engine, lost.uuid).status == "purged"  # type: ignore[union-attr]
