"""The admin API's webhook routes: the secret shown once and never stored, bad input refused
with the field named and nothing stored, changes audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rtbridge.http.admin.openapi import openapi_document
from rtbridge.webhooks import outbox, signing
from tests.support.openapi import conforms
from tests.webhooks.conftest import MASTER, AppFactory, ping


@pytest.fixture
def admin(make_app: AppFactory, sqlite_url: str) -> TestClient:
    return make_app(sqlite_url)


def test_create_list_update_rotate_delete(admin: TestClient, tmp_path: Path) -> None:
    r = admin.post("/admin/webhooks", json={"buyer": "acme", "url": "https://hooks.example.com/x",
                                             "events": ["failed", "answered", "answered"]})  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["buyer"] == "acme" and made["events"] == ["answered", "failed"] and made["enabled"]
    hook = made["id"]
    assert made["secret"].startswith("whsec_")
    salt_secret = made["secret"]
    listed = admin.get("/admin/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [hook] and "secret" not in listed[0]
    assert "secret" not in admin.get(f"/admin/webhooks/{hook}").json()
    r = admin.patch(
        f"/admin/webhooks/{hook}", json={"url": "http://10.0.0.1:8080/y", "enabled": False}
    )
    assert r.status_code == 200 and r.json()["url"] == "http://10.0.0.1:8080/y"
    rotated = admin.post(f"/admin/webhooks/{hook}/rotate").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != salt_secret
    # the database holds neither secret, nor the master key
    raw = (tmp_path / "rtbridge.db").read_bytes()
    for secret in (salt_secret, rotated, MASTER):
        assert secret.encode() not in raw and secret.removeprefix("whsec_").encode() not in raw
    actions = [
        (e["action"], e["resource"])
        for e in admin.get("/admin/audit?resource=webhook").json()["entries"]
    ]
    assert actions == [("rotate", f"webhook/{hook}"), ("update", f"webhook/{hook}"),
                       ("create", f"webhook/{hook}")]  # fmt: skip
    assert admin.delete(f"/admin/webhooks/{hook}").status_code == 204
    assert admin.get(f"/admin/webhooks/{hook}").status_code == 404
    assert admin.get("/admin/webhooks/abc").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"publisher": "pub-1", "url": "ftp://example.com/x"}, 422, "url"),
        ({"publisher": "pub-1", "url": "not a url"}, 422, "url"),
        ({"publisher": "pub-1", "url": "http:///nohost"}, 422, "url"),
        ({"publisher": "pub-1", "url": "http://h:99999/"}, 422, "url"),
        (
            {"publisher": "pub-1", "url": "http://h/", "events": ["reserved", "exploded"]},
            422,
            "events",
        ),
        ({"publisher": "pub-1", "url": "http://h/", "events": []}, 422, "events"),
        ({"publisher": "nobody", "url": "http://h/"}, 422, "publisher"),
        ({"buyer": "nobody", "url": "http://h/"}, 422, "buyer"),
        ({"publisher": "pub-1", "buyer": "acme", "url": "http://h/"}, 422, "publisher"),
        ({"url": "http://h/"}, 422, "publisher"),
        ({"publisher": "pub-1", "url": "http://h/", "enabled": "yes"}, 422, "enabled"),
        ({"publisher": "pub-1", "url": "http://h/", "secret": "mine"}, 422, "secret"),
        (["http://h/"], 422, "body"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    admin: TestClient, body: object, status: int, field: str
) -> None:
    before = admin.get("/admin/audit").json()["entries"]
    r = admin.post("/admin/webhooks", json=body)
    assert r.status_code == status and r.json()["error"].startswith(f"{field}:"), r.text
    assert admin.get("/admin/webhooks").json()["webhooks"] == []
    assert admin.get("/admin/audit").json()["entries"] == before


def test_bad_changes_are_refused(admin: TestClient) -> None:
    hook = admin.post("/admin/webhooks", json={"publisher": "pub-1", "url": "http://h/"}).json()
    for body, field in [({"url": "gopher://h/"}, "url"), ({"events": ["nope"]}, "events"),
                        ({"publisher": "other"}, "publisher"), ({"buyer": "acme"}, "buyer")]:  # fmt: skip
        r = admin.patch(f"/admin/webhooks/{hook['id']}", json=body)
        assert r.status_code == 422 and r.json()["error"].startswith(f"{field}:"), r.text
    assert admin.get(f"/admin/webhooks/{hook['id']}").json()["url"] == "http://h/"
    r = admin.get(f"/admin/webhooks/{hook['id']}/deliveries", params={"status": "lost"})
    assert r.status_code == 422 and r.json()["error"].startswith("status:")
    r = admin.post(f"/admin/webhooks/{hook['id']}/deliveries/nope/redeliver")
    assert r.status_code == 404


def test_without_a_master_key_webhooks_cannot_be_created(
    make_app: AppFactory, sqlite_url: str
) -> None:
    admin = make_app(sqlite_url, master=None)
    r = admin.post("/admin/webhooks", json={"publisher": "pub-1", "url": "http://h/"})
    assert r.status_code == 409 and "RTBRIDGE_WEBHOOK_KEY" in r.json()["error"]
    assert admin.get("/admin/webhooks").json()["webhooks"] == []


def test_the_secret_is_the_derived_one(admin: TestClient) -> None:
    made = admin.post("/admin/webhooks", json={"publisher": "pub-1", "url": "http://h/"}).json()
    from sqlmodel import Session

    from rtbridge.storage.models import Webhook

    with Session(admin.app.state.rtbridge.engine) as session:  # type: ignore[attr-defined]
        row = session.get(Webhook, made["id"])
        assert row is not None
        assert signing.derive_secret(MASTER, made["id"], row.salt) == made["secret"]


def test_webhook_and_log_answers_match_the_declared_schemas(admin: TestClient) -> None:
    """The webhook routes and the RTB/call logs answer what /openapi/admin.json declares."""
    doc = openapi_document()
    r = admin.post("/admin/webhooks", json={"publisher": "pub-1", "url": "http://127.0.0.1:9/x",
                                             "events": ["reserved"]})  # fmt: skip
    hook = r.json()["id"]
    answers = [r, admin.get("/admin/webhooks"), admin.get(f"/admin/webhooks/{hook}")]
    answers.append(admin.patch(f"/admin/webhooks/{hook}", json={"enabled": False}))
    answers.append(admin.post(f"/admin/webhooks/{hook}/rotate"))
    admin.patch(f"/admin/webhooks/{hook}", json={"enabled": True})
    ping(admin)
    app_state = admin.app.state.rtbridge  # type: ignore[attr-defined]
    outbox.dispatch(app_state.engine, now=datetime.now(UTC))
    deliveries = admin.get(f"/admin/webhooks/{hook}/deliveries")
    (delivery,) = deliveries.json()["deliveries"]
    answers += [
        deliveries,
        admin.post(f"/admin/webhooks/{hook}/deliveries/{delivery['id']}/redeliver"),
    ]
    answers += [
        admin.get("/admin/rtbs"),
        admin.get("/admin/calls"),
        admin.get("/admin/rtbs?limit=0"),
    ]
    answers.append(admin.get("/admin/webhooks/999"))
    for answer in answers:
        assert answer.status_code < 500, answer.text
        conforms(doc, answer)
    assert {a.status_code for a in answers} == {200, 201, 404, 422}
