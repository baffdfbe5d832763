"""``record`` through the admin API (SPEC §4.8): a campaign's (default false) is its buyers'
default, a buyer's own (null: the campaign's) overrides it; the catalog's buyers carry the
flag that applies to them, which the router puts in each call's plan."""

from __future__ import annotations

from starlette.testclient import TestClient

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
