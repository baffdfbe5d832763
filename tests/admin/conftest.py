"""Fixtures for the admin API: the demo configuration, a token, a client that sends it."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from rtbridge.admin import tokens
from rtbridge.admin.changes import write_session
from rtbridge.storage.engine import open_database
from tests.conftest import ClientFactory


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
