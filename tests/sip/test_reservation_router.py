"""The database-backed router, driven directly with IncomingInvite objects against a real
SQLite file: every row of SPEC §4.5 that the router decides, the PSTN path, the records."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.domain.failover import Attempt
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.auth.digest import build_authorization, parse_params
from rtbridge.sip.refusal_log import RefusalLog
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.sip.router import BridgeTo, CallEvent, Carried, IncomingInvite, Reject
from rtbridge.storage.catalog import CatalogCache, bump_version
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock, write_config
from tests.support.notices import write_wav

DOMAIN = "sip.rtb.example.com"
KEY1 = "key-of-publisher-one-0001"
KEY2 = "key-of-publisher-two-0002"
CONFIG = f"""
[sip]
domain = "{DOMAIN}"

[[trunks]]
id = "carrier"
ips = ["192.0.2.10/32"]
uri = "sip:{{number}}@192.0.2.10:5060"

[[campaigns]]
id = "c1"
numbers = ["+18339510260", "+18334583385"]

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@127.0.0.1:5070"
payout = 12.5
seconds = 60

[[campaigns]]
id = "c2"

[[campaigns.buyers]]
id = "b2"
destination = "+18005550100"
payout = 20.0
seconds = 90

[[publishers]]
id = "p1"
ips = ["203.0.113.0/24", "2001:db8::/32"]
credentials = [{{ username = "pub1", password = "s3cret-Pass-123" }}]

[[publishers]]
id = "p2"
ips = ["198.51.100.0/24"]

[[keys]]
key = "{KEY1}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 60

