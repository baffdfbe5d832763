"""Recordings' retention: completed recordings of calls that ended before the cutoff lose
their file, a batch per transaction, their rows saying purged (seconds and SHA-256 kept),
each purge audited; newer, failed and already purged ones are left alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtbridge.admin import recording_purge
from rtbridge.admin.apply import apply_file
from rtbridge.admin.recording_purge import purge, retention_days
from rtbridge.http.app import _purge_once
from rtbridge.storage.recordings import recording_of
from tests.conftest import Clock, write_config
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


def test_the_files_retention_applies_unless_the_flag_says(
    admin: TestClient, clock: Clock, tmp_path: Path
) -> None:
    """The period is --recording-retention-days when given, else the configuration file's
    [recordings] retention_days (read by each run of the purge: no restart), else 90. The
    file is applied before any call: apply's transaction starts deferred, and a running
    service's writes (the webhook sender's) would make it fail with "database is locked"."""
    state = state_of(admin)
    assert state.settings.recording_retention_days is None  # no flag
    assert retention_days(state.engine, None) == 90
    assert retention_days(state.engine, 5) == 5
    apply_file(state.engine, write_config(tmp_path, "[recordings]\nretention_days = 30\n"))
    assert retention_days(state.engine, None) == 30 and retention_days(state.engine, 60) == 60
    old = recorded_call(admin)
    clock.advance(29 * DAY)
    assert _purge_once(state, clock()) == 0  # 29 days: not past the file's 30
    clock.advance(2 * DAY)
    assert _purge_once(state, clock()) == 1  # 31 days: past them
    assert not old.path.exists()
    entries = admin.get("/admin/audit", params={"resource": f"call/{old.uuid}"}).json()["entries"]
    assert entries[0]["new"]["retention_days"] == 30
