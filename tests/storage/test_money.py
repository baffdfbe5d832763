"""The two prices of a call (SPEC §3.8): the payout offered to the publisher and the revenue
asked of the buyer, both fixed on the reservation and earned only on conversion; the
publisher never sees revenue. Real SQLite and PostgreSQL, the publisher API through the app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session

from rtbridge.admin.apply import apply_file
from rtbridge.domain.failover import Attempt
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import attempts, calls, listings
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from rtbridge.timestamps import utcnow
from tests.conftest import ClientFactory, write_config
from tests.support.admin import make_token

KEY = "money-key-0000000000000001"


def _config(first_revenue: str = "revenue = 110.0") -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "first"
destination = "sip:first@127.0.0.1:5071"
payout = 90.0
{first_revenue}
seconds = 30
priority = 1

[[campaigns.buyers]]
id = "backup"
destination = "sip:backup@127.0.0.1:5072"
payout = 95.0
revenue = 125.0
seconds = 30
priority = 2

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
"""


CONFIG = _config()


def _claimed(engine: Engine) -> str:
    out = Reservations(engine, CatalogCache(engine)).ping(PingRequest(KEY, None, None))
    assert out.status == "reserved" and out.payout == 90.0
    got = calls.claim(engine, uuid=out.uuid, publisher_id="p1", now=utcnow(), agent="a",
                      source="test")  # fmt: skip
    assert isinstance(got, calls.Claimed)
    return out.uuid


def _talk(engine: Engine, uuid: str, seconds: float) -> None:
    now = utcnow()
    calls.answered(engine, uuid=uuid, at=now)
    calls.ended(engine, uuid=uuid, answer_at=now, end_at=now + timedelta(seconds=seconds),
                publisher_code=200, buyer_code=200, hangup_by="publisher",
                duration=seconds)  # fmt: skip


def _logs(engine: Engine, uuid: str) -> tuple[dict, dict]:
    with Session(engine) as session:
        (rtb,) = listings.rtb_log(session, uuid=uuid).rows
        (call,) = listings.call_log(session, uuid=uuid).rows
    return rtb, call


def _money(row: dict, *names: str) -> tuple:
    return tuple(row[name] for name in names)


EARNED = ("payout_earned", "revenue_earned", "margin_earned")
OFFERED = ("payout_offered", "revenue_offered")


def test_a_converted_call_earns_both_prices_and_the_margin(engine: Engine) -> None:
    uuid = _claimed(engine)
    _talk(engine, uuid, 40)
    rtb, call = _logs(engine, uuid)
    assert _money(rtb, *OFFERED) == (90.0, 110.0)
    assert call["converted"] is True and _money(call, *EARNED) == (90.0, 110.0, 20.0)


def test_a_call_short_of_the_seconds_earns_nothing_on_either_side(engine: Engine) -> None:
    uuid = _claimed(engine)
    _talk(engine, uuid, 5)
    rtb, call = _logs(engine, uuid)
    assert _money(rtb, *OFFERED) == (90.0, 110.0)  # what was offered stays visible
    assert call["converted"] is False and _money(call, *EARNED) == (0.0, 0.0, 0.0)


def test_failover_keeps_the_publishers_payout_and_asks_the_new_buyers_revenue(
    engine: Engine,
) -> None:
    uuid = _claimed(engine)
    now = utcnow()
    busy = Attempt("first", "sip:first@127.0.0.1", now - timedelta(seconds=1), now, "busy", 486,
                   "Busy Here")  # fmt: skip
    moved = attempts.fail_over(engine, CatalogCache(engine).get(), uuid=uuid, failed=busy,
                               tried=["first"], now=now)  # fmt: skip
    assert moved.buyer is not None and moved.buyer.rule.id == "backup"
    _talk(engine, uuid, 31)
    rtb, call = _logs(engine, uuid)
    assert rtb["buyer"] == "backup" and _money(rtb, *OFFERED) == (90.0, 125.0)
    assert _money(call, *EARNED) == (90.0, 125.0, 35.0)


def test_a_call_closed_by_recovery_earns_as_a_hung_up_one(engine: Engine) -> None:
    """An agent that died mid-call: its open call is closed by the next start (or a peer)
    as of its last heartbeat, converted when long enough, with the same money."""
    uuid = _claimed(engine)
    answered_at = utcnow() - timedelta(seconds=100)
    calls.answered(engine, uuid=uuid, at=answered_at)
    calls.heartbeat(engine, agent="a", at=answered_at + timedelta(seconds=60))
    calls.recover(engine, agent="a", now=utcnow())
    _, call = _logs(engine, uuid)
    assert call["hangup_by"] == "fault" and call["converted"] is True
    assert _money(call, *EARNED) == (90.0, 110.0, 20.0)


def test_without_revenue_a_buyer_pays_its_payout_and_old_rows_read_the_same(
    engine: Engine, tmp_path: Path
) -> None:
    apply_file(engine, write_config(tmp_path, _config(first_revenue="")))
    uuid = _claimed(engine)
    _talk(engine, uuid, 30)
    # A row written before revenue existed has none: it reads as its payout.
    with engine.begin() as conn:
        conn.execute(text("UPDATE reservation SET revenue = NULL WHERE uuid = :u"), {"u": uuid})
        conn.execute(text("UPDATE callrecord SET revenue = NULL"))
    rtb, call = _logs(engine, uuid)
    assert _money(rtb, *OFFERED) == (90.0, 90.0)
    assert _money(call, *EARNED) == (90.0, 90.0, 0.0)


def _flatten(doc: object) -> tuple[list[str], list[object]]:
    """Every key and every scalar value in a JSON document."""
    keys: list[str] = []
    values: list[object] = []
    todo = [doc]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            keys += item
            todo += item.values()
        elif isinstance(item, list):
            todo += item
        else:
            values.append(item)
    return keys, values


def test_the_publisher_never_sees_revenue(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(_config())
    pinged = client.post("/rtbs.json", params={"key": KEY})
    assert pinged.status_code == 200 and pinged.json()["retreaver_payout"] == 90.0
    uuid = pinged.json()["uuid"]
    engine = open_database(sqlite_url)
    calls.claim(engine, uuid=uuid, publisher_id="p1", now=utcnow(), agent="a", source="t")
    _talk(engine, uuid, 40)
    engine.dispose()
    looked = client.get(f"/rtbs/{uuid}.json", params={"key": KEY})
    assert looked.status_code == 200 and looked.json()["call"]["payout"] == 90.0
    for body in (pinged.json(), looked.json()):
        keys, values = _flatten(body)
        assert not any("revenue" in k or "margin" in k for k in keys) and 110.0 not in values
    # ... while the network's admin does, in the logs and the buyer's settings.
    client.headers["Authorization"] = f"Bearer {make_token(sqlite_url)}"
    row = client.get("/admin/calls", params={"uuid": uuid}).json()["items"][0]
    assert _money(row, *EARNED) == (90.0, 110.0, 20.0)
    buyer = client.get("/admin/buyers/first").json()
    assert (buyer["payout"], buyer["revenue"]) == (90.0, 110.0)
    csv = client.get("/admin/rtbs", params={"uuid": uuid, "format": "csv"}).text
    header, line = csv.splitlines()[:2]
    assert "payout_offered,revenue_offered" in header and "90.0,110.0" in line
