"""What an INVITE must pass before its claim (storage/invite_checks.py), on SQLite and
PostgreSQL: a campaign's least attestation refuses below it (the reservation failed, reason
``attestation``, its attestation kept, its unit back), and a claim keeps the attestation
of the INVITE that made it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.invite_checks import attested_below, check_invite, needed
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock

KEY_STRICT = "invite-checks-key-0000000001"
KEY_OPEN = "invite-checks-key-0000000002"
CONFIG = f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "strict"
min_attestation = "B"

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@buyer.example.net"
payout = 5.0
seconds = 60
concurrency = 3

[[campaigns]]
id = "open"

[[campaigns.buyers]]
id = "b2"
destination = "sip:queue@buyer.example.net"
payout = 5.0
seconds = 60

[[publishers]]
id = "p1"
ips = ["203.0.113.0/24"]

[[keys]]
key = "{KEY_STRICT}"
publisher = "p1"
campaign = "strict"

[[keys]]
key = "{KEY_OPEN}"
publisher = "p1"
campaign = "open"
"""


def _row(engine: Engine, uuid: str) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(
            text("SELECT status, reason, attestation, attestation_why FROM reservation "
                 "WHERE uuid = :u"), {"u": uuid},
        ).one())  # fmt: skip


@pytest.mark.parametrize(
    ("level", "why", "refused"),
    [("A", None, False), ("B", None, False), ("C", None, True), ("none", None, True),
     ("failed", "bad signature", True)],
)  # fmt: skip
def test_the_least_attestation(
    engine: Engine, clock: Clock, level: str, why: str | None, refused: bool
) -> None:
    catalog = CatalogCache(engine, recheck=0)
    assert needed(catalog.get(), None), "a campaign asks for an attestation"
    made = Reservations(engine, catalog, clock=clock).ping(
        PingRequest(KEY_STRICT, "+12025550100", None)
    )
    checked = check_invite(
        engine, catalog.get(), uuid=made.uuid, caller="+12025550100", now=clock()
    )
    assert (checked.why, checked.minimum) == (None, "B")
    below = attested_below(engine, uuid=made.uuid, attestation=level, why=why,
                           minimum=checked.minimum, now=clock())  # fmt: skip
    assert below is refused
    if refused:
        assert _row(engine, made.uuid) == ("failed", "attestation", level, why)
    else:
        claimed = calls.claim(engine, uuid=made.uuid, publisher_id="p1", now=clock(), agent="t",
                              source="x", attestation=(level, why))  # fmt: skip
        assert isinstance(claimed, calls.Claimed)
        assert _row(engine, made.uuid) == ("claimed", None, level, None)
    assert check_counters(engine).differences == ()


def test_a_campaign_without_a_minimum_takes_every_call(engine: Engine, clock: Clock) -> None:
    catalog = CatalogCache(engine, recheck=0)
    made = Reservations(engine, catalog, clock=clock).ping(
        PingRequest(KEY_OPEN, "+12025550101", None)
    )
    checked = check_invite(
        engine, catalog.get(), uuid=made.uuid, caller="+12025550101", now=clock()
    )
    assert checked.minimum is None and checked.called is None  # no pool: no inbound number
    assert not attested_below(engine, uuid=made.uuid, attestation="failed", why="unknown CA",
                              minimum=checked.minimum, now=clock())  # fmt: skip
    claimed = calls.claim(engine, uuid=made.uuid, publisher_id="p1", now=clock(), agent="t",
                          source="x", attestation=("failed", "unknown CA"))  # fmt: skip
    assert isinstance(claimed, calls.Claimed)
    assert _row(engine, made.uuid) == ("claimed", None, "failed", "unknown CA")
