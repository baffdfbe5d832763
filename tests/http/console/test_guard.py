"""Sign-in and CSRF are enforced on every console route, enumerated from the router itself
(a page added later is covered without touching this file), plus the cookie's flags."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from rtbridge.admin import sessions
from rtbridge.http.app import create_app
from rtbridge.http.console.guard import PUBLIC, SAFE_METHODS, SESSION_COOKIE
from rtbridge.http.console.routes import routes
from rtbridge.settings import Settings
from tests.conftest import ClientFactory
from tests.http.console.conftest import Console, csrf_of
from tests.support.admin import make_token

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _endpoints() -> list[tuple[str, str]]:
    """Every (path, method) under the app's own ``/console`` mount."""
    app = create_app(Settings(sip_enabled=False))
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    assert mount.routes == routes
    found = []
    for route in mount.routes:
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((route.path, method))
    return found


ENDPOINTS = _endpoints()
PRIVATE = [(p, m) for p, m in ENDPOINTS if (p, m) not in PUBLIC]
UNSAFE = [(p, m) for p, m in PRIVATE if m not in SAFE_METHODS]


def _fill(console: Console, path: str) -> str:
    """Real values for the path parameters, so a request reaches the page behind the guard."""
    page = console.client.get("/console/publishers/pub-1").text
    entry = re.search(r"/ips/(\d+)/delete", page)
    key = re.search(r"/keys/([0-9a-f]{64})/pause", page)
    values = {"publisher": "pub-1", "username": "pub1", "entry": entry.group(1) if entry else "1",
              "key": key.group(1) if key else "0" * 64, "campaign": "auto", "buyer": "acme",
              "number": "+18339510260", "trunk": "carrier",
              "uuid": "01a2354e-0000-7000-8000-000000000000", "name": "ops", "webhook": "1",
              "list": "complaints", "value": "+1900*"}  # fmt: skip
    return "/console" + _PARAM.sub(lambda m: values[m.group(1)], path)


def test_the_router_has_the_pages_the_issue_asks_for() -> None:
    paths = {p for p, _ in ENDPOINTS}
    for wanted in ("/login", "/logout", "/publishers", "/publishers/{publisher}/ips",
                   "/publishers/{publisher}/ips/bulk", "/check", "/live", "/rtb", "/calls",
                   "/calls.csv", "/agent", "/audit", "/keys", "/campaigns", "/trunks",
                   "/buyers/{buyer}", "/export/kamailio-permissions", "/calls/{uuid}"):  # fmt: skip
        assert wanted in paths
    assert len(PRIVATE) >= 20 and len(UNSAFE) >= 10
    # the only doors without a session: the sign-in form, its answer, the style sheet
    assert {("/login", "GET"), ("/login", "POST"), ("/static/console.css", "GET")} == PUBLIC


def _audit_rows(console: Console) -> int:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    with state.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM auditentry")).scalar_one())


def test_every_route_needs_a_session(console: Console) -> None:
    """One app for all routes (a client per route would cost a migration each)."""
    client = console.client
    session = client.cookies.get(SESSION_COOKIE)
    before = _audit_rows(console)
    wrong = []
    for path, method in PRIVATE:
        url = _fill(console, path)
        expected = 303 if method in SAFE_METHODS else 401
        for cookie in (None, "forged-value"):  # a forged cookie is no better than none
            client.cookies.clear()
            if cookie:
                client.cookies.set(SESSION_COOKIE, cookie, path="/console")
            answer = client.request(method, url, data={"csrf": console.csrf},
                                    follow_redirects=False)  # fmt: skip
            location = answer.headers.get("location", "")
            if answer.status_code != expected or (
                expected == 303 and not location.startswith("/console/login?next=")
            ):
                wrong.append((method, url, cookie, answer.status_code, location))
    assert wrong == []
    client.cookies.set(SESSION_COOKIE, session or "", path="/console")
    assert _audit_rows(console) == before  # nothing was changed by any of them


