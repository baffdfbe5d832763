"""STIR/SHAKEN at the router (SPEC §4.9): every routed INVITE's attestation recorded on its
reservation, a campaign's ``min_attestation`` refusing below it with 403 (the reservation
failed, its unit back), the Identity header relayed to the buyer once, ``verstat`` believed
only from trunks and listed sources. A real SQLite file, a test STI-CA and its x5u server
on loopback (tests/support/stir.py); INVITEs as the agent hands them to the router."""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.attester import Attester
from rtbridge.sip.proxy import networks
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.sip.router import BridgeTo, IncomingInvite, Reject
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.support.net import free_port
from tests.support.stir import DEST, ORIG, Sti, StiCa, sti

DOMAIN = "sip.rtb.example.com"
KEY = "stir-key-of-publisher-0001"
SBC = "198.51.100.20"  # a publisher SBC whose verstat is believed


def _config(min_attestation: str | None) -> str:
    minimum = f'min_attestation = "{min_attestation}"' if min_attestation else ""
    return f"""
[sip]
domain = "{DOMAIN}"

[[trunks]]
id = "carrier"
ips = ["192.0.2.10/32"]
uri = "sip:{{number}}@192.0.2.10:5060"

[[campaigns]]
id = "c1"
numbers = ["{DEST}"]
{minimum}

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@127.0.0.1:5070"
payout = 10.0
seconds = 60
concurrency = 5

[[publishers]]
id = "p1"
ips = ["203.0.113.0/24", "{SBC}/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
"""


class World:
    def __init__(self, engine: Engine, authority: Sti) -> None:
        self.engine = engine
        self.sti = authority
        catalog = CatalogCache(engine, recheck=0)
        self.reservations = Reservations(engine, catalog)
        attester = Attester(authority.verifier(fetch_timeout=1.0),
                            verstat_sources=networks([f"{SBC}/32"]))  # fmt: skip
        self.router = ReservationRouter(
            engine, catalog, secret=b"k" * 32, agent_id="stir", attester=attester
        )

    def ping(self, caller: str | None = ORIG) -> str:
        return self.reservations.ping(PingRequest(KEY, caller, None)).uuid

    def invite(
        self, uuid: str, *identities: str, ip: str = "203.0.113.7", caller: str = ORIG,
        headers: dict[str, str] | None = None,
    ) -> BridgeTo | Reject:  # fmt: skip
        return self.router.route(IncomingInvite(
            call_id="c-1", source_ip=ip_address(ip), source_port=5060, transport="UDP",
            request_uri=f"sip:{uuid}@{DOMAIN}", ruri_user=uuid, from_user=caller.lstrip("+"),
            from_display="", authorization=None, headers=headers or {}, identities=identities,
        ))  # fmt: skip

    def row(self, uuid: str) -> tuple[str, str | None, str | None, str | None]:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT status, reason, attestation, attestation_why FROM reservation "
                     "WHERE uuid = :u"), {"u": uuid},
            ).one()  # fmt: skip
        return tuple(found)  # type: ignore[return-value]

    def live_units(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT units FROM buyerlive WHERE buyer_id = 'b1'")).scalar()
                or 0
            )


def _world(tmp_path: Path, min_attestation: str | None) -> Iterator[World]:
    with sti(tmp_path) as authority:
        engine = open_database(f"sqlite:///{tmp_path / 'stir.db'}")
        apply_file(engine, write_config(tmp_path, _config(min_attestation)))
        try:
            yield World(engine, authority)
        finally:
            engine.dispose()


@pytest.fixture
def open_world(tmp_path: Path) -> Iterator[World]:
    """No minimum: every call goes on, its attestation recorded."""
    yield from _world(tmp_path, None)


@pytest.fixture
def strict_world(tmp_path: Path) -> Iterator[World]:
    """The campaign wants at least B."""
    yield from _world(tmp_path, "B")


@pytest.mark.parametrize("level", ["A", "B", "C"])
def test_a_verified_signature_is_recorded_and_relayed_once(open_world: World, level: str) -> None:
    uuid = open_world.ping()
    identity = open_world.sti.signer.sign(level)
    plan = open_world.invite(uuid, identity)
    assert isinstance(plan, BridgeTo), plan
    assert plan.attestation == level
    assert [v for k, v in plan.headers if k == "Identity"] == [identity], "unchanged, once"
    assert open_world.row(uuid) == ("claimed", None, level, None)


