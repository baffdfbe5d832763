"""Fixtures for the webhook tests: the demo configuration on a real database, the app with
the webhook sender off (the tests drive the outbox themselves or run a sender), a master key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.http.app import create_app
from rtbridge.settings import Settings
from rtbridge.storage.database import open_database
from tests.conftest import DEMO
from tests.support.admin import make_token

MASTER = "test-master-key-0123456789abcdefghijklmnop"
KEY = "f38240dd-7f65-4e17-a4d7-2e09ccafad0e"  # demo: publisher pub-1, campaign auto, buyer acme


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """``make_app(url, master=MASTER)``: the demo applied, the app running (no SIP, no
    webhook sender), an admin token in the client's headers."""
    clients: list[TestClient] = []

    def factory(url: str, master: str | None = MASTER) -> TestClient:
        engine = open_database(url)
        apply_file(engine, DEMO)
        engine.dispose()
        settings = Settings(db_url=url, sip_enabled=False, sweep_interval=3600, webhooks=False,
                            webhook_key=master)  # fmt: skip
        client = TestClient(create_app(settings))
        client.__enter__()
        client.headers["Authorization"] = f"Bearer {make_token(url)}"
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def ping(client: TestClient, **params: str) -> str:
    r = client.post("/rtbs.json", params={"key": KEY, **params})
    assert r.status_code == 200 and r.json()["status"] == "reserved", r.text
    return str(r.json()["uuid"])
