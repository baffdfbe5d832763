"""Real-time bidding's settings through the admin API: a buyer's ``bid_url``, ``bid_format``,
``bid_headers`` and ``hide_caller`` (``/admin/buyers``), a campaign's ``bid_deadline_ms``,
``publisher_share`` and ``min_bid`` (``/admin/campaigns``) — stored, shown, in the running
catalog at once, refused with the words of ``rtbridge apply`` and nothing changed. The
headers are write-only: sealed under the site key in the database, masked in every view and
in the audit trail, and an unchanged value keeps its seal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.config.schema import ConfigError
from rtbridge.storage import sitekey
from rtbridge.storage.catalog import CampaignInfo
from rtbridge.storage.database import open_database
from rtbridge.storage.sealed import BID_HEADERS, unseal_json
from tests.support.admin import db_bytes

TOKEN = "Bearer sk-live-0123456789abcdef"
BIDDER = {"campaign": "auto", "id": "bidder", "bid_url": "https://bids.buyer.example/rtb",
          "seconds": 60, "bid_headers": {"Authorization": TOKEN}}  # fmt: skip
STATIC = {"destination": "sip:q@buyer.example.net", "payout": 95, "seconds": 60}


def catalog_campaign(client: TestClient, campaign: str) -> CampaignInfo:
    return client.app.state.rtbridge.catalog.get().campaigns[campaign]  # type: ignore[attr-defined, no-any-return]


def version(client: TestClient) -> int:
    return client.app.state.rtbridge.catalog.get().version  # type: ignore[attr-defined, no-any-return]


def stored_headers(client: TestClient, buyer: str) -> str | None:
    """The buyer's ``bid_headers`` column as stored (SQLite or PostgreSQL)."""
    engine = client.app.state.rtbridge.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT bid_headers FROM buyer WHERE id = :id"), {"id": buyer}
        ).scalar_one()
    return str(value) if value is not None else None


def opened(client: TestClient, sealed: str) -> Any:
    engine = client.app.state.rtbridge.engine  # type: ignore[attr-defined]
    return unseal_json(sitekey.for_engine(engine), sealed, purpose=BID_HEADERS)


def test_an_rtb_buyer_round_trip(admin: TestClient, sqlite_url: str) -> None:
    r = admin.post("/admin/buyers", json={**BIDDER, "bid_format": "ringba", "hide_caller": True})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["bid_headers"] == {"Authorization": "***"} and TOKEN not in r.text
    assert (view["destination"], view["payout"], view["revenue"]) == (None, None, None)
    assert (view["bid_url"], view["bid_format"], view["hide_caller"]) == (
        "https://bids.buyer.example/rtb", "ringba", True)  # fmt: skip
    assert admin.get("/admin/buyers/bidder").json() == view
    assert view in admin.get("/admin/buyers?campaign=auto").json()["buyers"]
    # a static buyer shows none
    acme = admin.get("/admin/buyers/acme").json()
    assert (acme["bid_url"], acme["bid_format"], acme["bid_headers"], acme["hide_caller"]) == (
        None, "rtbridge", {}, False)  # fmt: skip

    # in the running catalog at once: an RTB buyer, its headers still sealed
    info = next(b for b in catalog_campaign(admin, "auto").buyers if b.rule.id == "bidder")
    assert info.bidder is not None and info.destination is None and info.payout is None
    assert (info.bidder.url, info.bidder.format, info.bidder.hide_caller) == (
        "https://bids.buyer.example/rtb", "ringba", True)  # fmt: skip

    # sealed in the database: the column is not the plaintext, the file holds no token
    sealed = stored_headers(admin, "bidder")
    assert sealed is not None and sealed.startswith("v1:") and "Bearer" not in sealed
    assert opened(admin, sealed) == {"Authorization": TOKEN}
    assert TOKEN.encode() not in db_bytes(sqlite_url)


def test_an_unchanged_patch_keeps_the_seal_and_the_version(admin: TestClient) -> None:
    assert admin.post("/admin/buyers", json=BIDDER).status_code == 201
    sealed, before = stored_headers(admin, "bidder"), version(admin)
    trail = admin.get("/admin/audit?resource=buyer/bidder").json()["entries"]
    view = admin.get("/admin/buyers/bidder").json()
    for patch in (
        {"bid_headers": {"Authorization": TOKEN}},  # the same value, sent again
        view,  # the view sent back as read: "***" keeps the stored value
        {"weight": 1},
    ):
        r = admin.patch("/admin/buyers/bidder", json=patch)
        assert r.status_code == 200 and r.json() == view, r.text
    assert stored_headers(admin, "bidder") == sealed
    assert version(admin) == before
    assert admin.get("/admin/audit?resource=buyer/bidder").json()["entries"] == trail


