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
from rtbridge.sip.status import AgentStatus
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

    def live_counts() -> dict[str, int]:
        with transaction(state.engine, write=False) as db:
            rows = db.rows(
                f"SELECT status, count(*) AS n FROM reservation WHERE {LIVE} GROUP BY status",
                {"now": db.ts(utcnow())},
            )
        return {r["status"]: r["n"] for r in rows}

    live = await state.run(live_counts)
    lines = [
        "# HELP rtbridge_reservations_total Ping and update answers by status (no-target: why).",
        "# TYPE rtbridge_reservations_total counter",
    ]
    for (status, shielded, reason), n in sorted(state.metrics.reservations.items()):
        labels = f'status="{status}",ping_shield="{str(shielded).lower()}"'
        if reason:
            labels += f',reason="{reason}"'
        lines.append(f"rtbridge_reservations_total{{{labels}}} {n}")
    lines += [
        "# HELP rtbridge_reservations_expired_total Reservations the sweeper expired.",
        "# TYPE rtbridge_reservations_expired_total counter",
        f"rtbridge_reservations_expired_total {state.metrics.expired}",
        "# HELP rtbridge_reservations_live Reservations holding a buyer now, by status.",
        "# TYPE rtbridge_reservations_live gauge",
    ]
    for status in (*st.UNCLAIMED, *st.IN_CALL):
        lines.append(f'rtbridge_reservations_live{{status="{status}"}} {live.get(status, 0)}')
    if state.sip is not None:
        lines += sip_metrics(state.sip())
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


routes = [Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]


def sip_metrics(status: AgentStatus) -> list[str]:
    """The SIP agent's series: what the build holds, what is bridged, what was refused."""
    lib = status.library
    labels = ",".join(
        f'{name}="{str(lib.get(name, "")).lower() if isinstance(lib.get(name), bool) else lib.get(name, "")}"'
        for name in ("pjproject", "wheel", "rtbridge_build")
    )
    lines = [
        "# HELP rtbridge_sip_build_info The linked pjsua2 build (always 1).",
        "# TYPE rtbridge_sip_build_info gauge",
        f"rtbridge_sip_build_info{{{labels}}} 1",
        "# HELP rtbridge_sip_call_slots pjsua call slots of this agent (2 per bridge).",
        "# TYPE rtbridge_sip_call_slots gauge",
        f"rtbridge_sip_call_slots {status.call_slots}",
        "# HELP rtbridge_sip_bridge_capacity Bridged calls admitted at once.",
        "# TYPE rtbridge_sip_bridge_capacity gauge",
        f"rtbridge_sip_bridge_capacity {status.bridge_capacity}",
        "# HELP rtbridge_sip_bridges Bridges alive now, by phase.",
        "# TYPE rtbridge_sip_bridges gauge",
    ]
    lines += [f'rtbridge_sip_bridges{{phase="{p}"}} {n}' for p, n in sorted(status.bridges.items())]
    lines += [
        "# HELP rtbridge_sip_invites_total New INVITEs seen.",
        "# TYPE rtbridge_sip_invites_total counter",
        f"rtbridge_sip_invites_total {status.invites}",
        "# HELP rtbridge_sip_refused_total INVITEs answered 503 before routing, by reason.",
        "# TYPE rtbridge_sip_refused_total counter",
    ]
    lines += [
        f'rtbridge_sip_refused_total{{reason="{r}"}} {n}' for r, n in sorted(status.refused.items())
    ]
    lines += [
        "# HELP rtbridge_sip_answers_total Final responses sent to publishers' INVITEs, by code.",
        "# TYPE rtbridge_sip_answers_total counter",
    ]
    lines += [f'rtbridge_sip_answers_total{{code="{c}"}} {n}' for c, n in sorted(status.answers.items())]
    if status.setup is not None:
        lines += [
            "# HELP rtbridge_sip_setup_seconds INVITE received to 200 sent (buyer ringing included).",
            "# TYPE rtbridge_sip_setup_seconds histogram",
        ]
        cumulative = status.setup.cumulative()
        lines += [f'rtbridge_sip_setup_seconds_bucket{{le="{le}"}} {n}' for le, n in cumulative]
        lines += [
            f"rtbridge_sip_setup_seconds_sum {status.setup.sum:.6f}",
            f"rtbridge_sip_setup_seconds_count {cumulative[-1][1]}",
        ]
    lines += [
        "# HELP rtbridge_sip_dtmf_relayed_total DTMF digits relayed between legs.",
        "# TYPE rtbridge_sip_dtmf_relayed_total counter",
        f"rtbridge_sip_dtmf_relayed_total {status.dtmf_relayed}",
        "# HELP rtbridge_sip_draining 1 while the agent is stopping (new INVITEs get 503).",
        "# TYPE rtbridge_sip_draining gauge",
        f"rtbridge_sip_draining {int(status.draining)}",
    ]
    return lines
