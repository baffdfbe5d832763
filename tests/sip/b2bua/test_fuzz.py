"""The agent under a SIP mutation fuzz (issue 11, item 4): over 10,000 broken datagrams
(``tests/sip/fuzz.py``) from one address, paced but quick, to an agent with the real
database-backed router — digest parsing, reservation look-ups and all. Then the agent thread
is alive, no Python error was logged on any path (a traceback there means an INVITE got a
500 or no answer), OPTIONS is answered 200, and a normal SIPp call from an allowlisted
publisher bridges to a SIPp buyer and is recorded."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.sip.b2bua.support import AgentFactory, assert_ok, options, start_uac, start_uas
from tests.sip.fuzz import Target, messages

pytestmark = pytest.mark.sip

COUNT = 12_000
SEED = 11
BURST, PAUSE = 100, 0.02  # at most 5,000 datagrams a second: a fuzz, not a flood
KEY = "fuzz-test-key-0000000000001"
_BRANCH = re.compile(rb"branch=z9hG4bK-fz(\d+)-")  # tests/sip/fuzz.py numbers every request


def _request_of(response: bytes, sent: list[bytes]) -> bytes:
    """The fuzzed request a response answers: its Via branch (echoed back) holds its index."""
    found = _BRANCH.search(response)
    return sent[int(found.group(1))] if found and int(found.group(1)) < len(sent) else b""


def _config(buyer_uri: str) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "{buyer_uri}"
payout = 12.5
seconds = 1

[[publishers]]
id = "p1"
ips = ["127.0.0.2/32"]
credentials = [{{ username = "pub1", password = "s3cret-Pass-123" }}]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 600
"""


def test_agent_survives_a_mutation_fuzz_then_bridges(
    make_agent: AgentFactory, tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    buyer = start_uas(tmp_path, "uas_answer.xml")
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, _config(buyer.uri())))
    catalog = CatalogCache(engine)
    reservations = Reservations(engine, catalog)
    uuid = reservations.ping(PingRequest(key=KEY, caller_number=None, inbound_number=None,
                                         tags={})).uuid  # fmt: skip
    router = ReservationRouter(engine, catalog, secret=b"k" * 32, agent_id="fuzz", ring_timeout=5)
    # No per-source INVITE limit: every fuzzed INVITE should reach the parsing and the router.
    agent, _ = make_agent(router, invite_rate=1e6, invite_burst=10**6)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="rtbridge")

    answers: Counter[str] = Counter()
    sent_datagrams: list[bytes] = []
    server_errors: list[str] = []
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        target = Target("127.0.0.1", agent.port, "127.0.0.1", sock.getsockname()[1], uuid=uuid)

        def listen() -> None:
            while not stop.is_set():
                try:
                    data = sock.recv(70_000)
                except TimeoutError:
                    continue
                status = data[:11].decode(errors="replace")
                answers[status] += 1
                if status == "SIP/2.0 500":
                    server_errors.append(data.decode(errors="replace"))

        listener = threading.Thread(target=listen)
        listener.start()
        started = time.monotonic()
        sent = 0
        try:
            for datagram in messages(target, COUNT, SEED):
                sock.sendto(datagram, ("127.0.0.1", agent.port))
                sent_datagrams.append(datagram)
                sent += 1
                if sent % BURST == 0:
                    time.sleep(PAUSE)
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # answers to the last ones, and the router's queue to drain
        finally:
            stop.set()
            listener.join(5)
    print(f"sent {sent} datagrams in {elapsed:.1f}s; answers {dict(answers.most_common())}")

    assert sent >= 10_000
    assert agent._thread is not None and agent._thread.is_alive()
    # pjsip logs what it rejected (rtbridge.pjsip); errors of our own code are the bugs.
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name != "rtbridge.pjsip"
    ]
    assert not errors, "\n".join(f"{r.getMessage()}\n{r.exc_text}" for r in errors[:5])
    # A 500 would be an internal error on some path (pjsip's or ours) for bad input.
    assert not server_errors, [
        (r, _request_of(r.encode(), sent_datagrams)) for r in server_errors[:3]
    ]
    assert options(agent.port).startswith("SIP/2.0 200")

    # A normal call still bridges, end to end, and is recorded.
    call = start_uac(tmp_path, agent, "uac_call.xml", host="127.0.0.2", service=uuid,
                     duration_ms=300).wait()  # fmt: skip
    assert_ok(call, buyer.wait())
    assert call.invite_answers() == [200]
    deadline = time.monotonic() + 5
    while reservations.lookup(uuid, KEY).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reservations.lookup(uuid, KEY).status == "completed"
    engine.dispose()


def _send(port: int, request: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        sock.sendto(
            request.replace("{p}", str(sock.getsockname()[1])).encode(), ("127.0.0.1", port)
        )
        return sock.recv(4096).decode(errors="replace")


@pytest.mark.parametrize(("method", "cseq"), [("INVITE", "BYE"), ("invite", "REGISTER"),
                                               ("OPTIONS", "INVITE")])  # fmt: skip
def test_cseq_method_mismatch_is_400(make_agent: AgentFactory, method: str, cseq: str) -> None:
    """Found by the fuzzer: pjsua answered these 500 (pjproject/patches/0005)."""
    agent, router = make_agent()
    answer = _send(agent.port, (
        f"{method} sip:someone@127.0.0.1:{agent.port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-mismatch\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:someone@127.0.0.1>\r\n"
        f"Call-ID: mismatch-{method}@127.0.0.1\r\nCSeq: 1 {cseq}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ))  # fmt: skip
    assert answer.startswith("SIP/2.0 400 Bad Request (CSeq method differs"), answer
    assert not router.invites
