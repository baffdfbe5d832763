"""``GET /admin/calls`` with a call that failed over: every buyer dialled is in the call's
``attempts``, in order, times as the API writes them; the CSV holds their number and one
compact text. ``test_postgres.py`` runs it on PostgreSQL too."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from starlette.testclient import TestClient

from rtbridge.http.admin.openapi import openapi_document
from rtbridge.storage import calls
from rtbridge.timestamps import iso_utc
from tests.support.demo import KEY_OPEN
from tests.support.failover import BUSY, NO_ANSWER, SOURCE, add_backup_buyers, call_with_failover
from tests.support.openapi import conforms


def _ping(admin: TestClient) -> str:
    answer = admin.post("/rtbs.json", data={"key": KEY_OPEN})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["uuid"])


def test_the_call_log_lists_every_buyer_attempt(admin: TestClient) -> None:
    state = admin.app.state.rtbridge  # type: ignore[attr-defined]
    add_backup_buyers(state.engine)
    now = state.reservations.clock()
    plain = _ping(admin)  # a call still ringing its first buyer: no attempt has ended
    assert isinstance(calls.claim(state.engine, uuid=plain, publisher_id="pub-1", now=now,
                                  agent="t", source=SOURCE), calls.Claimed)  # fmt: skip
    uuid = _ping(admin)
    made = call_with_failover(state.engine, uuid=uuid, publisher="pub-1", now=now,
                              failures=[BUSY, NO_ANSWER])  # fmt: skip
    assert made.buyers == ["acme", "zenith", "bolt"]

    page = admin.get("/admin/calls")
    conforms(openapi_document(), page)
    items = {item["uuid"]: item for item in page.json()["items"]}
    assert items[plain]["attempts"] == []
    call = items[uuid]
    assert (call["buyer"], call["status"], call["buyer_code"]) == ("bolt", "completed", 200)
    assert [(a["n"], a["buyer"], a["final_code"], a["kind"]) for a in call["attempts"]] == [
        (1, "acme", 486, "busy"),
        (2, "zenith", 408, "no-answer"),
        (3, "bolt", 200, "answered"),
    ]
    first, _, last = call["attempts"]
    busy = made.attempts[0]
    rang = busy.started_at + timedelta(milliseconds=120)
    assert first == {
        "n": 1, "buyer": "acme", "destination": "sip:queue@127.0.0.1:5070",
        "started_at": iso_utc(busy.started_at), "provisional_at": iso_utc(rang),
        "final_code": 486, "reason": "Busy Here", "kind": "busy",
        "ended_at": iso_utc(busy.ended_at),
    }  # fmt: skip
    assert last["destination"] == "sip:bolt@127.0.0.1:5073" and last["ended_at"].endswith("Z")
    # the buyer filter is the call's buyer: the one that answered
    answered_by_bolt = admin.get("/admin/calls", params={"buyer": "bolt"}).json()["items"]
    assert [i["uuid"] for i in answered_by_bolt] == [uuid]

    exported = admin.get("/admin/calls", params={"format": "csv"})
    rows = {r["uuid"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert (rows[plain]["attempts"], rows[plain]["attempts_detail"]) == ("0", "")
    assert rows[uuid]["attempts"] == "3"
    assert rows[uuid]["attempts_detail"] == (
        "1 acme 486 busy; 2 zenith 408 no-answer; 3 bolt 200 answered"
    )