def test_every_change_needs_the_csrf_token_and_the_same_origin(console: Console) -> None:
    client = console.client
    before = _audit_rows(console)
    wrong = []
    for path, method in UNSAFE:
        url = _fill(console, path)
        for data in ({}, {"csrf": "0" * 64}, {"csrf": ""}):
            answer = client.request(method, url, data=data, follow_redirects=False)
            if answer.status_code != 403 or "CSRF" not in answer.text:
                wrong.append((method, url, data, answer.status_code))
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):  # fmt: skip
            other = client.request(method, url, data={"csrf": console.csrf}, headers=headers,
                                   follow_redirects=False)  # fmt: skip
            if other.status_code != 403 or "another site" not in other.text:
                wrong.append((method, url, headers, other.status_code))
    assert wrong == []
    assert _audit_rows(console) == before  # nothing changed, and still signed in:
    assert client.get("/console/publishers/pub-1").status_code == 200


def test_an_unknown_item_is_a_console_page_not_the_apis_json(console: Console) -> None:
    for path, message in (("/console/publishers/nope", "no publisher &#39;nope&#39;"),
                          ("/console/buyers/nope/delete", "no buyer &#39;nope&#39;"),
                          ("/console/calls/0000", "no reservation")):  # fmt: skip
        answer = console.client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html"), (path, answer.text)
        assert message in answer.text and "signed in as" in answer.text, path
    gone = console.post("/console/buyers/nope/delete")
    assert gone.status_code == 404 and "<h1>Not possible</h1>" in gone.text


def test_unknown_paths_need_a_session_too(client: TestClient) -> None:
    answer = client.get("/console/no-such-page", follow_redirects=False)
    assert answer.status_code == 303


def test_sign_in_form_is_protected_and_failures_say_little(
    client: TestClient, sqlite_url: str
) -> None:
    token = make_token(sqlite_url)
    form = client.get("/console/login")
    login_csrf = csrf_of(form.text)
    forged = client.post("/console/login", data={"csrf": "x" * 32, "token": token},
                         follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403
    wrong = client.post("/console/login", data={"csrf": login_csrf, "token": "rtba_nope"},
                        follow_redirects=False)  # fmt: skip
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert "rtba_nope" not in wrong.text  # what was typed is not echoed
    form = client.get("/console/login?next=https://evil.example/")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": token,
                         "next": "https://evil.example/"}, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"


def test_session_cookie_flags_and_secure_behind_tls(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    client = make_client()
    client.base_url = "https://testserver"  # type: ignore[assignment]
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text),
                         "token": make_token(sqlite_url)}, follow_redirects=False)  # fmt: skip
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "secure" in flags
    assert "path=/console" in flags
    page = client.get("/console/publishers")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"


def test_sign_out_ends_the_session_on_the_server(console: Console) -> None:
    cookie = console.client.cookies.get(SESSION_COOKIE)
    assert console.post("/console/logout").status_code == 303
    console.client.cookies.set(SESSION_COOKIE, cookie or "", path="/console")  # replayed
    assert console.client.get("/console/publishers", follow_redirects=False).status_code == 303


def test_sessions_expire_idle_at_their_end_and_with_their_token(console: Console) -> None:
    state = console.client.app.state.rtbridge  # type: ignore[attr-defined]
    cookie = console.client.cookies.get(SESSION_COOKIE)
    operator = sessions.resolve(state.engine, cookie)
    assert operator is not None and operator.actor == "ops"
    from rtbridge.timestamps import utcnow

    now = utcnow()
    assert sessions.resolve(state.engine, cookie, now=now + sessions.IDLE) is None
    assert sessions.resolve(state.engine, cookie, now=now + sessions.LIFETIME) is None
    assert sessions.resolve(state.engine, cookie, now=now + sessions.IDLE / 2) is not None
    from rtbridge.admin import tokens
    from rtbridge.admin.changes import write_session

    with write_session(state.engine) as session:
        tokens.revoke(session, actor="test", name="ops")
    assert console.client.get("/console/publishers", follow_redirects=False).status_code == 303


def test_no_token_or_password_is_stored_in_clear(console: Console, sqlite_url: str) -> None:
    console.post("/console/publishers/pub-1/credentials", username="clear-test",
                 password="Visible-Pass-999")  # fmt: skip
    cookie = console.client.cookies.get(SESSION_COOKIE) or ""
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the WAL too
    for secret in (console.token, cookie, "Visible-Pass-999"):
        assert secret.encode() not in raw
