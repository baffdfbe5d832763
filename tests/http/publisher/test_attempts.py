"""The look-up's ``call.attempts`` after a failover: each buyer dialled, in order, as the
declared schema says — without which buyer it was or where it was dialled, which the
publisher API never tells."""

from __future__ import annotations

from starlette.testclient import TestClient

from rtbridge.http.publisher.openapi import openapi_document
from rtbridge.storage import calls
from tests.support.demo import KEY_OPEN
from tests.support.failover import (
    BACKUPS,
    BUSY,
    NO_ANSWER,
    SOURCE,
    add_backup_buyers,
    call_with_failover,
)
from tests.support.openapi import conforms


def _ping(client: TestClient) -> str:
    answer = client.post("/rtbs.json", data={"key": KEY_OPEN})
    assert answer.status_code == 200 and answer.json()["status"] == "reserved", answer.text
    return str(answer.json()["uuid"])


def _lookup(client: TestClient, uuid: str) -> dict:
    answer = client.get(f"/rtbs/{uuid}.json", params={"key": KEY_OPEN})
    conforms(openapi_document(), answer)
    for name in ("acme", *BACKUPS, "127.0.0.1"):  # buyers, their destinations
        assert name not in answer.text
    return dict(answer.json())


def test_the_look_up_shows_each_attempt_but_not_the_buyers(client: TestClient) -> None:
    state = client.app.state.rtbridge  # type: ignore[attr-defined]
    add_backup_buyers(state.engine)
    now = state.reservations.clock()
    ringing = _ping(client)
    calls.claim(state.engine, uuid=ringing, publisher_id="pub-1", now=now, agent="t",
                source=SOURCE)  # fmt: skip
    assert _lookup(client, ringing)["call"]["attempts"] == []  # none has ended yet

    uuid = _ping(client)
    made = call_with_failover(state.engine, uuid=uuid, publisher="pub-1", now=now,
                              failures=[BUSY, NO_ANSWER])  # fmt: skip
    call = _lookup(client, uuid)["call"]
    assert [(a["n"], a["final_code"], a["kind"]) for a in call["attempts"]] == [
        (1, 486, "busy"), (2, 408, "no-answer"), (3, 200, "answered")]  # fmt: skip
    first = call["attempts"][0]
    assert set(first) == {"n", "started_at", "provisional_at", "final_code", "kind", "ended_at"}
    assert first["started_at"] < first["provisional_at"] < first["ended_at"]
    assert first["ended_at"].endswith("Z")
    assert call["answered_at"] == call["attempts"][-1]["ended_at"]
    assert len(made.attempts) == 3


def test_a_call_every_buyer_failed(client: TestClient) -> None:
    state = client.app.state.rtbridge  # type: ignore[attr-defined]
    add_backup_buyers(state.engine)
    uuid = _ping(client)
    call_with_failover(state.engine, uuid=uuid, publisher="pub-1",
                       now=state.reservations.clock(), failures=[BUSY, NO_ANSWER],
                       answered=False)  # fmt: skip
    looked = _lookup(client, uuid)
    assert looked["status"] == "failed" and looked["call"]["sip_code"] == 486
    assert [a["kind"] for a in looked["call"]["attempts"]] == ["busy", "no-answer", "busy"]
