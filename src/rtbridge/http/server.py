"""The uvicorn server every process kind runs (``serve``, ``sip --http``, ``webhooks run
--http``), with bounds on what one client can hold.

uvicorn's httptools protocol has none of its own: a request head may be any size (httptools
gathers each header in memory before uvicorn sees it; a 32 MB header was answered 200) and may
take forever to arrive (only a kept-alive connection between requests has a timeout). An ASGI
middleware runs after the head is parsed, too late for both, so the bounds live in a subclass
of the protocol:

- a request head (request line and headers) larger than ``http_max_head`` bytes: ``431``,
  connection closed. Socket reads in which the parser makes no progress (a head, trailers of
  a chunked body, chunk framing still arriving) add up against the cap, so memory stays
  within it plus one read; a head that completes is measured exactly (URL, header names and
  values) when the reads since it began pass the cap;
- a head not complete ``http_head_timeout`` seconds after the connection opened (or after the
  next request's first bytes on a kept-alive connection): ``408``, connection closed;
- more than ``http_max_connections`` open connections: the new one is closed at once, so HTTP
  cannot take the file descriptors the SIP agent needs for calls.

uvicorn's own options do the rest: ``limit_concurrency`` (``503`` for a request that arrives
while that many connections are open or requests are in progress) and ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from asyncio import TimerHandle
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from rtbridge.settings import Settings


def _refusal(status: HTTPStatus, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and time bound on request heads and a cap on
    open connections (the module docstring says why). The class attributes are set per
    server by :func:`protocol_for`."""

    max_head = 16 * 1024
    head_timeout = 10.0
    max_connections = 2000

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._unparsed = 0  # bytes of earlier reads in which the parser made no progress
        self._reading = 0  # bytes of the read being parsed
        self._progress = 0  # parser events that consume bytes: head end, body, message end
        self._in_head = False  # between a message's first byte and the end of its head
        self._head_timer: TimerHandle | None = None
        self._refused = False

    # Every request passes through the methods below: they count, compare and call the base
    # class directly (no super(), no helper calls), and the exact head size is computed only
    # when the bytes read could exceed the cap.

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refused = True
            transport.close()
            return
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        progress = self._progress
        self._reading = len(data)
        HttpToolsProtocol.data_received(self, data)
        if self._refused:
            return
        if self._progress == progress:  # all of it is head, trailers or chunk framing
            self._unparsed += len(data)
            if self._unparsed > self.max_head and not self.transport.is_closing():
                self._refuse_head()
                return
        else:
            self._unparsed = 0
        if self._in_head and self._head_timer is None:  # a kept-alive connection's next head
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    # -- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._progress += 1
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._refused:
            return
        # The head is within the bytes read since it began: count exactly only beyond the cap.
        if self._unparsed + self._reading > self.max_head and self._head_size() > self.max_head:
            self._refuse_head()
            return
        HttpToolsProtocol.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._progress += 1
        if not self._refused:
            HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._progress += 1
        if not self._refused:
            HttpToolsProtocol.on_message_complete(self)

    # -- refusals -----------------------------------------------------------------------------

    def _head_size(self) -> int:
        """Bytes of the URL and the header names and values (separators not counted)."""
        return len(self.url) + sum(len(name) + len(value) for name, value in self.headers)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._refused and not self.transport.is_closing():
            message = f"request head not complete within {self.head_timeout:g} seconds"
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, message)

    def _refuse_head(self) -> None:
        message = f"request line and headers: larger than {self.max_head} bytes"
        self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, message)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer and close; while a response is being written (trailers of a request in
        progress, a pipelined head), only close: two answers would garble both."""
        self._refused = True
        self._cancel_head_timer()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_refusal(status, message))
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedProtocol]:
    class Configured(BoundedProtocol):
        max_head = settings.http_max_head
        head_timeout = settings.http_head_timeout
        max_connections = settings.http_max_connections

    return Configured


STARTUP_FAILURE = 3  # uvicorn's exit status when the application cannot start (http/workers.py)


def serve(
    app: ASGIApp, settings: Settings, *, log_level: str, sockets: list[socket.socket] | None = None
) -> None:
    """Run ``app`` on ``settings.http`` until SIGINT/SIGTERM (uvloop, httptools, no
    WebSocket, no uvicorn access log: ``--access-log`` is ours). ``sockets``: listen on
    these instead, bound already (``serve --workers N``: http/workers.py)."""
    import uvicorn

    host, port = settings.http_address
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http=protocol_for(settings),
        ws="none",
        lifespan="on",
        log_config=None,  # uvicorn's loggers go to our JSON handler (logs.setup_logging)
        timeout_keep_alive=settings.http_keep_alive,
        limit_concurrency=settings.http_concurrency,
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:  # as uvicorn.run: the lifespan refused to start (it logged why)
        raise SystemExit(STARTUP_FAILURE)
