"""Issue 12, "admin safety", through the admin API: overlapping CIDRs across publishers,
past expiries, bulk add with a verdict per item, and what the audit trail and check say."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.admin.changes import write_session
from rtbridge.admin.publishers import add_ip, create_publisher
from rtbridge.domain.errors import Conflict
from rtbridge.storage.database import open_database
from tests.conftest import DEMO

PAST = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def _pub3(admin: TestClient) -> None:
    assert admin.post("/admin/publishers", json={"id": "pub-3"}).status_code == 201
    wide = admin.post("/admin/publishers/pub-1/ips", json={"cidr": "127.0.0.0/24"})
    assert wide.status_code == 201, wide.text


def test_a_network_nested_in_another_publishers_is_refused(admin: TestClient) -> None:
    _pub3(admin)
    for cidr, how in [("127.0.0.64/26", "sits inside"), ("127.0.0.0/16", "contains")]:
        r = admin.post("/admin/publishers/pub-3/ips", json={"cidr": cidr})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error.startswith(f"cidr: {cidr} {how}") and "pub-1's 127.0.0.0/24" in error
        assert "allow_overlap" in error
    # its own publisher may nest entries freely; an expired entry of another is no obstacle
    assert admin.post("/admin/publishers/pub-1/ips", json="127.0.0.128/25").status_code == 201
    assert admin.get("/admin/publishers/pub-3/ips").json()["ips"] == []


def test_an_overlap_accepted_with_the_flag_is_audited_and_checked(admin: TestClient) -> None:
    _pub3(admin)
    r = admin.post("/admin/publishers/pub-3/ips",
                   json={"cidr": "127.0.0.64/26", "allow_overlap": True})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["allow_overlap"] is True and r.json()["managed_by"] == "admin"
    trail = admin.get("/admin/audit", params={"resource": "ip/pub-3/127.0.0.64/26"}).json()
    [entry] = trail["entries"]
    assert "pub-1's 127.0.0.0/24" in entry["new"]["overlaps"]
    check = admin.get("/admin/check", params={"ip": "127.0.0.70"}).json()
    assert check["publisher"] == "pub-3" and check["warnings"] == [
        "also matches pub-1's 127.0.0.0/24 (shadowed by longest prefix)"
    ]
    # the same network on two publishers stays refused, flag or not: no prefix decides it
    same = admin.post("/admin/publishers/pub-3/ips",
                      json={"cidr": "127.0.0.0/24", "allow_overlap": True})  # fmt: skip
    assert same.status_code == 409 and "belongs to publisher 'pub-1'" in same.json()["error"]


def test_moving_an_entry_onto_anothers_network_is_refused(admin: TestClient) -> None:
    _pub3(admin)
    entry = admin.post("/admin/publishers/pub-3/ips", json={"cidr": "10.9.0.0/16"}).json()
    r = admin.patch(f"/admin/publishers/pub-3/ips/{entry['id']}", json={"cidr": "127.0.0.8/29"})
    assert r.status_code == 409 and "pub-1's 127.0.0.0/24" in r.json()["error"]


def test_past_expiry_is_refused_naming_the_field(admin: TestClient) -> None:
    r = admin.post("/admin/publishers/pub-1/ips", json={"cidr": "10.1.0.0/16", "expires_at": PAST})
    assert r.status_code == 422 and r.json()["error"].startswith("expires_at: ")
    r = admin.post("/admin/publishers", json={"id": "pub-9", "ips": [
        {"cidr": "10.2.0.0/16", "expires_at": PAST}]})  # fmt: skip
    assert r.status_code == 422 and "expires_at" in r.json()["error"]
    assert admin.get("/admin/publishers/pub-9").status_code == 404  # nothing half-made


def test_bulk_add_gives_a_verdict_per_item(admin: TestClient) -> None:
    _pub3(admin)
    items = [
        "192.0.2.0/24",
        {"cidr": "2001:db8:5::/48", "note": "v6"},
        "10.0.0.5/8",  # host bits
        {"cidr": "10.3.0.0/16", "expires_at": PAST},
        "127.0.0.64/26",  # inside pub-1's /24
        {"cidr": "127.0.0.128/26", "allow_overlap": True},
        "192.0.2.0/24",  # a duplicate of the first
    ]
    r = admin.post("/admin/publishers/pub-3/ips", json=items)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["added"], body["refused"]) == (3, 4)
    results = body["results"]
    assert [r["item"] for r in results] == items
    assert ["added" in r for r in results] == [True, True, False, False, False, True, False]
    assert "host bits set" in results[2]["error"] and results[2]["status"] == 422
    assert results[3]["error"].startswith("expires_at: ")
    assert results[4]["status"] == 409 and "pub-1's 127.0.0.0/24" in results[4]["error"]
    assert "already on pub-3's allowlist" in results[6]["error"]
    stored = [e["cidr"] for e in admin.get("/admin/publishers/pub-3/ips").json()["ips"]]
    assert sorted(stored) == ["127.0.0.128/26", "192.0.2.0/24", "2001:db8:5::/48"]
    assert admin.post("/admin/publishers/pub-3/ips", json=[]).status_code == 422
    assert admin.post("/admin/publishers/nobody/ips", json=["10.0.0.0/8"]).status_code == 404
    too_many = admin.post("/admin/publishers/pub-3/ips", json=["10.0.0.0/8"] * 1001)
    assert too_many.status_code == 422 and "at most 1000" in too_many.json()["error"]


def test_openapi_documents_the_bulk_form(admin: TestClient) -> None:
    doc = admin.get("/admin/openapi.json").json()
    post = doc["paths"]["/admin/publishers/{publisher}/ips"]["post"]
    assert {"200", "201", "409", "422"} <= set(post["responses"])
    schemas = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert any(s.get("type") == "array" for s in schemas)
    components = doc["components"]["schemas"]
    schemas = [components[s["$ref"].rsplit("/", 1)[1]] if "$ref" in s else s for s in schemas]
    assert any("allow_overlap" in s.get("properties", {}) for s in schemas)


@pytest.mark.postgres
def test_concurrent_overlapping_adds_on_postgres_one_wins(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two admins add overlapping networks to two publishers at the same moment: the check
    reads, then the add writes, so without serialising admin changes both could pass. One
    is added, the other refused with 409 — never both, never a 500."""
    engine = open_database(postgres_url)
    apply_file(engine, DEMO)
    with write_session(engine) as session:
        create_publisher(session, actor="t", raw={"id": "pub-race"})  # commits
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add(publisher: str, cidr: str) -> None:
        with write_session(engine) as session:
            barrier.wait()
            try:
                add_ip(session, actor="t", publisher_id=publisher, raw={"cidr": cidr})  # commits
                outcomes.append("added")
            except Conflict:
                outcomes.append("409")

    for _ in range(5):
        outcomes.clear()
        cidrs = [("pub-1", f"10.{_}.0.0/16"), ("pub-race", f"10.{_}.1.0/24")]
        threads = [threading.Thread(target=add, args=args) for args in cidrs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["409", "added"], outcomes
    engine.dispose()


# Issue 17: a carrier trunk's networks and the allowlists are two trust boundaries. The demo's
# trunk is 198.51.100.10/32, pub-1's entries 127.0.0.1/32 and ::1/128.
LAB = {"id": "lab", "uri": "sip:{number}@127.0.0.9", "ips": ["127.0.0.0/24"]}
MIXED = "(a source in both is trusted without a challenge as the carrier for calls to pool DIDs"


def test_a_trunk_over_a_publishers_entry_is_refused_unless_accepted(admin: TestClient) -> None:
    r = admin.post("/admin/trunks", json=LAB)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == (
        f"ips: 127.0.0.0/24 overlaps pub-1's 127.0.0.1/32 {MIXED} and as the publisher for "
        "reservation uuids); send allow_overlap: true to accept it anyway"
    )
    assert admin.get("/admin/trunks/lab").status_code == 404  # nothing made
    made = admin.post("/admin/trunks", json={**LAB, "allow_overlap": True})
    assert made.status_code == 201 and made.json()["allow_overlap"] is True, made.text
    [entry] = admin.get("/admin/audit", params={"resource": "trunk/lab"}).json()["entries"]
    assert entry["new"]["overlaps"] == "pub-1's 127.0.0.1/32"
    check = admin.get("/admin/check", params={"ip": "127.0.0.1"}).json()
    assert check["publisher"] == "pub-1" and check["warnings"] == [
        "also inside trunk lab's 127.0.0.0/24: a call from here to a number that is not a "
        "reservation uuid is taken as the carrier's PSTN arrival"
    ]
    # a change that adds no network keeps the acceptance; taking it back is refused
    assert (
        admin.patch("/admin/trunks/lab", json={"uri": "sips:{number}@127.0.0.9"}).json()[
            "allow_overlap"
        ]
        is True
    )
    back = admin.patch("/admin/trunks/lab", json={"allow_overlap": False})
    assert back.status_code == 409 and "pub-1's 127.0.0.1/32" in back.json()["error"]


def test_a_network_a_trunk_gains_over_an_entry_is_refused(admin: TestClient) -> None:
    grown = admin.patch("/admin/trunks/carrier", json={"ips": ["198.51.100.10/32", "::1/128"]})
    assert grown.status_code == 409 and grown.json()["error"].startswith(
        f"ips: ::1/128 overlaps pub-1's ::1/128 {MIXED}"
    )
    assert admin.get("/admin/trunks/carrier").json()["ips"] == ["198.51.100.10/32"]
    other = admin.patch("/admin/trunks/carrier", json={"ips": ["198.51.100.10/32", "10.9.0.0/16"]})
    assert other.status_code == 200 and other.json()["allow_overlap"] is False


def test_an_entry_over_a_trunks_network_is_refused_unless_accepted(admin: TestClient) -> None:
    r = admin.post("/admin/publishers/pub-1/ips", json={"cidr": "198.51.100.0/24"})
    assert r.status_code == 409
    assert r.json()["error"] == (
        f"cidr: 198.51.100.0/24 overlaps trunk carrier's 198.51.100.10/32 {MIXED} and as the "
        "publisher for reservation uuids); send allow_overlap: true to accept it anyway"
    )  # no "longest prefix" here: a trunk is not chosen by prefix
    made = admin.post("/admin/publishers", json={"id": "pub-4", "ips": ["198.51.100.0/28"]})
    assert made.status_code == 409 and "trunk carrier's" in made.json()["error"]
    bulk = admin.post("/admin/publishers/pub-1/ips", json=["198.51.100.8/29", "10.7.0.0/16"])
    assert [("added" in x) for x in bulk.json()["results"]] == [False, True]
    ok = admin.post("/admin/publishers/pub-1/ips",
                    json={"cidr": "198.51.100.0/24", "allow_overlap": True})  # fmt: skip
    assert ok.status_code == 201 and ok.json()["allow_overlap"] is True
    trail = admin.get("/admin/audit", params={"resource": "ip/pub-1/198.51.100.0/24"}).json()
    assert "trunk carrier's 198.51.100.10/32" in trail["entries"][0]["new"]["overlaps"]
