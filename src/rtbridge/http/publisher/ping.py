"""``POST /rtbs.json``, the publisher's ping, as a raw ASGI endpoint.

Every call starts with a ping, and publishers ping far more often than they call. So this one
route is answered before Starlette's middleware stack and router (``http.app.App``), reads
its body and headers from the ASGI scope, and sends its answer as two ASGI messages: no
``Request``, no ``Response``, no routing (bench/api.py: a quarter of a ping's time went
there). Everything else a ping does is unchanged, and its refusals are rendered by the same
handlers as every other route's (``http.errors.answer_error``)."""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from rtbridge.domain.errors import UnknownKey
from rtbridge.domain.ping import parse_ping
from rtbridge.http.errors import answer_error
from rtbridge.http.params import scope_params
from rtbridge.http.responses import json_bytes, reservation_body
from rtbridge.http.state import AppState

_JSON = (b"content-type", b"application/json")


class PingEndpoint:
    """An ASGI app (a class, so that Starlette's ``Route`` also takes it as one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: AppState = scope["state"]["app"]
        started = time.perf_counter()
        status = "error"  # any refusal (401, 403, 422, 429, 503) raised on the way
        lockout = state.lockouts.keys
        try:
            # Every request carrying a postback key is refused (429) while its source is
            # locked out, and counted against that source when the key is missing or unknown
            # (http/lockout.py). A paused key is a right key (403): not a guess.
            lockout.check(scope)
            params = await scope_params(scope, receive, state.settings.max_body)
            outcome = await state.ping(parse_ping(params))
            status = outcome.status
            state.metrics.count_reservation(outcome.status, outcome.ping_shield, outcome.reason)
            body = json_bytes(reservation_body(outcome))
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            if isinstance(exc, UnknownKey):
                lockout.failed(scope)
            await answer_error(scope, receive, send, exc)
            return
        finally:  # rtbridge_ping_seconds: one observe per ping (http.instruments.Histogram)
            state.metrics.ping_seconds.observe(status, time.perf_counter() - started)
        length = (b"content-length", str(len(body)).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [_JSON, length]})
        await send({"type": "http.response.body", "body": body})


ping = PingEndpoint()
