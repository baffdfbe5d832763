"""``record`` and ``record_announcement`` through the admin API (SPEC §4.8): a campaign's
(default false, none) is its buyers' default, a buyer's own (null: the campaign's) overrides
it; the catalog's buyers carry what applies to them, which the router puts in each call's
plan. A test here takes an admin client only: ``test_postgres.py`` runs it there too."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.testclient import TestClient

from tests.support.notices import SHIPPED, write_wav

BUYER = {"destination": "sip:q@buyer.example.net", "payout": 95, "seconds": 60}


def recorded(client: TestClient, buyer: str) -> bool:
    """Whether the running catalog records ``buyer``'s calls."""
    catalog = client.app.state.rtbridge.catalog.get()  # type: ignore[attr-defined]
    return next(b.record for c in catalog.campaigns.values() for b in c.buyers
                if b.rule.id == buyer)  # fmt: skip


def test_a_campaigns_record_and_a_buyers_override(admin: TestClient) -> None:
    assert admin.get("/admin/campaigns/auto").json()["record"] is False
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "zen", **BUYER})
    assert r.status_code == 201 and r.json()["record"] is None  # the campaign's
    assert recorded(admin, "zen") is False
    r = admin.patch("/admin/campaigns/auto", json={"record": True})
    assert r.status_code == 200 and r.json()["record"] is True
    assert recorded(admin, "zen") is True
    r = admin.patch("/admin/buyers/zen", json={"record": False})
    assert r.status_code == 200 and r.json()["record"] is False
    assert recorded(admin, "zen") is False
    assert admin.patch("/admin/buyers/zen", json={"record": None}).json()["record"] is None
    assert recorded(admin, "zen") is True
    r = admin.patch("/admin/campaigns/auto", json={"record": "yes"})
    assert r.status_code == 422 and r.json()["error"] == "record: must be true or false"
    assert admin.patch("/admin/campaigns/auto", json={"record": None}).json()["record"] is False


def notice_of(client: TestClient, buyer: str) -> str:
    """The notice the running catalog puts in ``buyer``'s plans ("": none)."""
    catalog = client.app.state.rtbridge.catalog.get()  # type: ignore[attr-defined]
    return next(b.announcement for c in catalog.campaigns.values() for b in c.buyers
                if b.rule.id == buyer)  # fmt: skip


def test_a_recording_notice_set_checked_overridden_and_cleared(admin: TestClient) -> None:
    """``record_announcement``: an absolute path to a mono PCM16 WAV of at most 30 s, read
    when set (else 422 in read_announcement's words); a buyer's own over its campaign's,
    null is the campaign's; a plan carries one only when the call is recorded."""
    with tempfile.TemporaryDirectory(prefix="notices-") as name:
        _notices(admin, Path(name))


def _notices(admin: TestClient, folder: Path) -> None:
    own, stereo = write_wav(folder / "own.wav"), write_wav(folder / "stereo.wav", channels=2)
    r = admin.patch("/admin/campaigns/auto", json={"record_announcement": str(SHIPPED)})
    assert r.status_code == 200 and r.json()["record_announcement"] == str(SHIPPED)
    assert r.json()["record"] is False and notice_of(admin, "acme") == ""  # not recorded
    admin.patch("/admin/campaigns/auto", json={"record": True})
    assert notice_of(admin, "acme") == str(SHIPPED)
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "zen", **BUYER,
                                          "record_announcement": str(own)})  # fmt: skip
    assert r.status_code == 201 and r.json()["record_announcement"] == str(own)
    assert notice_of(admin, "zen") == str(own)
    assert admin.get("/admin/buyers/acme").json()["record_announcement"] is None
    for body, error in [
        ({"record_announcement": "deploy/sounds/this-call-may-be-recorded.wav"},
         "record_announcement: deploy/sounds/this-call-may-be-recorded.wav: an announcement's "
         "path must be absolute"),
        ({"record_announcement": str(folder / "missing.wav")},
         f"record_announcement: {folder}/missing.wav: No such file or directory"),
        ({"record_announcement": str(stereo)},
         f"record_announcement: {stereo}: not mono PCM16 (format 1, 2 ch)"),
        ({"record_announcement": ""},
         "record_announcement: must be a non-empty string of at most 1024 characters"),
    ]:  # fmt: skip
        for path in ("/admin/campaigns/auto", "/admin/buyers/zen"):
            r = admin.patch(path, json=body)
            assert r.status_code == 422 and r.json()["error"] == error, (path, r.text)
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "bad", **BUYER,
                                          "record_announcement": str(stereo)})  # fmt: skip
    assert r.status_code == 422 and admin.get("/admin/buyers/bad").status_code == 404
    r = admin.post("/admin/campaigns", json={"id": "spring", "record_announcement": "x.wav"})
    assert r.status_code == 422 and "must be absolute" in r.json()["error"]
    r = admin.post("/admin/campaigns", json={
        "id": "spring", "record": True, "record_announcement": str(own),
        "buyers": [{"id": "sb", **BUYER, "record_announcement": str(stereo)}]})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"].startswith(
        f"buyers[0].record_announcement: {stereo}: not mono")  # fmt: skip
    assert admin.get("/admin/campaigns/spring").status_code == 404
    # unchanged, it is not read again: a notice whose file went away does not block the rest
    own.unlink()
    r = admin.patch("/admin/buyers/zen", json={"priority": 3})
    assert r.status_code == 200 and r.json()["record_announcement"] == str(own)
    # null: back to the campaign's; the campaign's null: none at all
    r = admin.patch("/admin/buyers/zen", json={"record_announcement": None})
    assert r.status_code == 200 and r.json()["record_announcement"] is None
    assert notice_of(admin, "zen") == str(SHIPPED)
    r = admin.patch("/admin/campaigns/auto", json={"record_announcement": None})
    assert r.status_code == 200 and r.json()["record_announcement"] is None
    assert notice_of(admin, "zen") == notice_of(admin, "acme") == ""
    trail = admin.get("/admin/audit", params={"resource": "campaign/auto"}).json()["entries"]
    assert trail[0]["old"]["record_announcement"] == str(SHIPPED)
    assert trail[0]["new"]["record_announcement"] is None