def test_headers_kept_replaced_and_cleared(admin: TestClient) -> None:
    assert admin.post("/admin/buyers", json=BIDDER).status_code == 201
    sealed = stored_headers(admin, "bidder")

    # a PATCH without bid_headers keeps them
    r = admin.patch("/admin/buyers/bidder", json={"bid_format": "retreaver"})
    assert r.status_code == 200 and r.json()["bid_headers"] == {"Authorization": "***"}
    assert stored_headers(admin, "bidder") == sealed

    # a value alone changes: the view is the same, the seal and the audit trail say so
    r = admin.patch("/admin/buyers/bidder", json={"bid_headers": {"Authorization": "Bearer new"}})
    assert r.status_code == 200 and r.json()["bid_headers"] == {"Authorization": "***"}
    resealed = stored_headers(admin, "bidder")
    assert resealed is not None and resealed != sealed
    assert opened(admin, resealed) == {"Authorization": "Bearer new"}
    change = admin.get("/admin/audit?resource=buyer/bidder").json()["entries"][0]
    assert change["action"] == "update"
    assert change["old"]["bid_headers"] == change["new"]["bid_headers"] == "***"
    assert "Bearer" not in json.dumps(change)

    # "***" keeps one header's stored value beside a new header
    r = admin.patch("/admin/buyers/bidder", json={"bid_headers": {"Authorization": "***",
                                                                  "X-Seat": "42"}})  # fmt: skip
    assert r.json()["bid_headers"] == {"Authorization": "***", "X-Seat": "***"}, r.text
    sealed = stored_headers(admin, "bidder")
    assert sealed is not None
    assert opened(admin, sealed) == {"Authorization": "Bearer new", "X-Seat": "42"}

    # null (or {}) clears them
    r = admin.patch("/admin/buyers/bidder", json={"bid_headers": None})
    assert r.status_code == 200 and r.json()["bid_headers"] == {}
    assert stored_headers(admin, "bidder") is None
    trail = admin.get("/admin/audit?resource=buyer/bidder").json()["entries"]
    assert (trail[0]["old"]["bid_headers"], trail[0]["new"]["bid_headers"]) == ("***", None)


def test_a_form_spells_the_headers(admin: TestClient) -> None:
    """``bid_headers.<name>=value``; ``hide_caller`` and the campaign's numbers as text."""
    r = admin.post("/admin/buyers", data={"campaign": "auto", "id": "formed", "seconds": "30",
                                          "bid_url": "http://127.0.0.1:9001/bid",
                                          "bid_headers.X-Api-Key": "k-123", "hide_caller": "on"})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["bid_headers"] == {"X-Api-Key": "***"} and r.json()["hide_caller"] is True
    sealed = stored_headers(admin, "formed")
    assert sealed is not None and opened(admin, sealed) == {"X-Api-Key": "k-123"}
    r = admin.patch("/admin/buyers/formed", data={"bid_headers": ""})
    assert r.status_code == 200 and r.json()["bid_headers"] == {}
    r = admin.patch("/admin/campaigns/auto", data={"bid_deadline_ms": "300",
                                                   "publisher_share": "0.75", "min_bid": "2.5"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["bid_deadline_ms"], body["publisher_share"], body["min_bid"]) == (300, 0.75, 2.5)


def test_turning_static_into_rtb_and_back_says_what_to_clear(admin: TestClient) -> None:
    r = admin.patch("/admin/buyers/acme", json={"bid_url": "https://bids.acme.example/rtb"})
    assert r.status_code == 422
    assert r.json()["error"] == (
        "bid_url: a buyer with bid_url has no destination, payout or revenue (each bid brings "
        "its destination, and its amount is the revenue): clear destination and payout in the "
        "same change"
    )
    r = admin.patch("/admin/buyers/acme", json={"bid_url": "https://bids.acme.example/rtb",
                                                 "destination": None, "payout": None,
                                                 "bid_headers": {"Authorization": TOKEN}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["destination"], r.json()["payout"]) == (None, None)
    acme = next(b for b in catalog_campaign(admin, "auto").buyers if b.rule.id == "acme")
    assert acme.bidder is not None

    r = admin.patch("/admin/buyers/acme", json={"bid_url": None, **STATIC})
    assert r.status_code == 422
    assert r.json()["error"] == (
        "bid_url: a buyer without bid_url has no bid_headers or hide_caller: clear bid_headers "
        "in the same change"
    )
    r = admin.patch("/admin/buyers/acme", json={"bid_url": None, "bid_headers": None, **STATIC})
    assert r.status_code == 200, r.text
    assert (r.json()["destination"], r.json()["bid_url"], r.json()["bid_headers"]) == (
        STATIC["destination"], None, {})  # fmt: skip


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"bid_url": "ftp://bids.example/rtb"},
         "bid_url: must be an http:// or https:// URL with a host, got 'ftp://bids.example/rtb'"),
        ({"bid_url": "https://user:pw@bids.example/rtb"},
         "bid_url: no credentials in the URL: put them in bid_headers, which are sealed"),
        ({"bid_format": "openrtb"}, "bid_format: must be one of rtbridge, ringba, retreaver"),
        ({"bid_headers": {"Host": "x"}}, "bid_headers: Host: set by rtbridge itself"),
        ({"bid_headers": {"X-Seat": "***"}},
         "bid_headers: X-Seat: *** stands for the stored value, and none is stored"),
        ({"bid_headers": "Bearer x"},
         "bid_headers: must be a table of at most 16 header names and string values"),
        ({"hide_caller": "maybe"}, "hide_caller: must be true or false"),
        ({"payout": 5}, "body: payout: not for a buyer with bid_url"),
    ],
)  # fmt: skip
def test_a_bad_rtb_buyer_is_refused_and_changes_nothing(
    admin: TestClient, body: dict[str, Any], error: str
) -> None:
    made = admin.post("/admin/buyers", json=BIDDER)
    assert made.status_code == 201, made.text
    sealed, at = stored_headers(admin, "bidder"), version(admin)
    trail = admin.get("/admin/audit").json()
    r = admin.patch("/admin/buyers/bidder", json=body)
    assert r.status_code == 422 and r.json()["error"].startswith(error), r.text
    assert admin.get("/admin/buyers/bidder").json() == made.json()
    assert stored_headers(admin, "bidder") == sealed and version(admin) == at
    assert admin.get("/admin/audit").json() == trail
    r = admin.post("/admin/buyers", json={**BIDDER, "id": "new", **body})
    assert r.status_code == 422 and r.json()["error"].startswith(error), r.text
    assert admin.get("/admin/buyers/new").status_code == 404


