"""A call to a reservation won by a bid (issue 25) goes where the bid said: a loopback
bidder answers with a SIPp buyer's URI; the real agent dials it, not the campaign's static
buyer, and records the attempt at that destination."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from rtbridge.admin.apply import apply_file
from rtbridge.bidding.auctioneer import Auctioneer
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from rtbridge.timestamps import utcnow
from tests.conftest import write_config
from tests.sip.b2bua.support import AgentFactory, assert_ok, start_uac, start_uas
from tests.support.bidders import Bidders, bid, serve_bidders
from tests.support.net import free_port

pytestmark = pytest.mark.sip

KEY = "bid-destination-key-00000001"


@pytest.fixture
def bidders() -> Iterator[Bidders]:
    yield from serve_bidders()


def _config(bidders: Bidders, static_uri: str) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"
publisher_share = 0.5

[[campaigns.buyers]]
id = "static"
destination = "{static_uri}"
payout = 1.0
seconds = 1

[[campaigns.buyers]]
id = "rtb"
bid_url = "{bidders.url("/rtb")}"
seconds = 1
media_networks = ["127.0.0.1/32"]  # its bids may send calls to this host's loopback

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
"""


def test_the_agent_dials_the_winning_bids_destination(
    make_agent: AgentFactory, bidders: Bidders, tmp_path: Path
) -> None:
    uas = start_uas(tmp_path, "uas_answer.xml", timeout=30)
    bidders.answers["/rtb"] = bid(8.0, uas.uri())
    engine = open_database(f"sqlite:///{tmp_path / 'bids.db'}")
    try:
        # the static buyer (revenue 1.00) is a closed port: dialling it would fail the call
        apply_file(
            engine, write_config(tmp_path, _config(bidders, f"sip:s@127.0.0.1:{free_port()}"))
        )
        catalog = CatalogCache(engine)
        auctioneer = Auctioneer(catalog, utcnow)

        async def auction() -> PingRequest:
            try:
                return await auctioneer.prepare(PingRequest(KEY, None, None))
            finally:
                await auctioneer.close()

        outcome = Reservations(engine, catalog).ping(asyncio.run(auction()))
        assert outcome.status == "reserved" and outcome.payout == 4.0, outcome
        router = ReservationRouter(
            engine, catalog, secret=b"k" * 32, agent_id="bids", ring_timeout=5
        )
        agent, _ = make_agent(router)
        publisher = start_uac(
            tmp_path, agent, "uac_call.xml", service=outcome.uuid, duration_ms=1500
        )
        heard = publisher.wait()
        assert_ok(heard, uas.wait())
        assert heard.invite_answers() == [200]
        with engine.connect() as conn:
            attempts = conn.execute(
                text(
                    "SELECT buyer_id, destination, final_code FROM callattempt WHERE reservation_uuid = :u"
                ),
                {"u": outcome.uuid},
            ).all()
        assert [tuple(a) for a in attempts] == [("rtb", uas.uri(), 200)]
    finally:
        engine.dispose()
