"""Guessing admin tokens, console sign-ins and postback keys is bounded per source address
(``http/lockout.py``): past the limit, 429 with ``Retry-After`` for everything of that kind
from the source, right secrets included; other sources are not affected.

The app runs behind uvicorn's own ProxyHeadersMiddleware (what ``rtbridge serve`` puts in
front of it), trusting the test client, so ``X-Forwarded-For`` picks each request's source;
the last test does the same through a live server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rtbridge.admin.apply import apply_file
from rtbridge.domain.errors import TooManyFailures
from rtbridge.http.app import create_app
from rtbridge.http.lockout import Lockout
from rtbridge.settings import Settings
from rtbridge.storage.database import open_database
from tests.conftest import DEMO, ClientFactory
from tests.http.console.conftest import csrf_of
from tests.support.admin import make_token
from tests.support.demo import KEY_INBOUND, KEY_OPEN
from tests.support.keys import key_id
from tests.support.server import serve

LIMIT = 3
GUESSER, OTHER = "203.0.113.66", "198.51.100.7"
WRONG = "Bearer rtba_" + "x" * 43
LOCKED_OUT = "too many failed authentications from this address; retry after 600 seconds"


@pytest.fixture
def db(sqlite_url: str) -> str:
    engine = open_database(sqlite_url)
    apply_file(engine, DEMO)
    engine.dispose()
    return sqlite_url


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    settings = Settings(db_url=db, sip_enabled=False, sweep_interval=3600, webhooks=False,
                        auth_failures=LIMIT, auth_cooldown=600)  # fmt: skip
    app = ProxyHeadersMiddleware(create_app(settings), trusted_hosts="*")
    with TestClient(app) as test_client:
        yield test_client


def _from(source: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": source, **headers}


def _locked_out(r: httpx2.Response) -> bool:
    return r.status_code == 429 and r.headers["retry-after"] == "600"


def test_wrong_admin_tokens_lock_the_source_out(client: TestClient, db: str) -> None:
    right = f"Bearer {make_token(db)}"
    for _ in range(LIMIT):
        r = client.get("/admin/publishers", headers=_from(GUESSER, Authorization=WRONG))
        assert r.status_code == 401, r.text
    r = client.get("/admin/publishers", headers=_from(GUESSER, Authorization=WRONG))
    assert _locked_out(r) and r.json() == {"error": LOCKED_OUT}
    # the right token from the guesser's address learns nothing either, on any path
    for path in ["/admin/publishers", "/admin/nothing-here", "/admin/openapi.json"]:
        assert _locked_out(client.get(path, headers=_from(GUESSER, Authorization=right)))
    # other addresses: as before
    assert client.get("/admin/publishers", headers=_from(OTHER, Authorization=right)).is_success
    r = client.get("/admin/publishers", headers=_from(OTHER, Authorization=WRONG))
    assert r.status_code == 401
    # the publisher API counts keys, not tokens: the guesser may still ping
    r = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER))
    assert r.status_code == 200, r.text


def test_console_sign_ins_count_with_the_admin_api(client: TestClient, db: str) -> None:
    token = make_token(db)

    def sign_in(source: str, value: str) -> httpx2.Response:
        form = client.get("/console/login", headers=_from(source))
        return client.post("/console/login", headers=_from(source), follow_redirects=False,
                           data={"csrf": csrf_of(form.text), "token": value})  # fmt: skip

    assert sign_in(GUESSER, "rtba_wrong").status_code == 401
    client.get("/admin/publishers", headers=_from(GUESSER, Authorization=WRONG))
    assert sign_in(GUESSER, "rtba_wrong").status_code == 401  # the 3rd failure
    refused = sign_in(GUESSER, token)
    assert _locked_out(refused)
    assert "Too many failed sign-ins from this address: try again in 600 seconds." in refused.text
    assert 'name="token"' in refused.text  # the form, to try again later
    r = client.get("/admin/publishers", headers=_from(GUESSER, Authorization=f"Bearer {token}"))
    assert _locked_out(r)
    assert sign_in(OTHER, token).status_code == 303


def test_wrong_postback_keys_lock_the_source_out(client: TestClient) -> None:
    for body in [{"key": "no-such-key"}, {"caller_number": "+12025550102"}, {"key": "nope"}]:
        r = client.post("/rtbs.json", data=body, headers=_from(GUESSER))
        assert r.status_code == 401, r.text  # unknown and missing keys count alike
    r = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER))
    assert _locked_out(r) and r.json() == {"error": LOCKED_OUT}
    made = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(OTHER))
    assert made.status_code == 200, made.text
    uuid = made.json()["uuid"]
    # looking up and confirming are refused to the guesser too, served to the others
    r = client.get(f"/rtbs/{uuid}.json", params={"key": KEY_OPEN}, headers=_from(GUESSER))
    assert _locked_out(r)
    r = client.put(f"/rtbs/{uuid}.json", data={"key": KEY_OPEN, "status": "confirmed"},
                   headers=_from(GUESSER))  # fmt: skip
    assert _locked_out(r)
    r = client.put(f"/rtbs/{uuid}.json", data={"key": KEY_OPEN, "status": "confirmed"},
                   headers=_from(OTHER))  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    # the admin API counts tokens, not keys
    assert client.get("/admin/publishers", headers=_from(GUESSER)).status_code == 401


def test_lookups_with_unknown_keys_count_too(client: TestClient) -> None:
    uuid = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(OTHER)).json()["uuid"]
    for _ in range(LIMIT):
        r = client.get(f"/rtbs/{uuid}.json", params={"key": "guess"}, headers=_from(GUESSER))
        assert r.status_code == 401
    assert _locked_out(client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER)))


def test_a_paused_key_is_not_a_guess(client: TestClient, db: str) -> None:
    """Its publisher keeps being told why (403), however often it pings."""
    admin = _from(OTHER, Authorization=f"Bearer {make_token(db)}")
    engine = open_database(db)
    inbound = key_id(engine, KEY_INBOUND)
    engine.dispose()
    paused = client.patch(f"/admin/keys/{inbound}", json={"paused": True}, headers=admin)
    assert paused.status_code == 200, paused.text
    for _ in range(LIMIT * 3):
        r = client.post("/rtbs.json", data={"key": KEY_INBOUND}, headers=_from(GUESSER))
        assert r.status_code == 403, r.text
    assert client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER)).is_success


def test_right_keys_do_not_reset_the_count(client: TestClient) -> None:
    """A publisher holding a right key must not be able to guess others for free."""
    for _ in range(LIMIT):
        assert client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER)).is_success
        r = client.post("/rtbs.json", data={"key": "guess"}, headers=_from(GUESSER))
        assert r.status_code == 401
    assert _locked_out(client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from(GUESSER)))


def test_an_ipv6_source_is_its_64(client: TestClient) -> None:
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
        assert (
            client.post("/rtbs.json", data={"key": "guess"}, headers=_from(host)).status_code == 401
        )
    same_64 = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from("2001:db8:1:2::99"))
    assert _locked_out(same_64)
    next_64 = client.post("/rtbs.json", data={"key": KEY_OPEN}, headers=_from("2001:db8:1:3::1"))
    assert next_64.status_code == 200


def test_no_limit_when_turned_off(make_client: ClientFactory) -> None:
    client = make_client(settings={"auth_failures": 0})
    for _ in range(50):
        assert client.post("/rtbs.json", data={"key": "guess"}).status_code == 401
    assert client.post("/rtbs.json", data={"key": KEY_OPEN}).status_code == 200


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lock_lifts_after_the_cooldown_and_old_failures_expire() -> None:
    clock = _Clock()
    lockout = Lockout(failures=3, window=60, cooldown=120, clock=clock)
    scope = {"type": "http", "client": ("192.0.2.1", 5000)}
    lockout.failed(scope)
    lockout.failed(scope)
    clock.now += 61  # those two left the window
    lockout.failed(scope)
    lockout.failed(scope)
    lockout.check(scope)  # 2 in the window: not yet
    lockout.failed(scope)
    with pytest.raises(TooManyFailures) as refused:
        lockout.check(scope)
    assert refused.value.retry_after == 120 and refused.value.status == 429
    clock.now += 119
    with pytest.raises(TooManyFailures):
        lockout.check(scope)
    clock.now += 2
    lockout.check(scope)
    lockout.check({"type": "http", "client": None})  # no client address (a Unix socket)


def test_memory_stays_bounded_whatever_the_number_of_sources() -> None:
    lockout = Lockout(failures=1, window=60, cooldown=60, max_sources=8)
    for i in range(1000):
        lockout.failed({"type": "http", "client": (f"10.0.{i // 256}.{i % 256}", 1)})
    assert len(lockout) <= 8


@pytest.mark.live
def test_behind_a_proxy_the_forwarded_client_is_the_source(db: str) -> None:
    """As documented: uvicorn trusts X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS)."""
    token = make_token(db)
    with serve(db, "--auth-failures", str(LIMIT), "--auth-cooldown", "600") as base:
        for _ in range(LIMIT):
            r = httpx2.get(f"{base}/admin/keys", headers=_from(GUESSER, Authorization=WRONG))
            assert r.status_code == 401
        right = f"Bearer {token}"
        assert _locked_out(
            httpx2.get(f"{base}/admin/keys", headers=_from(GUESSER, Authorization=right))
        )
        assert httpx2.get(
            f"{base}/admin/keys", headers=_from(OTHER, Authorization=right)
        ).is_success
        assert httpx2.get(f"{base}/admin/keys", headers={"Authorization": right}).is_success