def test_a_static_buyer_still_needs_destination_and_payout(admin: TestClient) -> None:
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "half", "seconds": 10})
    assert r.status_code == 422
    assert r.json()["error"] == "destination: required; payout: required"
    r = admin.post("/admin/buyers", json={"campaign": "auto", "id": "half", **STATIC,
                                          "hide_caller": True})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"] == "body: bid_headers and hide_caller: only for a buyer with bid_url"


def test_campaign_auction_settings_created_changed_and_reset(admin: TestClient) -> None:
    r = admin.post("/admin/campaigns", json={"id": "solar", "bid_deadline_ms": 400,
                                             "publisher_share": 0.8, "min_bid": 5})  # fmt: skip
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("bid_deadline_ms", "publisher_share", "min_bid")} == {
        "bid_deadline_ms": 400, "publisher_share": 0.8, "min_bid": 5.0}  # fmt: skip
    auction = catalog_campaign(admin, "solar").auction
    assert (auction.deadline_ms, auction.publisher_share, auction.min_bid) == (400, 0.8, 5.0)

    r = admin.patch("/admin/campaigns/solar", json={"publisher_share": 1})
    assert r.status_code == 200 and r.json()["publisher_share"] == 1.0
    r = admin.patch("/admin/campaigns/solar", json={"bid_deadline_ms": None, "min_bid": None,
                                                    "publisher_share": None})  # fmt: skip
    assert (r.json()["bid_deadline_ms"], r.json()["publisher_share"], r.json()["min_bid"]) == (
        250, 1.0, 0.01)  # the defaults  # fmt: skip
    trail = admin.get("/admin/audit?resource=campaign/solar").json()["entries"]
    assert [e["action"] for e in reversed(trail)] == ["create", "update", "update"]
    assert (trail[1]["old"]["publisher_share"], trail[1]["new"]["publisher_share"]) == (0.8, 1.0)


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"publisher_share": 0}, "publisher_share: must be more than 0 and at most 1"),
        ({"publisher_share": 1.5}, "publisher_share: must be more than 0 and at most 1"),
        ({"publisher_share": "half"}, "publisher_share: must be a number"),
        ({"bid_deadline_ms": 5}, "bid_deadline_ms: must be between 10 and 5000"),
        ({"bid_deadline_ms": 250.5}, "bid_deadline_ms: must be an integer"),
        ({"min_bid": 0}, "min_bid: must be >= 0.01"),
    ],
)  # fmt: skip
def test_a_bad_auction_setting_is_refused_and_changes_nothing(
    admin: TestClient, patch: dict[str, Any], error: str
) -> None:
    before, at = admin.get("/admin/campaigns/auto").json(), version(admin)
    r = admin.patch("/admin/campaigns/auto", json=patch)
    assert r.status_code == 422 and r.json()["error"] == error, r.text
    assert admin.get("/admin/campaigns/auto").json() == before and version(admin) == at
    r = admin.post("/admin/campaigns", json={"id": "new", **patch})
    assert r.status_code == 422 and r.json()["error"] == error
    assert admin.get("/admin/campaigns/new").status_code == 404


