"""Duplicate callers' settings through the admin API (issue 23): a campaign's
``duplicate_window`` and ``duplicate_after``, a buyer's own over them — stored, shown, in the
running catalog at once, refused with the file's words and nothing changed."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_the_campaign_default_and_a_buyers_own(admin: TestClient) -> None:
    r = admin.patch("/admin/campaigns/auto", json={"duplicate_window": 7200})
    assert r.status_code == 200, r.text
    assert (r.json()["duplicate_window"], r.json()["duplicate_after"]) == (7200, "connected")
    r = admin.patch("/admin/buyers/acme", json={"duplicate_after": "ping", "duplicate_window": 60})
    assert r.status_code == 200, r.text
    rules = {
        b.rule.id: b.rule for b in admin.app.state.rtbridge.catalog.get().campaigns["auto"].buyers
    }  # type: ignore[attr-defined]
    assert (rules["acme"].duplicate_window, rules["acme"].duplicate_after) == (60, "ping")
    others = [r for b, r in rules.items() if b != "acme"]
    assert all((r.duplicate_window, r.duplicate_after) == (7200, "connected") for r in others)


def test_bad_rules_are_refused_and_change_nothing(admin: TestClient) -> None:
    before = admin.get("/admin/campaigns/auto").json()
    for patch, words in [
        ({"duplicate_window": -1}, "duplicate_window: must be between 0 and 31622400"),
        (
            {"duplicate_after": "answered"},
            "duplicate_after: must be one of ping, connected, converted",
        ),
        ({"duplicate_window": "3600"}, "duplicate_window: must be an integer"),
    ]:
        r = admin.patch("/admin/campaigns/auto", json=patch)
        assert r.status_code == 422 and words in r.json()["error"], r.text
    assert admin.get("/admin/campaigns/auto").json() == before
