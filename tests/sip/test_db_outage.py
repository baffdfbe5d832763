"""PostgreSQL stopped for OUTAGE seconds under load, then started again (issue 11, item 3).

``rtbridge serve`` (HTTP API + SIP agent) on a throwaway cluster, SIPp as publisher and buyer,
pings flowing from several clients the whole time. While the database is down: every ping
gets ``503`` + ``Retry-After`` with the JSON error (no other 5xx), INVITEs get ``503`` +
``Retry-After`` and leave their reservation claimable, a call bridged before the outage keeps
its media and is hung up during it, and its end-of-call record waits in the router. Once the
cluster is back: pings succeed again within seconds with no restart, the held record is
written, one of the refused reservations bridges, and every buyer counter equals its recount
(nothing half-written)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from rtbridge.storage.engine import make_engine
from rtbridge.storage.recount import check_counters
from rtbridge.storage.rollup_recount import check_rollups
from tests.conftest import SITE_KEY, write_config
from tests.sip.rtp import RtpPeer
from tests.sip.sipp import Sipp, hostport
from tests.support import postgres
from tests.support.net import free_port
from tests.support.server import serve

pytestmark = [pytest.mark.sip, pytest.mark.live, pytest.mark.postgres]

OUTAGE = 30.0  # seconds the cluster is down (the figure)
RECOVERY = 5.0  # pings must succeed again within this after the cluster is back
KEY = "outage-test-key-000000000001"
CLIENTS = 3


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
concurrency = 100000
daily_cap = 1000000

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[keys]]
key = "{KEY}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 600
"""


