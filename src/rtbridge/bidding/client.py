"""Asking a buyer for a bid over HTTP: kept-alive HTTP/1.1 connections on the event loop,
answers parsed by httptools (llhttp: the parser uvicorn reads every request with, and Node.js
its HTTP).

Why not a client library: ``bench/bid_client.py`` and ``bench/bids.py`` measured them on this
path (a ping asks five buyers at once, each answering in 20 ms). httpx's pool slowed down
the more requests waited in it and missed the deadline under load; aiohttp, the best of
them, cost 0.15-0.2 ms of CPU per bid request — five per ping, more than the rest of a ping
together — and held one process under 500 auctioned pings a second with 64 in flight. A bid
request needs none of what that pays for (cookies, redirects, proxies, compression, streams,
middlewares): one POST on a connection kept for the next, one answer read. So the client is
this module, about a quarter of aiohttp's CPU per request, and twice the pings per second.

What every request gets, and why:

- **no redirect**: a 3xx is the buyer's answer (read as an error), not an instruction to POST
  the caller's number somewhere else; **no proxy** of the environment;
- **TLS verified** for https (the system's trust store, loaded once), with SNI;
- **no compression** asked; our ``Content-Type`` and ``User-Agent`` (a buyer's configured
  headers cannot replace them, nor ``Host``, ``Content-Length`` or ``Connection``);
- **at most** ``max_body`` **bytes** of body, and 16 KiB of status line and headers: beyond
  either, a :class:`BidError`, and the connection is dropped rather than drained;
- **at most** ``per_host`` **exchanges at once** to one buyer (host, port, TLS): one slow
  buyer cannot take the connections another needs; the others wait their turn, each until
  its own deadline;
- **one retry** when a kept connection turns out to be closed before a byte of its answer
  came (the buyer closed it while idle) — a bid request reserves nothing, so asking twice is
  harmless; idle connections are kept 4 s, under the 5 s after which uvicorn and Node.js
  servers close theirs.

The deadline is one timer per exchange (``loop.call_at``), not ``asyncio.timeout``: that
costs a task's worth of bookkeeping per request, five per ping."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools

from rtbridge import __version__

USER_AGENT = f"rtbridge/{__version__}"
_KEEPALIVE_S = 4.0  # an idle connection older than this is closed, not re-used
_MAX_HEAD = 16384  # bytes of an answer's status line and headers
# Set by the client itself: a buyer's configured headers cannot replace them.
_OURS = frozenset({"host", "user-agent", "content-type", "content-length", "connection",
                   "transfer-encoding", "expect"})  # fmt: skip
_TLS = ssl.create_default_context()  # loaded at import, not on the first ping's dial

Where = tuple[str, int, bool]  # host, port, TLS


class BidTimeout(Exception):
    """The buyer did not answer within the deadline."""


class BidError(Exception):
    """No answer to read: the connection failed, the answer was malformed HTTP or too long.
    ``reason`` is short text for the bid's row and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stale(Exception):
    """A kept connection the buyer had closed: nothing of the answer came; ask again."""


