"""``/health`` for load balancers and ``/metrics`` in the Prometheus text format
(``http.metrics`` builds the series)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtbridge import __version__
from rtbridge.http.metrics import CONTENT_TYPE, scrape
from rtbridge.http.responses import json_response
from rtbridge.http.state import AppState


async def health(request: Request) -> Response:
    state: AppState = request.state.app

    def probe() -> None:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await state.run(probe)
    except Exception as exc:  # any driver error means "not healthy", said plainly
        return json_response(
            {"status": "error", "database": str(exc)[:200]},
            status=503,
            headers={"Retry-After": "1"},
        )
    body: dict[str, object] = {
        "status": "ok",
        "version": __version__,
        "database": state.engine.dialect.name,
    }
    if state.sip is not None:
        body["sip"] = state.sip().describe()
    return json_response(body)


async def metrics(request: Request) -> Response:
    state: AppState = request.state.app
    return Response(await scrape(state), media_type=CONTENT_TYPE)


# Any process kind mounts these on its Starlette app; they need only ``AppState`` in the
# lifespan state (``engine`` for /health, ``metrics.registry`` for /metrics).
routes = [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