@dataclass
class PingLoad:
    """Clients pinging in a loop; every answer kept as (time, status, Retry-After, body)."""

    base: str
    answers: list[tuple[float, int, str | None, object]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, n: int) -> None:
        with httpx2.Client(base_url=self.base, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                r = client.post("/rtbs.json", data={"key": KEY, "client": str(n), "i": str(i)})
                self.answers.append((time.monotonic(), r.status_code,
                                     r.headers.get("retry-after"), r.json()))  # fmt: skip
                time.sleep(0.02)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[postgres.Cluster]:
    if postgres.find_bin() is None:
        pytest.fail("PostgreSQL is missing: scripts/system-deps installs Debian's postgresql")
    monkeypatch.setenv("RTBRIDGE_SITE_KEY", SITE_KEY)  # PostgreSQL: no key file (sitekey.py)
    with postgres.controlled_cluster(unix_socket=True) as running:
        yield running


def _ping(base: str) -> str:
    r = httpx2.post(f"{base}/rtbs.json", data={"key": KEY})
    assert r.status_code == 200, r.text
    return str(r.json()["uuid"])


def _status(base: str, uuid: str) -> str:
    return str(httpx2.get(f"{base}/rtbs/{uuid}.json", params={"key": KEY}).json()["status"])


def _wait_status(base: str, uuid: str, status: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while (found := _status(base, uuid)) != status and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_postgres_stop_and_start_under_load(cluster: postgres.Cluster, tmp_path: Path) -> None:
    total = OUTAGE + 60
    buyer = Sipp("uas_answer.xml", tmp_path, rtp_echo=True, calls=2, timeout=total)
    buyer.wait_listening()
    engine = open_database(cluster.url)
    apply_file(engine, write_config(tmp_path, _config(buyer.uri())))
    engine.dispose()
    sip_port, rtp = free_port(), free_port()
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(
        f'[agent]\nhosts = ["127.0.0.1"]\nport = {sip_port}\nmedia_address = "127.0.0.1"\n'
        f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + 40}\nmax_calls = 16\nretry_after = 7\n"
    )
    remote = hostport("127.0.0.1", sip_port)

    def dial(uuid: str, scenario: str, **kw: object) -> Sipp:
        return Sipp(scenario, tmp_path, remote=remote, service=uuid, **kw)  # type: ignore[arg-type]

    try:
        with serve(cluster.url, "--sip-config", str(agent_file), sip=None) as base:
            # A call bridged before the outage, hung up by the publisher in the middle of it.
            long_uuid = _ping(base)
            media = RtpPeer().start()  # its tone crosses the agent, the buyer echoes it
            long_call = dial(long_uuid, "uac_call.xml", duration_ms=int(OUTAGE * 500 + 3000),
                             timeout=total, keys={"rtp_port": str(media.port)})  # fmt: skip
            assert _wait_status(base, long_uuid, "connected") == "connected"
            refused = [_ping(base) for _ in range(3)]  # dialled while the database is down

            load = PingLoad(base)
            threads = [threading.Thread(target=load.run, args=(n,)) for n in range(CLIENTS)]
            for t in threads:
                t.start()
            try:
                time.sleep(1.0)
                stopped_at = time.monotonic()
                heard_before = media.ear.mark()
                cluster.stop("fast")
                time.sleep(1.0)
                health = httpx2.get(f"{base}/health")
                during = [dial(u, "uac_failure.xml").wait() for u in refused]
                time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped_at)))
                cluster.start()
                started_at = time.monotonic()
                deadline = started_at + RECOVERY + 5
                while time.monotonic() < deadline and not any(
                    at > started_at and code == 200 for at, code, _, _ in load.answers
                ):
                    time.sleep(0.05)
                time.sleep(1.0)
            finally:
                load.stop.set()
                for t in threads:
                    t.join(30)

            # The HTTP side: 200 or 503 only; every 503 says when to retry, in the usual shape.
            codes = {code for _, code, _, _ in load.answers}
            assert codes <= {200, 503}, codes
            unavailable = [a for a in load.answers if a[1] == 503]
            assert unavailable, "the outage must have been seen"
            for _, _, retry_after, body in unavailable:
                assert retry_after is not None and retry_after.isdigit()
                assert isinstance(body, dict) and set(body) == {"error"}
            assert health.status_code == 503 and health.headers["retry-after"] == "1"
            back = min(at for at, code, _, _ in load.answers if at > started_at and code == 200)
            recovery = back - started_at
            assert recovery < RECOVERY, f"service back {recovery:.1f}s after the database"
            assert not any(at > back + 0.5 and code != 200 for at, code, _, _ in load.answers)

            # The SIP side: INVITEs refused with 503 + Retry-After while the database was down.
            for result in during:
                assert result.invite_answers() == [503], result.log
                assert result.response(503).header("Retry-After") == "7"

            # The call bridged before the outage lived through it; its record was held and
            # written once the database came back.
            ended = long_call.wait(total)
            hung_up_at = time.monotonic()
            media.stop()
            assert ended.returncode == 0, ended.log
            # ...with its audio: the tone came back through the agent for most of the time
            # it was up with the database down (at most hung_up_at - stopped_at seconds)
            heard = media.tone_seconds(heard_before)
            assert heard >= 0.5 * (hung_up_at - stopped_at - 1.0), (heard, hung_up_at - stopped_at)
            assert _wait_status(base, long_uuid, "completed") == "completed"

            # A reservation refused during the outage is still claimable, and bridges.
            after = dial(refused[0], "uac_call.xml", duration_ms=300).wait()
            assert after.returncode == 0 and after.invite_answers() == [200], after.log
            assert _wait_status(base, refused[0], "completed") == "completed"
            for uuid in refused[1:]:
                assert _status(base, uuid) == "reserved"
        assert buyer.wait(10).returncode == 0

        engine = make_engine(cluster.url)
        try:
            report = check_counters(engine)
            assert report.ok, report
            rollups = check_rollups(engine)
            assert rollups.differences == (), rollups
            with engine.connect() as conn:
                open_calls = conn.exec_driver_sql(
                    "SELECT count(*) FROM reservation WHERE status IN ('claimed', 'connected')"
                ).scalar()
            assert open_calls == 0
        finally:
            engine.dispose()
        print(
            f"outage {OUTAGE:.0f}s: {len(load.answers)} pings, {len(unavailable)} x 503, "
            f"service back {recovery:.2f}s after the database; the call bridged through it "
            f"brought {heard:.1f}s of its tone back while the database was down"
        )
    finally:
        buyer.kill()
