"""Issue 17's digest attacks, replayed against the running agent (pjsua2 on loopback, the
database-backed router, SQLite) by a raw UDP publisher — one per source address, bound to
127.0.0.1, 127.0.0.2 … — that answers challenges with :func:`digest.build_authorization`.

The Request-URI user is not a uuid, so an INVITE that authenticates is answered ``404 Not
Found`` by the router right after authentication: 404 means "accepted as a publisher",
without any reservation or buyer involved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.auth import digest
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.refusal_log import RefusalLog
from rtbridge.sip.reservation_router import ReservationRouter
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.sip.error_watch import ErrorWatch
from tests.sip.rawsip import Message, SipPeer
from tests.support.net import free_port

pytestmark = pytest.mark.sip

DOMAIN = "sip.rtb.example.com"
USER = "not-a-reservation"  # authenticated → 404
PASSWORD1 = "s3cret-Pass-123"
PASSWORD2 = "An0ther-Pass-456"
PROXY = "127.0.0.9"
CONFIG = f"""
[sip]
domain = "{DOMAIN}"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "sip:queue@127.0.0.1:5999"
payout = 1.0
seconds = 1

[[publishers]]
id = "p1"
credentials = [{{ username = "pub1", password = "{PASSWORD1}" }}]

[[publishers]]
id = "p2"
credentials = [{{ username = "pub2", password = "{PASSWORD2}" }}]
"""


def nonce_of(challenge: Message) -> str:
    return digest.parse_params(challenge.header("www-authenticate") or "")[1]["nonce"]


class Publisher:
    """A raw SIP UAC on one loopback address (tests/sip/rawsip.py). With ``source_header`` it
    plays the agent's trusted proxy, naming that address as the sender."""

    def __init__(self, host: str, agent_port: int, *, source_header: str | None = None) -> None:
        self.peer = SipPeer(host, answer=None)
        self.agent = ("127.0.0.1", agent_port)
        self.headers = [f"X-RTB-Source: {source_header}"] if source_header else []

    def close(self) -> None:
        self.peer.close()

    def invite(self) -> Message:
        return self.peer.invite(self.agent, USER, domain=DOMAIN, headers=self.headers)[1]

    def login(self, username: str, password: str, *, nonce: str | None = None) -> Message:
        """Challenged (unless given a nonce), then the answer to the challenge — or the first
        answer when it is not a challenge (a blocked source)."""
        first = None
        if nonce is None:
            first, challenge = self.peer.invite(self.agent, USER, domain=DOMAIN,
                                                headers=self.headers)  # fmt: skip
            if challenge.status != 401:
                return challenge
            nonce = nonce_of(challenge)
        authorization = digest.build_authorization(
            username=username, password=password, realm=DOMAIN, nonce=nonce, method="INVITE",
            uri=f"sip:{USER}@{DOMAIN}",
        )  # fmt: skip
        headers = [*self.headers, f"Authorization: {authorization}"]
        return self.peer.invite(self.agent, USER, domain=DOMAIN, headers=headers, retry=first)[1]


@dataclass
class Ticks:
    """The refusal log's clock: the test says when an interval is over."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    agent: Agent
    router: ReservationRouter
    ticks: Ticks
    publisher: Callable[..., Publisher]


@pytest.fixture
def running(tmp_path: Path, sqlite_url: str, agent_errors: ErrorWatch) -> Iterator[Running]:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, CONFIG))
    ticks = Ticks()
    router = ReservationRouter(
        engine, CatalogCache(engine), secret=b"k" * 32, agent_id="attacks", algorithms=("MD5",),
        refusal_log=RefusalLog(logging.getLogger("rtbridge.sip"), clock=ticks),
    )  # fmt: skip
    rtp = free_port(count=1)
    agent = Agent(
        AgentConfig(hosts=("127.0.0.1",), port=0, media_address="127.0.0.1", rtp_port_min=rtp,
                    rtp_port_max=rtp + 20, max_calls=8, drain_timeout=1.0,
                    heartbeat_interval=0.2, trusted_proxies=(f"{PROXY}/32",)),
        router,
    )  # fmt: skip
    agent.start()
    publishers: list[Publisher] = []

    def publisher(host: str = "127.0.0.1", **kw: str) -> Publisher:
        publishers.append(Publisher(host, agent.port, **kw))
        return publishers[-1]

    yield Running(agent, router, ticks, publisher)
    for p in publishers:
        p.close()
    agent.stop()
    engine.dispose()


def test_a_second_credential_does_not_reset_guessing(running: Running) -> None:
    """Row 2: four wrong pub1 guesses, a valid pub2 login after each; on main the pub2 logins
    reset the source's count and guessing went on at full speed."""
    attacker = running.publisher()
    answers = []
    for i in range(5):
        answers.append(attacker.login("pub1", f"guess-{i}"))
        assert attacker.login("pub2", PASSWORD2).status == 404  # authenticated as p2
    assert [(a.status, a.reason) for a in answers] == [(403, "Forbidden")] * 4 + [
        (403, "Too many failed attempts")
    ]
    # The right password too is refused during the cooldown; pub2 is not affected.
    found = attacker.login("pub1", PASSWORD1)
    assert (found.status, found.reason) == (403, "Too many failed attempts")
    assert attacker.login("pub2", PASSWORD2).status == 404
    # From another address pub1's password works: one source's guesses are its own.
    assert running.publisher("127.0.0.2").login("pub1", PASSWORD1).status == 404
    failures = running.agent.status().auth_failures
    assert (failures["wrong-password"], failures["throttled"]) == (4, 2)  # metered


