"""The bid client against real loopback HTTP servers (no mocks): an answer, a deadline kept
to the millisecond budget, failures as BidError, no redirect followed, connections kept."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtbridge import __version__
from rtbridge.bidding.client import BidClient, BidError, BidTimeout

BODY = b'{"id": "r-1", "campaign": "auto"}'
BID = b'{"bid": 12.5, "destination": "sip:q@127.0.0.1"}'


def ok(body: bytes = BID, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@dataclass
class Seen:
    head: str
    body: bytes


@dataclass
class Buyer:
    """A loopback HTTP/1.1 server on the test's loop. ``answer`` gives, per request, the
    seconds to wait and the raw bytes to write (None: close without answering); a buyer
    with ``close_after`` closes each connection after answering, without saying so."""

    answer: Callable[[Seen], tuple[float, bytes | None]]
    close_after: bool = False
    connections: int = 0
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                               if line.lower().startswith("content-length")), 0)  # fmt: skip
                seen = Seen(head, await reader.readexactly(length))
                self.seen.append(seen)
                delay, raw = self.answer(seen)
                await asyncio.sleep(delay)
                if raw is None:
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()


@asynccontextmanager
async def buyer(
    answer: Callable[[Seen], tuple[float, bytes | None]],
    *,
    close_after: bool = False,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Buyer]:
    b = Buyer(answer, close_after)
    server = await asyncio.start_server(b.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    b.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/bid?k=1"
    try:
        yield b
    finally:
        server.close()
        await server.wait_closed()


def run(test: Callable[[BidClient], Awaitable[None]], **options: int) -> None:
    """``test`` with a client made outside the loop (as the app's state is) and used inside."""
    client = BidClient(**options)

    async def main() -> None:
        try:
            await test(client)
        finally:
            await client.close()

    asyncio.run(main())


def test_an_answer_and_what_the_buyer_saw() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as b:
            status, body = await client.ask(b.url, {"Authorization": "Bearer t"}, BODY, 1.0)
        assert (status, body) == (200, BID)
        [seen] = b.seen
        assert seen.head.startswith("POST /bid?k=1 HTTP/1.1\r\n")
        head = seen.head.lower()
        assert "content-type: application/json\r\n" in head
        assert f"user-agent: rtbridge/{__version__}\r\n" in head
        assert "authorization: bearer t\r\n" in head
        assert "accept-encoding" not in head and "cookie" not in head
        assert seen.body == BODY

    run(test)


def test_the_buyer_cannot_change_content_type_or_user_agent() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as b:
            forged = {"Content-Type": "text/plain", "User-Agent": "evil"}
            await client.ask(b.url, forged, BODY, 1.0)
        head = b.seen[0].head.lower()
        assert "content-type: application/json" in head and "evil" not in head

    run(test)


@pytest.mark.parametrize("timeout_s", [0.05, 0.25])
def test_a_slow_buyer_times_out_on_time(timeout_s: float) -> None:
    async def timed(client: BidClient) -> None:
        async with buyer(lambda seen: (0 if len(b.seen) == 1 else 2.0, ok())) as b:
            await client.ask(b.url, {}, BODY, 1.0)  # the pool is made and a connection kept
            start = time.perf_counter()
            with pytest.raises(BidTimeout):
                await client.ask(b.url, {}, BODY, timeout_s)
            elapsed = time.perf_counter() - start
        assert timeout_s <= elapsed + 0.005 and elapsed < timeout_s + 0.05, elapsed

    run(timed)


def test_a_slow_buyer_does_not_hold_up_the_others() -> None:
    async def test(client: BidClient) -> None:
        async with (
            buyer(lambda s: (2.0 if len(slow.seen) > 1 else 0, ok())) as slow,
            buyer(lambda s: (0.01, ok())) as fast,
        ):
            await asyncio.gather(
                client.ask(slow.url, {}, BODY, 1), client.ask(fast.url, {}, BODY, 1)
            )
            start = time.perf_counter()
            results = await asyncio.gather(
                client.ask(slow.url, {}, BODY, 0.2),
                client.ask(fast.url, {}, BODY, 0.2),
                return_exceptions=True,
            )
            elapsed = time.perf_counter() - start
        assert isinstance(results[0], BidTimeout) and results[1] == (200, BID)
        assert elapsed < 0.25

    run(test)


def test_connection_refused_is_a_bid_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused

    async def test(client: BidClient) -> None:
        with pytest.raises(BidError) as caught:
            await client.ask(f"http://127.0.0.1:{port}/bid", {}, BODY, 1.0)
        assert caught.value.reason.startswith("cannot connect")

    run(test)


def test_a_buyer_that_hangs_up_without_answering_is_a_bid_error() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, None)) as b:
            with pytest.raises(BidError, match="disconnected"):
                await client.ask(b.url, {}, BODY, 1.0)
        # a new connection is not asked again (a kept one is: test_a_connection_the_buyer_...)
        assert len(b.seen) == 1

    run(test)


