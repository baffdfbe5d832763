"""``GET /admin/bids`` and the bids in a reservation's story (``GET /admin/rtbs/{uuid}``):
bid rows written through the table model (the auction that writes them has tests of its
own), listed newest first, filtered by ping, buyer, outcome and time, paged by cursor across
inserts, exported as CSV, refused by name when a filter is malformed, and every answer
matching the admin API's description."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session
from starlette.testclient import TestClient

from rtbridge.http.admin.openapi import openapi_document
from rtbridge.storage import listings
from rtbridge.storage.models import Bid
from tests.support.demo import KEY_OPEN
from tests.support.openapi import conforms

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _ping(admin: TestClient) -> str:
    answer = admin.post("/rtbs.json", data={"key": KEY_OPEN})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["uuid"])


def _bids(admin: TestClient, rows: list[dict[str, Any]]) -> list[int]:
    """Bid rows as the auction writes them; their ids, in the order given."""
    engine = admin.app.state.rtbridge.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        made = [Bid(**row) for row in rows]
        session.add_all(made)
        session.commit()
        return [int(b.id) for b in made if b.id is not None]


def _auction(admin: TestClient, uuid: str, at: datetime) -> list[int]:
    """One ping's auction: a winner, a beaten bid, a bidder past the deadline, one that
    declined and one whose answer was not a bid."""
    return _bids(admin, [
        {"reservation_uuid": uuid, "buyer_id": "b-slow", "at": at, "outcome": "timeout",
         "reason": "no answer within 250 ms"},
        {"reservation_uuid": uuid, "buyer_id": "b-low", "at": at, "outcome": "lost",
         "amount": 12.5, "latency_ms": 21.0, "bid_id": "low-1", "destination": "sip:q@low.example"},
        {"reservation_uuid": uuid, "buyer_id": "b-high", "at": at, "outcome": "won",
         "amount": 20.0, "latency_ms": 35.5, "bid_id": "=high-7", "destination": "+18005550100"},
        {"reservation_uuid": uuid, "buyer_id": "b-none", "at": at, "outcome": "no-bid",
         "latency_ms": 9.0},
        {"reservation_uuid": uuid, "buyer_id": "b-bad", "at": at, "outcome": "invalid",
         "reason": "bid: must be a finite number >= 0", "latency_ms": 12.0},
    ])  # fmt: skip


def _walk(admin: TestClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = admin.get("/admin/bids", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next"}
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items


def test_bids_newest_first_filtered(admin: TestClient) -> None:
    first, second = _ping(admin), _ping(admin)
    one = _auction(admin, first, T0)
    two = _auction(admin, second, T0 + timedelta(minutes=5))

    def ids(**params: Any) -> list[int]:
        return [row["id"] for row in _walk(admin, **params)]

    assert ids() == (one + two)[::-1]
    assert ids(rtb=first) == one[::-1] and ids(rtb=second.upper()) == two[::-1]
    assert ids(buyer="b-high") == [two[2], one[2]]
    assert ids(outcome="won") == [two[2], one[2]] and ids(outcome="error") == []
    assert ids(rtb=first, outcome="timeout") == [one[0]]
    assert ids(since="2026-12-07T12:05:00Z") == two[::-1]
    assert ids(until="2026-12-07T12:05:00Z") == one[::-1]  # exclusive
    assert ids(since="2026-12-07T13:05:00+01:00", until="2026-12-07T12:06:00Z") == two[::-1]
    assert ids(buyer="nobody") == [] and ids(buyer="", outcome="") == ids()
    row = admin.get("/admin/bids", params={"rtb": first, "outcome": "won"}).json()["items"][0]
    assert row == {"id": one[2], "at": "2026-12-07T12:00:00.000Z", "rtb": first, "buyer": "b-high",
                   "outcome": "won", "amount": 20.0, "latency_ms": 35.5, "reason": None,
                   "bid_id": "=high-7", "destination": "+18005550100"}  # fmt: skip


def test_bids_page_by_cursor_across_inserts(admin: TestClient) -> None:
    uuid = _ping(admin)
    made = _auction(admin, uuid, T0) + _auction(admin, uuid, T0)
    page = admin.get("/admin/bids", params={"limit": 4}).json()
    assert [r["id"] for r in page["items"]] == made[::-1][:4] and page["next"]
    later = _auction(admin, uuid, T0 + timedelta(seconds=1))  # lands before the first page
    rest = _walk(admin, limit=4, cursor=page["next"])
    assert [r["id"] for r in page["items"] + rest] == made[::-1]
    assert [r["id"] for r in _walk(admin, limit=3)] == (made + later)[::-1]
    # a cursor is this listing's own
    _ping(admin)  # two reservations: the RTB log has a next page
    rtbs = admin.get("/admin/rtbs", params={"limit": 1}).json()
    r = admin.get("/admin/bids", params={"cursor": rtbs["next"]})
    assert r.status_code == 422 and r.json()["error"].startswith(
        "cursor: not a cursor of /admin/bids"
    )
    calls_cursor = admin.get("/admin/bids", params={"limit": 1}).json()["next"]
    r = admin.get("/admin/calls", params={"cursor": calls_cursor})
    assert r.status_code == 422 and "not a cursor of /admin/calls" in r.json()["error"]


def test_bids_as_csv(admin: TestClient) -> None:
    uuid = _ping(admin)
    made = _auction(admin, uuid, T0)
    by_param = admin.get("/admin/bids", params={"format": "csv", "rtb": uuid})
    by_header = admin.get("/admin/bids", params={"rtb": uuid}, headers={"Accept": "text/csv"})
    assert by_param.status_code == by_header.status_code == 200
    assert by_param.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = by_param.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="rtbridge-bids-')
    assert by_param.text.splitlines()[0] == ",".join(listings.BID_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(by_param.text)))
    assert rows == list(csv.DictReader(io.StringIO(by_header.text)))
    assert [int(r["id"]) for r in rows] == made[::-1]
    won = next(r for r in rows if r["outcome"] == "won")
    # formula-safe: a bidder's id and an E.164 destination never run in a spreadsheet
    assert (won["bid_id"], won["destination"]) == ("'=high-7", "'+18005550100")
    assert won["amount"] == "20.0"
    assert won["at"] == "2026-12-07T12:00:00.000Z" and won["rtb"] == uuid
    nothing = admin.get("/admin/bids", params={"format": "csv", "buyer": "none"})
    assert nothing.text.splitlines() == [",".join(listings.BID_COLUMNS)]  # the header alone


def test_bad_bid_filters_are_422_naming_the_field(admin: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rtb": "nope"}, "rtb: not a reservation uuid"),
        ({"outcome": "winner"}, "outcome: one of won, lost, no-bid, timeout, error, invalid"),
        ({"buyer": "<x>"}, "buyer: must be 1-64 characters"),
        ({"since": "yesterday"}, "since: not an ISO 8601 time"),
        ({"limit": "0"}, "limit: must be between 1 and 1000"),
        ({"format": "xml"}, "format: one of json, csv"),
        ({"cursor": "garbage!"}, "cursor: not a cursor of /admin/bids"),
        ({"uuid": "x"}, "uuid: unknown parameter (use rtb, buyer, outcome, since, until, limit"),
        ({"campaign": "auto"}, "campaign: unknown parameter"),
    ]
    for params, message in cases:
        r = admin.get("/admin/bids", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"].startswith(message), (params, r.json())
    both = admin.get("/admin/bids", params={"rtb": "x", "outcome": "y"}).json()["error"]
    assert "rtb: not a reservation uuid" in both and "outcome: one of" in both  # all at once
    twice = admin.get("/admin/bids?buyer=a&buyer=b")
    assert twice.status_code == 422 and twice.json()["error"] == "buyer: given more than once"


def test_the_story_of_a_ping_holds_its_bids(admin: TestClient) -> None:
    uuid, other = _ping(admin), _ping(admin)
    _auction(admin, uuid, T0)
    _bids(admin, [{"reservation_uuid": other, "buyer_id": "b-high", "at": T0, "outcome": "won",
                   "amount": 1.0}])  # fmt: skip
    story = admin.get(f"/admin/rtbs/{uuid}").json()
    # the winner first, then by amount, then the bidders without a bid by how fast they answered
    assert [(b["buyer"], b["outcome"]) for b in story["bids"]] == [
        ("b-high", "won"), ("b-low", "lost"), ("b-none", "no-bid"), ("b-bad", "invalid"),
        ("b-slow", "timeout")]  # fmt: skip
    assert story["bids"][0]["destination"] == "+18005550100"
    assert (story["reservation"]["destination"], story["reservation"]["bid_id"]) == (None, None)
    assert "verdicts" in story["reservation"]  # beside the bids, as before
    assert admin.get(f"/admin/rtbs/{_ping(admin)}").json()["bids"] == []


def test_answers_match_the_description(admin: TestClient) -> None:
    doc = openapi_document()
    uuid = _ping(admin)
    _auction(admin, uuid, T0)
    for path in ("/admin/bids", f"/admin/bids?rtb={uuid}&limit=2", f"/admin/rtbs/{uuid}",
                 "/admin/bids?outcome=nope"):  # fmt: skip
        conforms(doc, admin.get(path))
    params = {p["name"] for p in doc["paths"]["/admin/bids"]["get"]["parameters"]}
    assert params == {"rtb", "buyer", "outcome", "since", "until", "limit", "cursor", "format"}
