"""The baseline: a bare Starlette endpoint answering a reservation-shaped JSON body, served
exactly like rtbridge (one uvicorn worker, uvloop, httptools, no access log)."""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def rtbs(request: Request) -> JSONResponse:
    await request.body()
    u = str(uuid.uuid4())
    return JSONResponse(
        {
            "uuid": u,
            "status": "reserved",
            "retreaver_payout": 90.0,
            "retreaver_seconds": 120,
            "inbound_number": "+18339510260",
            "sip_address": f"{u}@sip.rtb.example.com",
            "expires_at": "2026-05-05T06:26:06.534Z",
        }
    )


app = Starlette(routes=[Route("/rtbs.json", rtbs, methods=["POST"])])
