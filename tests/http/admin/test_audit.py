"""An audit entry for each change, with its actor, and no secret anywhere: not in the rows,
not in the database file."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import DEMO, write_config
from tests.support.admin import db_bytes

PASSWORD = "Unique-Secret-4711"
KEY = "k-3f9a1c7e5b2d4f6a8c0e"


def test_each_change_is_audited_with_secrets_redacted(admin: TestClient, sqlite_url: str) -> None:
    admin.post("/admin/publishers", json={"id": "pub-7"})
    entry = admin.post(
        "/admin/publishers/pub-7/ips", json={"cidr": "192.0.2.0/24", "note": "lab"}
    ).json()
    admin.put("/admin/publishers/pub-7/credentials/seven", json={"password": PASSWORD})
    admin.put("/admin/publishers/pub-7/credentials/seven", json={"password": PASSWORD + "x"})
    created = admin.post(
        "/admin/keys", json={"key": KEY, "publisher": "pub-7", "campaign": "auto"}
    ).json()
    admin.patch(f"/admin/publishers/pub-7/ips/{entry['id']}", json={"note": "lab 2"})
    admin.post("/admin/trunks", json={"id": "t7", "uri": "sip:{number}@192.0.2.9", "username": "u",
                                      "realm": "r", "password": "trunk-" + PASSWORD})  # fmt: skip
    admin.delete(f"/admin/keys/{created['id']}")
    admin.delete("/admin/publishers/pub-7/credentials/seven")

    entries = admin.get("/admin/audit?actor=ops").json()["entries"]
    summary = [(e["action"], e["resource"]) for e in reversed(entries)]
    assert summary == [
        ("create", "publisher/pub-7"),
        ("create", "ip/pub-7/192.0.2.0/24"),
        ("create", "credential/seven"),
        ("rotate-password", "credential/seven"),
        ("create", "key/k-3f…"),
        ("update", "ip/pub-7/192.0.2.0/24"),
        ("create", "trunk/t7"),
        ("delete", "key/k-3f…"),
        ("delete", "credential/seven"),
    ]
    by = {(e["action"], e["resource"]): e for e in entries}
    assert by[("update", "ip/pub-7/192.0.2.0/24")]["old"]["note"] == "lab"
    assert by[("update", "ip/pub-7/192.0.2.0/24")]["new"]["note"] == "lab 2"
    assert by[("create", "credential/seven")]["new"]["password"] == "***"
    assert by[("create", "key/k-3f…")]["new"]["key"] == "***"
    assert by[("create", "trunk/t7")]["new"]["password"] == "***"
    assert all(e["actor"] == "ops" for e in entries)

    everything = admin.get("/admin/audit").text
    for secret in (PASSWORD, KEY, "trunk-" + PASSWORD, "ha1"):
        assert secret not in everything
    blob = db_bytes(sqlite_url)
    for secret in (PASSWORD, PASSWORD + "x", KEY, "trunk-" + PASSWORD):
        assert secret.encode() not in blob


def test_audit_filters(admin: TestClient) -> None:
    admin.post("/admin/publishers", json={"id": "pub-8"})
    admin.post("/admin/publishers/pub-8/ips", json={"cidr": "192.0.2.8/32"})
    later = admin.get("/admin/audit").json()["entries"][0]["at"]
    admin.delete("/admin/publishers/pub-8")
    assert [e["action"] for e in admin.get("/admin/audit?resource=publisher/pub-8").json()["entries"]] == [
        "delete", "create"]  # fmt: skip
    ips = admin.get("/admin/audit?resource=ip/pub-8").json()["entries"]
    assert [e["action"] for e in ips] == ["delete", "create"]
    since = admin.get("/admin/audit", params={"since": later, "actor": "ops"}).json()["entries"]
    assert {e["action"] for e in since} == {"create", "delete"} and len(since) == 3
    assert admin.get("/admin/audit?actor=nobody").json()["entries"] == []
    r = admin.get("/admin/audit?since=yesterday")
    assert r.status_code == 422 and r.json()["error"].startswith("since: not an ISO 8601 time")
    assert admin.get("/admin/audit?limit=0").status_code == 422
    assert len(admin.get("/admin/audit?limit=1").json()["entries"]) == 1


def test_apply_records_its_changes(admin: TestClient, sqlite_url: str, tmp_path: Path) -> None:
    applied = admin.get("/admin/audit?actor=apply").json()["entries"]
    assert ("create", "credential/pub1") in {(e["action"], e["resource"]) for e in applied}
    assert ("create", "ip/pub-1/127.0.0.1/32") in {(e["action"], e["resource"]) for e in applied}
    assert "s3cret-Pass-123" not in json.dumps(applied)
    engine = open_database(sqlite_url)
    config = DEMO.read_text()
    apply_file(
        engine,
        write_config(
            tmp_path, config.replace('ips = ["127.0.0.1/32", "::1/128"]', 'ips = ["127.0.0.1/32"]')
        ),
    )
    engine.dispose()
    latest = admin.get("/admin/audit?actor=apply&limit=1").json()["entries"][0]
    assert (latest["action"], latest["resource"]) == ("delete", "ip/pub-1/::1/128")
    assert latest["old"]["cidr"] == "::1/128"


def test_times_read_as_the_api_writes_them(admin: TestClient) -> None:
    """``at`` and any time inside old/new are UTC with ``Z``, as ``expires_at`` of a
    reservation (not ``+00:00``), whatever offset the request used."""
    admin.post("/admin/publishers/pub-1/ips",
               json={"cidr": "192.0.2.0/24", "expires_at": "2099-06-30T20:00:00-04:00"})  # fmt: skip
    entry = admin.get("/admin/audit?resource=ip&limit=1").json()["entries"][0]
    assert entry["new"]["expires_at"] == "2099-07-01T00:00:00.000Z"
    assert entry["at"].endswith("Z") and len(entry["at"]) == len("2026-01-01T00:00:00.000Z")
