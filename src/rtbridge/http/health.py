"""``/health`` for load balancers and ``/metrics`` in the Prometheus text format."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rtbridge import __version__
from rtbridge.domain import lifecycle as st
from rtbridge.http.responses import json_response
from rtbridge.http.state import AppState
from rtbridge.storage.reservations import LIVE
from rtbridge.storage.sql import transaction
from rtbridge.storage.transactions import utcnow


async def health(request: Request) -> Response:
    state: AppState = request.state.app

    def probe() -> None:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await state.run(probe)
    except Exception as exc:  # any driver error means "not healthy", said plainly
        return json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return json_response(
        {"status": "ok", "version": __version__, "database": state.engine.dialect.name}
    )


async def metrics(request: Request) -> Response:
    state: AppState = request.state.app

    def live_counts() -> dict[str, int]:
        with transaction(state.engine, write=False) as db:
            rows = db.rows(
                f"SELECT status, count(*) AS n FROM reservation WHERE {LIVE} GROUP BY status",
                {"now": db.ts(utcnow())},
            )
        return {r["status"]: r["n"] for r in rows}

    live = await state.run(live_counts)
    lines = [
        "# HELP rtbridge_reservations_total Ping and update answers by status.",
        "# TYPE rtbridge_reservations_total counter",
    ]
    for (status, shielded), n in sorted(state.metrics.reservations.items()):
        lines.append(
            f'rtbridge_reservations_total{{status="{status}",ping_shield="{str(shielded).lower()}"}} {n}'
        )
    lines += [
        "# HELP rtbridge_reservations_expired_total Reservations the sweeper expired.",
        "# TYPE rtbridge_reservations_expired_total counter",
        f"rtbridge_reservations_expired_total {state.metrics.expired}",
        "# HELP rtbridge_reservations_live Reservations holding a buyer now, by status.",
        "# TYPE rtbridge_reservations_live gauge",
    ]
    for status in (*st.UNCLAIMED, *st.IN_CALL):
        lines.append(f'rtbridge_reservations_live{{status="{status}"}} {live.get(status, 0)}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


routes = [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
