"""``rtbridge bids`` on a real SQLite file: bid rows written through the table model (the
auction that writes them has tests of its own), listed newest first with the filters of
``GET /admin/bids``, and bad filters refused by name with exit status 2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from rtbridge.storage.database import open_database
from rtbridge.storage.models import Bid
from tests.support.terminal import Terminal

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
PING = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
OTHER = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c"


def _bids(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    try:
        with Session(engine) as session:
            session.add_all([
                Bid(reservation_uuid=PING, buyer_id="b-low", at=T0, outcome="lost", amount=12.5,
                    latency_ms=21.0, bid_id="low-1"),
                Bid(reservation_uuid=PING, buyer_id="b-high", at=T0, outcome="won", amount=20.0,
                    latency_ms=35.5, bid_id="high-7"),
                Bid(reservation_uuid=PING, buyer_id="b-slow", at=T0, outcome="timeout",
                    reason="no answer within 250 ms"),
                Bid(reservation_uuid=OTHER, buyer_id="b-high", at=T0 + timedelta(minutes=5),
                    outcome="won", amount=18.0, latency_ms=30.0),
            ])  # fmt: skip
            session.commit()
    finally:
        engine.dispose()


def _rows(rtb: Terminal, *args: str) -> list[list[str]]:
    status, out, err = rtb("bids", *args)
    assert status == 0, err
    return [line.split() for line in out.splitlines()[1:]]


def test_bids_newest_first_with_the_apis_filters(rtb: Terminal, sqlite_url: str) -> None:
    _bids(sqlite_url)
    header = rtb("bids")[1].splitlines()[0].split()
    assert header == ["AT", "RTB", "BUYER", "OUTCOME", "AMOUNT", "LATENCY_MS", "REASON", "BID_ID"]
    rows = _rows(rtb)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (OTHER, "b-high", "won"), (PING, "b-slow", "timeout"), (PING, "b-high", "won"),
        (PING, "b-low", "lost")]  # fmt: skip
    assert rows[2] == ["2026-12-07T12:00:00.000Z", PING, "b-high", "won", "20.0", "35.5", "-",
                       "high-7"]  # fmt: skip
    assert rows[1][6:] == ["no", "answer", "within", "250", "ms", "-"]
    assert [r[2] for r in _rows(rtb, "--rtb", PING.upper())] == ["b-slow", "b-high", "b-low"]
    assert [r[1] for r in _rows(rtb, "--buyer", "b-high")] == [OTHER, PING]
    assert [r[2] for r in _rows(rtb, "--outcome", "won", "--rtb", PING)] == ["b-high"]
    assert [r[1] for r in _rows(rtb, "--since", "2026-12-07T12:05:00Z")] == [OTHER]
    assert len(_rows(rtb, "--until", "2026-12-07T13:05:00+01:00")) == 3  # exclusive
    assert [r[2] for r in _rows(rtb, "--limit", "2")] == ["b-high", "b-slow"]
    assert _rows(rtb, "--buyer", "nobody") == []


def test_bad_filters_are_refused_by_name(rtb: Terminal) -> None:
    for args, message in [
        (["--rtb", "nope"], "rtb: not a reservation uuid"),
        (["--buyer", "<x>"], "buyer: must be 1-64 characters"),
        (["--since", "yesterday"], "since: not an ISO 8601 time"),
        (["--until", "2026-12-07T12:00"], "until: needs a time zone offset"),
        (["--limit", "0"], "limit: must be between 1 and 1000"),
        (["--outcome", "winner"], "invalid choice: 'winner'"),
    ]:  # fmt: skip
        status, out, err = rtb("bids", *args)
        assert (status, out) == (2, ""), (args, err)
        assert message in err, (args, err)
