"""The reservation operations and the call records on both databases: the SQL in
storage/sql.py style is written once for SQLite and PostgreSQL, so run it on both."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock, write_config
from tests.support.demo import KEY_OPEN, one_buyer_config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_lifecycle_on_both_databases(db_url: str, tmp_path: Path, clock: Clock) -> None:
    engine = open_database(db_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config(
        buyer="concurrency = 2\ndaily_cap = 10", key="ttl_seconds = 30",
        pool='"+18339510260", "+18334583385"')))  # fmt: skip
    ops = Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)

    def ping(caller: str | None, **tags: str):  # type: ignore[no-untyped-def]
        return ops.ping(
            PingRequest(key=KEY_OPEN, caller_number=caller, inbound_number=None, tags=tags)
        )

    a = ping("+12025550101", zip="10001")
    assert a.status == "reserved" and a.inbound_number in ("+18339510260", "+18334583385")
    assert ping("+12025550101").ping_shield
    b = ping(None)
    assert ping("+12025550103").reason == "concurrency-cap-reached"
    looked = ops.lookup(a.uuid, KEY_OPEN)
    assert looked.details["tags"] == {"zip": "10001"} and looked.expires_at == a.expires_at
    assert ops.update(b.uuid, KEY_OPEN, "cancelled").status == "cancelled"
    assert ops.update(a.uuid, KEY_OPEN, "confirmed").status == "confirmed"

    # The SIP side: claim, answer, end.
    claimed = calls.claim(
        engine, uuid=a.uuid, publisher_id="p1", now=clock(), agent="t", source="x"
    )
    assert isinstance(claimed, calls.Claimed) and claimed.tags == {"zip": "10001"}
    again = calls.claim(engine, uuid=a.uuid, publisher_id="p1", now=clock(), agent="t", source="x")
    assert isinstance(again, calls.NotClaimed) and again.code == 410
    assert (
        calls.find_pstn(engine, did=a.inbound_number or "", caller="+12025550101", now=clock())
        is None
    )
    calls.answered(engine, uuid=a.uuid, at=clock())
    calls.ended(engine, uuid=a.uuid, answer_at=clock(), end_at=clock() + timedelta(seconds=70),
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=70.0)  # fmt: skip
    done = ops.lookup(a.uuid, KEY_OPEN)
    assert done.status == "completed" and done.details["converted"] is True

    c = ping("+12025550104")
    assert (
        calls.find_pstn(engine, did=c.inbound_number or "", caller="+12025550104", now=clock())
        == c.uuid
    )
    clock.advance(31)
    assert ops.lookup(c.uuid, KEY_OPEN).status == "expired"
    assert ops.expire_due() == 1
    assert ops.expire_due() == 0
    left = calls.claim(engine, uuid=c.uuid, publisher_id="p1", now=clock(), agent="t", source="x")
    assert isinstance(left, calls.NotClaimed) and "expired" in left.reason

    d = ping("+12025550105")
    calls.claim(engine, uuid=d.uuid, publisher_id="p1", now=clock(), agent="crashed", source="x")
    assert calls.recover(engine, agent="crashed", now=clock()).closed == 1
    assert ops.lookup(d.uuid, KEY_OPEN).status == "failed"
    engine.dispose()


def test_a_ping_batch_leaves_its_connection_as_it_found_it(db_url: str, tmp_path: Path) -> None:
    """On PostgreSQL a batch begins and commits its transaction itself, in the pipelines of
    its two round trips (storage/trips.py): the pooled connection must come back
    idle and out of autocommit, and every row the batch wrote must be there — a failed
    batch included, which writes nothing."""
    engine = open_database(db_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config()))
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    requests = [
        PingRequest(key=KEY_OPEN, caller_number=f"+1202555{i:04d}", inbound_number=None)
        for i in range(20)
    ]
    assert all(not isinstance(r, Exception) for r in ops.ping_many(requests))
    if not db_url.startswith("sqlite"):  # (SQLite does not hold text to its column's length)
        with pytest.raises(Exception, match="too long"):  # a caller too long for its column
            ops.ping_many([*requests[:3], PingRequest(KEY_OPEN, "+1" + "2" * 40, None)])
    fairy = engine.raw_connection()
    try:
        raw = fairy.driver_connection
        if not db_url.startswith("sqlite"):
            assert raw.autocommit is False and raw.info.transaction_status.name == "IDLE"
        cur = raw.cursor()
        cur.execute("SELECT count(*) FROM reservation")
        assert cur.fetchone()[0] == 20
    finally:
        fairy.close()
    engine.dispose()
