"""``GET /admin/stats`` through the real app and a real SQLite file: the business figures by
any grouping, their totals, CSV, and every bad parameter named."""

from __future__ import annotations

import csv
import io

from starlette.testclient import TestClient

from tests.conftest import Clock
from tests.support.demo import KEY_OPEN


def _ping(admin: TestClient, caller: str) -> dict:
    answer = admin.post("/rtbs.json", params={"key": KEY_OPEN, "caller_number": caller})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_figures_by_hour_and_buyer_with_totals(admin: TestClient, clock: Clock) -> None:
    for i in range(3):
        _ping(admin, f"+1202555010{i}")
    clock.advance(3600)
    _ping(admin, "+12025550109")
    answer = admin.get("/admin/stats", params={"group_by": "hour,buyer"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(r["pings"], r["reserved"]) for r in body["rows"]] == [(3, 3), (1, 1)]
    first, second = body["rows"]
    assert first["hour"].endswith(":00:00Z") and first["hour"] < second["hour"]
    assert first["buyer"] == second["buyer"] and first["buyer"] is not None
    assert body["totals"] == {
        "pings": 4, "reserved": 4, "no_target": 0, "calls": 0, "answered": 0, "converted": 0,
        "talk_seconds": 0.0, "payout": 0.0, "revenue": 0.0, "margin": 0.0,
    }  # fmt: skip
    # The range keeps the hours it overlaps; filters narrow the rows and the totals alike.
    since = second["hour"]
    later = admin.get("/admin/stats", params={"since": since, "group_by": "day"}).json()
    assert later["totals"]["pings"] == 1 and len(later["rows"]) == 1
    assert later["rows"][0]["day"] == since[:10]
    none = admin.get("/admin/stats", params={"publisher": "nobody"}).json()
    assert none == {"rows": [], "totals": {**body["totals"], "pings": 0, "reserved": 0}}


def test_csv_has_the_rows_then_a_total_row(admin: TestClient) -> None:
    _ping(admin, "+12025550101")
    answer = admin.get("/admin/stats", params={"group_by": "campaign", "format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == ["campaign", "pings", "reserved", "no_target", "calls", "answered",
                             "converted", "talk_seconds", "payout", "revenue", "margin"]  # fmt: skip
    assert [r["campaign"] for r in rows][-1] == "total" and rows[-1]["pings"] == "1"


def test_bad_parameters_are_named_and_nothing_is_read(admin: TestClient) -> None:
    for params, words in [
        ({"group_by": "week"}, "group_by: comma-separated, of hour, day, publisher, campaign, "
                               "buyer, reason (got 'week')"),
        ({"group_by": "hour,day"}, "group_by: hour or day, not both"),
        ({"since": "yesterday"}, "since: "),
        ({"since": "2026-12-07T10:00:00Z", "until": "2026-12-07T09:00:00Z"},
         "until: must be after since"),
        ({"campaign": "bad campaign!"}, "campaign: "),
        ({"sort": "pings"}, "sort: unknown parameter"),
        ({"format": "xml"}, "format: one of json, csv"),
    ]:  # fmt: skip
        answer = admin.get("/admin/stats", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert words in answer.json()["error"], (params, answer.json())


def test_stats_need_an_admin_token(client: TestClient) -> None:
    assert client.get("/admin/stats").status_code == 401


def test_a_reservations_whole_story(admin: TestClient, sqlite_url: str) -> None:
    """The ping, the history, the call with its attempts, in one answer; unknown and
    malformed uuids are told apart."""
    from datetime import timedelta

    from rtbridge.storage import calls
    from rtbridge.storage.database import open_database
    from rtbridge.timestamps import utcnow

    uuid = _ping(admin, "+12025550142")["uuid"]
    engine = open_database(sqlite_url)
    calls.claim(engine, uuid=uuid, publisher_id="pub-1", now=utcnow(), agent="a", source="t")
    now = utcnow()
    calls.answered(engine, uuid=uuid, at=now)
    calls.ended(engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=200),
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=200)  # fmt: skip
    engine.dispose()
    answer = admin.get(f"/admin/rtbs/{uuid}")
    assert answer.status_code == 200, answer.text
    story = answer.json()
    assert story["reservation"]["uuid"] == uuid and story["reservation"]["status"] == "completed"
    assert story["reservation"]["caller_number"] == "+12025550142"
    assert [h["status"] for h in story["history"]] == ["pinged", "claimed", "connected",
                                                       "completed"]  # fmt: skip
    assert story["history"][0]["detail"].startswith("reserved ")
    verdicts = story["reservation"]["verdicts"]
    assert verdicts[story["reservation"]["buyer"]] == "chosen", verdicts
    assert story["call"]["converted"] is True and story["call"]["payout_earned"] == 90.0
    assert story["webhooks"] == [] and story["audit"] == []
    missing = admin.get("/admin/rtbs/00000000-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "no reservation" in missing.json()["error"]
    assert admin.get("/admin/rtbs/not-a-uuid").status_code == 422


def test_refusals_per_agent(admin: TestClient, sqlite_url: str) -> None:
    from sqlalchemy import text

    from rtbridge.storage import leases
    from rtbridge.storage.database import open_database

    engine = open_database(sqlite_url)
    with engine.begin() as conn:
        for name in ("sip-a", "sip-b"):
            conn.execute(text("INSERT INTO sipagent (name, started_at, seen_at, epoch, beats, "
                              "takeover_after) VALUES (:n, '2026-12-07 10:00:00', "
                              "'2026-12-07 10:00:00', 1, 1, 6)"), {"n": name})  # fmt: skip
    refusal = {"at": "2026-12-07T10:00:01.000Z", "source": "192.0.2.99", "transport": "UDP",
               "code": 401, "reason": "Unauthorized", "cause": "missing-credentials",
               "ruri_user": "x", "username": None}  # fmt: skip
    leases.note_refusals(engine, name="sip-a", refusals=[refusal])
    engine.dispose()
    every = admin.get("/admin/refusals").json()["agents"]
    assert [(a["agent"], a["refusals"]) for a in every] == [("sip-a", [refusal]), ("sip-b", [])]
    one = admin.get("/admin/refusals", params={"agent": "sip-b"}).json()["agents"]
    assert [a["agent"] for a in one] == ["sip-b"]
    assert admin.get("/admin/refusals", params={"agent": "no such!"}).status_code == 422


def test_hang_up_a_call_asks_its_agent_once_and_is_audited(
    admin: TestClient, sqlite_url: str
) -> None:
    from datetime import timedelta

    from rtbridge.storage import calls
    from rtbridge.storage.database import open_database
    from rtbridge.timestamps import utcnow

    uuid = _ping(admin, "+12025550150")["uuid"]
    engine = open_database(sqlite_url)
    calls.claim(engine, uuid=uuid, publisher_id="pub-1", now=utcnow(), agent="sip-a", source="t")
    assert calls.hangups_asked(engine, agent="sip-a") == []
    asked = admin.post(f"/admin/calls/{uuid}/hangup")
    assert asked.status_code == 202, asked.text
    assert asked.json()["agent"] == "sip-a" and asked.json()["uuid"] == uuid
    again = admin.post(f"/admin/calls/{uuid}/hangup")  # the same request: nothing new
    assert again.json()["requested_at"] == asked.json()["requested_at"]
    assert calls.hangups_asked(engine, agent="sip-a") == [uuid]
    assert calls.hangups_asked(engine, agent="sip-b") == []
    trail = admin.get("/admin/audit", params={"resource": f"call/{uuid}"}).json()["entries"]
    assert [e["action"] for e in trail] == ["hangup"]
    now = utcnow()
    calls.ended(engine, uuid=uuid, answer_at=None, end_at=now + timedelta(seconds=1),
                publisher_code=487, buyer_code=None, hangup_by="admin", duration=0)  # fmt: skip
    assert calls.hangups_asked(engine, agent="sip-a") == []  # ended: no longer asked
    engine.dispose()
    ended = admin.post(f"/admin/calls/{uuid}/hangup")
    assert ended.status_code == 409 and "ended already" in ended.json()["error"]
    assert admin.post("/admin/calls/00000000-0000-7000-8000-000000000000/hangup").status_code == 404
    assert admin.post("/admin/calls/nope/hangup").status_code == 422
