"""STIR/SHAKEN through the running agent (SPEC §4.9): a publisher's signed INVITE, over
real UDP, is verified against a test STI-CA (its x5u served over HTTPS on loopback), counted
by attestation, and its Identity header reaches the buyer unchanged and once — in an INVITE
well past 1,300 bytes, still over UDP. A campaign's minimum refuses an unsigned call 403."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.attester import Attester
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.sip.b2bua.support import AgentFactory
from tests.sip.rawsip import SipPeer
from tests.support.stir import DEST, Sti, sti

pytestmark = pytest.mark.sip

KEY = "stir-agent-key-000000001"
CALLER = "+12025550102"  # the From of tests.sip.rawsip's INVITEs


def _config(buyer: SipPeer) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "signed"
numbers = ["{DEST}"]

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@127.0.0.1:{buyer.port}"
payout = 1.0
seconds = 1

[[campaigns]]
id = "strict"
numbers = ["+18339510261"]
min_attestation = "B"

[[campaigns.buyers]]
id = "b2"
destination = "sip:queue@127.0.0.1:{buyer.port}"
payout = 1.0
seconds = 1

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "signed"

[[keys]]
key = "{KEY}-strict"
publisher = "p1"
campaign = "strict"
"""


@dataclass
class Site:
    engine: Engine
    authority: Sti
    buyer: SipPeer
    agent: Agent
    reservations: Reservations


@pytest.fixture
def site(tmp_path: Path, make_agent: AgentFactory) -> Iterator[Site]:
    """A site file applied, a test STI-CA, a buyer peer, and an agent whose router verifies
    against that STI-CA."""
    buyer = SipPeer("127.0.0.1")
    with sti(tmp_path) as authority:
        engine = open_database(f"sqlite:///{tmp_path / 'stir.db'}")
        apply_file(engine, write_config(tmp_path, _config(buyer)))
        catalog = CatalogCache(engine)
        router = ReservationRouter(engine, catalog, secret=b"k" * 32, agent_id="stir",
                                   attester=Attester(authority.verifier()))  # fmt: skip
        agent, _ = make_agent(router)
        try:
            yield Site(engine, authority, buyer, agent, Reservations(engine, catalog))
        finally:
            engine.dispose()
            buyer.close()


def test_a_signed_call_is_verified_and_its_identity_relayed_once(site: Site) -> None:
    engine, authority, buyer, agent, reservations = (
        site.engine,
        site.authority,
        site.buyer,
        site.agent,
        site.reservations,
    )
    publisher = SipPeer("127.0.0.1", answer=None)
    try:
        uuid = reservations.ping(PingRequest(KEY, CALLER, None)).uuid
        identity = authority.signer.sign("A", orig=CALLER)
        dialog, final = publisher.invite(("127.0.0.1", agent.port), uuid,
                                         headers=[f"Identity: {identity}"])  # fmt: skip
        assert final.status == 200, final.first_line
        publisher.request(dialog, "BYE")
        relayed = [r for r in buyer.requests if r.method == "INVITE"]
        assert len(relayed) == 1
        assert relayed[0].all("identity") == [identity]
        assert relayed[0].size > 1300, "large enough that pjsip could have switched to TCP"
        # the compact form (RFC 8224 y:) is read as well
        uuid2 = reservations.ping(PingRequest(KEY, "+12025550177", None)).uuid
        other = SipPeer("127.0.0.1", answer=None, caller="+12025550177")
        try:
            _, final = other.invite(("127.0.0.1", agent.port), uuid2,
                                    headers=[f"y: {authority.signer.sign('B', orig='+12025550177')}"])  # fmt: skip
            assert final.status == 200, final.first_line
        finally:
            other.close()
        assert agent.status().attestations == {"A": 1, "B": 1}
        with engine.connect() as conn:
            levels = conn.execute(
                text("SELECT attestation FROM reservation ORDER BY attestation")
            ).scalars()
            assert list(levels) == ["A", "B"]
    finally:
        publisher.close()


def test_an_unsigned_call_to_a_strict_campaign_is_refused_403(site: Site) -> None:
    engine, buyer, agent = site.engine, site.buyer, site.agent
    publisher = SipPeer("127.0.0.1", answer=None)
    try:
        uuid = site.reservations.ping(PingRequest(f"{KEY}-strict", CALLER, None)).uuid
        _, final = publisher.invite(("127.0.0.1", agent.port), uuid)
        assert (final.status, final.reason) == (403, "Forbidden (attestation)")
        assert not [r for r in buyer.requests if r.method == "INVITE"], "no buyer dialled"
        assert agent.status().attestations == {"none": 1}
        assert agent.status().checks_refused == {"attestation": 1}
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, reason FROM reservation WHERE uuid = :u"),
                               {"u": uuid}).one()  # fmt: skip
        assert tuple(row) == ("failed", "attestation")
    finally:
        publisher.close()
