"""The dry-run check answers what the SIP agent's own code answers for the same input."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from rtbridge.sip.auth.authenticator import Accepted, Authenticator
from rtbridge.sip.reservation_router import load_access
from rtbridge.storage.catalog import load_catalog
from rtbridge.storage.models import AllowlistEntry

SOON_PAST = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


@pytest.fixture
def setup(admin: TestClient) -> TestClient:
    made = admin.post("/admin/publishers", json={"id": "pub-2", "ips": [
        {"cidr": "198.51.100.0/24", "allow_overlap": True},  # the carrier's 198.51.100.10 too
        {"cidr": "2001:db8:1::/48", "note": "v6"},
        {"cidr": "10.20.0.0/16", "expires_at": "2099-01-01T00:00:00Z"}],
        "credentials": [{"username": "two", "password": "Second-Pass-222"}]})  # fmt: skip
    assert made.status_code == 201, made.text
    # An entry that has lapsed since it was added (the API refuses a past expiry outright).
    state = admin.app.state.rtbridge  # type: ignore[attr-defined]
    with Session(state.engine) as session:
        session.add(AllowlistEntry(publisher_id="pub-2", cidr="192.0.2.0/24",
                                   expires_at=datetime.fromisoformat(SOON_PAST)))  # fmt: skip
        session.commit()
    nested = admin.post(
        "/admin/publishers/pub-1/ips", json={"cidr": "198.51.100.128/25", "allow_overlap": True}
    )  # longer prefix wins
    assert nested.status_code == 201, nested.text
    return admin


IPS = ["127.0.0.1", "::1", "198.51.100.7", "198.51.100.200", "2001:db8:1::5", "2001:db8:2::5",
       "192.0.2.10", "10.20.3.4", "203.0.113.1", "::ffff:198.51.100.7", "198.51.100.10"]  # fmt: skip
CREDS = [("pub1", "s3cret-Pass-123"), ("two", "Second-Pass-222"), ("two", "wrong-Pass-222"),
         ("nobody", "Second-Pass-222"), ("pub1", "")]  # fmt: skip


def test_ip_answers_agree_with_the_agent(setup: TestClient) -> None:
    state = setup.app.state.rtbridge  # type: ignore[attr-defined]
    access = load_access(state.engine, load_catalog(state.engine))
    for ip in IPS:
        answer = setup.get("/admin/check", params={"ip": ip}).json()
        rule = access.directory.match_ip(ip, time.time())
        if rule is None:
            assert answer["accepted"] is False and "allowlist" in answer["reason"], (ip, answer)
        else:
            assert {k: v for k, v in answer.items() if k != "warnings"} == {
                "accepted": True,
                "publisher": rule.publisher_id,
                "rule": rule.describe(),
            }, ip
    shadowed = setup.get("/admin/check?ip=198.51.100.200").json()
    assert shadowed["publisher"] == "pub-1"
    assert shadowed["warnings"] == [
        "also matches pub-2's 198.51.100.0/24 (shadowed by longest prefix)"
    ]
    assert setup.get("/admin/check?ip=198.51.100.7").json()["warnings"] == []
    assert setup.get("/admin/check?ip=198.51.100.7").json()["publisher"] == "pub-2"
    assert setup.get("/admin/check?ip=2001:db8:1::5").json()["publisher"] == "pub-2"
    assert setup.get("/admin/check?ip=192.0.2.10").json()["accepted"] is False  # expired
    trunk = setup.get("/admin/check?ip=198.51.100.10").json()
    assert trunk["accepted"] is True  # pub-2's /24 covers the carrier's address too (issue 17)
    assert trunk["warnings"] == [
        "also inside trunk carrier's 198.51.100.10/32: a call from here to a number that is not "
        "a reservation uuid is taken as the carrier's PSTN arrival"
    ]
    refused = setup.get("/admin/check?ip=203.0.113.1").json()
    assert refused["accepted"] is False and "401" in refused["reason"]


def test_credential_answers_agree_with_the_agent(setup: TestClient) -> None:
    state = setup.app.state.rtbridge  # type: ignore[attr-defined]
    catalog = load_catalog(state.engine)
    access = load_access(state.engine, catalog)
    authenticator = Authenticator(realm=catalog.sip_domain, secret=b"s" * 32)
    for username, password in CREDS:
        got = setup.post("/admin/check", json={"username": username, "password": password}).json()
        decision = authenticator.check_password(
            username=username, password=password, directory=access.directory
        )
        if isinstance(decision, Accepted):
            assert got == {
                "accepted": True,
                "publisher": decision.publisher_id,
                "rule": decision.rule,
            }
        else:
            assert got["accepted"] is False, (username, got)
    assert (
        "wrong password"
        in setup.post("/admin/check", data={"username": "two", "password": "x"}).json()["reason"]
    )
    # The agent answers an unknown user as a wrong password (no oracle); the admin is told.
    assert setup.get("/admin/check?username=nobody&password=x").json()["reason"] == (
        "unknown SIP username 'nobody': the agent answers 403 Forbidden, as for a wrong password"
    )
    assert (
        setup.get("/admin/check?username=two&password=Second-Pass-222").json()["publisher"]
        == "pub-2"
    )


def test_changes_are_seen_by_the_next_check(setup: TestClient) -> None:
    assert setup.get("/admin/check?ip=203.0.113.9").json()["accepted"] is False
    entry = setup.post("/admin/publishers/pub-2/ips", json={"cidr": "203.0.113.9"}).json()
    assert (
        setup.get("/admin/check?ip=203.0.113.9").json()["rule"]
        == f"ip 203.0.113.9/32 (rule {entry['id']})"
    )
    setup.delete(f"/admin/publishers/pub-2/ips/{entry['id']}")
    assert setup.get("/admin/check?ip=203.0.113.9").json()["accepted"] is False
    setup.delete("/admin/publishers/pub-2/credentials/two")
    assert (
        setup.post("/admin/check", json={"username": "two", "password": "Second-Pass-222"}).json()[
            "accepted"
        ]
        is False
    )


def test_bad_check_requests(setup: TestClient) -> None:
    assert setup.get("/admin/check").status_code == 422
    assert setup.get("/admin/check?ip=1.2.3.4&username=x").status_code == 422
    assert setup.get("/admin/check?ip=not-an-ip").json() == {
        "error": "ip: not an IP address: 'not-an-ip'"
    }
    assert (
        setup.get("/admin/check?username=two").json()["error"] == "password: required with username"
    )
    assert setup.get("/admin/check?ip=1.2.3.4&colour=red").status_code == 422
