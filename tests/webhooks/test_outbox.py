"""The outbox on both databases: events become deliveries once, for the subscriptions that
match and existed then (once even when two senders read them); claims lease; outcomes
settle only their own attempt."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import text
from starlette.testclient import TestClient

from rtbridge.storage.engine import make_engine
from rtbridge.timestamps import utcnow
from rtbridge.webhooks import outbox
from tests.webhooks.conftest import KEY, AppFactory, ping


def _create(client: TestClient, **raw: object) -> dict:
    r = client.post("/admin/webhooks", json={"url": "http://127.0.0.1:9/hook", **raw})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_events_become_deliveries_once_for_matching_subscriptions(
    make_app: AppFactory, db_url: str
) -> None:
    client = make_app(db_url)
    before = ping(client, caller_number="+12025550101")  # before any webhook: not delivered
    mine = _create(client, publisher="pub-1")
    _create(client, buyer="acme", events=["cancelled"])
    _create(client, buyer="acme", events=["failed"])
    engine = make_engine(db_url)
    try:
        uuid = ping(client, caller_number="+12025550102")
        r = client.put(f"/rtbs/{uuid}.json", params={"key": KEY, "status": "cancelled"})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        now = utcnow()
        # pub-1's: reserved and cancelled; acme's "cancelled" one: cancelled; "failed": none
        assert outbox.dispatch(engine, now=now) == 3
        assert outbox.dispatch(engine, now=now) == 0
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT webhook_id, event_type, reservation_uuid, body FROM webhookdelivery "
                "ORDER BY id")).all()  # fmt: skip
            pending = conn.execute(text(
                "SELECT count(*) FROM reservation WHERE webhook_pending")).scalar()  # fmt: skip
        assert pending == 0
        assert before not in {r.reservation_uuid for r in rows}
        assert sorted((r.webhook_id, r.event_type) for r in rows) == sorted([
            (mine["id"], "reservation.reserved"), (mine["id"], "reservation.cancelled"),
            (mine["id"] + 1, "reservation.cancelled")])  # fmt: skip
        reserved = next(json.loads(r.body) for r in rows if r.event_type.endswith("reserved"))
        assert reserved["type"] == "reservation.reserved" and reserved["at"].endswith("Z")
        data = reserved["data"]
        assert data["uuid"] == uuid and data["status"] == "reserved"
        assert data["publisher"] == "pub-1" and data["buyer"] == "acme"
        assert data["caller_number"] == "+12025550102" and data["payout"] is not None
    finally:
        engine.dispose()


def test_claims_lease_and_outcomes_settle_their_own_attempt(
    make_app: AppFactory, db_url: str
) -> None:
    client = make_app(db_url)
    hook = _create(client, publisher="pub-1", events=["reserved"])
    ping(client)
    engine = make_engine(db_url)
    try:
        now = utcnow()
        assert outbox.dispatch(engine, now=now) == 1
        lease = now + timedelta(seconds=30)
        (first,) = outbox.claim(engine, now=now, limit=8, lease_until=lease)
        assert first.attempts == 1 and first.webhook_id == hook["id"]
        assert outbox.claim(engine, now=now, limit=8, lease_until=lease) == []  # leased
        # the lease ran out (sender killed): taken again, a second attempt
        (second,) = outbox.claim(
            engine, now=lease, limit=8, lease_until=lease + timedelta(seconds=30)
        )
        assert second.id == first.id and second.attempts == 2
        # the first sender's late failure must not overwrite the second attempt
        outbox.settle(engine, [outbox.Result(first, ok=False, code=500, retry_at=now)], now=now)
        assert outbox.claim(engine, now=lease, limit=8, lease_until=lease) == []
        outbox.settle(engine, [outbox.Result(second, ok=True, code=204)], now=now)
        assert outbox.pending_count(engine) == 0
        r = client.get(f"/admin/webhooks/{hook['id']}/deliveries")
        (view,) = r.json()["deliveries"]
        assert view["status"] == "delivered" and view["attempts"] == 2 and view["last_code"] == 204
        # redeliver: due again at once, attempts start over
        r = client.post(f"/admin/webhooks/{hook['id']}/deliveries/{first.id}/redeliver")
        assert r.status_code == 200 and r.json()["status"] == "pending"
        (again,) = outbox.claim(engine, now=utcnow(), limit=8, lease_until=lease)
        assert again.id == first.id and again.attempts == 1
    finally:
        engine.dispose()


def test_a_disabled_webhook_keeps_its_deliveries_waiting(make_app: AppFactory, db_url: str) -> None:
    client = make_app(db_url)
    hook = _create(client, publisher="pub-1", events=["reserved"])
    ping(client)
    engine = make_engine(db_url)
    try:
        assert outbox.dispatch(engine, now=utcnow()) == 1
        assert (
            client.patch(f"/admin/webhooks/{hook['id']}", json={"enabled": False}).status_code
            == 200
        )
        far = utcnow() + timedelta(hours=1)
        assert outbox.claim(engine, now=far, limit=8, lease_until=far) == []
        ping(client, caller_number="+12025550103")  # no deliveries while disabled
        assert outbox.dispatch(engine, now=utcnow()) == 0
        client.patch(f"/admin/webhooks/{hook['id']}", json={"enabled": True})
        assert len(outbox.claim(engine, now=far, limit=8, lease_until=far)) == 1
    finally:
        engine.dispose()


def test_two_senders_reading_the_same_events_make_their_deliveries_once(
    make_app: AppFactory, db_url: str
) -> None:
    """Bodies are built before the write transaction, so two senders can read the same
    pending rows; only the one whose write marks them inserts their deliveries."""
    client = make_app(db_url)
    hook = _create(client, publisher="pub-1", events=["reserved", "cancelled"])
    engine = make_engine(db_url)
    try:
        uuid = ping(client)
        client.put(f"/rtbs/{uuid}.json", params={"key": KEY, "status": "cancelled"})
        now = utcnow()
        first = outbox.prepare(engine, now=now, due=True)
        second = outbox.prepare(engine, now=now, due=True)
        assert len(first.inserts) == len(second.inserts) == 2 and not first.due
        lease = now + timedelta(seconds=30)
        made, claims = outbox.exchange(engine, first, [], now=now, limit=8, lease_until=lease)
        assert made == 2 and {c.webhook_id for c in claims} == {hook["id"]} and len(claims) == 2
        made, again = outbox.exchange(engine, second, [], now=now, limit=8, lease_until=lease)
        assert made == 0 and again == []  # marked by the first; its claims are leased
        # the outcomes ride on the next round's transaction
        results = [outbox.Result(c, ok=True, code=200) for c in claims]
        outbox.exchange(engine, outbox.prepare(engine, now=now), results, now=now, limit=0,
                        lease_until=lease)  # fmt: skip
        assert outbox.pending_count(engine) == 0
        idle = outbox.prepare(engine, now=utcnow(), due=True)
        assert not idle.events and not idle.due
    finally:
        engine.dispose()
