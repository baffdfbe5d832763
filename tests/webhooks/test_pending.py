"""A ping marks its reservation for the webhook outbox only when an enabled webhook wants
its event (``Catalog.wants_creation``), on both databases: without webhooks no row enters
the partial index of pending rows, which pings would otherwise pay for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.admin.changes import write_session
from rtbridge.domain.ping import PingRequest
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.engine import make_engine
from rtbridge.storage.reservations import Reservations
from rtbridge.timestamps import utcnow
from rtbridge.webhooks import outbox, subscriptions
from tests.conftest import DEMO
from tests.webhooks.conftest import KEY, MASTER, AppFactory


def _create(client: TestClient, **raw: object) -> int:
    r = client.post("/admin/webhooks", json={"url": "http://127.0.0.1:9/hook", **raw})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _ping(client: TestClient, status: str, **params: str) -> str:
    r = client.post("/rtbs.json", params={"key": KEY, **params})
    assert r.status_code == 200 and r.json()["status"] == status, r.text
    return str(r.json()["uuid"])


def _pending(engine: Engine, uuid: str) -> bool:
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT webhook_pending FROM reservation WHERE uuid = :u"), {"u": uuid}
        ).scalar_one()
    return bool(value)


def test_a_ping_is_pending_only_for_a_webhook_that_wants_its_event(
    make_app: AppFactory, db_url: str
) -> None:
    client = make_app(db_url)
    engine = make_engine(db_url)
    try:
        assert not _pending(engine, _ping(client, "reserved"))  # no webhook at all
        _create(client, buyer="acme", events=["cancelled"])  # the buyer's, another event
        _create(client, publisher="pub-1", events=["no-target"])
        assert not _pending(engine, _ping(client, "reserved"))
        # the demo's only buyer takes CA callers only: a ping from NY is no-target, which
        # pub-1's no-target webhook wants
        filters = {"filters": {"caller_state": ["CA"]}}
        assert client.patch("/admin/buyers/acme", json=filters).status_code == 200
        assert _pending(engine, _ping(client, "no-target", caller_state="NY"))
        assert client.patch("/admin/buyers/acme", json={"filters": None}).status_code == 200
        by_buyer = _create(client, buyer="acme", events=["reserved"])
        assert _pending(engine, _ping(client, "reserved"))  # acme's reserved webhook
        r = client.patch(f"/admin/webhooks/{by_buyer}", json={"enabled": False})
        assert r.status_code == 200
        assert not _pending(engine, _ping(client, "reserved"))  # disabled: nobody wants it
        _create(client, publisher="pub-1", events=["reserved", "answered"])
        assert _pending(engine, _ping(client, "reserved"))  # the publisher's
        # the two pending rows became their deliveries; nothing else was pending
        assert outbox.dispatch(engine, now=utcnow()) == 2
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM reservation WHERE webhook_pending"))
            assert left.scalar_one() == 0
    finally:
        engine.dispose()


def test_a_webhook_made_by_another_process_counts_once_its_catalog_rechecks(
    db_url: str,
) -> None:
    """The CLI or another API worker makes the webhook: the version it bumps reloads a
    catalog at its next recheck; until then that process's pings are not pending (the lag
    docs/webhooks.md states)."""
    engine = open_database(db_url)
    apply_file(engine, DEMO)
    other = make_engine(db_url)
    try:
        prompt = Reservations(engine, CatalogCache(engine, recheck=0.0))
        lagging = Reservations(engine, CatalogCache(engine, recheck=3600.0))
        request = PingRequest(KEY, None, None)

        def ping(reservations: Reservations) -> str:
            outcome: Any = reservations.ping(request)
            assert outcome.status == "reserved"
            return str(outcome.uuid)

        assert not _pending(engine, ping(prompt))
        with write_session(other) as session:
            subscriptions.create_webhook(session, actor="test", master=MASTER,
                                         raw={"publisher": "pub-1", "url": "http://127.0.0.1:9/h",
                                              "events": ["reserved"]})  # fmt: skip
        assert _pending(engine, ping(prompt))
        assert not _pending(engine, ping(lagging))  # its snapshot is from before the webhook
    finally:
        other.dispose()
        engine.dispose()
