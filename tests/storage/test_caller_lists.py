"""Caller lists (issue 23): block and allow lists of numbers, prefixes and ``anonymous``,
global or of a campaign or a buyer, with expiries and auto-blocking of converted callers —
at the ping and at the INVITE of a ping without a caller, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from rtbridge.admin.caller_lists import add_entries, parse_json
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.invite_checks import check_invite
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock

KEY = "caller-lists-key-000000000001"
KEY_C2 = "caller-lists-key-000000000002"
EXPIRES = datetime.now(UTC) + timedelta(days=1)
CONFIG = f"""
[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "first"
destination = "sip:first@127.0.0.1:5070"
payout = 20.0
seconds = 30
priority = 1

[[campaigns.buyers]]
id = "second"
destination = "sip:second@127.0.0.1:5071"
payout = 10.0
seconds = 30
priority = 2
concurrency = 5

[[campaigns]]
id = "c2"

[[campaigns.buyers]]
id = "solo"
destination = "sip:solo@127.0.0.1:5072"
payout = 5.0
seconds = 30

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true

[[keys]]
key = "{KEY_C2}"
publisher = "p1"
campaign = "c2"

[[caller_lists]]
id = "everywhere"
kind = "block"
entries = ["+1900", {{ number = "+12025550111", expires = {EXPIRES.isoformat()}, note = "complaint" }}]

[[caller_lists]]
id = "first-skips"
kind = "block"
buyer = "first"
entries = ["+1312"]

[[caller_lists]]
id = "c1-withheld"
kind = "block"
campaign = "c1"
entries = ["anonymous"]
auto_block_converted = 86400

[[caller_lists]]
id = "c2-only"
kind = "allow"
campaign = "c2"
entries = ["+1415", "+19005550199"]
"""


@pytest.fixture
def ops(engine: Engine, clock: Clock) -> Reservations:
    return Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)


def _answer(ops: Reservations, caller: str | None, key: str = KEY) -> str:
    got = ops.ping(PingRequest(key, caller, None))
    return got.reason if got.status == "no-target" else str(got.buyer_id)  # type: ignore[return-value]


def _verdicts(engine: Engine, uuid: str) -> dict[str, str]:
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT verdicts FROM reservation WHERE uuid = :u"),
                              {"u": uuid}).scalar_one()  # fmt: skip
    return stored if isinstance(stored, dict) else json.loads(stored)  # type: ignore[no-any-return]


def test_numbers_prefixes_and_scopes(ops: Reservations, engine: Engine) -> None:
    refused = ops.ping(PingRequest(KEY, "+19005550100", None))  # the global prefix
    assert (refused.status, refused.reason) == ("no-target", "blocked-caller")
    assert _verdicts(engine, refused.uuid) == {
        "first": "blocked-caller",
        "second": "blocked-caller",
    }
    assert _answer(ops, "+12025550111") == "blocked-caller"  # a number entry
    assert _answer(ops, "+12025550112") == "first"  # a number is no prefix of its neighbours
    skipped = ops.ping(PingRequest(KEY, "+13125550100", None))  # first's own list
    assert skipped.buyer_id == "second"
    assert _verdicts(engine, skipped.uuid)["first"] == "blocked-caller"
    assert _answer(ops, "+13135550100") == "first"


def test_an_allow_list_admits_only_its_callers_and_a_block_wins(ops: Reservations) -> None:
    assert _answer(ops, "+14155550100", KEY_C2) == "solo"
    assert _answer(ops, "+12025550100", KEY_C2) == "blocked-caller"
    # on c2's allow list and under the global block of +1900: refused
    assert _answer(ops, "+19005550199", KEY_C2) == "blocked-caller"


def test_expired_entries_never_match(ops: Reservations, clock: Clock) -> None:
    assert _answer(ops, "+12025550111") == "blocked-caller"
    clock.advance(86400 + 1)
    assert _answer(ops, "+12025550111") == "first"


def test_pings_of_one_batch_each_meet_their_own_entries(ops: Reservations) -> None:
    answers = ops.ping_many([
        PingRequest(KEY, "+19005550100", None), PingRequest(KEY, "+13125550100", None),
        PingRequest(KEY_C2, "+14155550100", None), PingRequest(KEY_C2, "+14165550100", None),
    ])  # fmt: skip
    assert [a.buyer_id or a.reason for a in answers] == [  # type: ignore[union-attr]
        "blocked-caller", "second", "solo", "blocked-caller"]  # fmt: skip


def _converted(engine: Engine, uuid: str, clock: Clock) -> None:
    claimed = calls.claim(engine, uuid=uuid, publisher_id="p1", now=clock(), agent="t",
                          source="x")  # fmt: skip
    assert isinstance(claimed, calls.Claimed)
    calls.answered(engine, uuid=uuid, at=clock())
    calls.ended(engine, uuid=uuid, answer_at=clock(), end_at=clock() + timedelta(seconds=45),
                publisher_code=200, buyer_code=200, hangup_by="publisher", duration=45)  # fmt: skip


def test_a_converted_caller_is_blocked_for_the_lists_seconds(
    ops: Reservations, engine: Engine, clock: Clock
) -> None:
    first = ops.ping(PingRequest(KEY, "+12025550177", None))
    _converted(engine, first.uuid, clock)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT list_id, source, expires_at FROM callerlistentry "
                                "WHERE value = '+12025550177'")).one()  # fmt: skip
    assert row[:2] == ("c1-withheld", "auto")
    assert _answer(ops, "+12025550177") == "blocked-caller"
    assert _answer(ops, "+12025550177", KEY_C2) == "blocked-caller"  # c2: not on its allow list
    clock.advance(45 + 86400 + 1)
    assert _answer(ops, "+12025550177") == "first"
    # converted again: the expiry moves on, the entry stays one
    again = ops.ping(PingRequest(KEY, "+12025550177", None))
    _converted(engine, again.uuid, clock)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM callerlistentry "
                                  "WHERE value = '+12025550177'")).scalar_one()  # fmt: skip
    assert count == 1
    assert _answer(ops, "+12025550177") == "blocked-caller"
    assert check_counters(engine).differences == ()


def test_a_ping_without_a_caller_is_checked_at_its_invite(
    ops: Reservations, engine: Engine, clock: Clock
) -> None:
    """Not anonymous at the ping (the INVITE will tell); at the INVITE the caller's lists
    refuse it as they would have at the ping: failed, blocked-caller, the unit back."""
    catalog = ops.catalog.get()
    for caller in (None, "+19005550123"):
        held = ops.ping(PingRequest(KEY, None, None))
        assert held.status == "reserved"
        checked = check_invite(engine, catalog, uuid=held.uuid, caller=caller, now=clock())
        assert checked.why == "blocked-caller"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, reason, caller_number FROM reservation "
                                    "WHERE uuid = :u"), {"u": held.uuid}).one()  # fmt: skip
        assert tuple(row) == ("failed", "blocked-caller", caller)
        assert check_counters(engine).differences == ()
    fine = ops.ping(PingRequest(KEY, None, None))
    checked = check_invite(engine, catalog, uuid=fine.uuid, caller="+12025550100", now=clock())
    assert checked.why is None


def test_callers_are_looked_up_by_the_prefix_lengths_entries_have(
    ops: Reservations, engine: Engine
) -> None:
    """The catalog reads which prefix lengths exist (+1900, +1312, +1415: 5 characters), so a
    caller costs its number and one prefix probe, not fourteen; a prefix of a new length,
    added by an admin, is looked up once the catalog has it."""
    lists = ops.catalog.get().lists
    assert lists.prefix_lengths == {5}  # the file's +1900, +1312, +1415
    assert lists.candidates("+13125550100") == ("+13125550100", "+1312*")
    assert _answer(ops, "+16505550100") != "no-target"
    with Session(engine) as session:
        add_entries(session, actor="test", list_id="everywhere",
                    parsed=parse_json([{"value": "+165055*"}]))  # fmt: skip
    assert ops.catalog.get().lists.prefix_lengths == {5, 7}  # the change moved the version
    assert _answer(ops, "+16505550101") == "blocked-caller"
