"""What the lifespan builds and the handlers use (engine, operations, metrics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine

from rtbridge.domain.ping import PingRequest
from rtbridge.http.batching import PingBatcher
from rtbridge.http.instruments import Metrics
from rtbridge.http.lockout import Lockouts
from rtbridge.settings import Settings
from rtbridge.sip.lease import PeerWatch
from rtbridge.sip.status import AgentStatus
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.reservations import Outcome, Reservations
from rtbridge.webhooks.sender import Sender

T = TypeVar("T")


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    catalog: CatalogCache
    reservations: Reservations
    metrics: Metrics
    inline_db: bool  # SQLite: run DB work on the event loop (µs-scale, serialised anyway)
    lockouts: Lockouts  # failed authentications per source (http/lockout.py)
    sip: Callable[[], AgentStatus] | None = None  # the SIP agent in this process, if any
    peers: PeerWatch | None = None  # without one: the API's watch over the agents' leases
    webhooks: Sender | None = None  # the webhook sender in this process (its .stats), if any
    pings: PingBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.pings = PingBatcher(lambda reqs: self.run(self.reservations.ping_many, reqs))

    async def ping(self, request: PingRequest) -> Outcome:
        """Group commit on both databases: pings that arrive together share one transaction
        (on the loop with SQLite, in a worker thread with PostgreSQL). Pings of one campaign
        are serialised by its lock in any case, so one transaction holding it for a batch
        pays the lock, the counter reads and writes and the commit once, instead of a
        batch of threads queueing for it one round trip after another."""
        return await self.pings.submit(request)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call: inline on SQLite, in a worker thread on PostgreSQL,
        where a network round trip must not stall every other request."""
        if self.inline_db:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)