def test_a_nonce_is_bound_to_the_source_it_was_sent_to(running: Running) -> None:
    """Row 7: a nonce fetched from 127.0.0.1 is not accepted from 127.0.0.2 (a fresh
    challenge instead), and bad digests from 127.0.0.2 do not lock pub1 out of 127.0.0.1."""
    publisher, other = running.publisher("127.0.0.1"), running.publisher("127.0.0.2")
    nonce = nonce_of(publisher.invite())
    elsewhere = other.login("pub1", PASSWORD1, nonce=nonce)
    assert elsewhere.status == 401 and nonce_of(elsewhere) != nonce
    assert "stale" not in (elsewhere.header("www-authenticate") or "")
    assert running.agent.status().auth_failures["bad-nonce"] == 1
    bad = [other.login("pub1", f"guess-{i}").status for i in range(5)]
    assert bad == [403] * 5
    assert publisher.login("pub1", PASSWORD1, nonce=nonce).status == 404
    assert publisher.login("pub1", PASSWORD1).status == 404


def test_nonces_behind_a_trusted_proxy_are_bound_to_the_publisher_it_names(
    running: Running,
) -> None:
    """Every INVITE comes from the proxy's address; the binding is to the sender it names."""
    first = running.publisher(PROXY, source_header="198.51.100.7:5060")
    second = running.publisher(PROXY, source_header="198.51.100.8:5060")
    nonce = nonce_of(first.invite())
    assert second.login("pub1", PASSWORD1, nonce=nonce).status == 401
    assert first.login("pub1", PASSWORD1, nonce=nonce).status == 404


def test_unknown_user_and_wrong_password_get_one_answer(running: Running) -> None:
    """Row 8: no username oracle — both 403 with the same reason phrase (main: unknown user
    → 401). Metrics still tell the operator which."""
    attacker = running.publisher()
    wrong = attacker.login("pub1", "not-it")
    unknown = attacker.login("nobody", "not-it")
    assert (wrong.status, wrong.reason) == (unknown.status, unknown.reason) == (403, "Forbidden")
    assert wrong.all("www-authenticate") == []
    failures = running.agent.status().auth_failures
    assert (failures["wrong-password"], failures["unknown-user"]) == (1, 1)


def test_a_guessing_burst_is_a_few_log_lines(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 12: svcrack wrote one line per guess (12,129 lines in 170 s). A burst of guesses
    is now a full line for the first refusal of each kind, then one summary line with the
    counts once the interval is over; the metrics count every refusal.

    40 guesses over 5 usernames: 4 each stay under the per-login limit (5); the source's
    20th failure blocks it (throttled-source), and from then on every INVITE is refused
    before it is even challenged."""
    caplog.set_level(logging.INFO, logger="rtbridge.sip")
    attacker = running.publisher()
    names = ["pub1", "admin", "1000", "1001", "1002"]
    for i in range(40):
        attacker.login(names[i % 5], f"guess-{i}")

    def lines(message: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == message]

    refused = lines("INVITE refused")
    assert [(r.code, r.reason, r.auth_failure) for r in refused] == [  # type: ignore[attr-defined]
        (401, "Unauthorized", "missing-credentials"), (403, "Forbidden", "wrong-password"),
        (403, "Forbidden", "unknown-user"), (403, "Too many failed attempts", "throttled-source"),
    ]  # fmt: skip
    assert [getattr(r, "username", None) for r in refused] == [None, "pub1", "admin", "1002"]
    assert lines("INVITE refusals summarised") == []
    running.ticks.now += 10  # the interval is over: the next heartbeat (0.2 s) writes it
    (summary,) = _wait_for(lambda: lines("INVITE refusals summarised"))
    assert summary.source == "127.0.0.1" and summary.seconds == 10.0  # type: ignore[attr-defined]
    assert (summary.refused, summary.logged) == (60, 4)  # type: ignore[attr-defined]
    expected = {"401 missing-credentials": 20, "403 wrong-password": 4, "403 unknown-user": 15,
                "403 throttled-source": 21}  # fmt: skip
    assert summary.causes == expected  # type: ignore[attr-defined]
    assert summary.usernames == dict.fromkeys(names, 4)  # type: ignore[attr-defined]
    assert len(lines("INVITE refused")) == 4
    failures = {k: n for k, n in running.agent.status().auth_failures.items() if n}
    assert failures == {cause.split()[1]: n for cause, n in expected.items()}  # metered


def _wait_for(found: Callable[[], list[logging.LogRecord]]) -> list[logging.LogRecord]:
    deadline = time.monotonic() + 10
    while not found() and time.monotonic() < deadline:
        time.sleep(0.05)
    return found()
