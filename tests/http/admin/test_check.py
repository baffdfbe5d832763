"""The dry-run check: its answers for a known configuration, written out, and the SIP agent's
own code deciding the same for the same input."""

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


NOT_LISTED = ("{} is on no publisher's allowlist (or its entry expired): the agent answers 401 "
              "and asks for digest credentials")  # fmt: skip
SHADOWED = "also matches pub-2's 198.51.100.0/24 (shadowed by longest prefix)"
TRUNK = ("also inside trunk carrier's 198.51.100.10/32: a call from here to a number that is "
         "not a reservation uuid is taken as the carrier's PSTN arrival")  # fmt: skip
# What each address gets, written out: (publisher, rule, warnings), or None when refused.
# Rules 1-2 are the demo's pub-1 entries, 3-5 pub-2's from ``setup``, 6 its lapsed one, 7
# pub-1's nested /25.
IPS: dict[str, tuple[str, str, list[str]] | None] = {
    "127.0.0.1": ("pub-1", "ip 127.0.0.1/32 (rule 1)", []),
    "::1": ("pub-1", "ip ::1/128 (rule 2)", []),
    "198.51.100.7": ("pub-2", "ip 198.51.100.0/24 (rule 3)", []),
    "198.51.100.200": ("pub-1", "ip 198.51.100.128/25 (rule 7)", [SHADOWED]),  # longest prefix
    "2001:db8:1::5": ("pub-2", "ip 2001:db8:1::/48 (rule 4)", []),
    "2001:db8:2::5": None,
    "192.0.2.10": None,  # rule 6 has lapsed
    "10.20.3.4": ("pub-2", "ip 10.20.0.0/16 (rule 5)", []),  # expires in 2099
    "203.0.113.1": None,
    "::ffff:198.51.100.7": ("pub-2", "ip 198.51.100.0/24 (rule 3)", []),  # IPv4-mapped
    "198.51.100.10": ("pub-2", "ip 198.51.100.0/24 (rule 3)", [TRUNK]),  # the carrier's too
}
WRONG = "wrong password for '{}': the agent answers 403 Forbidden"
CREDS: dict[tuple[str, str], tuple[str, str] | str] = {
    ("pub1", "s3cret-Pass-123"): ("pub-1", "digest user pub1 (SHA-256/MD5)"),
    ("two", "Second-Pass-222"): ("pub-2", "digest user two (SHA-256/MD5)"),
    ("two", "wrong-Pass-222"): WRONG.format("two"),
    # the agent answers an unknown user as a wrong password (no oracle); the admin is told
    ("nobody", "Second-Pass-222"): (
        "unknown SIP username 'nobody': the agent answers 403 Forbidden, as for a wrong password"
    ),
    ("pub1", ""): WRONG.format("pub1"),
}


def test_ip_answers(setup: TestClient) -> None:
    for ip, expected in IPS.items():
        answer = setup.get("/admin/check", params={"ip": ip}).json()
        if expected is None:
            assert answer == {"accepted": False, "reason": NOT_LISTED.format(ip)}, ip
        else:
            publisher, rule, warnings = expected
            assert answer == {"accepted": True, "publisher": publisher, "rule": rule,
                              "warnings": warnings}, ip  # fmt: skip


def test_ip_answers_agree_with_the_agent(setup: TestClient) -> None:
    """The agent's own directory, loaded as the agent loads it, decides the same."""
    state = setup.app.state.rtbridge  # type: ignore[attr-defined]
    access = load_access(state.engine, load_catalog(state.engine))
    for ip, expected in IPS.items():
        rule = access.directory.match_ip(ip, time.time())
        found = None if rule is None else (rule.publisher_id, rule.describe())
        assert found == (expected and expected[:2]), ip


def test_credential_answers(setup: TestClient) -> None:
    for (username, password), expected in CREDS.items():
        got = setup.post("/admin/check", json={"username": username, "password": password}).json()
        if isinstance(expected, tuple):
            assert got == {"accepted": True, "publisher": expected[0], "rule": expected[1]}
        else:
            assert got == {"accepted": False, "reason": expected}, (username, got)
    # the form and the query string ask the same
    assert setup.post("/admin/check", data={"username": "two", "password": "x"}).json() == {
        "accepted": False, "reason": WRONG.format("two")
    }  # fmt: skip
    assert setup.get("/admin/check?username=two&password=Second-Pass-222").json() == {
        "accepted": True, "publisher": "pub-2", "rule": "digest user two (SHA-256/MD5)"
    }  # fmt: skip


def test_credential_answers_agree_with_the_agent(setup: TestClient) -> None:
    state = setup.app.state.rtbridge  # type: ignore[attr-defined]
    catalog = load_catalog(state.engine)
    access = load_access(state.engine, catalog)
    authenticator = Authenticator(realm=catalog.sip_domain, secret=b"s" * 32)
    for (username, password), expected in CREDS.items():
        decision = authenticator.check_password(
            username=username, password=password, directory=access.directory
        )
        accepted = isinstance(decision, Accepted)
        assert accepted == isinstance(expected, tuple), (username, decision)
        if isinstance(decision, Accepted):
            assert (decision.publisher_id, decision.rule) == expected


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