def test_an_unsigned_call_is_none_and_nothing_is_relayed(open_world: World) -> None:
    uuid = open_world.ping()
    plan = open_world.invite(uuid)
    assert isinstance(plan, BridgeTo) and plan.attestation == "none"
    assert "Identity" not in dict(plan.headers)
    assert open_world.row(uuid) == ("claimed", None, "none", None)


def _bad_tokens(world: World) -> dict[str, tuple[str, str]]:
    """Each way a signature fails (the issue's list), as (Identity value, a word of its why)."""
    signer = world.sti.signer
    stranger = StiCa("Unknown CA")
    unknown = world.sti.publish("/unknown/chain.pem", stranger.leaf(), stranger)
    closed = signer.__class__(signer.key, f"https://127.0.0.1:{free_port()}/gone.pem")
    return {
        "tampered": (signer.sign("A", tamper=True), "signature"),
        "expired-iat": (signer.sign("A", age=120), "iat"),
        "wrong-dest": (signer.sign("A", dest="+18005550199"), "dest"),
        "wrong-orig": (signer.sign("A", orig="+13125550199"), "orig"),
        "unknown-ca": (unknown.sign("A"), "CA"),
        "unreachable-x5u": (closed.sign("A"), "x5u"),
    }


@pytest.mark.parametrize(
    "case", ["tampered", "expired-iat", "wrong-dest", "wrong-orig", "unknown-ca", "unreachable-x5u"]
)
def test_a_failed_signature_is_recorded_and_the_call_goes_on_without_a_minimum(
    open_world: World, tmp_path: Path, case: str
) -> None:
    identity, word = _bad_tokens(open_world)[case]
    uuid = open_world.ping()
    started = time.monotonic()
    plan = open_world.invite(uuid, identity)
    assert time.monotonic() - started < 1.5, "the fetch is bounded by stir_fetch_timeout"
    assert isinstance(plan, BridgeTo) and plan.attestation == "failed"
    status, _, level, why = open_world.row(uuid)
    assert (status, level) == ("claimed", "failed")
    assert why is not None and word.lower() in why.lower(), why


@pytest.mark.parametrize(
    "case", ["tampered", "expired-iat", "wrong-dest", "unknown-ca", "unreachable-x5u"]
)
def test_a_failed_signature_is_refused_below_the_minimum_and_its_unit_goes_back(
    strict_world: World, tmp_path: Path, case: str
) -> None:
    identity, word = _bad_tokens(strict_world)[case]
    uuid = strict_world.ping()
    assert strict_world.live_units() == 1
    answer = strict_world.invite(uuid, identity)
    assert isinstance(answer, Reject), answer
    assert (answer.code, answer.reason, answer.attestation) == (
        403, "Forbidden (attestation)", "failed")  # fmt: skip
    status, reason, level, why = strict_world.row(uuid)
    assert (status, reason, level) == ("failed", "attestation", "failed")
    assert why is not None and word.lower() in why.lower(), why
    assert strict_world.live_units() == 0
    assert check_counters(strict_world.engine).ok
    retry = strict_world.invite(uuid, strict_world.sti.signer.sign("A"))
    assert isinstance(retry, Reject) and retry.code == 410, "the reservation is over"


@pytest.mark.parametrize(("level", "admitted"), [("A", True), ("B", True), ("C", False)])
def test_the_minimum_admits_its_level_and_above(
    strict_world: World, level: str, admitted: bool
) -> None:
    uuid = strict_world.ping()
    answer = strict_world.invite(uuid, strict_world.sti.signer.sign(level))
    assert isinstance(answer, BridgeTo) is admitted, answer
    expected = (
        ("claimed", None, level, None) if admitted else ("failed", "attestation", level, None)
    )
    assert strict_world.row(uuid) == expected


def test_an_unsigned_call_is_refused_below_the_minimum(strict_world: World) -> None:
    uuid = strict_world.ping()
    answer = strict_world.invite(uuid)
    assert isinstance(answer, Reject) and answer.code == 403
    assert strict_world.row(uuid) == ("failed", "attestation", "none", None)


