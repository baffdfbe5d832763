"""Counters survive SIGKILL (issue 8): two ``rtbridge serve`` processes share one database —
one with the SIP agent carrying a real SIPp call, bridged and connected — while a ping storm
hits both and a stand-in agent process (``tests/support/call_driver.py``) keeps calls
going. All three are killed with SIGKILL mid-storm and mid-call, restarted (the agent and the
stand-in close the calls they left open), stormed again, stopped. Then every counter equals
its recount from the reservations, and the status history shows no buyer ever over a cap."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.rollup_recount import check_rollups
from tests.conftest import ROOT, write_config
from tests.sip.sipp import Sipp, hostport, sipp_binary
from tests.support.allocation import over_allocations, peaks
from tests.support.net import free_port, wait_for_port

pytestmark = [pytest.mark.live, pytest.mark.sip]

KEY = "crash-test-key-000000000001"
TTL = 1
CAPS = {"b1": (5, 500), "b2": (4, 3)}  # b2's daily cap fills during the run


def _config(buyer_uri: str) -> str:
    buyers = "".join(
        f"""
[[campaigns.buyers]]
id = "{b}"
destination = "{buyer_uri}"
payout = 10.0
seconds = 1
concurrency = {concurrency}
daily_cap = {daily}
"""
        for b, (concurrency, daily) in CAPS.items()
    )
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"
numbers = ["+18339510260", "+18334583385", "+18334583386", "+18334583387"]
{buyers}
[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
ttl_seconds = {TTL}
"""


class Server:
    """``rtbridge serve`` as a subprocess that a test may SIGKILL and start again."""

    def __init__(self, db_url: str, *extra: str) -> None:
        self.db_url, self.extra = db_url, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtbridge", "serve", "--http", f"127.0.0.1:{port}",
             "--log-level", "warning", *self.extra],
            env={**os.environ, "RTBRIDGE_DB": self.db_url}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port("127.0.0.1", port)
        self.base = f"http://127.0.0.1:{port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Storm:
    """Pings with distinct callers from a background thread, spread over whatever servers
    are up; refused connections (a server just killed) are counted and retried."""

    def __init__(self, servers: list[Server], connections: int = 8) -> None:
        self.servers, self.connections = servers, connections
        self.answers: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        async with httpx2.AsyncClient(timeout=5) as client:

            async def one(worker: int) -> None:
                n = 0
                while not self._stop.is_set():
                    n += 1
                    base = self.servers[n % len(self.servers)].base
                    caller = f"+1{300 + worker}{n:07d}"
                    try:
                        r = await client.post(f"{base}/rtbs.json",
                                              data={"key": KEY, "caller_number": caller})  # fmt: skip
                        body = r.json()
                        self.answers[body.get("reason") or body.get("status") or r.status_code] += 1
                    except (httpx2.HTTPError, ValueError):
                        self.answers["connection-error"] += 1
                        await asyncio.sleep(0.02)

            await asyncio.gather(*(one(w) for w in range(self.connections)))

    def __enter__(self) -> Storm:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _driver(db_url: str, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.call_driver", db_url, "driver", str(seconds)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for_open_calls(engine: Engine, agent: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(
                text(
                    "SELECT 1 FROM reservation r JOIN callrecord c ON c.reservation_uuid = r.uuid "
                    "WHERE c.agent = :a AND r.status IN ('claimed', 'connected') LIMIT 1"
                ),
                {"a": agent},
            ).first():
                return
        time.sleep(0.01)
    raise AssertionError(f"no call of {agent} open within {timeout} s")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def cleanup() -> Iterator[list[object]]:
    """Whatever a test started, killed at the end however it ended."""
    started: list[object] = []
    yield started
    for thing in reversed(started):
        if isinstance(thing, Server | Sipp):
            thing.kill()
        elif isinstance(thing, subprocess.Popen) and thing.poll() is None:
            thing.kill()
            thing.wait()


