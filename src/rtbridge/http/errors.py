"""Errors become JSON ``{"error": ...}`` here, at one boundary, never a stack trace."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rtbridge.domain.errors import RtbError, TooManyFailures
from rtbridge.http.responses import json_response
from rtbridge.storage.outage import DatabaseUnavailable, is_outage

log = logging.getLogger("rtbridge.http")


async def rtb_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RtbError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyFailures) else None
    return json_response({"error": exc.message}, status=exc.status, headers=headers)


async def nested_too_deeply(request: Request, exc: Exception) -> Response:
    """Input nested deeper than Python's stack, wherever it was parsed: bad input like any
    other, in one log line instead of a 500 with a traceback of thousands of frames. (JSON
    bodies are refused before this, by their depth: ``params.json_body``.)"""
    log.warning("input nested too deeply on %s %s: %s", request.method, request.url.path, exc)
    return json_response({"error": "input nested too deeply"}, status=422)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"error": exc.detail}, status=exc.status_code, headers=exc.headers)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """Lock timeouts and lost connections are the database's state, not a bug: 503 + retry.
    Driver errors that reach here without being classified (``storage.outage``) are told
    apart once more, so a real bug in SQL still shows as one."""
    if not is_outage(exc):
        return await server_error(request, exc)
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


async def answer_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer ``exc`` as Starlette would have, for an endpoint that runs before its
    middleware (``publisher/ping.py``): the handler of its nearest class in :data:`HANDLERS`.
    A 500 is logged by :func:`server_error`, not raised on to the server."""
    handler = next(HANDLERS[cls] for cls in type(exc).__mro__ if cls in HANDLERS)
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)


HANDLERS: dict[type[BaseException], Callable[[Request, Exception], Awaitable[Response]]] = {
    RtbError: rtb_error,
    RecursionError: nested_too_deeply,
    HTTPException: http_error,
    DatabaseUnavailable: database_unavailable,
    sa.OperationalError: database_unavailable,
    sa.InterfaceError: database_unavailable,
    sa.TimeoutError: database_unavailable,
    psycopg.OperationalError: database_unavailable,
    psycopg.InterfaceError: database_unavailable,
    sqlite3.OperationalError: database_unavailable,
    Exception: server_error,
}