def test_verstat_is_believed_only_from_a_listed_source(strict_world: World) -> None:
    """Anyone can write ``verstat``: the publisher's own network may not vouch for itself
    unless it is listed in ``stir_verstat_sources`` (here its SBC at 198.51.100.20)."""
    asserted = {
        "p-asserted-identity": f"<sip:{ORIG}@{DOMAIN};user=phone;verstat=TN-Validation-Passed-A>"
    }
    stranger = strict_world.ping()
    refused = strict_world.invite(stranger, headers=asserted)
    assert isinstance(refused, Reject) and refused.code == 403
    assert strict_world.row(stranger)[2] == "none"
    listed = strict_world.ping()  # the first ended failed: a new reservation
    plan = strict_world.invite(listed, headers=asserted, ip=SBC)
    assert isinstance(plan, BridgeTo) and plan.attestation == "A"
    # a plain TN-Validation-Passed is worth the level the carrier names, else C
    for n, (hint, level) in enumerate(((None, "C"), ("B", "B"))):
        caller = f"+1312555030{n}"  # a caller of its own: the ping shield would hand back one
        plain = {"from": f"<sip:{caller}@{DOMAIN};verstat=TN-Validation-Passed>;tag=1"}
        uuid = strict_world.ping(caller)
        extra = {"attestation-info": hint} if hint else {}
        answer = strict_world.invite(uuid, headers={**plain, **extra}, ip=SBC, caller=caller)
        assert strict_world.row(uuid)[2] == level, hint
        assert isinstance(answer, BridgeTo) is (level == "B")


def test_a_signature_outranks_verstat(open_world: World) -> None:
    """With an Identity header the signature decides, whatever the verstat says."""
    uuid = open_world.ping()
    asserted = {"p-asserted-identity": f"<sip:{ORIG}@{DOMAIN};verstat=TN-Validation-Passed-A>"}
    plan = open_world.invite(uuid, open_world.sti.signer.sign("C"), headers=asserted, ip=SBC)
    assert isinstance(plan, BridgeTo) and plan.attestation == "C"


def test_a_trunks_verstat_is_believed_on_the_pstn_path(strict_world: World) -> None:
    uuid = strict_world.ping()
    invite = IncomingInvite(
        call_id="c-2", source_ip=ip_address("192.0.2.10"), source_port=5060, transport="UDP",
        request_uri=f"sip:{DEST}@{DOMAIN}", ruri_user=DEST, from_user=ORIG, from_display="",
        authorization=None,
        headers={"p-asserted-identity": f"<tel:{ORIG};verstat=TN-Validation-Passed-B>"},
    )  # fmt: skip
    plan = strict_world.router.route(invite)
    assert isinstance(plan, BridgeTo) and plan.reservation_uuid == uuid and plan.attestation == "B"
    assert strict_world.row(uuid)[2:] == ("B", None)


def test_signed_invites_fetch_their_certificate_once(open_world: World) -> None:
    before = sum(open_world.sti.server.fetches.values())
    for n in range(5):
        caller = f"+1312555020{n}"
        identity = open_world.sti.signer.sign("A", orig=caller)
        plan = open_world.invite(open_world.ping(caller), identity, caller=caller)
        assert isinstance(plan, BridgeTo) and plan.attestation == "A"
    assert sum(open_world.sti.server.fetches.values()) - before == 1


# -- abuse: the Identity header is the sender's text ---------------------------------------------


def test_a_stranger_s_signed_invite_makes_no_fetch(open_world: World) -> None:
    """Verification runs after authentication: an INVITE from outside every allowlist is
    challenged, and its x5u never fetched, whatever it names."""
    before = sum(open_world.sti.server.fetches.values())
    identity = open_world.sti.signer.sign("A")
    answer = open_world.invite(open_world.ping(), identity, ip="192.0.2.99")
    assert isinstance(answer, Reject) and answer.code == 401
    assert sum(open_world.sti.server.fetches.values()) == before


@pytest.mark.parametrize(
    "identities",
    [
        ("garbage",),
        ("a.b.c;info=<https://169.254.169.254/latest/meta-data>;alg=ES256;ppt=shaken",),
        ("x" * 9000,),
        tuple(f"e30.e30.AA;info=<https://127.0.0.1:1/{n}>;ppt=shaken" for n in range(40)),
        ("\x00\xff;info=<javascript:alert(1)>",),
    ],
    ids=["garbage", "metadata-x5u", "9-kb", "40-headers", "control-bytes"],
)
def test_hostile_identity_headers_are_failed_never_fatal(
    open_world: World, identities: tuple[str, ...]
) -> None:
    uuid = open_world.ping()
    started = time.monotonic()
    plan = open_world.invite(uuid, *identities)
    assert time.monotonic() - started < 2.0
    assert isinstance(plan, BridgeTo) and plan.attestation == "failed"
    relayed = [v for k, v in plan.headers if k == "Identity"]
    assert all(len(v) <= 8192 and "\x00" not in v for v in relayed)
    status, _, level, why = open_world.row(uuid)
    assert (status, level) == ("claimed", "failed") and why
