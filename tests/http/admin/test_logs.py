"""``GET /admin/rtbs`` and ``GET /admin/calls``: real pings through the publisher API and real
call records through the SIP agent's storage calls, listed, filtered, paged across inserts,
exported as CSV (streamed by keyset pages, formula-safe), and refused by name when a filter
is malformed. ``test_admin_postgres.py`` runs the listing cases on PostgreSQL too."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session
from starlette.testclient import TestClient

from rtbridge.storage import calls, listings
from rtbridge.storage.models import CallRecord, Reservation
from rtbridge.storage.uuids import uuid7
from tests.support.demo import KEY_INBOUND, KEY_OPEN
from tests.support.keys import key_id

ACME_CONCURRENCY = 10  # deploy/demo.toml: past it, pings are no-target


def _state(admin: TestClient) -> Any:
    return admin.app.state.rtbridge  # type: ignore[attr-defined]


def _ping(admin: TestClient, key: str = KEY_OPEN, **params: str) -> str:
    answer = admin.post("/rtbs.json", data={"key": key, **params})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return str(body.get("rtb", body)["uuid"])


def _walk(admin: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = admin.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next"}
        items += body["items"]
        cursor = body["next"]
        if cursor is None:
            return items


def _call(admin: TestClient, uuid: str, *, seconds: float | None, code: int = 200,
          hangup_by: str = "buyer") -> None:  # fmt: skip
    """The storage calls the SIP agent makes: claim, then (unless None) answer and end."""
    state = _state(admin)
    now = state.reservations.clock()
    claimed = calls.claim(state.engine, uuid=uuid, publisher_id="pub-1", now=now, agent="t",
                          source="198.51.100.7:5060/UDP")  # fmt: skip
    assert isinstance(claimed, calls.Claimed), claimed
    if seconds is None:
        return
    answer_at = now if code == 200 else None
    if answer_at is not None:
        calls.answered(state.engine, uuid=uuid, at=now)
    calls.ended(state.engine, uuid=uuid, answer_at=answer_at, end_at=now + timedelta(seconds=seconds),
                publisher_code=code, buyer_code=code, hangup_by=hangup_by,
                duration=seconds if answer_at else 0.0)  # fmt: skip


def test_rtb_log_pages_newest_first_and_is_stable_under_inserts(admin: TestClient) -> None:
    first = [_ping(admin, caller_number=f"+1202555{i:04d}") for i in range(25)]
    page = admin.get("/admin/rtbs", params={"limit": 10}).json()
    assert [r["uuid"] for r in page["items"]] == first[::-1][:10]
    # pings arriving while someone pages: they land before the first page, never in the walk
    later = [_ping(admin) for _ in range(5)]
    rest = _walk(admin, "/admin/rtbs", limit=10, cursor=page["next"])
    assert [r["uuid"] for r in page["items"] + rest] == first[::-1]
    assert [r["uuid"] for r in _walk(admin, "/admin/rtbs", limit=7)] == (first + later)[::-1]
    newest = admin.get("/admin/rtbs", params={"limit": 1}).json()
    item = newest["items"][0]
    assert item["uuid"] == later[-1] and newest["next"] is not None
    assert item["created_at"].endswith("Z") and item["publisher"] == "pub-1"
    assert item["status"] == "no-target" and item["reason"] == "concurrency-cap-reached"
    reserved = admin.get("/admin/rtbs", params={"uuid": first[0]}).json()["items"][0]
    assert reserved["status"] == "reserved" and reserved["expires_at"].endswith("Z")
    assert reserved["caller_number"] == "+12025550000" and reserved["buyer"] == "acme"
    assert admin.get("/admin/rtbs").json()["next"] is None  # 30 rows: one default page (100)


def test_rtb_log_filters(admin: TestClient) -> None:
    made = [_ping(admin, caller_number=f"+1202555{i:04d}") for i in range(12)]
    inbound = _ping(admin, KEY_INBOUND, caller_number="+12025550001", source_id="s-7")

    def uuids(**params: str) -> list[str]:
        return [r["uuid"] for r in _walk(admin, "/admin/rtbs", **params)]

    assert uuids(status="reserved") == made[:ACME_CONCURRENCY][::-1]
    assert uuids(status="no-target") == [inbound, *made[ACME_CONCURRENCY:][::-1]]
    assert uuids(reason="concurrency-cap-reached") == uuids(status="no-target")
    assert uuids(buyer="acme") == uuids(status="reserved")
    assert uuids(key=key_id(admin, KEY_INBOUND)) == [inbound]
    assert uuids(campaign="auto", publisher="pub-1") == [inbound, *made[::-1]]
    assert uuids(publisher="nobody") == [] and uuids(campaign="nothing") == []
    # a caller number is read as in a ping: 11 NANP digits are +1...
    assert uuids(caller_number="12025550001") == [inbound, made[1]]
    assert uuids(uuid=made[3].upper()) == [made[3]]
    assert uuids(status="expired") == []
    _state(admin).reservations.clock.advance(61)  # past the TTL: readers see expired
    assert uuids(status="expired") == made[:ACME_CONCURRENCY][::-1]
    assert uuids(status="reserved") == []
    created = admin.get("/admin/rtbs", params={"uuid": made[0]}).json()["items"][0]["created_at"]
    assert uuids(since=created, until=created.replace("Z", "+00:00")) == []
    assert made[0] in uuids(since=created) and made[0] not in uuids(until=created)
    assert uuids(until="2000-01-01T00:00:00Z") == []
    assert uuids(publisher="", status="") == uuids()  # an empty filter filters nothing


def test_call_log_filters_and_pages(admin: TestClient) -> None:
    done, busy, live = (_ping(admin, caller_number=f"+1202555010{i}") for i in range(3))
    _call(admin, done, seconds=130)
    _call(admin, busy, seconds=0, code=486)
    _call(admin, live, seconds=None)
    _ping(admin)  # a reservation without a call is not in the call log

    def uuids(**params: Any) -> list[str]:
        return [r["uuid"] for r in _walk(admin, "/admin/calls", **params)]

    assert uuids() == [live, busy, done]
    assert uuids(limit=1) == [live, busy, done]  # three pages
    assert uuids(status="completed") == [done] and uuids(status="failed") == [busy]
    assert uuids(status="claimed") == [live]
    assert uuids(converted="true") == [done] and uuids(converted="0") == [busy]
    assert uuids(buyer_code=486) == [busy] and uuids(publisher_code="200") == [done]
    assert uuids(hangup_by="buyer") == [busy, done] and uuids(hangup_by="agent") == []
    assert uuids(min_duration=120) == [done] and uuids(min_duration="130.5") == []
    assert uuids(via="sip", buyer="acme", publisher="pub-1", campaign="auto") == [live, busy, done]
    assert uuids(via="pstn") == [] and uuids(uuid=busy) == [busy]
    assert uuids(until="2000-01-01T00:00:00Z") == []
    row = admin.get("/admin/calls", params={"uuid": done}).json()["items"][0]
    assert row["invite_at"].endswith("Z") and row["end_at"].endswith("Z")
    assert row["duration"] == 130.0 and row["converted"] is True
    # No revenue in the file: the buyer pays what the publisher is paid, a margin of 0.
    assert (row["payout_earned"], row["revenue_earned"], row["margin_earned"]) == (90.0, 90.0, 0)
    assert row["caller_number"] == "+12025550100" and row["hangup_by"] == "buyer"
    assert row["status"] == "completed" and row["source"] == "198.51.100.7:5060/UDP"


def test_bad_filters_are_422_naming_the_field(admin: TestClient) -> None:
    _ping(admin)
    _ping(admin)
    rtb_cursor = admin.get("/admin/rtbs", params={"limit": 1}).json()["next"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/admin/rtbs", {"since": "yesterday"}, "since: not an ISO 8601 time"),
        ("/admin/rtbs", {"until": "2026-01-01T00:00"}, "until: needs a time zone offset"),
        ("/admin/rtbs", {"status": "done"}, "status: one of reserved, confirmed"),
        ("/admin/rtbs", {"limit": "0"}, "limit: must be between 1 and 1000"),
        ("/admin/rtbs", {"limit": "1001"}, "limit: must be between 1 and 1000"),
        ("/admin/rtbs", {"limit": "ten"}, "limit: must be an integer"),
        ("/admin/rtbs", {"caller_number": "abc"}, "caller_number: not an E.164 number"),
        ("/admin/rtbs", {"uuid": "nope"}, "uuid: not a reservation uuid"),
        ("/admin/rtbs", {"publisher": "<x>"}, "publisher: must be 1-64 characters"),
        ("/admin/rtbs", {"format": "xml"}, "format: one of json, csv"),
        ("/admin/rtbs", {"publisher_id": "pub-1"}, "publisher_id: unknown parameter"),
        ("/admin/rtbs", {"cursor": "garbage!"}, "cursor: not a cursor of /admin/rtbs"),
        ("/admin/calls", {"cursor": rtb_cursor}, "cursor: not a cursor of /admin/calls"),
        ("/admin/calls", {"status": "no-target"}, "status: one of claimed, connected"),
        ("/admin/calls", {"converted": "maybe"}, "converted: must be true or false"),
        ("/admin/calls", {"buyer_code": "99"}, "buyer_code: must be between 100 and 699"),
        ("/admin/calls", {"publisher_code": "2OO"}, "publisher_code: must be an integer"),
        ("/admin/calls", {"min_duration": "-1"}, "min_duration: must be >= 0"),
        ("/admin/calls", {"min_duration": "nan"}, "min_duration: must be a number"),
        ("/admin/calls", {"via": "fax"}, "via: one of sip, pstn"),
        ("/admin/calls", {"key": "k"}, "key: unknown parameter"),
    ]
    for path, params, message in cases:
        r = admin.get(path, params=params)
        assert r.status_code == 422, (path, params, r.text)
        assert r.json()["error"].startswith(message), (params, r.json())
    twice = admin.get("/admin/rtbs?status=reserved&status=expired")
    assert twice.status_code == 422 and twice.json()["error"] == "status: given more than once"
    both = admin.get("/admin/calls", params={"since": "x", "via": "fax"}).json()["error"]
    assert "since: not an ISO 8601 time" in both and "via: one of sip, pstn" in both  # all at once
    # an offset's "+" sent unescaped arrives as a space: still read as the offset
    spaced = admin.get("/admin/rtbs?since=2000-01-01T00:00:00+00:00")
    assert spaced.status_code == 200 and len(spaced.json()["items"]) == 2
    csv_bad = admin.get("/admin/rtbs", params={"status": "x"}, headers={"Accept": "text/csv"})
    assert csv_bad.status_code == 422 and csv_bad.headers["content-type"] == "application/json"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_is_formula_safe_and_negotiated(admin: TestClient) -> None:
    sources = ('=HYPERLINK("http://x")', "@SUM(A1)", "-2+3", "plain")
    uuids = [_ping(admin, caller_number=f"+1202555011{i}", source_id=s)
             for i, s in enumerate(sources)]  # fmt: skip
    _call(admin, uuids[0], seconds=61)
    by_header = admin.get("/admin/rtbs", headers={"Accept": "text/csv"})
    by_param = admin.get("/admin/rtbs", params={"format": "csv"})
    assert by_header.status_code == by_param.status_code == 200
    assert by_header.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = by_header.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="rtbridge-rtbs-')
    assert disposition.endswith('.csv"')
    rows = _rows(by_header.text)
    assert rows == _rows(by_param.text)
    assert by_header.text.splitlines()[0].startswith("created_at,uuid,key_id,publisher")
    assert [r["uuid"] for r in rows] == uuids[::-1]
    assert [r["source_id"] for r in rows] == ["plain", "'-2+3", "'@SUM(A1)",
                                              "'=HYPERLINK(\"http://x\")"]  # fmt: skip
    assert [r["caller_number"] for r in rows] == [f"'+1202555011{i}" for i in (3, 2, 1, 0)]
    assert all(r["created_at"].endswith("Z") for r in rows)
    # format=json wins over the header; a browser's Accept is not a CSV request
    assert admin.get("/admin/rtbs", params={"format": "json"},
                     headers={"Accept": "text/csv"}).json()["items"]  # fmt: skip
    browser = "text/html,application/xhtml+xml,*/*;q=0.8"
    assert admin.get("/admin/rtbs", headers={"Accept": browser}).json()["items"]
    exported = _rows(admin.get("/admin/calls", params={"format": "csv"}).text)
    assert [r["uuid"] for r in exported] == [uuids[0]]
    assert exported[0]["duration"] == "61.0" and exported[0]["converted"] == "False"
    nothing = admin.get("/admin/calls", params={"format": "csv", "buyer": "none"})
    assert nothing.text.splitlines() == [",".join(listings.CALL_COLUMNS)]  # the header alone


def _bulk(engine: Engine, n: int) -> list[str]:
    """``n`` reservations, a completed call on each, written through the table models: as many
    as pings would make, without ``n`` round trips."""
    start = datetime.now(UTC) - timedelta(hours=1)
    stamps = [start + timedelta(milliseconds=i) for i in range(n)]
    uuids = sorted(uuid7() for _ in range(n))
    with Session(engine) as session:
        for i, (uuid, at) in enumerate(zip(uuids, stamps, strict=True)):
            session.add(Reservation(uuid=uuid, key_id="k", publisher_id="pub-1", campaign_id="auto",
                                    buyer_id="acme", status="completed", created_at=at,
                                    updated_at=at, caller_number=f"+1202{i:07d}"))  # fmt: skip
        session.flush()
        for uuid, at in zip(uuids, stamps, strict=True):
            session.add(CallRecord(reservation_uuid=uuid, invite_at=at, end_at=at, duration=1.0,
                                   converted=False, hangup_by="=cmd"))  # fmt: skip
        session.commit()
    return uuids


def test_csv_streams_every_row_in_keyset_pages(admin: TestClient) -> None:
    engine = _state(admin).engine
    uuids = _bulk(engine, 2300)
    queries: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "FROM reservation" in statement or "FROM callrecord" in statement:
            queries.append(statement)

    for path, name in (("/admin/rtbs", "rtbs"), ("/admin/calls", "calls")):
        queries.clear()
        answer = admin.get(path, params={"format": "csv", "publisher": "pub-1"})
        assert (
            answer.status_code == 200
            and f"rtbridge-{name}-" in answer.headers["content-disposition"]
        )
        assert "content-length" not in answer.headers  # streamed, not built then sent
        rows = _rows(answer.text)
        assert [r["uuid"] for r in rows] == uuids[::-1]
        assert len(queries) == 3, queries  # 1000 + 1000 + 300: one keyset page at a time
    assert {r["hangup_by"] for r in rows} == {"'=cmd"}
    # from a cursor on: the rows older than the page it came from
    first = admin.get("/admin/calls", params={"limit": 1000}).json()["next"]
    cursor = admin.get("/admin/calls", params={"limit": 1000, "cursor": first}).json()["next"]
    tail = _rows(admin.get("/admin/calls", params={"format": "csv", "cursor": cursor}).text)
    assert [r["uuid"] for r in tail] == uuids[:300][::-1]
    event.remove(engine, "before_cursor_execute", _count)
