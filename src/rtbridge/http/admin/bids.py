"""The bid log of the admin API (``GET /admin/bids``): every RTB buyer's answer to every ping
(``bidding/`` writes them, one row per bidder asked), filtered by ping, buyer, outcome and
time, as JSON pages or a streamed CSV download — the RTB and call logs' query, cursors and
CSV (:mod:`rtbridge.http.admin.logs`), so the three listings page and refuse alike.

A room of its own beside ``logs.py``: bids are rows of the auction (one per bidder asked per
ping, kept ``bid_retention_days``), not of the reservation or the call, and their filters
are the auction's (``outcome``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.config import fields as f
from rtbridge.http import csvfile
from rtbridge.http import handlers as service
from rtbridge.http.admin.logs import (
    COMMON,
    Query,
    cursor_key,
    integer_key,
    next_cursor,
    one_of,
    page_limit,
    query_time,
    reservation_uuid,
    wants_csv,
)
from rtbridge.http.responses import json_response
from rtbridge.storage import listings

BID_PARAMS = ("rtb", "buyer", "outcome", "since", "until", *COMMON)


async def list_bids(request: Request) -> Response:
    q = Query(request, BID_PARAMS)
    filters = {
        "rtb": q.read("rtb", reservation_uuid),
        "buyer": q.read("buyer", f.identifier),
        "outcome": q.read("outcome", one_of(listings.BID_OUTCOMES)),
        "since": q.read("since", query_time),
        "until": q.read("until", query_time),
    }
    before = q.read("cursor", cursor_key("bids", integer_key))
    limit, csv = page_limit(q), wants_csv(request, q)
    q.done()
    if csv:
        pages = service.pages(request, listings.bid_log, before=before, **filters)
        return csvfile.download("bids", listings.BID_COLUMNS, pages)
    page = await service.read(request, listings.bid_log, **filters, before=before, limit=limit)
    after = next_cursor("bids", page.next_before) if page.next_before is not None else None
    return json_response({"items": page.rows, "next": after})
