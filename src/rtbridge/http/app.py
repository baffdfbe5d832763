"""The ASGI application and its lifespan: the engine, the catalog, the expiry sweeper, the
webhook sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from rtbridge import logs
from rtbridge.admin.recording_purge import purge as purge_recordings
from rtbridge.admin.recording_purge import retention_days
from rtbridge.bidding.auctioneer import Auctioneer
from rtbridge.http import health, metrics, recordings
from rtbridge.http.access_log import AccessLog
from rtbridge.http.admin import routes as admin
from rtbridge.http.console.routes import mount as console
from rtbridge.http.errors import HANDLERS
from rtbridge.http.instruments import Metrics
from rtbridge.http.lockout import Lockouts
from rtbridge.http.publisher import routes as publisher
from rtbridge.http.publisher.ping import ping
from rtbridge.http.state import AppState
from rtbridge.http.workers import PUBLISH_EVERY, WorkerShare
from rtbridge.settings import Settings
from rtbridge.sip.lease import PeerWatch, api_watcher_name
from rtbridge.sip.leftover_legs import LeftoverLegs
from rtbridge.sip.recordings import directory_of
from rtbridge.storage import recording_links, sitekey
from rtbridge.storage.bids import prune as prune_bids
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.checkpoint import WalCheckpointer
from rtbridge.storage.database import open_database
from rtbridge.storage.engine import is_sqlite
from rtbridge.storage.outage import is_outage
from rtbridge.storage.reservations import Reservations

if TYPE_CHECKING:
    from rtbridge.webhooks.sender import SenderOptions

log = logging.getLogger("rtbridge.http")


async def _sweep(state: AppState, batch: int = 250) -> None:
    """Write ``expired`` on lapsed reservations so every one ends in a terminal state and
    gives its units back. A full batch means more are due: sweep again after one turn of the
    loop rather than a whole interval, so the sweeper keeps up with any ping rate."""
    pause = state.settings.sweep_interval
    while True:
        await asyncio.sleep(pause)
        pause = state.settings.sweep_interval
        try:
            expired = await state.run(state.reservations.expire_due, batch)
        except Exception as exc:  # a locked or unreachable database must not end the sweeper
            if is_outage(exc):
                log.warning("expiry sweep: database unavailable; retrying: %s", exc)
                pause = max(pause, 1.0)
            else:
                log.exception("expiry sweep failed; retrying")
            continue
        state.metrics.expired += expired
        if expired >= batch:
            pause = 0


async def _prune_bids(state: AppState, interval: float = 60.0) -> None:
    """Delete ``bid`` rows older than ``bid_retention_days``, oldest first, a batch per
    transaction (storage/bids.py), once a minute."""
    while True:
        await asyncio.sleep(interval)
        try:
            await state.run(prune_bids, state.engine, state.settings.bid_retention_days)
        except Exception as exc:
            if not is_outage(exc):
                log.exception("bid pruning failed; retrying")


async def _purge_recordings(state: AppState, interval: float = 60.0) -> None:
    """Delete the files of recordings older than the retention period (the flag, else the
    file's ``[recordings] retention_days``, read at each run, else 90 days), oldest first, a
    batch per transaction, audited (admin/recording_purge.py), once a minute."""
    while True:
        await asyncio.sleep(interval)
        try:
            await state.run(_purge_once, state, state.reservations.clock())
        except Exception as exc:
            if not is_outage(exc):
                log.exception("recording purge failed; retrying")


def _purge_once(state: AppState, now: datetime) -> int:
    days = retention_days(state.engine, state.settings.recording_retention_days)
    return purge_recordings(state.engine, state.recordings, days, now=now)


async def _watch_agents(state: AppState, peers: PeerWatch, interval: float = 1.0) -> None:
    """The API's watch over the SIP agents' leases (sip/lease.py): a site whose only agent
    died for good has its calls closed by the API process. Agents watch each other too;
    one watcher wins each takeover."""
    while True:
        await asyncio.sleep(interval)
        try:
            await state.run(peers.take_over_silent)  # logs each takeover, sends the BYEs
        except Exception as exc:
            if not is_outage(exc):
                log.exception("agent lease watch failed; retrying")


class App(Starlette):
    """Starlette, with ``POST /rtbs.json`` handed to its endpoint before the middleware stack
    and the router (publisher/ping.py says why). The route stays in the router too: other
    methods get its 405, and a path under a ``root_path`` still reaches it."""

    def __init__(self, *args: Any, ping: ASGIApp | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ping = ping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._ping is not None
            and scope["type"] == "http"
            and scope["path"] == "/rtbs.json"
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            await self._ping(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _publish(state: AppState, share: WorkerShare) -> None:
    """A worker's counts for the other workers' /metrics, once a second and at the end; the
    primary's also carry what only it can show (http/workers.py)."""
    try:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            try:
                view = await state.run(_primary_view, state) if share.primary else None
                share.publish(state.metrics, view)
            except Exception:  # a full disk must not end the worker: retried next second
                log.exception("worker %d: cannot publish its counts; retrying", share.index)
    finally:
        with contextlib.suppress(Exception):
            share.publish(state.metrics)


def _primary_view(state: AppState) -> dict[str, Any]:
    view: dict[str, Any] = {"families": metrics.families_json(metrics.own_families(state))}
    if state.sip is not None:
        view["sip"] = state.sip().describe()
    return view


def build_state(settings: Settings, **reservation_options: Any) -> AppState:
    engine = open_database(settings.db_url, background_checkpoint=True)
    catalog = CatalogCache(engine, recheck=settings.catalog_recheck)
    reservations = Reservations(engine, catalog, **reservation_options)
    counted = Metrics()
    state = AppState(
        settings=settings,
        engine=engine,
        catalog=catalog,
        reservations=reservations,
        metrics=counted,
        inline_db=is_sqlite(engine),
        lockouts=Lockouts.from_settings(settings),
        recordings=directory_of(settings, engine=engine),
        auctioneer=Auctioneer(
            catalog,
            reservations.clock,
            count=counted.count_bid,
            observe=counted.bid_seconds.observe,
        ),
    )
    metrics.watch(state)
    return state


def create_app(
    settings: Settings, *, api: bool = True, sender: SenderOptions | None = None,
    share: WorkerShare | None = None, **reservation_options: Any,
) -> App:  # fmt: skip
    """``api=False``: only /health and /metrics (``rtbridge sip --http``: an agent's status,
    no publisher or admin routes, no expiry sweeper). ``sender``: the webhook sender's
    options; with ``api=False`` it is what the process runs (``rtbridge webhooks run
    --http``). ``share``: this process is a worker of ``serve --workers N``; only the
    primary runs the SIP agent and the once-per-site tasks (http/workers.py).
    ``reservation_options`` (``clock``, ``rng``) let tests control time and chance."""
    primary = share is None or share.primary

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state = build_state(settings, **reservation_options)
        if api:  # keys, tokens and sessions are looked up by their digests: refuse at start
            try:
                sitekey.for_engine(state.engine)
            except sitekey.SiteKeyError as exc:
                log.error("cannot serve the API: %s", exc)
                state.engine.dispose()
                raise
            state.links = recording_links.for_site(state.engine, settings)
        app.state.rtbridge = state  # for tests and tools holding the app, not for handlers
        agent = None
        if share is not None:
            logs.set_context(worker=share.index)
            share.restore(state.metrics)
            state.share = share
        if settings.sip_enabled and primary:  # the agent shares this process: its own thread
            from rtbridge.sip.b2bua.startup import build_agent  # pjsua2 only when SIP is wanted

            try:
                agent = build_agent(settings, state.engine, state.catalog)  # same directory_of
                agent.start()
            except Exception as exc:  # say why in the log, not only in uvicorn's traceback
                log.error("the SIP agent cannot start: %s", exc)
                state.engine.dispose()
                raise
            state.sip = agent.status
        sweeper = asyncio.create_task(_sweep(state)) if api and primary else None
        pruner = asyncio.create_task(_prune_bids(state)) if api and primary else None
        purger = asyncio.create_task(_purge_recordings(state)) if api and primary else None
        watcher = None
        if api and agent is None and primary:  # an agent here watches its peers itself
            # BYEs from any address of this host; TLS with the system's CAs
            state.peers = PeerWatch(state.engine, api_watcher_name(), leftovers=LeftoverLegs())
            watcher = asyncio.create_task(_watch_agents(state, state.peers))
        webhooks = None
        if settings.webhooks and (api or sender is not None) and primary:  # sender.py: a thread
            from rtbridge.webhooks.sender import Sender

            webhooks = state.webhooks = Sender(
                state.engine, settings.webhook_key, sender,
                links=state.links or recording_links.for_site(state.engine, settings),
            )  # fmt: skip
            webhooks.start()
        checkpointer = WalCheckpointer(state.engine) if state.inline_db and primary else None
        if checkpointer is not None:
            checkpointer.start()
        publisher = asyncio.create_task(_publish(state, share)) if share is not None else None
        try:
            yield {"app": state}
        finally:
            for task in (sweeper, pruner, purger, watcher, publisher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if state.auctioneer is not None:
                await state.auctioneer.close()
            if webhooks is not None:
                await asyncio.to_thread(webhooks.stop)
            if agent is not None:
                # SIGTERM: no new calls; live ones may run to their end (drain_timeout).
                await asyncio.to_thread(agent.drain)
                agent.stop()
            if checkpointer is not None:
                checkpointer.stop()
            state.engine.dispose()

    routes = (
        [*publisher.routes, *recordings.routes, *health.routes, admin.public, admin.mount, console]
        if api
        else health.routes
    )
    fast_ping = None
    if api:
        fast_ping = AccessLog(ping) if settings.access_log else ping
    return App(
        routes=routes,
        exception_handlers=HANDLERS,
        lifespan=lifespan,
        middleware=[Middleware(AccessLog)] if settings.access_log else None,
        ping=fast_ping,
    )
