"""Form bodies on the admin API (urlencoded and multipart): each makes exactly what the same
JSON body makes, is refused with the same words, and a body that is neither gets 415 and
changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.http.app import create_app
from rtbridge.settings import Settings
from rtbridge.storage.database import open_database
from tests.conftest import DEMO
from tests.support.admin import make_token

BOUNDARY = "rtbridge-test-boundary"


Pairs = Sequence[tuple[str, str]]


def _multipart(fields: Pairs, files: Pairs = ()) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             for k, v in fields]  # fmt: skip
    parts += [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"; filename="f.txt"\r\n'
              f"Content-Type: text/plain\r\n\r\n{v}\r\n" for k, v in files]  # fmt: skip
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def _post_multipart(admin: TestClient, path: str, fields: Pairs, files: Pairs = ()) -> Any:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return admin.post(path, content=_multipart(fields, files), headers=headers)


def _without(view: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in names}


def test_form_bodies_make_what_json_bodies_make(admin: TestClient) -> None:
    as_json = admin.post("/admin/publishers", json={
        "id": "pub-j", "name": "Nine", "ips": ["203.0.113.0/24", "2001:db8::/32"],
        "require_tls": True})  # fmt: skip
    as_form = admin.post("/admin/publishers", data={
        "id": "pub-f", "name": "Nine", "ips": ["192.0.2.0/24", "2001:db9::/32"],
        "require_tls": "true"})  # fmt: skip
    assert as_json.status_code == as_form.status_code == 201, as_form.text
    j, f = admin.get("/admin/publishers/pub-j").json(), admin.get("/admin/publishers/pub-f").json()
    assert [e["cidr"] for e in f["ips"]] == ["192.0.2.0/24", "2001:db9::/32"]
    assert _without(j, "id", "ips") == _without(f, "id", "ips") and f["require_tls"] is True

    buyer = {"campaign": "auto", "destination": "sip:q@192.0.2.9", "payout": 12.5,
             "seconds": 60, "concurrency": 3, "srtp": "optional",
             "filters": {"state": ["CA", "NY"]}}  # fmt: skip
    assert admin.post("/admin/buyers", json={"id": "bj", **buyer}).status_code == 201
    form = [("id", "bf"), ("campaign", "auto"), ("destination", "sip:q@192.0.2.9"),
            ("payout", "12.5"), ("seconds", "60"), ("concurrency", "3"), ("srtp", "optional"),
            ("filters.state", "CA"), ("filters.state", "NY")]  # fmt: skip
    made = _post_multipart(admin, "/admin/buyers", form)
    assert made.status_code == 201, made.text
    bj, bf = admin.get("/admin/buyers/bj").json(), admin.get("/admin/buyers/bf").json()
    assert _without(bj, "id") == _without(bf, "id") and bf["filters"] == {"state": ["CA", "NY"]}

    # PATCH: numbers as text, an empty value is null (back to the default)
    patched = admin.patch("/admin/buyers/bf", data={"payout": "20", "concurrency": ""})
    assert patched.status_code == 200, patched.text
    admin.patch("/admin/buyers/bj", json={"payout": 20, "concurrency": None})
    bj, bf = admin.get("/admin/buyers/bj").json(), admin.get("/admin/buyers/bf").json()
    assert _without(bj, "id") == _without(bf, "id") and bf["concurrency"] is None

    key = {"publisher": "pub-f", "campaign": "auto", "ttl_seconds": "30",
           "allow_missing_caller_number": "1", "paused": "0", "auto_confirm": "false"}  # fmt: skip
    created = admin.post("/admin/keys", data=key)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["ttl_seconds"] == 30 and view["allow_missing_caller_number"] is True
    assert view["paused"] is False and view["auto_confirm"] is False

    entry = admin.post("/admin/publishers/pub-f/ips", data={
        "cidr": "192.0.2.0/28", "note": "office", "expires_at": "2099-01-01T00:00:00Z",
        "allow_overlap": "false"})  # fmt: skip
    assert entry.status_code == 201, entry.text
    assert entry.json()["note"] == "office" and entry.json()["expires_at"].startswith("2099")
    password = admin.put("/admin/publishers/pub-f/credentials/nine", data={
        "password": "Form-Body-Pass-1"})  # fmt: skip
    assert password.status_code == 201 and password.json()["created"] is True
    check = admin.post("/admin/check", data={"username": "nine", "password": "Form-Body-Pass-1"})
    assert check.json()["accepted"] is True and check.json()["publisher"] == "pub-f"
    trunk = admin.post("/admin/trunks", data={"id": "t2", "uri": "sip:{number}@198.51.100.20",
                                              "ips": "198.51.100.20/32"})  # fmt: skip
    assert trunk.status_code == 201 and trunk.json()["ips"] == ["198.51.100.20/32"]
    did = admin.post("/admin/dids", data={"number": "+18005550199", "campaign": "auto"})
    assert did.status_code == 201, did.text


def test_form_values_are_refused_with_the_json_words(admin: TestClient) -> None:
    base = {"campaign": "auto", "id": "bx", "destination": "sip:q@192.0.2.9"}
    pairs: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"payout": "lots", "seconds": 60}, {"payout": "lots", "seconds": "60"}),
        ({"payout": 1, "seconds": 1.5}, {"payout": "1", "seconds": "1.5"}),
        ({"payout": -1, "seconds": 60}, {"payout": "-1", "seconds": "60"}),
        (
            {"payout": 1, "seconds": 60, "weight": 0},
            {"payout": "1", "seconds": "60", "weight": "0"},
        ),
        (
            {"payout": 1, "seconds": 60, "bogus": "x"},
            {"payout": "1", "seconds": "60", "bogus": "x"},
        ),
    ]
    for as_json, as_form in pairs:
        j = admin.post("/admin/buyers", json={**base, **as_json})
        f = admin.post("/admin/buyers", data={**base, **as_form})
        assert j.status_code == f.status_code == 422, (j.text, f.text)
        assert j.json() == f.json()
    j = admin.post("/admin/publishers", json={"id": "p-x", "require_tls": "maybe"})
    f = admin.post("/admin/publishers", data={"id": "p-x", "require_tls": "maybe"})
    assert j.status_code == f.status_code == 422 and j.json() == f.json()
    assert "require_tls: must be true or false" in f.json()["error"]
    j = admin.post("/admin/publishers", json={"id": "p-x", "ips": ["10.0.0.5/8"]})
    f = admin.post("/admin/publishers", data={"id": "p-x", "ips": "10.0.0.5/8"})
    assert j.status_code == f.status_code == 422 and j.json() == f.json()

    twice = admin.post("/admin/publishers", content=b"id=a&id=b",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert twice.status_code == 422
    assert twice.json()["error"].startswith("id: given more than once")
    nested = admin.post("/admin/publishers", data={"id": "p-y", "credentials": "u:p"})
    assert nested.status_code == 422
    assert nested.json()["error"] == "credentials: a list of objects; send it in a JSON body"
    upload = _post_multipart(admin, "/admin/publishers", [("id", "p-z")], [("name", "x")])
    assert upload.status_code == 422 and upload.json()["error"].startswith("name: a file upload")
    broken = admin.post("/admin/publishers", content=b"--x\r\nnot a part",
                        headers={"Content-Type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert broken.status_code == 422 and broken.json()["error"].startswith("body: ")
    not_utf8 = admin.post("/admin/publishers", content=b"id=\xff",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert not_utf8.status_code == 422 and "not UTF-8" in not_utf8.json()["error"]
    ids = {p["id"] for p in admin.get("/admin/publishers").json()["publishers"]}
    assert ids == {"pub-1"}  # nothing refused was made


def test_other_content_types_are_415_and_change_nothing(admin: TestClient) -> None:
    before = admin.get("/admin/publishers").json()
    audit = len(admin.get("/admin/audit").json()["entries"])
    for ctype, body in (("text/plain", b"id=pub-t"), ("application/xml", b"<id>pub-t</id>"),
                        ("text/csv", b"id\npub-t")):  # fmt: skip
        for method, path in (("POST", "/admin/publishers"), ("PATCH", "/admin/publishers/pub-1"),
                             ("POST", "/admin/check")):  # fmt: skip
            r = admin.request(method, path, content=body, headers={"Content-Type": ctype})
            assert r.status_code == 415, (method, path, ctype, r.text)
            assert r.json() == {"error": f"body: unsupported content type {ctype!r} (send "
                                "application/json, application/x-www-form-urlencoded or "
                                "multipart/form-data)"}  # fmt: skip
    assert admin.get("/admin/publishers").json() == before
    assert len(admin.get("/admin/audit").json()["entries"]) == audit
    # JSON without a content type is still JSON
    raw = admin.post("/admin/publishers", content=b'{"id": "pub-raw"}')
    assert raw.status_code == 201, raw.text
    typed = admin.post("/admin/publishers", content=b'{"id": "pub-v"}',
                       headers={"Content-Type": "application/vnd.api+json"})  # fmt: skip
    assert typed.status_code == 201, typed.text


def test_webhook_events_and_enabled_from_a_form(sqlite_url: str) -> None:
    """The webhook resource's list (``events``) and boolean (``enabled``) read from a form."""
    engine = open_database(sqlite_url)
    apply_file(engine, DEMO)
    engine.dispose()
    settings = Settings(db_url=sqlite_url, sip_enabled=False, sweep_interval=3600, webhooks=False,
                        webhook_key="test-master-key-0123456789abcdefghijklmnop")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {make_token(sqlite_url)}"
        made = client.post("/admin/webhooks", data={
            "buyer": "acme", "url": "https://hooks.example.com/x",
            "events": ["failed", "answered"], "enabled": "false"})  # fmt: skip
        assert made.status_code == 201, made.text
        hook = made.json()
        assert hook["events"] == ["answered", "failed"] and hook["enabled"] is False
        patched = client.patch(f"/admin/webhooks/{hook['id']}", data={"enabled": "1"})
        assert patched.status_code == 200 and patched.json()["enabled"] is True


def test_an_infinite_payout_is_refused_in_json_and_forms(admin: TestClient) -> None:
    """JSON's ``1e999`` reads as infinity: not an amount to pay (a form's ``inf`` is not a
    number at all)."""
    raw = '{"campaign": "auto", "id": "b-inf", "destination": "+18005550100", "payout": 1e999, "seconds": 10}'
    r = admin.post("/admin/buyers", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "payout: must be a finite number"
    r = admin.post("/admin/buyers", data={"campaign": "auto", "id": "b-inf", "payout": "inf",
                                          "destination": "+18005550100", "seconds": "10"})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"].startswith("payout: "), r.text
    assert admin.get("/admin/buyers/b-inf").status_code == 404
