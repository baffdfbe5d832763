"""Real-time bidding in the console: an RTB buyer made and edited through its form (headers as
``Name: value`` lines, shown masked, left empty kept, "clear" removed, never put back into a
page), marked "bids (<format>)" in the campaigns' buyers; a campaign's auction settings; and
a reservation's page listing its bids."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from rtbridge.storage.models import Bid
from tests.http.console.conftest import Console, notice_of
from tests.support.demo import KEY_OPEN

TOKEN = "Bearer sk-live-0123456789abcdef"
RTB = {"destination": "", "payout": "", "seconds": "60", "priority": "1", "weight": "1",
       "srtp": "off", "bid_url": "https://bids.buyer.example/rtb", "bid_format": "ringba"}  # fmt: skip


def _field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<small class="error" id="err-([\w-]+)">([^<]*)</small>', html))


def _sealed(console: Console, buyer: str) -> str | None:
    engine = console.client.app.state.rtbridge.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        value = conn.execute(text("SELECT bid_headers FROM buyer WHERE id = :id"),
                             {"id": buyer}).scalar_one()  # fmt: skip
    return None if value is None else str(value)


def _buyer(console: Console, buyer: str) -> Any:
    auth = {"Authorization": f"Bearer {console.token}"}
    return console.client.get(f"/admin/buyers/{buyer}", headers=auth).json()


def test_an_rtb_buyer_through_its_form(console: Console) -> None:
    made = console.post("/console/campaigns/auto/buyers", id="bidder", **RTB,
                        bid_headers=f"Authorization: {TOKEN}\n\nX-Seat: 42\n",
                        hide_caller="on")  # fmt: skip
    assert made.status_code == 303, made.text[:800]
    view = _buyer(console, "bidder")
    assert (view["bid_url"], view["bid_format"], view["hide_caller"]) == (
        "https://bids.buyer.example/rtb", "ringba", True)  # fmt: skip
    assert view["bid_headers"] == {"Authorization": "***", "X-Seat": "***"}
    assert (view["destination"], view["payout"]) == (None, None)

    page = console.client.get("/console/buyers/bidder").text
    assert TOKEN not in page and "sk-live" not in page
    stored = page.split('id="stored-headers"')[1].split("</small>")[0]
    assert "<code>Authorization: ***</code>" in stored and "<code>X-Seat: ***</code>" in stored
    box = re.search(r'<textarea name="bid_headers"[^>]*>([^<]*)</textarea>', page)
    assert box is not None and box.group(1) == ""  # write-only: the box starts empty
    assert 'name="bid_url" value="https://bids.buyer.example/rtb"' in page
    assert "<option selected>ringba</option>" in page
    assert 'name="hide_caller" checked' in page and 'name="bid_headers_clear"' in page
    campaigns = console.client.get("/console/campaigns").text
    row = re.search(r'<a href="/console/buyers/bidder">bidder</a>.*?</tr>', campaigns, re.S)
    assert row is not None and "bids (ringba)" in row.group(0)

    # saved as shown, the box left empty: the headers and their seal stay
    sealed = _sealed(console, "bidder")
    same = console.post("/console/buyers/bidder", **RTB, hide_caller="on")
    assert same.status_code == 303 and notice_of(same).endswith(": nothing changed.")
    assert _sealed(console, "bidder") == sealed

    # typed ones replace them all; the notice never shows a value
    replaced = console.post("/console/buyers/bidder", **RTB, hide_caller="on",
                            bid_headers="Authorization: Bearer other")  # fmt: skip
    assert replaced.status_code == 303
    assert notice_of(replaced) == "Saved buyer bidder of campaign auto: bid headers replaced."
    assert _buyer(console, "bidder")["bid_headers"] == {"Authorization": "***"}
    assert _sealed(console, "bidder") not in (None, sealed)

    # "clear" removes them; unticked hide_caller is no
    cleared = console.post("/console/buyers/bidder", **RTB, bid_headers_clear="on")
    assert cleared.status_code == 303
    assert notice_of(cleared) == ("Saved buyer bidder of campaign auto: bid headers cleared; "
                                  "hide caller yes → no.")  # fmt: skip
    view = _buyer(console, "bidder")
    assert (view["bid_headers"], view["hide_caller"]) == ({}, False)
    assert _sealed(console, "bidder") is None
    trail = console.client.get("/console/audit", params={"resource": "buyer/bidder"}).text
    assert TOKEN not in trail and "Bearer other" not in trail


def test_refusals_land_by_their_fields_and_keep_no_secret(console: Console) -> None:
    bad = console.post("/console/campaigns/auto/buyers", id="bidder",
                       **{**RTB, "bid_url": "ftp://bids.example/rtb"},
                       bid_headers=f"Authorization: {TOKEN}")  # fmt: skip
    assert bad.status_code == 422
    assert _field_errors(bad.text)["bid_url"].startswith("must be an http:// or https:// URL")
    assert TOKEN not in bad.text  # typed secrets are not put back into the page
    assert 'value="ftp://bids.example/rtb"' in bad.text  # the rest as typed

    bad = console.post("/console/campaigns/auto/buyers", id="bidder", **RTB,
                       bid_headers=f"Authorization {TOKEN}")  # fmt: skip
    assert bad.status_code == 422 and TOKEN not in bad.text
    assert _field_errors(bad.text)["bid_headers"] == "write one header per line as Name: value"
    bad = console.post("/console/campaigns/auto/buyers", id="bidder", **RTB,
                       bid_headers="Host: x")  # fmt: skip
    assert _field_errors(bad.text)["bid_headers"] == "Host: set by rtbridge itself"
    bad = console.post("/console/campaigns/auto/buyers", id="bidder", **{**RTB, "payout": "5"})
    assert bad.status_code == 422 and "payout: not for a buyer with bid_url" in bad.text
    assert console.client.get("/console/buyers/bidder").status_code == 404

    # a static buyer turned RTB must leave destination and payout empty
    acme = {"destination": "sip:queue@127.0.0.1:5070", "payout": "90", "seconds": "120",
            "priority": "1", "weight": "1", "srtp": "off"}  # fmt: skip
    turned = console.post("/console/buyers/acme", **acme, bid_url="https://bids.acme.example/b")
    assert turned.status_code == 422
    assert "payout: not for a buyer with bid_url" in turned.text
    assert _buyer(console, "acme")["bid_url"] is None
    turned = console.post("/console/buyers/acme", **{**acme, "destination": "", "payout": ""},
                          bid_url="https://bids.acme.example/b", bid_headers="X-Seat: 1")  # fmt: skip
    assert turned.status_code == 303, turned.text[:800]
    # and back: the stored headers go with the bid URL, or the page says to clear them
    back = console.post("/console/buyers/acme", **acme)
    assert back.status_code == 422
    assert _field_errors(back.text)["bid_url"] == (
        "a buyer without bid_url has no bid_headers or hide_caller: clear bid_headers in the "
        "same change")  # fmt: skip
    both = console.post("/console/buyers/acme", **acme, bid_headers="X-Seat: 2",
                        bid_headers_clear="on")  # fmt: skip
    assert _field_errors(both.text)["bid_headers"] == "type new headers or tick clear, not both"
    assert console.post("/console/buyers/acme", **acme, bid_headers_clear="on").status_code == 303
    assert _buyer(console, "acme")["destination"] == "sip:queue@127.0.0.1:5070"


def test_a_campaigns_auction_settings(console: Console) -> None:
    page = console.client.get("/console/campaigns").text
    form = page[page.index('id="failover-auto"') :].split("</form>")[0]
    assert 'name="bid_deadline_ms" value="250"' in form
    assert 'name="publisher_share" value="1.0"' in form and 'name="min_bid" value="0.01"' in form
    ticks = {f"failover-{k}": "on" for k in ("no-answer", "busy", "rejected", "unreachable")}
    saved = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="3",
                         bid_deadline_ms="300", publisher_share="0.8", min_bid="2.5")  # fmt: skip
    assert saved.status_code == 303
    assert notice_of(saved) == ("Saved campaign auto: bid deadline ms 250 → 300; publisher share "
                                "1.0 → 0.8; min bid 0.01 → 2.5.")  # fmt: skip
    auction = console.client.app.state.rtbridge.catalog.get().campaigns["auto"].auction  # type: ignore[attr-defined]
    assert (auction.deadline_ms, auction.publisher_share, auction.min_bid) == (300, 0.8, 2.5)
    bad = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="3",
                       bid_deadline_ms="300", publisher_share="2", min_bid="2.5")  # fmt: skip
    assert bad.status_code == 422
    assert _field_errors(bad.text)["publisher_share"] == "must be more than 0 and at most 1"
    assert 'name="publisher_share" value="2"' in bad.text  # as typed
    reset = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="3")
    assert reset.status_code == 303  # empty: the defaults
    auction = console.client.app.state.rtbridge.catalog.get().campaigns["auto"].auction  # type: ignore[attr-defined]
    assert (auction.deadline_ms, auction.publisher_share, auction.min_bid) == (250, 1.0, 0.01)


def test_a_reservations_page_lists_its_bids(console: Console) -> None:
    uuid = console.client.post("/rtbs.json", data={"key": KEY_OPEN}).json()["uuid"]
    quiet = console.client.post("/rtbs.json", data={"key": KEY_OPEN}).json()["uuid"]
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    engine = console.client.app.state.rtbridge.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.add_all([
            Bid(reservation_uuid=uuid, buyer_id="b-slow", at=at, outcome="timeout",
                reason="no answer within 250 ms"),
            Bid(reservation_uuid=uuid, buyer_id="b-low", at=at, outcome="lost", amount=12.5,
                latency_ms=21.04, bid_id="low-1"),
            Bid(reservation_uuid=uuid, buyer_id="b-high", at=at, outcome="won", amount=20.0,
                latency_ms=35.5, bid_id="high-7", destination="sip:q@high.example"),
        ])  # fmt: skip
        session.commit()
    page = console.client.get(f"/console/rtbs/{uuid}")
    assert page.status_code == 200
    table = page.text.split('id="bids"')[1].split("</table>")[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            for row in table.split("<tbody>")[1].split("</tr>")[:-1]]  # fmt: skip
    cells = [[re.sub(r"<[^>]+>", "", c).strip() for c in row] for row in rows]
    assert cells == [
        ["b-high", "won", "20.00", "35.5", "", "high-7"],
        ["b-low", "lost", "12.50", "21.0", "", "low-1"],
        ["b-slow", "timeout", "", "", "no answer within 250 ms", ""],
    ]
    assert 'id="verdicts"' in page.text  # beside the selection, as before
    assert 'id="bids"' not in console.client.get(f"/console/rtbs/{quiet}").text  # none asked


def test_a_campaigns_and_a_buyers_duplicate_rules(console: Console) -> None:
    """Issue 23: the campaign's duplicate window and point, a buyer's own over them."""
    ticks = {f"failover-{k}": "on" for k in ("no-answer", "busy", "rejected", "unreachable")}
    saved = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="3",
                         duplicate_window="3600", duplicate_after="converted")  # fmt: skip
    assert saved.status_code == 303
    assert "duplicate window 0 → 3600" in notice_of(saved)
    rules = console.client.app.state.rtbridge.catalog.get().campaigns["auto"].deduplicating  # type: ignore[attr-defined]
    assert {(r.duplicate_window, r.duplicate_after) for r in rules} == {(3600, "converted")}
    bad = console.post("/console/campaigns/auto/settings", **ticks, max_attempts="3",
                       duplicate_after="answered")  # fmt: skip
    assert bad.status_code == 422
    assert _field_errors(bad.text)["duplicate_after"] == "must be one of ping, connected, converted"
