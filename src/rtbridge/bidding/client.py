"""Asking a buyer for a bid over HTTP: one pooled asyncio client for the whole process.

aiohttp, not httpx: on this path (five buyers asked at once per ping, answers in 20 ms,
kept-alive HTTP/1.1 on one uvloop loop) ``bench/bid_client.py`` measured aiohttp 3.14 at
about a tenth of the CPU per bid request of httpx 0.29 and of httpx2, whose pools cost more
the more requests wait in them (encode/httpx#3215, open, carried into httpx2 as its #827):
at 16 pings in flight httpx lost a fifth of its requests to the deadline, at 64 all of them.
aiohttp also limits connections *per host*, which httpx's pool cannot (one slow buyer must
not take the connections the others need). aiohttp still costs ~4x what a bare asyncio
protocol does (the benchmark's ``floor``); that is the price of a kept, tested HTTP stack.

What every request gets, and why:

- **no redirect**: a 3xx is the buyer's answer (read as an error), not an instruction to
  POST the caller's number somewhere else;
- **no environment proxy or .netrc** (``trust_env`` off): bid requests carry caller numbers
  and buyers' tokens;
- **TLS verified** for https (the system's trust store, ALPN ``http/1.1``);
- **no compression** asked or undone: a small gzip body can inflate to megabytes, and a bid
  is a few hundred bytes;
- **at most** ``max_body`` **bytes** read: a longer answer is a :class:`BidError`, and its
  connection is dropped rather than drained;
- **one retry** when a kept connection turns out closed (the buyer dropped it while idle:
  aiohttp reports ``ServerDisconnectedError``, or ``ClientOSError`` when the write already
  failed, and retries only idempotent methods by itself) — a bid request reserves nothing,
  so asking twice is harmless;
- idle connections are kept 4 s, under the 5 s after which uvicorn and Node.js servers close
  theirs, so a kept connection is rarely one the buyer already closed.

The session binds to the event loop it was made on, so it is made on first use — inside
uvicorn's loop — and :meth:`BidClient.close` belongs in the lifespan's shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from rtbridge import __version__

USER_AGENT = f"rtbridge/{__version__}"
_KEEPALIVE_S = 4.0


class BidTimeout(Exception):
    """The buyer did not answer within the deadline."""


class BidError(Exception):
    """No answer to read: the connection failed, the answer was malformed HTTP or too long.
    ``reason`` is short text for the bid's row and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BidClient:
    """Pooled, kept-alive HTTP/1.1 POSTs to buyers: ``per_host`` connections at most to each
    buyer (host and port), answers of ``max_body`` bytes at most."""

    def __init__(self, *, per_host: int = 32, max_body: int = 65536) -> None:
        if per_host < 1 or max_body < 1:
            raise ValueError("per_host and max_body must be positive")
        self._per_host = per_host
        self._max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def ask(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``url``; the answer's status and body. Raises
        :class:`BidTimeout` once ``timeout_s`` has passed, :class:`BidError` otherwise."""
        session = self._session or self._open()
        head = {**headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        try:
            async with asyncio.timeout(timeout_s):
                try:
                    return await self._post(session, url, head, body)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    if isinstance(exc, aiohttp.ClientConnectorError):
                        raise  # no connection at all: nothing stale to replace
                    return await self._post(session, url, head, body)
        except TimeoutError:
            raise BidTimeout(f"no answer in {timeout_s * 1000:.0f} ms") from None
        except aiohttp.ClientError as exc:
            raise BidError(_reason(exc)) from None
        except (OSError, ValueError) as exc:  # a bad URL, a socket error aiohttp let through
            raise BidError(f"{type(exc).__name__}: {exc}"[:120]) from None

    async def close(self) -> None:
        """Close every connection; later asks raise :class:`BidError`."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise BidError("the bid client is closed")
        connector = aiohttp.TCPConnector(
            limit=0,  # no limit in all: per host only
            limit_per_host=self._per_host,
            keepalive_timeout=_KEEPALIVE_S,
            # aiohttp's verified context, made when it is imported: loading the trust store
            # takes 25-100 ms, which must not land on a ping
            ssl=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=None),  # the caller's deadline is the timeout
        )
        return self._session

    async def _post(
        self, session: aiohttp.ClientSession, url: str, head: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        async with session.post(url, data=body, headers=head, allow_redirects=False) as response:
            length = response.content_length
            if length is not None and length > self._max_body:
                raise BidError(f"answer over {self._max_body} bytes")
            if length is not None:
                return response.status, await response.read()
            return response.status, await self._read_capped(response.content)

    async def _read_capped(self, content: aiohttp.StreamReader) -> bytes:
        """A body without Content-Length (chunked, or to the close), up to ``max_body``."""
        chunks: list[bytes] = []
        size = 0
        while chunk := await content.read(self._max_body + 1 - size):
            size += len(chunk)
            if size > self._max_body:
                raise BidError(f"answer over {self._max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate refused"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"[:120]
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "disconnected before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "answer body cut or malformed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP answer: {exc.message}"[:120]
    if isinstance(exc, aiohttp.InvalidURL):
        return "not a valid URL"
    return f"{type(exc).__name__}: {exc}"[:120]