class _Connection(asyncio.Protocol):
    """One connection to a buyer, one exchange at a time."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.reused = False  # it carried an exchange before this one
        self.idle_since = 0.0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body = bytearray()
        self._received = 0  # bytes of this exchange's answer
        self._in_body = False
        self._got = False  # any byte of this exchange's answer

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: not a buyer speaking HTTP
            self._close()
            return
        self._got = True
        self._received += len(data)
        if self._received > _MAX_HEAD + self._max_body:  # headers without end, say
            self._fail(BidError(f"answer over {self._max_body} bytes"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BidError("malformed HTTP answer: a protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(BidError(f"malformed HTTP answer: {exc}"[:120]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if self._in_body and not self._parser.should_keep_alive():
            # an answer without a length ends with its connection (HTTP/1.0 style)
            waiter.set_result((self._parser.get_status_code(), bytes(self._body)))
        elif not self._got and self.reused:
            waiter.set_exception(_Stale())
        else:
            waiter.set_exception(BidError("the buyer disconnected without an answer"))

    # httptools' callbacks
    def on_headers_complete(self) -> None:
        self._in_body = True

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._max_body:
            self._fail(BidError(f"answer over {self._max_body} bytes"))

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (1xx): the real one follows
            self._reset()
            return
        self.reusable = self.reusable and self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, bytes(self._body)))

    # the exchange
    def exchange(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._reset()
        self._got = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def abandon(self) -> None:
        """Given up (a timeout, an error, the client closed): never re-used."""
        self._waiter = None
        self._close()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._body = bytearray()
        self._received = 0
        self._in_body = False

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class _Buyer:
    """One buyer's connections: the idle ones, and its slots (``per_host`` exchanges at
    once; the others wait in turn, each until its deadline)."""

    def __init__(self, per_host: int) -> None:
        self.idle: list[_Connection] = []
        self.free = per_host
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def take(self, deadline: float, timeout_s: float) -> None:
        if self.free > 0:
            self.free -= 1
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self.waiting.append(turn)
        timer = loop.call_at(deadline, _expire, turn, timeout_s)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.give()  # handed a slot just as it gave up: pass it on
            with contextlib.suppress(ValueError):
                self.waiting.remove(turn)
            raise
        finally:
            timer.cancel()

    def give(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes to it
                return
        self.free += 1


class BidClient:
    """Pooled, kept-alive HTTP/1.1 POSTs to buyers: ``per_host`` exchanges at most at once
    with each buyer (host and port), answers of ``max_body`` bytes at most."""

    def __init__(self, *, per_host: int = 32, max_body: int = 65536) -> None:
        if per_host < 1 or max_body < 1:
            raise ValueError("per_host and max_body must be positive")
        self._per_host = per_host
        self._max_body = max_body
        self._buyers: dict[Where, _Buyer] = {}
        # (url, headers) -> the request's bytes up to its Content-Length value, and where
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[bytes, Where]] = {}
        self._closed = False

    async def ask(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``url``; the answer's status and body. Raises
        :class:`BidTimeout` once ``timeout_s`` has passed, :class:`BidError` otherwise."""
        if self._closed:
            raise BidError("the bid client is closed")
        head, where = self._head(url, headers)
        request = b"%b%d\r\n\r\n%b" % (head, len(body), body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        buyer = self._buyers.get(where)
        if buyer is None:
            buyer = self._buyers[where] = _Buyer(self._per_host)
        await buyer.take(deadline, timeout_s)
        try:
            for _ in range(2):  # twice only when a kept connection was found closed
                conn = await self._connection(buyer, where, deadline)
                try:
                    return await self._exchange(buyer, conn, request, deadline, timeout_s)
                except _Stale:
                    continue
            raise BidError("the buyer disconnected without an answer")
        finally:
            buyer.give()

    async def close(self) -> None:
        """Close every connection; later asks raise :class:`BidError`."""
        self._closed = True
        for buyer in self._buyers.values():
            for conn in buyer.idle:
                conn.abandon()
            buyer.idle.clear()

    async def _connection(self, buyer: _Buyer, where: Where, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while buyer.idle:
            conn = buyer.idle.pop()  # the most recently used: the least likely closed
            if not conn.closed and now - conn.idle_since < _KEEPALIVE_S:
                conn.reused = True
                return conn
            conn.abandon()
        host, port, tls = where
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._max_body), host, port,
                    ssl=_TLS if tls else None, server_hostname=host if tls else None,
                )  # fmt: skip
        except TimeoutError:
            raise BidTimeout("no connection within the deadline") from None
        except ssl.SSLCertVerificationError as exc:
            raise BidError(f"TLS certificate refused: {exc.verify_message}"[:120]) from None
        except (OSError, ssl.SSLError) as exc:
            raise BidError(f"cannot connect: {exc.strerror or exc}"[:120]) from None
        return conn

    async def _exchange(
        self, buyer: _Buyer, conn: _Connection, request: bytes, deadline: float, timeout_s: float
    ) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        answer = conn.exchange(request)
        timer = loop.call_at(deadline, _expire, answer, timeout_s)
        try:
            found = await answer
        except BaseException:
            conn.abandon()
            raise
        finally:
            timer.cancel()
        if conn.reusable and not conn.closed and not self._closed:
            conn.idle_since = loop.time()
            buyer.idle.append(conn)
        else:
            conn.abandon()
        return found

    def _head(self, url: str, headers: Mapping[str, str]) -> tuple[bytes, Where]:
        """The request up to its Content-Length value, and where it goes: made once per URL
        and headers (a buyer's are the same on every ping)."""
        key = (url, tuple(headers.items()))
        found = self._heads.get(key)
        if found is None:
            found = self._heads[key] = _request_head(url, headers)
        return found


def _request_head(url: str, headers: Mapping[str, str]) -> tuple[bytes, Where]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BidError(f"bad URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BidError(f"bad URL {url[:80]!r}: http:// or https:// with a host")
    tls = parts.scheme == "https"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {parts.netloc.rsplit('@', 1)[-1]}",
        f"User-Agent: {USER_AGENT}",
        "Content-Type: application/json",
        *(f"{name}: {value}" for name, value in headers.items() if name.lower() not in _OURS),
        "Content-Length: ",
    ]
    host = parts.hostname.strip("[]")
    return "\r\n".join(lines).encode("latin-1"), (host, port or (443 if tls else 80), tls)


def _expire(waiter: asyncio.Future[Any], timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(BidTimeout(f"no answer in {timeout_s * 1000:.0f} ms"))
