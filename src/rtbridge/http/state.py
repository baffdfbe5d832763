"""What the lifespan builds and the handlers use (engine, operations, metrics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import Engine

from rtbridge.bidding.auctioneer import Auctioneer
from rtbridge.domain.ping import PingRequest
from rtbridge.domain.recording_links import RecordingLinks
from rtbridge.http.batching import PingBatcher
from rtbridge.http.instruments import Metrics
from rtbridge.http.lockout import Lockouts
from rtbridge.http.workers import WorkerShare
from rtbridge.settings import Settings
from rtbridge.sip.lease import PeerWatch
from rtbridge.sip.status import AgentStatus
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.outage import is_outage
from rtbridge.storage.reservations import Done, Outcome, Reservations, Take
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
    # where the recordings are (sip/recordings.py directory_of: the agent's own answer)
    recordings: Path
    # signs and checks recordings' links (storage/recording_links.py); None without a site key
    links: RecordingLinks | None = None
    sip: Callable[[], AgentStatus] | None = None  # the SIP agent in this process, if any
    peers: PeerWatch | None = None  # without one: the API's watch over the agents' leases
    webhooks: Sender | None = None  # the webhook sender in this process (its .stats), if any
    share: WorkerShare | None = None  # serve --workers N: this worker's slot (http/workers.py)
    # asks RTB buyers for their bids before a ping of their campaign (bidding/auctioneer.py)
    auctioneer: Auctioneer | None = None
    pings: PingBatcher = field(init=False)
    # PostgreSQL: ping batches run on the loop, which serves other requests while the
    # database answers; after an outage error, in a worker thread until one succeeds again
    # (_ping_chain).
    pings_inline: bool = True

    def __post_init__(self) -> None:
        self.pings = PingBatcher(self._ping_chain, turns=1 if self.inline_db else 2)

    async def ping(self, request: PingRequest) -> Outcome:
        """Group commit on both databases: pings that arrive together share one transaction.
        Pings of one campaign are serialised by its lock in any case, so one transaction
        holding it for a batch pays the lock, the counter reads and writes and the commit
        once, instead of a batch of threads queueing for it one round trip after another.
        A ping of a campaign with RTB buyers first waits for their bids (at most the
        campaign's bid deadline), outside any transaction."""
        auctioneer = self.auctioneer
        if auctioneer is None:
            return await self.pings.submit(request)
        request = await auctioneer.prepare(request)
        outcome = await self.pings.submit(request)
        if request.bids:
            auctioneer.settled(request, outcome.uuid, outcome.buyer_id)
        return outcome

    async def _ping_chain(self, take: Take, done: Done) -> None:
        """Batches run on the event loop, PostgreSQL's included: their round trips are
        awaited (``Reservations.ping_chain``), the loop serving other requests meanwhile,
        and their CPU costs less there than a worker thread's hand-over would (with the loop
        busy and the GIL between them, that came to a batch's own time again: bench/api.py,
        3,000 against 5,800 pings/s). What is still blocking in them (taking a connection
        from the pool, opening one) must not freeze the loop when the database stops
        answering, though: after an outage error, a batch at a time goes to a worker thread
        until one succeeds."""
        if self.inline_db:
            while requests := take():
                done(self.reservations.ping_many(requests))
            return
        if self.pings_inline:
            try:
                await self.reservations.ping_chain(take, done)
            except Exception as exc:
                if is_outage(exc):
                    self.pings_inline = False
                raise
            return
        if requests := take():
            done(await anyio.to_thread.run_sync(self.reservations.ping_many, requests))
            self.pings_inline = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call: inline on SQLite, in a worker thread on PostgreSQL,
        where a network round trip must not stall every other request."""
        if self.inline_db:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)