[[keys]]
key = "{KEY2}"
publisher = "p2"
campaign = "c2"
allow_missing_caller_number = true
"""


class World:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        catalog = CatalogCache(engine, recheck=0)
        self.reservations = Reservations(engine, catalog, clock=clock)
        # The refusal log's intervals follow the test's clock.
        refusals = RefusalLog(logging.getLogger("rtbridge.sip"), clock=lambda: clock().timestamp())
        self.router = ReservationRouter(
            engine, catalog, secret=b"k" * 32, agent_id="test-agent", ring_timeout=12, clock=clock,
            refusal_log=refusals,
        )  # fmt: skip

    def ping(self, key: str = KEY1, caller: str | None = "+12025550102", **tags: str) -> str:
        return self.reservations.ping(
            PingRequest(key=key, caller_number=caller, inbound_number=None, tags=tags)
        ).uuid

    def invite(
        self, user: str, *, ip: str = "203.0.113.7", authorization: str | None = None,
        from_user: str = "12025550102", transport: str = "UDP", offer_srtp: bool = False,
    ) -> BridgeTo | Reject:  # fmt: skip
        return self.router.route(IncomingInvite(
            call_id="c-1", source_ip=ip_address(ip), source_port=5060, transport=transport,
            request_uri=f"sip:{user}@{DOMAIN}", ruri_user=user, from_user=from_user,
            from_display="", authorization=authorization, offer_srtp=offer_srtp,
        ))  # fmt: skip


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[World]:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, CONFIG))
    yield World(engine, clock)
    engine.dispose()


def _status(world: World, uuid: str, key: str = KEY1) -> dict:
    return dataclasses.asdict(world.reservations.lookup(uuid, key))


def test_allowlisted_ip_bridges_with_headers_and_caller_id(world: World) -> None:
    uuid = world.ping(caller_zip="10001", caller_state="CA")
    decision = world.invite(uuid)
    assert isinstance(decision, BridgeTo)
    assert decision.reservation_uuid == uuid
    assert decision.target_uri == "sip:queue@127.0.0.1:5070"
    assert decision.caller_id == "+12025550102"
    assert decision.ring_timeout == 12
    assert dict(decision.headers) == {
        "X-RTB-UUID": uuid, "X-RTB-Tag-caller_state": "CA", "X-RTB-Tag-caller_zip": "10001",
    }  # fmt: skip
    assert _status(world, uuid)["status"] == "claimed"


def test_ipv6_allowlist(world: World) -> None:
    assert isinstance(world.invite(world.ping(), ip="2001:db8::5"), BridgeTo)


def test_unknown_source_without_credentials_is_challenged(world: World) -> None:
    uuid = world.ping()
    decision = world.invite(uuid, ip="192.0.2.99")
    assert isinstance(decision, Reject) and decision.code == 401
    challenges = [v for k, v in decision.headers if k == "WWW-Authenticate"]
    assert len(challenges) == 2
    params = [parse_params(c)[1] for c in challenges]
    assert {p["algorithm"] for p in params} == {"MD5", "SHA-256"}
    assert all(p["realm"] == DOMAIN and p["qop"] == "auth" for p in params)
    assert _status(world, uuid)["status"] == "reserved"  # nothing claimed


def _answer(
    world: World, uuid: str, password: str, algorithm: str = "MD5", *, username: str = "pub1",
    ip: str = "192.0.2.99",
) -> BridgeTo | Reject:  # fmt: skip
    challenge = world.invite(uuid, ip=ip)
    assert isinstance(challenge, Reject)
    nonce = next(
        parse_params(v)[1]["nonce"] for k, v in challenge.headers if k == "WWW-Authenticate"
    )
    auth = build_authorization(username=username, password=password, realm=DOMAIN, nonce=nonce,
                               method="INVITE", uri=f"sip:{uuid}@{DOMAIN}", algorithm=algorithm)  # fmt: skip
    return world.invite(uuid, ip=ip, authorization=auth)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_credentials_bridge(world: World, algorithm: str) -> None:
    uuid = world.ping()
    assert isinstance(_answer(world, uuid, "s3cret-Pass-123", algorithm), BridgeTo)


def test_wrong_password_is_403(world: World) -> None:
    uuid = world.ping()
    decision = _answer(world, uuid, "not-the-password")
    assert isinstance(decision, Reject) and decision.code == 403
    assert _status(world, uuid)["status"] == "reserved"


def test_unknown_user_gets_the_answer_of_a_wrong_password(world: World) -> None:
    """Issue 17 row 8 (SPEC §4.5): one answer for both, no username oracle; the cause the
    agent counts and logs still tells operators which."""
    uuid = world.ping()
    wrong = _answer(world, uuid, "not-the-password")
    unknown = _answer(world, uuid, "not-the-password", username="nobody", ip="192.0.2.98")
    assert isinstance(wrong, Reject) and isinstance(unknown, Reject)
    assert (unknown.code, unknown.reason, unknown.headers) == (wrong.code, wrong.reason, ())
    assert (wrong.code, wrong.reason) == (403, "Forbidden")
    assert (wrong.auth_failure, unknown.auth_failure) == ("wrong-password", "unknown-user")


@pytest.mark.parametrize("user", ["not-a-uuid", "12345", "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30"])
def test_unknown_or_malformed_uuid_is_404(world: World, user: str) -> None:
    decision = world.invite(user)
    assert isinstance(decision, Reject) and decision.code == 404


def test_reservation_of_another_publisher_is_403(world: World) -> None:
    uuid = world.ping(key=KEY2)
    decision = world.invite(uuid)  # p1's address
    assert isinstance(decision, Reject) and decision.code == 403
    assert _status(world, uuid, KEY2)["status"] == "reserved"


def test_expired_cancelled_and_used_are_410_with_the_reason(world: World) -> None:
    expired = world.ping(caller="+12025550111")
    cancelled = world.ping(caller="+12025550112")
    world.reservations.update(cancelled, KEY1, "cancelled")
    used = world.ping(caller="+12025550113")
    assert isinstance(world.invite(used), BridgeTo)
    world.clock.advance(61)
    for uuid, word in ((expired, "expired"), (cancelled, "cancelled"), (used, "already used")):
        decision = world.invite(uuid)
        assert isinstance(decision, Reject) and decision.code == 410, uuid
        assert word in decision.reason


def test_exactly_one_of_many_concurrent_invites_claims(world: World) -> None:
    uuid = world.ping()
    results: list[BridgeTo | Reject] = []
    lock = threading.Lock()

    def go() -> None:
        decision = world.invite(uuid)
        with lock:
            results.append(decision)

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, BridgeTo) for r in results) == 1
    assert all(r.code == 410 for r in results if isinstance(r, Reject))


def test_pstn_arrival_from_trunk_matches_did_and_caller(world: World) -> None:
    uuid = world.ping(caller="+12025550199")
    did = world.reservations.lookup(uuid, KEY1).inbound_number
    assert did is not None
    decision = world.invite(did.lstrip("+"), ip="192.0.2.10", from_user="+12025550199")
    assert isinstance(decision, BridgeTo) and decision.reservation_uuid == uuid
    again = world.invite(did, ip="192.0.2.10", from_user="+12025550199")
    assert isinstance(again, Reject) and again.code == 404


def test_number_buyer_goes_through_the_trunk_template(world: World) -> None:
    uuid = world.ping(key=KEY2, caller=None)
    decision = world.invite(uuid, ip="198.51.100.20")
    assert isinstance(decision, BridgeTo)
    assert decision.target_uri == "sip:+18005550100@192.0.2.10:5060"


def test_a_trunk_gone_since_the_ping_ends_the_claim_at_once(world: World) -> None:
    """The buyer's number needs a trunk that another process removed between the ping and the
    INVITE: 503, and the claim is closed now (the buyer's unit back), not left to the sweep."""
    uuid = world.ping(key=KEY2, caller=None)
    with Session(world.engine) as session:
        session.execute(text("DELETE FROM trunk"))  # no admin path allows it: a race stands in
        bump_version(session)
        session.commit()
    decision = world.invite(uuid, ip="198.51.100.20")
    assert isinstance(decision, Reject) and decision.code == 503
    assert decision.reason == "Service Unavailable (no trunk for the buyer's number)"
    looked = world.reservations.lookup(uuid, KEY2)
    assert looked.status == "failed"
    assert looked.details["call"]["sip_code"] == 503
    assert check_counters(world.engine).ok


def _event(uuid: str, kind: str, world: World, **kw: object) -> CallEvent:
    return CallEvent(reservation_uuid=uuid, kind=kind, call_id="c-1",  # type: ignore[arg-type]
                     invite_at=world.clock(), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_answered_then_ended_completes_with_converted(world: World, sqlite_url: str) -> None:
    uuid = world.ping()
    assert isinstance(world.invite(uuid), BridgeTo)
    start = world.clock()
    world.router.on_event(_event(uuid, "answered", world, answer_at=start))
    assert _status(world, uuid)["status"] == "connected"
    end = start + timedelta(seconds=75)
    world.router.on_event(_event(uuid, "ended", world, answer_at=start, end_at=end, publisher_code=200,
                                 buyer_code=200, hangup_by="buyer", duration=75.0))  # fmt: skip
    looked = world.reservations.lookup(uuid, KEY1)
    assert looked.status == "completed"
    assert looked.details["duration"] == 75.0 and looked.details["converted"] is True
    call = looked.details["call"]
    assert call["hangup_by"] == "buyer" and call["sip_code"] == 200 and call["payout"] == 12.5


def test_short_call_is_not_converted_and_unanswered_fails_with_code(world: World) -> None:
    short = world.ping(caller="+12025550121")
    world.invite(short)
    t = world.clock()
    world.router.on_event(_event(short, "ended", world, answer_at=t, end_at=t + timedelta(seconds=10),
                                 publisher_code=200, buyer_code=200, hangup_by="publisher", duration=10.0))  # fmt: skip
    assert world.reservations.lookup(short, KEY1).details["converted"] is False
    busy = world.ping(caller="+12025550122")
    world.invite(busy)
    world.router.on_event(_event(busy, "ended", world, end_at=t, publisher_code=486, buyer_code=486,
                                 buyer_reason="Busy Here"))  # fmt: skip
    looked = world.reservations.lookup(busy, KEY1)
    assert looked.status == "failed"
    assert looked.details["call"]["buyer_sip_code"] == 486


def test_a_batch_of_events_is_recorded_in_order_in_one_go(world: World) -> None:
    """The agent hands events over per poll; answered and ended of several calls, in one
    transaction, each call ends where its own events say."""
    a, b = world.ping(caller="+12025550131"), world.ping(caller="+12025550132")
    world.invite(a)
    world.invite(b)
    t = world.clock()
    world.router.on_events([
        _event(a, "answered", world, answer_at=t),
        _event(b, "ended", world, end_at=t, publisher_code=480, buyer_code=480),
        _event(a, "ended", world, answer_at=t, end_at=t + timedelta(seconds=90), publisher_code=200,
               buyer_code=200, hangup_by="publisher", duration=90.0),
    ])  # fmt: skip
    assert world.reservations.lookup(a, KEY1).details["converted"] is True
    assert world.reservations.lookup(b, KEY1).status == "failed"


def test_writers_on_many_threads_queue_instead_of_failing(sqlite_url: str) -> None:
    """SQLite has one writer; the agent's router and event threads must queue for it, not
    time out in SQLite's busy handler (storage.sql's in-process writer lock)."""
    from concurrent.futures import ThreadPoolExecutor

    from rtbridge.storage.database import open_database
    from rtbridge.storage.sql import transaction

    engine = open_database(sqlite_url)
    with transaction(engine, write=True) as db:
        db.execute("CREATE TABLE hits (n INTEGER)")

    def write(n: int) -> None:
        for _ in range(50):
            with transaction(engine, write=True) as db:
                db.execute("INSERT INTO hits (n) VALUES (:n)", {"n": n})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    with transaction(engine, write=False) as db:
        assert db.one("SELECT count(*) AS c FROM hits") == {"c": 400}
    engine.dispose()


def test_publisher_tls_and_srtp_requirements(world: World, tmp_path: Path) -> None:
    """SPEC §4.1: TLS and SRTP per publisher. A refused INVITE does not use the reservation;
    one that meets the policy does. The buyer's SRTP mode reaches the buyer leg."""
    apply_file(world.engine, write_config(tmp_path, CONFIG.replace(
        'ips = ["203.0.113.0/24", "2001:db8::/32"]',
        'ips = ["203.0.113.0/24", "2001:db8::/32"]\nrequire_tls = true\nrequire_srtp = true',
    ).replace('seconds = 60\n', 'seconds = 60\nsrtp = "required"\n', 1)))  # fmt: skip
    uuid = world.ping()
    plain = world.invite(uuid)
    assert isinstance(plain, Reject) and (plain.code, "TLS" in plain.reason) == (403, True)
    no_srtp = world.invite(uuid, transport="TLS")
    assert isinstance(no_srtp, Reject) and (no_srtp.code, "SRTP" in no_srtp.reason) == (488, True)
    assert (plain.auth_failure, no_srtp.auth_failure) == ("tls-required", "srtp-required")
    assert _status(world, uuid)["status"] == "reserved"  # refusals claimed nothing
    ok = world.invite(uuid, transport="TLS", offer_srtp=True)
    assert isinstance(ok, BridgeTo) and ok.srtp == "required"
    # Another publisher without requirements is unaffected.
    other = world.invite(world.ping(KEY2), ip="198.51.100.9")
    assert isinstance(other, BridgeTo) and other.srtp == "off"


def test_where_each_partys_media_may_move(world: World, tmp_path: Path) -> None:
    """SPEC §4.6: the plan names the networks a re-INVITE may move media to — the
    publisher's allowlist and media_networks, the buyer's media_networks and its trunk's
    CIDRs; on the PSTN path the caller's side is the carrier trunk."""
    apply_file(world.engine, write_config(tmp_path, CONFIG.replace(
        'ips = ["203.0.113.0/24", "2001:db8::/32"]',
        'ips = ["203.0.113.0/24", "2001:db8::/32"]\nmedia_networks = ["100.64.0.0/24"]',
    ).replace('seconds = 90\n', 'seconds = 90\nmedia_networks = ["100.64.9.0/24"]\n', 1)))  # fmt: skip
    sip = world.invite(world.ping())
    assert isinstance(sip, BridgeTo)
    assert sorted(sip.publisher_media) == ["100.64.0.0/24", "2001:db8::/32", "203.0.113.0/24"]
    assert sip.buyer_media == ()  # a SIP URI buyer: its own host only (the agent adds it)
    number = world.invite(world.ping(key=KEY2, caller=None), ip="198.51.100.20")
    assert isinstance(number, BridgeTo)
    assert number.publisher_media == ("198.51.100.0/24",)
    assert number.buyer_media == ("100.64.9.0/24", "192.0.2.10/32")
    uuid = world.ping(caller="+12025550199")
    did = world.reservations.lookup(uuid, KEY1).inbound_number
    pstn = world.invite(did.lstrip("+"), ip="192.0.2.10", from_user="+12025550199")  # type: ignore[union-attr]
    assert isinstance(pstn, BridgeTo) and pstn.publisher_media == ("192.0.2.10/32",)


def test_lookup_over_http_shows_the_outcome(world: World, sqlite_url: str) -> None:
    from rtbridge.http.app import create_app
    from rtbridge.settings import Settings

    uuid = world.ping()
    world.invite(uuid)
    t = world.clock()
    world.router.on_event(_event(uuid, "ended", world, answer_at=t, end_at=t + timedelta(seconds=61),
                                 publisher_code=200, buyer_code=200, hangup_by="publisher", duration=61.0))  # fmt: skip
    with TestClient(create_app(Settings(db_url=sqlite_url, sip_enabled=False))) as client:
        body = client.get(f"/rtbs/{uuid}.json", params={"key": KEY1}).json()
    assert body["status"] == "completed" and body["converted"] is True and body["duration"] == 61.0
    assert "sip_address" not in body


def test_allowlist_change_reaches_the_router(world: World, tmp_path: Path) -> None:
    uuid = world.ping()
    assert isinstance(world.invite(uuid, ip="192.0.2.50"), Reject)
    apply_file(
        world.engine, write_config(tmp_path, CONFIG.replace('"203.0.113.0/24"', '"192.0.2.50/32"'))
    )
    assert isinstance(world.invite(uuid, ip="192.0.2.50"), BridgeTo)


def test_every_decision_is_logged_once_with_why(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: "why was this call refused?" from the log alone — one line per INVITE
    with the code, the reason, the source, and the publisher and rule once known."""
    caplog.set_level(logging.INFO, logger="rtbridge.sip")
    uuid = world.ping()
    world.invite(uuid)  # claimed
    world.invite(uuid)  # already used: 410
    world.invite(uuid, ip="192.0.2.99")  # challenged
    lines = [r for r in caplog.records if r.name == "rtbridge.sip" and "INVITE" in r.getMessage()]
    assert [getattr(r, "code", None) for r in lines] == [100, 410, 401]
    claimed, gone, challenged = lines
    assert claimed.uuid == uuid and claimed.publisher == "p1"  # type: ignore[attr-defined]
    assert "203.0.113.0/24" in claimed.rule  # type: ignore[attr-defined]
    assert gone.reason.startswith("Gone") and gone.source == "203.0.113.7"  # type: ignore[attr-defined]
    assert gone.publisher == "p1" and gone.ruri_user == uuid  # type: ignore[attr-defined]
    assert challenged.source == "192.0.2.99" and not hasattr(challenged, "publisher")
    assert challenged.auth_failure == "missing-credentials"  # type: ignore[attr-defined]
    assert not hasattr(gone, "auth_failure")  # refused by the claim, not by authentication


def test_auth_failures_are_named_in_the_answer_and_the_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The log line's auth_failure is the Reject's, which the agent counts in
    rtbridge_sip_auth_failures_total{reason}: logs and metrics say the same thing."""
    caplog.set_level(logging.INFO, logger="rtbridge.sip")
    uuid = world.ping()
    wrong = _answer(world, uuid, "not-the-password")  # a challenge, then a wrong password
    unknown = world.router.route(IncomingInvite(
        call_id="c-2", source_ip=ip_address("192.0.2.98"), source_port=5060, transport="UDP",
        request_uri=f"sip:{uuid}@{DOMAIN}", ruri_user=uuid, from_user="12025550102",
        from_display="", authorization=None, untrusted_source="203.0.113.7:5060",
    ))  # fmt: skip
    assert isinstance(wrong, Reject) and isinstance(unknown, Reject)
    assert (wrong.code, wrong.auth_failure) == (403, "wrong-password")
    # a source header from a host that is not a trusted proxy: named, and still ignored
    assert (unknown.code, unknown.auth_failure) == (401, "untrusted-proxy-header")
    lines = [r for r in caplog.records if r.getMessage() == "INVITE refused"]
    assert [getattr(r, "auth_failure", None) for r in lines] == [
        "missing-credentials", "wrong-password", "untrusted-proxy-header",
    ]  # fmt: skip
    assert lines[-1].untrusted_source == "203.0.113.7:5060"  # type: ignore[attr-defined]
    assert _status(world, uuid)["status"] == "reserved"


def test_guessing_is_summarised_not_logged_line_by_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17 row 12: a scanner's burst of guesses from one source is O(1) log lines — the
    first refusal of each kind in full (the "why was this call refused?" line), then one
    summary with the counts once the interval is over (at the next heartbeat)."""
    caplog.set_level(logging.INFO, logger="rtbridge.sip")
    uuid = world.ping()
    for i in range(30):  # a challenge, then a guess: 60 refusals
        _answer(world, uuid, f"guess-{i}")
    refused = [r for r in caplog.records if r.getMessage() == "INVITE refused"]
    assert [(r.code, r.auth_failure) for r in refused] == [  # type: ignore[attr-defined]
        (401, "missing-credentials"), (403, "wrong-password"), (403, "throttled"),
    ]  # fmt: skip
    wrong = refused[1]
    assert (wrong.source, wrong.username, wrong.call_id) == ("192.0.2.99", "pub1", "c-1")  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.getMessage() == "INVITE refusals summarised"]
    # A publisher's refusals after authentication keep a line each.
    for _ in range(3):
        world.invite("not-a-uuid")
    assert len([r for r in caplog.records if getattr(r, "code", None) == 404]) == 3
    world.clock.advance(10)
    world.router.heartbeat(world.clock(), Carried(frozenset(), world.clock()))
    (summary,) = [r for r in caplog.records if r.getMessage() == "INVITE refusals summarised"]
    assert summary.source == "192.0.2.99" and summary.refused == 60 and summary.logged == 3  # type: ignore[attr-defined]
    assert summary.causes == {  # type: ignore[attr-defined]
        "401 missing-credentials": 30, "403 throttled": 26, "403 wrong-password": 4,
    }  # fmt: skip
    assert summary.usernames == {"pub1": 30}  # type: ignore[attr-defined]
    assert _status(world, uuid)["status"] == "reserved"


def test_refused_invites_reach_the_admin_api_with_the_next_heartbeat(world: World) -> None:
    """An INVITE from an unlisted source and one naming a long, hostile R-URI user: both kept
    (what the sender chose cut short), written once by the heartbeat, newest first; a flood
    keeps only the last ones."""
    from sqlmodel import Session

    from rtbridge.sip.recent_refusals import KEEP
    from rtbridge.storage import listings

    world.router.heartbeat(world.clock(), Carried(frozenset(), world.clock()))
    assert isinstance(world.invite(world.ping(), ip="192.0.2.99"), Reject)  # 401
    # bytes that were not UTF-8 (a lone surrogate), a NUL, markup: as the mutation fuzz sends
    hostile = "\udcff\x00<script>" + "x" * 300
    assert isinstance(world.invite(hostile), Reject)  # allowlisted, but no reservation: 404
    world.router.heartbeat(world.clock(), Carried(frozenset(), world.clock()))
    with Session(world.engine) as session:
        (agent,) = listings.agents(session)
    newest, first = agent["refusals"]
    assert (first["source"], first["code"], first["cause"]) == ("192.0.2.99", 401,
                                                                "missing-credentials")  # fmt: skip
    assert newest["code"] == 404
    assert newest["ruri_user"] == "\\udcff?<script>" + "x" * 54  # cut to 64, NUL as ?, escaped
    assert world.router.recent_refusals.take() is None  # written: nothing new to write
    for _ in range(KEEP + 10):
        world.invite("nope", ip="192.0.2.98")
    refusals = world.router.recent_refusals.take()
    assert refusals is not None and len(refusals) == KEEP
    assert all(r["source"] == "192.0.2.98" for r in refusals)


def _invite_as(
    world: World, uuid: str, *, from_user: str, asserted: str | None = None
) -> BridgeTo | Reject:
    headers = {"p-asserted-identity": asserted} if asserted else {}
    return world.router.route(IncomingInvite(
        call_id="c-2", source_ip=ip_address("203.0.113.7"), source_port=5060, transport="UDP",
        request_uri=f"sip:{uuid}@{DOMAIN}", ruri_user=uuid, from_user=from_user, from_display="",
        authorization=None, headers=headers,
    ))  # fmt: skip


def test_a_caller_met_at_the_invite_is_recorded_and_a_duplicate_refused(world: World) -> None:
    """Issue 23: a ping without a caller number; its INVITE's caller (P-Asserted-Identity,
    else From) is recorded and checked against the buyer's duplicate rule — a duplicate gets
    403 naming it, the reservation ends failed and its unit goes back."""
    from rtbridge.storage.callers import Marks
    from rtbridge.storage.sql import transaction
    from rtbridge.storage.trips import Trip

    with world.engine.begin() as conn:
        conn.execute(text("UPDATE campaign SET duplicate_window = 3600 WHERE id = 'c1'"))
    with Session(world.engine) as session:
        bump_version(session)
        session.commit()
    with transaction(world.engine, write=True) as db:  # +12025550177 reached b1 10 min ago
        marks, trip = Marks(), Trip(db)
        marks.add("connected", "+12025550177", "b1", db.ts(world.clock() - timedelta(minutes=10)))
        marks.flush(trip)
        trip.run()
    fresh = world.ping(caller=None)
    assert isinstance(_invite_as(world, fresh, from_user="12025550188"), BridgeTo)
    assert _status(world, fresh)["details"]["caller_number"] == "+12025550188"
    dup = world.ping(caller=None)
    refused = _invite_as(world, dup, from_user="anonymous",
                         asserted='"Caller" <sip:+12025550177@carrier.example;user=phone>')  # fmt: skip
    assert isinstance(refused, Reject) and (refused.code, refused.reason) == (
        403, "Forbidden (duplicate caller)")  # fmt: skip
    with world.engine.connect() as conn:
        row = conn.execute(text("SELECT status, reason, caller_number FROM reservation "
                                "WHERE uuid = :u"), {"u": dup}).one()  # fmt: skip
    assert tuple(row) == ("failed", "duplicate-caller", "+12025550177")
    assert check_counters(world.engine).differences == ()
    again = _invite_as(world, dup, from_user="12025550177")  # the publisher's retry
    assert isinstance(again, Reject) and again.code != 200
    anonymous = world.ping(caller=None)  # no number anywhere: nothing to compare
    assert isinstance(_invite_as(world, anonymous, from_user="anonymous"), BridgeTo)


@pytest.mark.parametrize(
    "asserted",
    [
        "<sip:+1202'; DROP TABLE reservation; --@x>",  # not a number: From's is used
        "<" + "9" * 5000 + ">",
        '"\\x00\\r\\nInjected: yes" <tel:+1202555019;phone-context=x>',
        "<sips:%2B12025550199@evil.example>, <sip:+19005550100@second.example>",
        "garbage without brackets",
        "",
    ],
)  # fmt: skip
def test_a_hostile_p_asserted_identity_is_only_a_number_or_nothing(
    world: World, asserted: str
) -> None:
    """The header is the publisher's word: at worst it names another number (the publisher
    is authenticated: it could send any caller in its ping too), never breaks the route."""
    uuid = world.ping(caller=None)
    decision = _invite_as(world, uuid, from_user="12025550166", asserted=asserted)
    assert isinstance(decision, BridgeTo), decision
    caller = _status(world, uuid)["details"]["caller_number"]
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", caller), caller  # a number, nothing else


BLOCKED = "+13125550100"


def _with_lists(world: World, tmp_path: Path) -> None:
    """A global block list (a number, a prefix, anonymous), applied as an admin would."""
    lists = f"""
[[caller_lists]]
id = "blocked"
kind = "block"
entries = ["{BLOCKED}", "+1900", "anonymous"]
"""
    path = tmp_path / "lists.toml"
    path.write_text(lists)
    apply_file(world.engine, path)


def test_an_invite_from_a_blocked_caller_gets_403_and_the_unit_back(
    world: World, tmp_path: Path
) -> None:
    """Issue 23: a ping without a caller; its INVITE's caller is on a block list — 403
    naming it, the reservation failed blocked-caller, its unit back; an anonymous INVITE
    meets the list's anonymous entry."""
    _with_lists(world, tmp_path)
    for from_user, asserted, stored in (
        ("anonymous", f"<sip:{BLOCKED}@carrier.example;user=phone>", BLOCKED),
        ("anonymous", None, None),
        ("19005550100", None, "+19005550100"),
    ):
        uuid = world.ping(caller=None)
        refused = _invite_as(world, uuid, from_user=from_user, asserted=asserted)
        assert isinstance(refused, Reject)
        assert (refused.code, refused.reason) == (403, "Forbidden (blocked caller)")
        status = _status(world, uuid)
        assert (status["status"], status["reason"]) == ("failed", "blocked-caller")
        assert status["details"]["caller_number"] == stored
        assert check_counters(world.engine).differences == ()
    fine = world.ping(caller=None)
    assert isinstance(_invite_as(world, fine, from_user="12025550166"), BridgeTo)


@pytest.mark.parametrize(
    "asserted",
    [
        "<tel:+1-312-555-0100>",
        "<tel:+13125550100;phone-context=+1;cpc=ordinary>",
        '"Spoof" <sip:+1(312)555.0100@evil.example;user=phone>',
        "<sip:13125550100@evil.example>",
        "<sip:3125550100@evil.example>",
        "<sip:+13125550100;isub=1@evil.example>, <sip:+12025550100@second.example>",
    ],
)  # fmt: skip
def test_a_blocked_number_however_written_is_still_blocked(
    world: World, tmp_path: Path, asserted: str
) -> None:
    """The abuse case: a blocked number behind tel:, visual separators, parameters or a
    second identity never gets through, and nothing crashes."""
    _with_lists(world, tmp_path)
    uuid = world.ping(caller=None)
    refused = _invite_as(world, uuid, from_user="12025550166", asserted=asserted)
    assert isinstance(refused, Reject) and refused.code == 403, (asserted, refused)
    assert check_counters(world.engine).differences == ()


def test_a_recorded_plan_carries_its_buyers_notice_and_failover_the_next_ones(
    world: World, tmp_path: Path
) -> None:
    """Issue 24: the plan's ``record`` and ``announcement`` are the claimed buyer's (its
    own notice, else its campaign's); a failover's next plan carries the next buyer's."""
    first, second = write_wav(tmp_path / "b1.wav"), write_wav(tmp_path / "c1.wav")
    apply_file(world.engine, write_config(tmp_path, CONFIG.replace(
        'numbers = ["+18339510260", "+18334583385"]\n',
        f'numbers = ["+18339510260", "+18334583385"]\nrecord = true\n'
        f'record_announcement = "{second.name}"\n',
    ).replace(
        "seconds = 60\n",
        f'seconds = 60\nrecord_announcement = "{first}"\n\n[[campaigns.buyers]]\nid = "b1b"\n'
        'destination = "sip:backup@127.0.0.1:5071"\npayout = 12.5\nseconds = 60\npriority = 2\n',
        1,
    )))  # fmt: skip
    uuid = world.ping()
    plan = world.invite(uuid)
    assert isinstance(plan, BridgeTo) and plan.buyer_id == "b1"
    assert (plan.record, plan.announcement) == (True, str(first))
    now = world.clock()
    failed = Attempt("b1", plan.target_uri, now, now, "busy", 486, "Busy Here")
    moved = world.router.next_buyer(plan, failed, ["b1"])
    assert moved.next is not None and moved.next.buyer_id == "b1b"
    assert (moved.next.record, moved.next.announcement) == (True, str(second))
    # the second campaign records nothing: no notice in its plans
    other = world.invite(world.ping(KEY2), ip="198.51.100.9")
    assert isinstance(other, BridgeTo) and (other.record, other.announcement) == (False, "")
