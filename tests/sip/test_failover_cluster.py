"""Failover across a site: 200 calls whose first buyer refuses, through Kamailio
(deploy/kamailio/kamailio.cfg) to two ``rtbridge sip`` agents on one PostgreSQL. Each
agent moves its calls to the next buyers in the database under the campaign lock; what
must hold for the site is what holds for pings: no buyer above its cap, every counter
equal to its recount, every call ended with its record and attempts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from rtbridge.storage.rollup_recount import check_rollups
from tests.conftest import write_config
from tests.sip.sipp import Sipp, echo_uas
from tests.support.agents import AgentProcess, wait_until
from tests.support.kamailio import kamailio, kamailio_binary
from tests.support.net import free_port

pytestmark = [pytest.mark.sip, pytest.mark.postgres, pytest.mark.live]

KEY = "failover-cluster-key-000001"
PROXY = "127.0.0.10"
CALLS = 200
CAP = 60  # each of the two answering buyers


def _config(busy_uri: str, ports: list[int]) -> str:
    answering = "".join(
        f'\n[[campaigns.buyers]]\nid = "b{i}"\ndestination = "sip:b{i}@127.0.0.1:{port}"\n'
        f"payout = 10.0\nseconds = 1\nconcurrency = {CAP}\npriority = {i}\n"
        for i, port in enumerate(ports, start=2)
    )
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "busy"
destination = "{busy_uri}"
payout = 10.0
seconds = 1
concurrency = 100000
{answering}
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


def test_caps_hold_when_two_agents_fail_calls_over_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    if kamailio_binary() is None:
        pytest.fail("kamailio is missing: scripts/system-deps test installs Debian's kamailio")
    busy = Sipp("uas_reject.xml", tmp_path, calls=CALLS, timeout=120)
    busy.wait_listening()
    ports = [free_port(), free_port()]
    buyers = [echo_uas(port) for port in ports]
    engine = open_database(postgres_url)
    options = f'trusted_proxies = ["{PROXY}/32"]\n'
    agents = [AgentProcess(postgres_url, tmp_path, options, max_calls=400, rtp_ports=1000)
              for _ in range(2)]  # fmt: skip
    try:
        apply_file(engine, write_config(tmp_path, _config(busy.uri(), ports)))
        pings = Reservations(engine, CatalogCache(engine))
        uuids = [
            pings.ping(PingRequest(key=KEY, caller_number=None, inbound_number=None)).uuid
            for _ in range(CALLS)
        ]
        for agent in agents:
            agent.start()
        with kamailio(tmp_path, [a.address for a in agents], host=PROXY, failover_ms=500) as proxy:
            inf = tmp_path / "calls.csv"
            inf.write_text("SEQUENTIAL\n" + "".join(f"{u};\n" for u in uuids))
            # every call held 5 s: all are up at once, so the answered ones are each
            # buyer's peak concurrency
            result = Sipp("uac_each_or_busy.xml", tmp_path, remote=proxy.address, calls=CALLS,
                          rate=100, duration_ms=5000, inf=inf, timeout=90).wait(120)  # fmt: skip
        answers = Counter(result.invite_answers())

        def open_calls() -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(
                    "SELECT count(*) FROM callrecord WHERE end_at IS NULL")).scalar_one())  # fmt: skip

        assert wait_until(lambda: open_calls() == 0, timeout=20)
        with engine.connect() as conn:
            answered = dict(conn.execute(text(
                "SELECT buyer_id, count(*) FROM callattempt WHERE kind = 'answered' "
                "GROUP BY buyer_id")).all())  # fmt: skip
            statuses = dict(conn.execute(text(
                "SELECT status, count(*) FROM reservation GROUP BY status")).all())  # fmt: skip
            first = conn.execute(text(
                "SELECT count(*) FROM callattempt WHERE n = 1 AND buyer_id = 'busy' "
                "AND kind = 'busy'")).scalar_one()  # fmt: skip
            live = conn.execute(text("SELECT sum(units) FROM buyerlive")).scalar_one()
        report = check_counters(engine)
        rollups = check_rollups(engine)
    finally:
        for agent in agents:
            agent.stop()
        for buyer in buyers:
            buyer.kill()
            buyer.wait()
        busy.kill()
        engine.dispose()
    assert all(n <= CAP for n in answered.values()), f"a buyer above its cap: {answered}"
    # the caps were in play: most calls found a buyer, the rest heard the first one's 486
    assert sum(answered.values()) >= 100, answered
    assert answers[200] == sum(answered.values()) and set(answers) <= {200, 486}, answers
    assert first == CALLS, "every call tried the reservation's buyer first"
    assert statuses == {"completed": answers[200], "failed": answers[486]}, statuses
    assert (live or 0) == 0
    assert report.differences == ()
    # failovers move each call's figures to the buyer that took it (storage/rollups.py)
    assert rollups.differences == (), rollups