def test_a_campaign_made_with_an_rtb_buyer_seals_its_headers(admin: TestClient) -> None:
    bidder = {k: v for k, v in BIDDER.items() if k != "campaign"}
    r = admin.post("/admin/campaigns", json={"id": "solar", "buyers": [bidder]})
    assert r.status_code == 201, r.text
    assert admin.get("/admin/buyers/bidder").json()["bid_headers"] == {"Authorization": "***"}
    sealed = stored_headers(admin, "bidder")
    assert sealed is not None and opened(admin, sealed) == {"Authorization": TOKEN}
    made = admin.get("/admin/audit?resource=buyer/bidder").json()["entries"][0]
    assert made["new"]["bid_headers"] == "***" and TOKEN not in json.dumps(made)
    assert admin.delete("/admin/campaigns/solar").status_code == 204
    gone = admin.get("/admin/audit?resource=buyer/bidder").json()["entries"][0]
    assert gone["action"] == "delete" and gone["old"]["bid_headers"] == "***"


def test_a_masked_header_in_the_file_is_the_stored_one(
    admin: TestClient, sqlite_url: str, tmp_path: Path
) -> None:
    """A view written into the file shows ``"***"``: apply takes it for the stored value, as a
    PATCH does, and refuses one that has none (changing nothing)."""
    assert admin.post("/admin/buyers", json=BIDDER).status_code == 201
    sealed = stored_headers(admin, "bidder")
    path = tmp_path / "masked.toml"
    head = ('[[campaigns]]\nid = "auto"\n[[campaigns.buyers]]\nid = "bidder"\n'
            'bid_url = "https://bids.buyer.example/rtb"\nseconds = 60\n')  # fmt: skip
    engine = open_database(sqlite_url)
    try:
        path.write_text(head + 'bid_headers = { Authorization = "***", X-Seat = "***" }\n')
        with pytest.raises(ConfigError) as refused:
            apply_file(engine, path)
        assert refused.value.errors == [
            "buyer bidder: bid_headers: X-Seat: *** stands for the stored value, and none is "
            "stored (or it does not open); send the value"
        ]
        assert stored_headers(admin, "bidder") == sealed
        path.write_text(head + 'bid_headers = { Authorization = "***", X-Seat = "7" }\n')
        assert any(x.startswith("updated buyer bidder") for x in apply_file(engine, path).lines())
    finally:
        engine.dispose()
    resealed = stored_headers(admin, "bidder")
    assert resealed is not None and resealed != sealed
    assert opened(admin, resealed) == {"Authorization": TOKEN, "X-Seat": "7"}


def test_apply_of_the_same_headers_keeps_the_api_seal(
    admin: TestClient, sqlite_url: str, tmp_path: Path
) -> None:
    """One row builder for ``apply`` and the API: a file that lists the buyer an admin made,
    with the same headers, only adopts it — the seal stays."""
    assert admin.post("/admin/buyers", json={**BIDDER, "hide_caller": True}).status_code == 201
    sealed = stored_headers(admin, "bidder")
    path = tmp_path / "bidder.toml"
    path.write_text(
        '[[campaigns]]\nid = "auto"\nnumbers = ["+18339510260", "+18334583385"]\n'
        '[[campaigns.buyers]]\nid = "acme"\ndestination = "sip:queue@127.0.0.1:5070"\n'
        "payout = 90.0\nseconds = 120\nconcurrency = 10\ndaily_cap = 500\n"
        '[[campaigns.buyers]]\nid = "bidder"\nbid_url = "https://bids.buyer.example/rtb"\n'
        f'seconds = 60\nhide_caller = true\nbid_headers = {{ Authorization = "{TOKEN}" }}\n'
    )
    engine = open_database(sqlite_url)
    try:
        assert apply_file(engine, path).lines() == [
            "updated buyer bidder (managed_by 'admin' -> 'file')"
        ]
    finally:
        engine.dispose()
    assert stored_headers(admin, "bidder") == sealed
