"""``GET /admin/calls/<uuid>/recording``: a real WAV under the app's recordings directory
served whole and by byte ranges, ETag its SHA-256; a 404 saying why for every call without
a file; a stored path that leads out of the directory opens nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.http.app import create_app
from rtbridge.settings import Settings
from rtbridge.sip.recordings import directory_of
from rtbridge.storage.database import open_database
from rtbridge.storage.recordings import save_outcome
from tests.conftest import ROOT, ClientFactory, write_config
from tests.support.admin import make_token
from tests.support.recordings import ended_call, recorded_call, state_of


def _url(uuid: str) -> str:
    return f"/admin/calls/{uuid}/recording"


def test_the_whole_file_with_its_sha256(admin: TestClient) -> None:
    call = recorded_call(admin)
    got = admin.get(_url(call.uuid))
    assert got.status_code == 200 and got.content == call.data
    assert got.headers["content-type"] == "audio/wav"
    assert got.headers["content-length"] == str(len(call.data))
    assert got.headers["etag"] == f'"{hashlib.sha256(call.data).hexdigest()}"'
    assert got.headers["accept-ranges"] == "bytes"
    head = admin.head(_url(call.uuid))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(call.data))
    assert admin.get(_url(call.uuid.upper())).content == call.data


def test_byte_ranges(admin: TestClient) -> None:
    call = recorded_call(admin)
    size = len(call.data)
    for header, start, end in (("bytes=0-43", 0, 43), (f"bytes={size - 100}-", size - 100,
                               size - 1), ("bytes=-10", size - 10, size - 1)):  # fmt: skip
        part = admin.get(_url(call.uuid), headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.content == call.data[start : end + 1]
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
    past = admin.get(_url(call.uuid), headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    # If-Range with the ETag: still the range; with another: the whole file
    etag = admin.get(_url(call.uuid)).headers["etag"]
    same = admin.get(_url(call.uuid), headers={"Range": "bytes=0-3", "If-Range": etag})
    assert same.status_code == 206 and same.content == b"RIFF"
    other = admin.get(_url(call.uuid), headers={"Range": "bytes=0-3", "If-Range": '"x"'})
    assert other.status_code == 200 and other.content == call.data


@pytest.mark.parametrize(
    ("outcome", "says"),
    [("failed", "its recording failed: No space left on device"),
     ("recording", "still in progress"), ("purged", "purged")],
)  # fmt: skip
def test_no_file_says_why(admin: TestClient, outcome: str, says: str) -> None:
    call = recorded_call(admin, outcome)
    got = admin.get(_url(call.uuid))
    assert got.status_code == 404 and says in got.json()["error"], got.text


def test_not_recorded_and_missing(admin: TestClient) -> None:
    plain = ended_call(admin)
    got = admin.get(_url(plain))
    assert got.status_code == 404 and "was not recorded" in got.json()["error"]
    gone = recorded_call(admin, write=False)
    got = admin.get(_url(gone.uuid))
    assert got.status_code == 404 and "file missing" in got.json()["error"]
    assert admin.get(_url("not-a-uuid")).status_code == 422


def test_a_path_out_of_the_directory_opens_nothing(admin: TestClient) -> None:
    state = state_of(admin)
    outside = state.recordings.parent / "secret.wav"
    outside.write_bytes(b"RIFF not yours")
    uuid = ended_call(admin)
    for path in ("../secret.wav", str(outside), "."):
        save_outcome(state.engine, uuid, RecordingOutcome("completed", path=path, size=14))
        got = admin.get(_url(uuid))
        assert got.status_code == 404 and "file missing" in got.json()["error"], path


def test_needs_the_admin_token(admin: TestClient) -> None:
    call = recorded_call(admin)
    got = admin.get(_url(call.uuid), headers={"Authorization": "Bearer nope"})
    assert got.status_code == 401 and got.content != call.data


@pytest.mark.postgres
def test_on_postgres(make_client: ClientFactory, postgres_url: str, tmp_path: Path) -> None:
    client = make_client(url=postgres_url, settings={"recordings_dir": str(tmp_path / "rec")})
    client.headers["Authorization"] = f"Bearer {make_token(postgres_url)}"
    call = recorded_call(client)
    assert client.get(_url(call.uuid)).content == call.data
    part = client.get(_url(call.uuid), headers={"Range": "bytes=-4"})
    assert part.status_code == 206 and part.content == call.data[-4:]


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_served_from_the_files_recordings_directory_unless_the_flag_says(
    make_client: ClientFactory, tmp_path: Path, request: pytest.FixtureRequest, db: str
) -> None:
    """The app asks once, at its start: the flag first, else [recordings] directory as
    apply stored it (relative: the file's directory's), else the default."""
    url = str(request.getfixturevalue(f"{db}_url"))
    section = (ROOT / "deploy" / "demo.toml").read_text() + '\n[recordings]\ndirectory = "kept"\n'
    client = make_client(section, url=url)
    client.headers["Authorization"] = f"Bearer {make_token(url)}"
    assert state_of(client).recordings == tmp_path / "kept"
    call = recorded_call(client)
    assert call.path.is_relative_to(tmp_path / "kept")
    assert client.get(_url(call.uuid)).content == call.data
    flagged = make_client(section, url=url, settings={"recordings_dir": str(tmp_path / "flag")})
    assert state_of(flagged).recordings == tmp_path / "flag"


def test_the_agent_in_the_process_writes_where_the_app_serves(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` builds its agent with the settings and database it serves from, so the
    agent's ``directory_of`` call in ``sip/b2bua/startup.py`` (with its engine) gets the
    app's answer: the stored [recordings] one here, over the agent file's option."""
    from rtbridge.sip.b2bua import startup

    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, '[recordings]\ndirectory = "stored"\n'))
    engine.dispose()
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text('[agent]\nrecordings_directory = "/srv/agent"\n')
    seen: list[Path] = []

    class Idle:  # the agent, not started: only where it would write matters here
        def status(self) -> None: ...
        def start(self) -> None: ...
        def drain(self) -> None: ...
        def stop(self) -> None: ...

    def build(settings: Settings, engine: Engine, catalog: object) -> Idle:
        seen.append(directory_of(settings, "/srv/agent", engine=engine))  # as build_agent asks
        return Idle()

    monkeypatch.setattr(startup, "build_agent", build)
    app = create_app(Settings(db_url=sqlite_url, sip_config=str(agent_file), sweep_interval=3600,
                              webhooks=False))  # fmt: skip
    with TestClient(app) as client:
        assert state_of(client).recordings == tmp_path / "stored"
    assert seen == [tmp_path / "stored"]
