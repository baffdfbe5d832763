"""Every route under /admin refuses a missing, malformed, unknown or revoked token with 401
and no data; the routes are enumerated from the app so a new one cannot escape."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlmodel import Session
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from rtbridge.admin import tokens
from rtbridge.admin.changes import write_session
from rtbridge.http.admin.openapi import openapi_document
from rtbridge.storage.database import open_database
from tests.conftest import ClientFactory
from tests.support.admin import make_token


def admin_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) for every admin route, path parameters filled in."""
    mounts = [r for r in client.app.routes if isinstance(r, Mount) and r.path == "/admin"]  # type: ignore[attr-defined]
    assert len(mounts) == 1
    out = []
    for route in mounts[0].routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{entry\}", "1", route.path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        out += [(m, "/admin" + path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


@pytest.fixture
def app_client(make_client: ClientFactory) -> TestClient:
    # Hundreds of refusals from one source: the lockout would answer 429 after 20
    # (tests/http/test_lockout.py); here every one must be the 401.
    return make_client(settings={"auth_failures": 0})


def test_there_are_many_routes(app_client: TestClient) -> None:
    assert len(admin_routes(app_client)) >= 35


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer nope",
        "Basic b3BzOm9wcw==",
        "bearer rtba_" + "x" * 43,
        "Bearer " + "y" * 300,
    ],
)
def test_every_route_refuses_without_a_valid_token(
    app_client: TestClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in admin_routes(app_client):
        r = app_client.request(method, path, headers=headers, json={"id": "zz", "password": "x"})
        assert r.status_code == 401, (method, path, r.text)
        assert r.json() == {
            "error": "missing, unknown or revoked admin token (send Authorization: Bearer <token>)"
        }
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_unknown_admin_paths_are_401_too(app_client: TestClient) -> None:
    assert app_client.get("/admin/nothing-here").status_code == 401
    assert app_client.delete("/admin/publishers/pub-1/secret").status_code == 401


def test_revoked_token_is_refused_everywhere(app_client: TestClient, sqlite_url: str) -> None:
    token = make_token(sqlite_url, "temp")
    auth = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/admin/publishers", headers=auth).status_code == 200
    engine = open_database(sqlite_url)
    with write_session(engine) as session:
        tokens.revoke(session, actor="test", name="temp")
    engine.dispose()
    for method, path in admin_routes(app_client):
        r = app_client.request(method, path, headers=auth)
        assert r.status_code == 401, (method, path)
        assert set(r.json()) == {"error"}


def test_token_is_stored_hashed(sqlite_url: str, app_client: TestClient) -> None:
    """As its digest under the site key: not the token, nor its plain SHA-256, which a copy
    of the database would let anyone test guesses against."""
    token = make_token(sqlite_url, "hashed")
    from pathlib import Path

    db = Path(sqlite_url.removeprefix("sqlite:///"))
    blob = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert token.encode() not in blob
    assert hashlib.sha256(token.encode()).hexdigest().encode() not in blob
    engine = open_database(sqlite_url)
    with Session(engine) as session:
        assert tokens.hash_token(session, token).encode() in blob
    engine.dispose()


def test_a_valid_token_reaches_every_route(admin: TestClient) -> None:
    for method, path in admin_routes(admin):
        r = admin.request(method, path, json={})
        assert r.status_code != 401, (method, path, r.text)
        assert r.status_code < 500, (method, path, r.text)


def test_openapi_lists_exactly_the_served_routes(admin: TestClient) -> None:
    doc = admin.get("/admin/openapi.json").json()
    assert doc == openapi_document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    mounts = [r for r in admin.app.routes if isinstance(r, Mount) and r.path == "/admin"]  # type: ignore[attr-defined]
    served = {
        (m, "/admin" + route.path.replace(":int", ""))
        for route in mounts[0].routes
        for m in (route.methods or ())  # type: ignore[attr-defined]
        if m != "HEAD"
    }
    assert documented == served
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["security"] == [{"bearer": []}] and "401" in op["responses"]
