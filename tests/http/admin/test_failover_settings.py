"""Failover's settings through the admin API: a campaign's ``failover`` and ``max_attempts``
(``POST``/``PATCH /admin/campaigns``), a buyer's ``ring_timeout`` and ``connect_timeout``
(``/admin/buyers``) — stored, shown, in the running catalog at once, refused with the words
of ``rtbridge apply`` and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.storage.catalog import CampaignInfo
from rtbridge.storage.database import open_database

ALL = ["no-answer", "busy", "rejected", "unreachable"]
ALLOWED = "(allowed: no-answer, busy, rejected, unreachable)"
BUYER = {"destination": "sip:q@buyer.example.net", "payout": 95, "seconds": 60}
AUCTION = {
    "bid_deadline_ms": 250,
    "publisher_share": 1.0,
    "min_bid": 0.01,
    "duplicate_window": 0,
    "duplicate_after": "connected",
    "min_attestation": None,
    "record": False,
    "record_announcement": None,
}  # the defaults


def catalog_campaign(client: TestClient, campaign: str) -> CampaignInfo:
    return client.app.state.rtbridge.catalog.get().campaigns[campaign]  # type: ignore[attr-defined, no-any-return]


def version(client: TestClient) -> int:
    return client.app.state.rtbridge.catalog.get().version  # type: ignore[attr-defined, no-any-return]


def test_campaign_failover_created_changed_and_reset(admin: TestClient) -> None:
    r = admin.post("/admin/campaigns", json={"id": "solar", "failover": ["unreachable", "busy"],
                                             "max_attempts": 4})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "solar", "failover": ["busy", "unreachable"], "max_attempts": 4,
                        **AUCTION, "numbers": [], "buyers": [], "managed_by": "admin"}  # fmt: skip
    info = catalog_campaign(admin, "solar")
    assert (info.failover, info.max_attempts) == (frozenset({"busy", "unreachable"}), 4)

    r = admin.patch("/admin/campaigns/solar", json={"failover": []})
    assert r.status_code == 200 and r.json()["failover"] == [] and r.json()["max_attempts"] == 4
    assert catalog_campaign(admin, "solar").failover == frozenset()
    r = admin.patch("/admin/campaigns/solar", json={"failover": None, "max_attempts": None})
    assert (r.json()["failover"], r.json()["max_attempts"]) == (ALL, 3)  # the defaults
    assert admin.get("/admin/campaigns/solar").json()["failover"] == ALL
    listed = {c["id"]: c for c in admin.get("/admin/campaigns").json()["campaigns"]}
    assert (listed["solar"]["failover"], listed["auto"]["max_attempts"]) == (ALL, 3)

    before = version(admin)
    same = admin.patch("/admin/campaigns/solar", json={"failover": list(reversed(ALL))})
    assert same.status_code == 200 and same.json()["failover"] == ALL
    assert version(admin) == before  # no change, no new configuration

    trail = admin.get("/admin/audit?resource=campaign/solar").json()["entries"]
    assert [e["action"] for e in reversed(trail)] == ["create", "update", "update"]
    assert trail[-1]["new"] == {"id": "solar", "failover": ["busy", "unreachable"],
                                "max_attempts": 4, **AUCTION}  # fmt: skip
    assert (trail[1]["old"]["failover"], trail[1]["new"]["failover"]) == (
        ["busy", "unreachable"],
        [],
    )


@pytest.mark.parametrize(
    ("patch", "status", "error"),
    [
        ({"failover": ["busy", "voicemail"]}, 422, f"failover: 'voicemail' is not a failure kind {ALLOWED}"),
        ({"failover": ["busy", "busy"]}, 422, "failover: 'busy' is listed twice"),
        ({"failover": "busy"}, 422, "failover: must be an array of failure kinds"),
        ({"max_attempts": 0}, 422, "max_attempts: must be between 1 and 10"),
        ({"max_attempts": 11}, 422, "max_attempts: must be between 1 and 10"),
        ({"max_attempts": "3"}, 422, "max_attempts: must be an integer"),
        ({"colour": "red"}, 422, "colour: unknown field"),
        ({"id": "other"}, 422, "id: a campaign's id cannot change"),
        ({"numbers": ["+18005550111"]}, 422, "numbers: not changed here; use /admin/dids"),
        ({"buyers": []}, 422, "buyers: not changed here; use /admin/buyers"),
        ([], 422, "body: must be a JSON object of fields"),
    ],
)  # fmt: skip
def test_a_bad_campaign_change_is_refused_and_changes_nothing(
    admin: TestClient, patch: Any, status: int, error: str
) -> None:
    before, trail, at = (admin.get("/admin/campaigns/auto").json(), admin.get("/admin/audit").json(),
                         version(admin))  # fmt: skip
    r = admin.patch("/admin/campaigns/auto", json=patch)
    assert r.status_code == status and r.json()["error"].startswith(error), r.text
    assert admin.get("/admin/campaigns/auto").json() == before
    assert admin.get("/admin/audit").json() == trail and version(admin) == at


def test_a_bad_new_campaign_is_refused_with_the_files_words(admin: TestClient) -> None:
    r = admin.post("/admin/campaigns", json={"id": "x", "failover": ["ringing"], "max_attempts": 0})
    assert r.status_code == 422
    assert r.json()["error"] == (f"failover: 'ringing' is not a failure kind {ALLOWED}; "
                                 "max_attempts: must be between 1 and 10")  # fmt: skip
    assert admin.get("/admin/campaigns/x").status_code == 404
    assert admin.patch("/admin/campaigns/ghost", json={"max_attempts": 2}).status_code == 404


def test_a_campaign_stored_without_failover_shows_every_kind(
    admin: TestClient, sqlite_url: str
) -> None:
    engine = open_database(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE campaign SET failover = NULL"))
    engine.dispose()
    assert admin.get("/admin/campaigns/auto").json()["failover"] == ALL
    r = admin.patch("/admin/campaigns/auto", json={"max_attempts": 2})
    assert (r.json()["failover"], r.json()["max_attempts"]) == (ALL, 2)


def test_buyer_timeouts_created_changed_and_reset(admin: TestClient) -> None:
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "zen", **BUYER})
    assert r.status_code == 201, r.text
    assert (r.json()["ring_timeout"], r.json()["connect_timeout"]) == (None, None)
    zen = next(b for b in catalog_campaign(admin, "auto").buyers if b.rule.id == "zen")
    assert (zen.ring_timeout, zen.connect_timeout) == (None, 2.0)  # the agent's, and 2 s

    r = admin.patch("/admin/buyers/zen", json={"ring_timeout": 20, "connect_timeout": 1.5})
    assert r.status_code == 200, r.text
    assert (r.json()["ring_timeout"], r.json()["connect_timeout"]) == (20.0, 1.5)
    zen = next(b for b in catalog_campaign(admin, "auto").buyers if b.rule.id == "zen")
    assert (zen.ring_timeout, zen.connect_timeout) == (20.0, 1.5)
    assert admin.get("/admin/buyers/zen").json()["ring_timeout"] == 20.0

    # Sent back as read, a buyer is no change (the view is the request's shape).
    view = admin.get("/admin/buyers/zen").json()
    before = version(admin)
    assert admin.patch("/admin/buyers/zen", json=view).json() == view
    assert version(admin) == before

    r = admin.patch("/admin/buyers/zen", json={"connect_timeout": None})
    assert (r.json()["ring_timeout"], r.json()["connect_timeout"]) == (20.0, None)


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"ring_timeout": 0}, "ring_timeout: must be more than 0 and at most 600 seconds"),
        ({"ring_timeout": 600.5}, "ring_timeout: must be more than 0 and at most 600 seconds"),
        ({"ring_timeout": "20"}, "ring_timeout: must be a number of seconds"),
        ({"connect_timeout": -1}, "connect_timeout: must be more than 0 and at most 60 seconds"),
        ({"connect_timeout": 61}, "connect_timeout: must be more than 0 and at most 60 seconds"),
        # against the stored ring_timeout (20): lowering either side is checked
        ({"connect_timeout": 20}, "connect_timeout: 20 s is not less than ring_timeout (20 s): "
         "the connect timeout must be shorter than the ring timeout"),
        ({"ring_timeout": 1}, "connect_timeout: 1.5 s is not less than ring_timeout (1 s): "
         "the connect timeout must be shorter than the ring timeout"),
    ],
)  # fmt: skip
def test_a_bad_timeout_is_refused_and_changes_nothing(
    admin: TestClient, patch: dict[str, Any], error: str
) -> None:
    made = admin.post("/admin/buyers", json={"campaign": "auto", "id": "zen", **BUYER,
                                             "ring_timeout": 20, "connect_timeout": 1.5})  # fmt: skip
    assert made.status_code == 201, made.text
    at = version(admin)
    r = admin.patch("/admin/buyers/zen", json=patch)
    assert r.status_code == 422 and r.json()["error"] == error, r.text
    assert admin.get("/admin/buyers/zen").json() == made.json() and version(admin) == at
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "new", **BUYER,
                                          "ring_timeout": 20, "connect_timeout": 1.5, **patch})  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == error
    assert admin.get("/admin/buyers/new").status_code == 404


def test_forms_spell_the_settings_too(admin: TestClient) -> None:
    """A repeated ``failover`` key is the list (``failover=`` alone: [], off); numbers as text."""
    r = admin.patch("/admin/campaigns/auto", data={"failover": ["busy", "rejected"],
                                                    "max_attempts": "5"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["failover"], r.json()["max_attempts"]) == (["busy", "rejected"], 5)
    assert admin.patch("/admin/campaigns/auto", data={"failover": ""}).json()["failover"] == []
    r = admin.patch("/admin/buyers/acme", data={"ring_timeout": "25", "connect_timeout": "2.5"})
    assert r.status_code == 200, r.text
    assert (r.json()["ring_timeout"], r.json()["connect_timeout"]) == (25.0, 2.5)
    assert (
        admin.patch("/admin/buyers/acme", data={"ring_timeout": ""}).json()["ring_timeout"] is None
    )
    r = admin.patch("/admin/buyers/acme", data={"connect_timeout": "soon"})
    assert (
        r.status_code == 422 and r.json()["error"] == "connect_timeout: must be a number of seconds"
    )


def _toml(value: Any) -> str:
    """The few TOML values a campaign or buyer view holds (JSON spells strings, numbers and
    arrays of strings the TOML way; a table is inline)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def test_the_views_written_back_as_a_file_are_no_change(
    admin: TestClient, sqlite_url: str, tmp_path: Path
) -> None:
    """Every field the API shows is the file's, by the file's name, but who manages the row: a
    campaign and its buyers read back and written out as ``[[campaigns]]`` apply as no change
    (nothing lost), the file only adopting the buyers an admin made. Bid headers, shown as
    ``"***"``, stand for the stored ones there as in a ``PATCH``."""
    admin.patch("/admin/campaigns/auto", json={"failover": ["busy", "rejected"], "max_attempts": 2})
    admin.post("/admin/buyers", json={"campaign": "auto", "id": "zen", **BUYER, "ring_timeout": 20,
                                      "connect_timeout": 1.5, "filters": {"state": ["CA"]}})  # fmt: skip
    # an RTB buyer: its headers shown as "***", which the file takes for the stored ones
    admin.post("/admin/buyers", json={"campaign": "auto", "id": "bidder", "seconds": 60,
                                      "bid_url": "https://bids.buyer.example/rtb",
                                      "bid_headers": {"Authorization": "Bearer b1d"},
                                      "hide_caller": True})  # fmt: skip
    with admin.app.state.rtbridge.engine.connect() as conn:  # type: ignore[attr-defined]
        sealed = conn.execute(text("SELECT bid_headers FROM buyer WHERE id = 'bidder'")).scalar()
    campaign = admin.get("/admin/campaigns/auto").json()
    buyers = admin.get("/admin/buyers?campaign=auto").json()["buyers"]
    lines = ["[[campaigns]]"] + [f"{k} = {_toml(v)}" for k, v in campaign.items()
                                 if k not in ("buyers", "managed_by") and v is not None]  # fmt: skip
    for buyer in buyers:
        lines.append("[[campaigns.buyers]]")
        lines += [f"{k} = {_toml(v)}" for k, v in buyer.items()
                  if k not in ("campaign", "managed_by") and v is not None]  # fmt: skip
    path = tmp_path / "written-back.toml"
    path.write_text("\n".join(lines) + "\n")
    engine = open_database(sqlite_url)
    try:
        assert apply_file(engine, path).lines() == [
            "updated buyer bidder (managed_by 'admin' -> 'file')",
            "updated buyer zen (managed_by 'admin' -> 'file')",
        ]
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT bid_headers FROM buyer WHERE id = 'bidder'")).scalar()
        assert kept == sealed  # the stored headers, their seal unchanged
    finally:
        engine.dispose()
    assert 'failover = ["busy", "rejected"]' in path.read_text()
    assert "ring_timeout = 20.0" in path.read_text()
    assert 'bid_headers = { Authorization = "***" }' in path.read_text()
