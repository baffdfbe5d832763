"""``/health`` for load balancers and ``/metrics`` in the Prometheus text format
(``http.metrics`` builds the series).

Both answer anyone (a load balancer or a scraper carries no token), but versions and library
builds are a map of known vulnerabilities for a stranger, so they go only to an *insider*: a
request from ``status_networks`` (settings.py; loopback by default) or one carrying a valid
admin token in ``Authorization: Bearer`` as the admin API takes it. Everyone else gets the
status (ok/error, draining) and the counters without ``rtbridge_build_info`` and
``rtbridge_sip_build_info``."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtbridge import __version__
from rtbridge.admin import tokens
from rtbridge.http.metrics import CONTENT_TYPE, scrape
from rtbridge.http.responses import json_response
from rtbridge.http.state import AppState

log = logging.getLogger("rtbridge.http")


async def insider(request: Request, state: AppState) -> bool:
    """From ``status_networks``, or with a valid admin token (an invalid one is no error
    here: the answer is only the stranger's)."""
    client = request.client
    if client is not None:
        try:
            address = ipaddress.ip_address(client.host)
        except ValueError:  # not an IP (a unix socket, a test client's name)
            pass
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
            if any(address in net for net in state.settings.status_nets):
                return True
    header = request.headers.get("authorization")
    if not header:
        return False
    try:
        return await state.run(tokens.authenticate, state.engine, header) is not None
    except Exception as exc:  # the database is down: no token can be checked
        log.warning("status details: cannot check the admin token: %s", exc)
        return False


async def health(request: Request) -> Response:
    state: AppState = request.state.app

    def probe() -> None:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await state.run(probe)
    except Exception as exc:  # any driver error means "not healthy", said plainly
        detail = str(exc)[:200] if await insider(request, state) else "error"
        return json_response(
            {"status": "error", "database": detail},
            status=503,
            headers={"Retry-After": "1"},
        )
    sip = _sip(state)
    if not await insider(request, state):
        body: dict[str, object] = {"status": "ok", "database": "ok"}
        if sip is not None:
            body["sip"] = {"draining": sip.get("draining", False)}
        return json_response(body)
    body = {
        "status": "ok",
        "version": __version__,
        "database": state.engine.dialect.name,
    }
    if state.share is not None:  # serve --workers N
        body["worker"] = {"index": state.share.index, "of": state.share.count, "pid": os.getpid()}
    if sip is not None:
        body["sip"] = sip
    return json_response(body)


def _sip(state: AppState) -> dict[str, Any] | None:
    """The SIP agent's status: this process's, or with ``serve --workers N`` the primary's
    as it published it last (``http.workers``), whichever worker the request reached."""
    if state.sip is not None:
        return state.sip().describe()
    if state.share is not None and not state.share.primary:
        sip = state.share.primary_view().get("sip")
        return sip if isinstance(sip, dict) else None
    return None


async def metrics(request: Request) -> Response:
    state: AppState = request.state.app
    details = await insider(request, state)
    return Response(await scrape(state, details=details), media_type=CONTENT_TYPE)


# Any process kind mounts these on its Starlette app; they need only ``AppState`` in the
# lifespan state (``engine`` for /health, ``metrics.registry`` for /metrics).
routes = [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
