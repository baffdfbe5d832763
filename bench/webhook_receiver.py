"""The webhook receiver of ``bench/webhooks.py``: a bare ASGI app answering every POST 200
and keeping (arrival time, headers, body) in memory, served like rtbridge (one uvicorn
worker, uvloop, httptools, no access log). ``GET /count`` says how many it has, ``GET
/dump?from=N`` answers them from the N-th as JSON; the benchmark does all the parsing
itself, so the receiver does as little as a receiver can."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# (time.time() when the body was complete, webhook-id, webhook-timestamp, webhook-signature,
# body as text)
RECORDS: list[tuple[float, str, str, str, str]] = []
_WANTED = (b"webhook-id", b"webhook-timestamp", b"webhook-signature")


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, kind: bytes = b"text/plain") -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET" and scope["path"] == "/dump":
        start = int(parse_qs(scope["query_string"].decode()).get("from", ["0"])[0])
        await _answer(send, 200, json.dumps(RECORDS[start:]).encode(), b"application/json")
        return
    if scope["method"] == "GET" and scope["path"] == "/count":
        await _answer(send, 200, str(len(RECORDS)).encode())
        return
    body = await _body(receive)
    arrived = time.time()
    head = {k.decode(): v.decode() for k, v in scope["headers"] if k in _WANTED}
    RECORDS.append((arrived, head.get("webhook-id", ""), head.get("webhook-timestamp", ""),
                    head.get("webhook-signature", ""), body.decode()))  # fmt: skip
    await _answer(send, 200, b"ok")
