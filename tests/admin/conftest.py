"""Fixtures for the admin API: the demo configuration, a token, a client that sends it."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from rtbridge.admin import tokens
from rtbridge.admin.changes import write_session
from rtbridge.storage.database import open_database
from tests.conftest import DEMO, ClientFactory
from tests.support.terminal import Terminal


def make_token(url: str, name: str = "ops") -> str:
    engine = open_database(url)
    try:
        with write_session(engine) as session:
            return tokens.create(session, actor="test", name=name)
    finally:
        engine.dispose()


@pytest.fixture
def admin(make_client: ClientFactory, sqlite_url: str) -> TestClient:
    """The app over the demo configuration, sending a valid admin token."""
    client = make_client()
    client.headers["Authorization"] = f"Bearer {make_token(sqlite_url)}"
    return client


@pytest.fixture
def rtb(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Terminal:
    """The ``rtbridge`` command on the demo configuration (as network admins run it)."""
    terminal = Terminal(sqlite_url, capsys, monkeypatch)
    status, _, err = terminal("apply", str(DEMO))
    assert status == 0, err
    return terminal
