"""One JSON line per HTTP request, on the ``rtbridge.http.access`` logger (``--access-log``).

Off by default: a line per ping costs more than the ping's own bookkeeping at benchmark
rates, and uvicorn's access log stays off in any case (it would log raw query strings).

Never a secret in a line: the publisher key travels in the query string, a form or a JSON
body, and in console paths (``/console/keys/<key>/pause``); admin tokens in the
``Authorization`` header; console sessions in a cookie. So a line carries no body, no
header, no cookie; query values whose parameter name looks secret are replaced by
``[redacted]``, and a path segment that is the value of such a path parameter becomes the
parameter's name in braces (``/console/keys/{key}/pause``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("rtbridge.http.access")

REDACTED = "[redacted]"
# Parameter names whose values are secrets or credentials: key, admin_token, password,
# csrf, session, api_key, secret, authorization, nonce ...
_SECRET_NAME = re.compile(r"key|token|secret|pass|auth|session|csrf|nonce|cookie", re.I)
# Path collections whose next segment is a secret, routed or not.
_SECRET_COLLECTIONS = {"keys": "key", "tokens": "token"}


class AccessLog:
    """Pure ASGI middleware (no ``BaseHTTPMiddleware``: that one costs a task per request).

    Logs at INFO whatever ``--log-level`` says: asking for an access log is asking for
    these lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        log.setLevel(logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]  # before routing: the full path as the client sent it
        status = 500  # an exception before the answer started: the error middleware's 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            log.info("http request", extra=_fields(scope, path, status, started))


def _fields(scope: Scope, path: str, status: int, started: float) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": redact_path(path, scope.get("path_params") or {}),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    query = redact_query(scope.get("query_string", b""))
    if query:
        fields["query"] = query
    client = scope.get("client")
    if client:
        fields["client"] = f"{client[0]}:{client[1]}"
    return fields


def redact_query(raw: bytes) -> str:
    """The query string with the values of secret-looking parameters replaced."""
    if not raw:
        return ""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, REDACTED if _SECRET_NAME.search(k) else v) for k, v in pairs])


def redact_path(path: str, params: dict[str, Any]) -> str:
    """``path`` with each segment that is a secret path parameter's value named instead.

    ``params`` are the routed path parameters; a request refused before routing (the
    console's sign-in guard, a 404) has none, so a segment after ``keys``/``tokens``
    (``/console/keys/<key>/pause``, ``/admin/keys/<key>``) is redacted in any case."""
    secrets = {str(v): k for k, v in params.items() if _SECRET_NAME.search(k) and str(v)}
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment in secrets:
            segments[i] = f"{{{secrets[segment]}}}"
        elif i and segments[i - 1] in _SECRET_COLLECTIONS and segment:
            segments[i] = f"{{{_SECRET_COLLECTIONS[segments[i - 1]]}}}"
    return "/".join(segments)
