"""Errors become JSON ``{"error": ...}`` here, at one boundary, never a stack trace."""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rtbridge.domain.errors import RtbError
from rtbridge.http.responses import json_response

log = logging.getLogger("rtbridge.http")


async def rtb_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RtbError)
    return json_response({"error": exc.message}, status=exc.status)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"error": exc.detail}, status=exc.status_code, headers=exc.headers)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """Lock timeouts and lost connections are the database's state, not a bug: 503 + retry."""
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        exc.__class__.__name__,
    )
    return json_response(
        {"error": "database busy or unreachable; retry shortly"},
        status=503,
        headers={"Retry-After": "1"},
    )


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response({"error": "internal error; it has been logged"}, status=500)


HANDLERS = {
    RtbError: rtb_error,
    HTTPException: http_error,
    OperationalError: database_unavailable,
    Exception: server_error,
}
