"""A site as a test runs it: Debian's Kamailio (deploy/kamailio/kamailio.cfg) in front of
``rtbridge sip`` agents sharing one PostgreSQL, one campaign whose buyer is a SIPp the test
starts, and two publishers (p1 allowlisted 127.0.0.1, p2 with digest credentials).

Addresses: Kamailio on 127.0.0.10 (the agents' only trusted proxy), the agents on
127.0.0.1, the allowlisted publisher on 127.0.0.1, other senders on 127.0.0.2-3.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import write_config
from tests.sip.sipp import Sipp
from tests.support.agents import AgentProcess
from tests.support.kamailio import Kamailio, kamailio

KEY1 = "cluster-key-publisher-one-01"  # p1: allowlisted 127.0.0.1
KEY2 = "cluster-key-publisher-two-02"  # p2: digest credentials only
PROXY = "127.0.0.10"


def site_config(buyer_uri: str) -> str:
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"
numbers = ["+18005550101", "+18005550102", "+18005550103", "+18005550104"]

[[campaigns.buyers]]
id = "b1"
destination = "{buyer_uri}"
payout = 10.0
seconds = 1
concurrency = 100000
daily_cap = 1000000

[[publishers]]
id = "p1"
ips = ["127.0.0.1/32"]

[[publishers]]
id = "p2"
credentials = [{{ username = "pub2", password = "s3cret-Pass-456" }}]

[[keys]]
key = "{KEY1}"
publisher = "p1"
campaign = "c1"
ttl_seconds = 600

[[keys]]
key = "{KEY2}"
publisher = "p2"
campaign = "c1"
ttl_seconds = 600
"""


@dataclass
class Site:
    engine: Engine
    reservations: Reservations
    proxy: Kamailio
    agents: list[AgentProcess]
    workdir: Path
    callers: int = 0

    def ping(self, n: int = 1, key: str = KEY1) -> list[str]:
        uuids = []
        for _ in range(n):
            self.callers += 1
            outcome = self.reservations.ping(
                PingRequest(key=key, caller_number=f"+1202{self.callers:07d}", inbound_number=None)
            )
            assert outcome.status == "reserved", outcome  # type: ignore[union-attr]
            uuids.append(outcome.uuid)  # type: ignore[union-attr]
        return uuids

    def call_list(self, uuids: list[str]) -> Path:
        """SIPp's -inf file: one call per reservation, its uuid as [field0]."""
        inf = self.workdir / f"calls-{time.monotonic_ns()}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{u};\n" for u in uuids))
        return inf

    def calls(self, uuids: list[str], *, rate: float, hold_ms: int, host: str = "127.0.0.1",
              to: str | None = None, timeout: float = 60) -> Sipp:  # fmt: skip
        """A publisher placing one call per uuid, each hung up after ``hold_ms``."""
        return Sipp("uac_each.xml", self.workdir, host=host, remote=to or self.proxy.address,
                    calls=len(uuids), rate=rate, duration_ms=hold_ms, inf=self.call_list(uuids),
                    timeout=timeout)  # fmt: skip

    def calls_waiting_for_bye(self, n: int, *, rate: float, timeout: float = 120) -> Sipp:
        """``n`` new reservations called through Kamailio (round robin over the agents), each
        call up until the publisher gets a BYE."""
        return Sipp("uac_remote_bye.xml", self.workdir, remote=self.proxy.address, calls=n,
                    rate=rate, inf=self.call_list(self.ping(n)),
                    rewrite={"[service]": "[field0]"}, timeout=timeout)  # fmt: skip

    def connected(self) -> int:
        """Reservations whose call is up now."""
        rows = self.rows("SELECT count(*) AS n FROM reservation WHERE status = 'connected'")
        return int(rows[0]["n"])  # type: ignore[call-overload]

    def rows(self, sql: str, **params: object) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def status(self, uuid: str) -> object:
        return self.rows("SELECT status FROM reservation WHERE uuid = :u", u=uuid)[0]["status"]


@contextlib.contextmanager
def running_site(
    postgres_url: str, workdir: Path, buyer_uri: str, *, options: str = "", agents: int = 2,
    rtp_bases: tuple[int, ...] = (), **agent_kw: Any,
) -> Iterator[Site]:  # fmt: skip
    """The site with ``agents`` agents (more ``[agent]`` lines in ``options``, more
    :class:`AgentProcess` fields in ``agent_kw``, each agent's first RTP port in
    ``rtp_bases`` when given), stopped after."""
    engine = open_database(postgres_url)
    apply_file(engine, write_config(workdir, site_config(buyer_uri)))
    options = f'trusted_proxies = ["{PROXY}/32"]\n{options}'
    bases = rtp_bases or (0,) * agents
    processes = [AgentProcess(postgres_url, workdir, options, rtp_min=base, **agent_kw)
                 for base in bases[:agents]]  # fmt: skip
    try:
        for agent in processes:
            agent.start()
        addresses = [a.address for a in processes]
        with kamailio(workdir, addresses, host=PROXY, failover_ms=500) as proxy:
            yield Site(
                engine, Reservations(engine, CatalogCache(engine)), proxy, processes, workdir
            )
    finally:
        for agent in processes:
            agent.stop()
        engine.dispose()