def test_sigkill_mid_storm_and_mid_call_leaves_counters_exact(
    db_url: str, tmp_path: Path, cleanup: list[object]
) -> None:
    assert sipp_binary(), "SIPp is missing: scripts/system-deps installs Debian's sip-tester"
    buyer = Sipp("uas_answer.xml", tmp_path, rtp_echo=True, timeout=60)
    cleanup.append(buyer)
    buyer.wait_listening()
    engine = open_database(db_url)
    apply_file(engine, write_config(tmp_path, _config(buyer.uri())))
    sip_port, rtp = free_port(), free_port()
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(
        f'[agent]\nhosts = ["127.0.0.1"]\nport = {sip_port}\nmedia_address = "127.0.0.1"\n'
        f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + 40}\nmax_calls = 16\nring_timeout = 3.0\n"
    )
    with_sip = Server(db_url, "--sip-config", str(agent_file))
    http_only = Server(db_url, "--sip", "off")
    servers = [with_sip, http_only]
    for server in servers:
        cleanup.append(server)
        server.start()

    # A real call, bridged and connected, that the kill will cut.
    r = httpx2.post(
        f"{with_sip.base}/rtbs.json", data={"key": KEY, "caller_number": "+12025550100"}
    )
    uuid = r.json()["uuid"]
    publisher = Sipp("uac_call.xml", tmp_path, remote=hostport("127.0.0.1", sip_port),
                     service=uuid, duration_ms=60_000, timeout=90)  # fmt: skip
    cleanup.append(publisher)
    deadline = time.monotonic() + 10
    status = ""
    while status != "connected" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = httpx2.get(f"{with_sip.base}/rtbs/{uuid}.json", params={"key": KEY}).json()[
            "status"
        ]
    assert status == "connected", status

    driver = _driver(db_url, 60, tmp_path / "driver-1.log")
    cleanup.append(driver)
    with Storm(servers) as storm:
        time.sleep(2.0)
        before = sum(storm.answers.values())
        http_only.kill()
        _wait_for_open_calls(engine, "driver")
        driver.send_signal(signal.SIGKILL)
        time.sleep(0.3)
        with_sip.kill()
        with_sip.start()  # same SIP port, same agent name: it recovers the cut call
        http_only.start()
        restarted = _driver(db_url, 1.0, tmp_path / "driver-2.log")  # recovers its calls
        cleanup.append(restarted)
        time.sleep(2.0)
    assert restarted.wait(timeout=30) == 0
    for server in servers:
        server.stop()

    answers = storm.answers
    assert sum(answers.values()) > before + 20, answers  # pings answered after the restart
    assert answers["connection-error"] > 0, answers  # the kills landed mid-storm
    assert answers["reserved"] > 10 and answers["concurrency-cap-reached"] > 0, answers
    recovered = (tmp_path / "driver-2.log").read_text().splitlines()[0]
    assert recovered.startswith("recovered ") and recovered != "recovered 0", recovered
    with engine.connect() as conn:
        cut = conn.execute(text("SELECT status FROM reservation WHERE uuid = :u"), {"u": uuid})
        # closed by the restarted agent: answered, so completed, up to its last heartbeat
        assert cut.scalar() == "completed"
        open_calls = conn.execute(
            text("SELECT count(*) FROM reservation WHERE status IN ('claimed', 'connected')")
        ).scalar()
    assert open_calls == 0
    report = check_counters(engine)
    assert report.differences == (), report
    # the business figures too: each moved in its event's transaction (storage/rollups.py)
    rollups = check_rollups(engine)
    assert rollups.differences == () and rollups.compared > 0, rollups
    assert over_allocations(engine, TTL, CAPS) == []
    live, daily = peaks(engine, TTL, datetime.now(UTC))
    assert live["b1"] == CAPS["b1"][0] and max(n for (b, _), n in daily.items() if b == "b2") == 3
    engine.dispose()


def test_sigkill_mid_call_bills_to_the_heartbeat_and_ends_both_legs(
    sqlite_url: str, tmp_path: Path, cleanup: list[object]
) -> None:
    """Issue 11: ``rtbridge serve`` killed with SIGKILL 3 s into a bridged call whose buyer
    requires 1 s. The restarted agent records the call as it was — answered, converted,
    paid, ended within a heartbeat of the kill, ``hangup_by = "fault"`` — and sends BYE on
    both legs the dead process left up: the publisher and the buyer (SIPp, both waiting
    for a BYE they did not send) each get one and answer it."""
    assert sipp_binary(), "SIPp is missing: scripts/system-deps installs Debian's sip-tester"
    buyer = Sipp("uas_answer.xml", tmp_path, timeout=60)
    cleanup.append(buyer)
    buyer.wait_listening()
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, _config(buyer.uri())))
    sip_port, rtp = free_port(), free_port()
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(
        f'[agent]\nhosts = ["127.0.0.1"]\nport = {sip_port}\nmedia_address = "127.0.0.1"\n'
        f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + 40}\nmax_calls = 16\n"
        "heartbeat_interval = 1.0\n"
    )
    server = Server(sqlite_url, "--sip-config", str(agent_file))
    cleanup.append(server)
    server.start()
    r = httpx2.post(f"{server.base}/rtbs.json", data={"key": KEY, "caller_number": "+12025550100"})
    uuid = r.json()["uuid"]
    publisher = Sipp("uac_remote_bye.xml", tmp_path, remote=hostport("127.0.0.1", sip_port),
                     service=uuid, timeout=60)  # fmt: skip
    cleanup.append(publisher)

    def lookup() -> dict[str, object]:
        return dict(httpx2.get(f"{server.base}/rtbs/{uuid}.json", params={"key": KEY}).json())

    deadline = time.monotonic() + 10
    while lookup()["status"] != "connected" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lookup()["status"] == "connected"
    time.sleep(3.0)
    server.kill()
    killed_at = datetime.now(UTC)
    time.sleep(1.0)  # the legs stay up: nobody is left to end them

    server.start()  # same SIP port, same agent name: recovery, then BYE on both legs
    body = lookup()
    assert body["status"] == "completed", body
    call = body["call"]
    assert isinstance(call, dict)
    assert call["hangup_by"] == "fault" and call["converted"] is True and call["payout"] == 10.0
    ended_at = datetime.fromisoformat(str(call["ended_at"]).replace("Z", "+00:00"))
    lost = (killed_at - ended_at).total_seconds()
    assert 0 <= lost <= 1.5, f"{lost:.2f} s of the call lost (heartbeat every 1 s)"
    assert isinstance(call["duration"], float) and call["duration"] >= 1.9  # 3 s less one beat

    pub, buy = publisher.wait(15), buyer.wait(15)  # each received a BYE and answered 200
    assert pub.returncode == 0 and buy.returncode == 0, f"{pub.log}\n{buy.log}"
    # SIPp answers where it knows the agent from, not to the Via: the BYE, from an ephemeral
    # port (sip/dialogs.end_legs), may be retransmitted before SIPp ends
    byes = pub.requests("BYE")
    assert byes and all("after a fault" in (bye.header("Reason") or "") for bye in byes)
    assert buy.requests("BYE")
    server.stop()
    assert check_counters(engine).differences == ()
    assert check_rollups(engine).differences == ()  # billed to the heartbeat in both
    engine.dispose()
