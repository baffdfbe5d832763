"""``recording.completed``: a completed recording's history row becomes a delivery whose
body carries the file's facts and, for a buyer's webhook, a signed link that expires; the
link opens the file without any token, and nothing else does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from rtbridge.domain.recording_links import RecordingLinks
from rtbridge.storage.sql import transaction
from rtbridge.webhooks import outbox
from tests.conftest import ClientFactory, Clock
from tests.support.admin import make_token
from tests.support.recordings import recorded_call, state_of
from tests.webhooks.conftest import MASTER

EVENTS = ["recording_completed"]


@pytest.fixture
def admin(make_client: ClientFactory, sqlite_url: str) -> TestClient:
    """The demo app with a webhook master key (its sender off: the tests dispatch) and an
    admin token."""
    return _app(make_client, sqlite_url)


def _app(make_client: ClientFactory, sqlite_url: str, **settings: Any) -> TestClient:
    client = make_client(settings={"webhook_key": MASTER, "webhooks": False, **settings})
    client.headers["Authorization"] = f"Bearer {make_token(sqlite_url)}"
    return client


def test_links_sign_the_uuid_and_the_expiry() -> None:
    links = RecordingLinks(b"k" * 32, timedelta(days=7), "https://rtb.example.com")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    url = urlsplit(links.url("u-1", start))
    assert (url.scheme, url.netloc, url.path) == ("https", "rtb.example.com", "/recordings/u-1.wav")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    expires = int(query["expires"])
    assert expires == int((start + timedelta(days=7)).timestamp())
    assert links.valid("u-1", query["expires"], query["sig"], start)
    assert not links.valid("u-2", query["expires"], query["sig"], start)  # another file
    assert not links.valid("u-1", str(expires + 1), query["sig"], start)  # stretched
    assert not links.valid("u-1", query["expires"], query["sig"], start + timedelta(days=8))
    assert not links.valid("u-1", "-1", query["sig"], start)
    other = RecordingLinks(b"o" * 32)  # another site key
    assert not other.valid("u-1", query["expires"], query["sig"], start)


def _hook(admin: TestClient, **owner: str) -> None:
    made = admin.post("/admin/webhooks",
                      json={**owner, "url": "http://127.0.0.1:9/hook", "events": EVENTS})  # fmt: skip
    assert made.status_code == 201, made.text


def _bodies(admin: TestClient) -> dict[str, dict[str, Any]]:
    """The recording deliveries' bodies by the webhook owner's kind."""
    state = state_of(admin)
    outbox.dispatch(state.engine, now=state.reservations.clock(), links=state.links)
    with transaction(state.engine, write=False) as db:
        rows = db.rows(
            "SELECT w.owner_kind, d.body FROM webhookdelivery d JOIN webhook w "
            "ON w.id = d.webhook_id WHERE d.event_type = 'recording.completed'"
        )
    return {r["owner_kind"]: json.loads(r["body"]) for r in rows}


def test_the_buyer_gets_a_link_that_opens_the_file(admin: TestClient, clock: Clock) -> None:
    _hook(admin, buyer="acme")
    _hook(admin, publisher="pub-1")
    call = recorded_call(admin, seconds=0.5)
    bodies = _bodies(admin)
    assert set(bodies) == {"buyer", "publisher"}
    data = bodies["buyer"]["data"]
    assert bodies["buyer"]["type"] == "recording.completed"
    assert {k: data[k] for k in ("uuid", "seconds", "bytes", "buyer", "publisher")} == {
        "uuid": call.uuid, "seconds": 0.5, "bytes": len(call.data), "buyer": "acme",
        "publisher": "pub-1",
    }  # fmt: skip
    assert len(data["sha256"]) == 64 and data["url"].startswith(f"/recordings/{call.uuid}.wav?")
    assert bodies["publisher"]["data"]["url"] is None  # a publisher's access is its key's
    bare = admin
    del bare.headers["Authorization"]  # no token at all
    got = bare.get(data["url"])
    assert got.status_code == 200 and got.content == call.data
    part = bare.get(data["url"], headers={"Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"RIFF"
    url = urlsplit(data["url"])
    forged = bare.get(f"{url.path}?{url.query.replace('sig=', 'sig=0')}")
    assert forged.status_code == 403 and "signature" in forged.json()["error"]
    assert bare.get(url.path).status_code == 403
    # valid for 7 days from the recording's outcome (stamped by the wall clock), to the second
    expires = int(parse_qs(url.query)["expires"][0])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7)).timestamp()) < 60
    clock.now = datetime.fromtimestamp(expires - 1, UTC)
    assert bare.get(data["url"]).status_code == 200
    clock.now = datetime.fromtimestamp(expires, UTC)
    assert bare.get(data["url"]).status_code == 403


def test_failed_recordings_send_nothing(admin: TestClient) -> None:
    _hook(admin, buyer="acme")
    recorded_call(admin, "failed")
    assert _bodies(admin) == {}
    with transaction(state_of(admin).engine, write=False) as db:
        row = db.one("SELECT count(*) AS n FROM reservationevent WHERE status = 'recorded'")
    assert row is not None and row["n"] == 0


def test_the_public_url_prefixes_the_link(make_client: ClientFactory, sqlite_url: str) -> None:
    client = _app(make_client, sqlite_url, public_url="https://rtb.example.com/api")
    _hook(client, buyer="acme")
    call = recorded_call(client)
    url = _bodies(client)["buyer"]["data"]["url"]
    assert url.startswith(f"https://rtb.example.com/api/recordings/{call.uuid}.wav?expires=")