@pytest.mark.parametrize(
    "raw",
    [
        ok(b"x" * 70000),  # Content-Length says it
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"4000\r\n" + b"x" * 0x4000 + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",  # chunked: found while reading
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 70000,  # to the close
    ],
    ids=["content-length", "chunked", "until-close"],
)
def test_an_oversized_answer_is_a_bid_error(raw: bytes) -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, raw), close_after=True) as b:
            with pytest.raises(BidError, match="answer over 65536 bytes"):
                await client.ask(b.url, {}, BODY, 2.0)

    run(test)


def test_a_chunked_answer_under_the_cap_is_read() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"%x\r\n%s\r\n0\r\n\r\n" % (len(BID), BID)

    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, raw)) as b:
            assert await client.ask(b.url, {}, BODY, 1.0) == (200, BID)

    run(test)


def test_the_cap_is_the_clients_max_body() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok(b"x" * 101))) as b:
            with pytest.raises(BidError, match="answer over 100 bytes"):
                await client.ask(b.url, {}, BODY, 1.0)
        async with buyer(lambda seen: (0, ok(b"x" * 100))) as b:
            assert await client.ask(b.url, {}, BODY, 1.0) == (200, b"x" * 100)

    run(test, max_body=100)


def test_a_redirect_is_an_answer_not_followed() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as target:
            moved = ok(b"moved", "302 Found", f"Location: {target.url}\r\n")
            async with buyer(lambda seen: (0, moved)) as b:
                assert await client.ask(b.url, {}, BODY, 1.0) == (302, b"moved")
            assert target.seen == []

    run(test)


def test_malformed_http_is_a_bid_error() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, b"SURE, HERE IS A BID\r\n\r\n"), close_after=True) as b:
            with pytest.raises(BidError, match="malformed HTTP answer"):
                await client.ask(b.url, {}, BODY, 1.0)

    run(test)


def test_connections_are_kept_between_requests() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as b:
            for _ in range(5):
                assert await client.ask(b.url, {}, BODY, 1.0) == (200, BID)
        assert (b.connections, len(b.seen)) == (1, 5)

    run(test)


def test_at_most_per_host_connections_to_one_buyer() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0.05, ok())) as b:
            results = await asyncio.gather(*(client.ask(b.url, {}, BODY, 2.0) for _ in range(8)))
        assert results == [(200, BID)] * 8
        assert (b.connections, len(b.seen)) == (2, 8)

    run(test, per_host=2)


def test_a_connection_the_buyer_closed_while_idle_is_replaced() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok()), close_after=True) as b:
            for _ in range(3):
                assert await client.ask(b.url, {}, BODY, 1.0) == (200, BID)
        assert b.connections == 3

    run(test)


def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9/")  # the discard port: nothing there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as b:
            assert await client.ask(b.url, {}, BODY, 1.0) == (200, BID)

    run(test)


def test_an_unverified_certificate_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok()), tls=tls) as b:
            with pytest.raises(BidError, match="TLS certificate refused"):
                await client.ask(b.url, {}, BODY, 2.0)
            assert b.seen == []

    run(test)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/bid", "not a url", "http://"])
def test_a_bad_url_is_a_bid_error(url: str) -> None:
    async def test(client: BidClient) -> None:
        with pytest.raises(BidError):
            await client.ask(url, {}, BODY, 1.0)

    run(test)


def test_a_closed_client_asks_no_more() -> None:
    async def test(client: BidClient) -> None:
        async with buyer(lambda seen: (0, ok())) as b:
            await client.ask(b.url, {}, BODY, 1.0)
            await client.close()
            with pytest.raises(BidError, match="closed"):
                await client.ask(b.url, {}, BODY, 1.0)

    run(test)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        BidClient(per_host=0)
    with pytest.raises(ValueError):
        BidClient(max_body=0)
