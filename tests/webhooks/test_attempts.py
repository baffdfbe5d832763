"""``call.attempt_failed``: one event per buyer that failed a call, for the publisher and for
that buyer alone — not for the buyer the call went on to — with the attempt in the body;
the call's other events go to the buyer each belongs to. On both databases, and through a
running sender to real receivers."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from rtbridge.storage.engine import make_engine
from rtbridge.storage.reservations import record_event
from rtbridge.storage.sql import transaction
from rtbridge.timestamps import iso_utc, utcnow
from rtbridge.webhooks import outbox
from rtbridge.webhooks.sender import Sender, SenderOptions
from tests.support.failover import (
    BUSY,
    NO_ANSWER,
    add_backup_buyers,
    call_with_failover,
)
from tests.webhooks.conftest import MASTER, AppFactory, ping
from tests.webhooks.receiver import receiver


def _hook(client: TestClient, **raw: Any) -> dict[str, Any]:
    r = client.post("/admin/webhooks", json={"url": "http://127.0.0.1:9/hook", **raw})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _deliveries(engine: Engine) -> dict[int, list[dict[str, Any]]]:
    """Each webhook's bodies, in the order made."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT webhook_id, body FROM webhookdelivery ORDER BY id"))
        got: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for hook, body in rows:
            got[hook].append(json.loads(body))
    return got


def _types(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in bodies]


@pytest.mark.parametrize(
    "database",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def test_each_failed_attempt_is_an_event_for_the_publisher_and_that_buyer(
    make_app: AppFactory, database: str, request: pytest.FixtureRequest
) -> None:
    db_url = str(request.getfixturevalue(f"{database}_url"))
    client = make_app(db_url)
    engine = make_engine(db_url)
    try:
        add_backup_buyers(engine)
        publisher = _hook(client, publisher="pub-1")  # every event (the default)
        only_failed = _hook(client, publisher="pub-1", events=["attempt_failed"])
        assert only_failed["events"] == ["attempt_failed"]
        acme = _hook(client, buyer="acme")
        zenith = _hook(client, buyer="zenith")
        bolt = _hook(client, buyer="bolt")
        uuid = ping(client)
        made = call_with_failover(engine, uuid=uuid, publisher="pub-1", now=utcnow(),
                                  failures=[BUSY, NO_ANSWER])  # fmt: skip
        assert made.buyers == ["acme", "zenith", "bolt"]
        outbox.dispatch(engine, now=utcnow())
        got = _deliveries(engine)
    finally:
        engine.dispose()

    assert _types(got[publisher["id"]]) == [
        "reservation.reserved", "call.claimed", "call.attempt_failed", "call.attempt_failed",
        "call.answered", "call.completed", "call.converted"]  # fmt: skip
    assert _types(got[only_failed["id"]]) == ["call.attempt_failed"] * 2
    # each buyer hears of its own part: the claim and its failure are acme's, the rest bolt's
    assert _types(got[acme["id"]]) == ["reservation.reserved", "call.claimed",
                                       "call.attempt_failed"]  # fmt: skip
    assert _types(got[zenith["id"]]) == ["call.attempt_failed"]
    assert _types(got[bolt["id"]]) == ["call.answered", "call.completed", "call.converted"]

    busy, timed_out = got[only_failed["id"]]
    first = made.attempts[0]
    assert busy["at"] == iso_utc(first.ended_at)
    data = busy["data"]
    assert (data["uuid"], data["status"], data["buyer"]) == (uuid, "claimed", "acme")
    assert data["attempt"] == {
        "n": 1, "buyer": "acme", "started_at": iso_utc(first.started_at),
        "provisional_at": iso_utc(first.provisional_at) if first.provisional_at else None,
        "final_code": 486, "reason": "Busy Here", "kind": "busy",
        "ended_at": iso_utc(first.ended_at),
    }  # fmt: skip
    assert timed_out["data"]["buyer"] == "zenith"
    assert (timed_out["data"]["attempt"]["n"], timed_out["data"]["attempt"]["kind"]) == (
        2, "no-answer")  # fmt: skip
    assert got[zenith["id"]][0]["data"]["attempt"] == timed_out["data"]["attempt"]
    # the call's attempts as its publisher's look-up shows them: no buyer, no destination
    done = next(b for b in got[publisher["id"]] if b["type"] == "call.completed")["data"]
    assert done["buyer"] == "bolt"
    assert [(a["n"], a["kind"]) for a in done["call"]["attempts"]] == [
        (1, "busy"), (2, "no-answer"), (3, "answered")]  # fmt: skip
    assert "buyer" not in done["call"]["attempts"][0]
    assert "127.0.0.1" not in json.dumps(got[publisher["id"]])


def test_a_failed_attempt_no_attempt_row_matches_goes_to_no_buyer(
    make_app: AppFactory, sqlite_url: str
) -> None:
    """A history row whose attempt cannot be found still tells the publisher; no buyer's
    webhook gets it, since which buyer failed is not known."""
    client = make_app(sqlite_url)
    publisher = _hook(client, publisher="pub-1", events=["attempt_failed"])
    acme = _hook(client, buyer="acme")
    uuid = ping(client)
    engine = make_engine(sqlite_url)
    try:
        with transaction(engine, write=True) as db:
            record_event(db, uuid, "attempt-failed", utcnow(), "buyer acme: busy, 486")
        outbox.dispatch(engine, now=utcnow())
        got = _deliveries(engine)
    finally:
        engine.dispose()
    (body,) = got[publisher["id"]]
    assert body["type"] == "call.attempt_failed" and body["data"]["attempt"] is None
    assert _types(got[acme["id"]]) == ["reservation.reserved"]


def test_a_running_sender_delivers_them_signed(make_app: AppFactory, sqlite_url: str) -> None:
    client = make_app(sqlite_url)
    engine = make_engine(sqlite_url)
    add_backup_buyers(engine)
    with receiver() as pub_box, receiver() as zenith_box:
        pub_box.secret = _hook(client, publisher="pub-1", url=pub_box.url,
                               events=["attempt_failed"])["secret"]  # fmt: skip
        zenith_box.secret = _hook(client, buyer="zenith", url=zenith_box.url)["secret"]
        sender = Sender(engine, MASTER, SenderOptions(interval=0.05, timeout=2.0))
        sender.start()
        try:
            call_with_failover(engine, uuid=ping(client), publisher="pub-1", now=utcnow(),
                               failures=[BUSY, NO_ANSWER])  # fmt: skip
            to_publisher = pub_box.wait_for(2)
            (to_zenith,) = zenith_box.wait_for(1)
        finally:
            sender.stop()
            engine.dispose()
    assert all(r.verified for r in (*pub_box.got, *zenith_box.got))
    kinds = sorted(r.body["data"]["attempt"]["kind"] for r in to_publisher)
    assert kinds == ["busy", "no-answer"]
    assert to_zenith.body["type"] == "call.attempt_failed"
    assert to_zenith.body["data"]["attempt"]["buyer"] == "zenith"
