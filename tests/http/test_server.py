"""What one HTTP client can hold (``http/server.py``), against a live ``rtbridge serve``
over raw sockets: request heads bounded in size and in time, open connections bounded in
number; the server answers everyone else as before."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import DEMO
from tests.support.server import Served, serving

pytestmark = pytest.mark.live

HEAD = b"GET /health HTTP/1.1\r\nHost: rtbridge\r\n"
WAIT = 20.0  # seconds a socket waits for the server: far beyond every timeout set here


@pytest.fixture
def db(sqlite_url: str) -> Iterator[str]:
    engine = open_database(sqlite_url)
    apply_file(engine, DEMO)
    engine.dispose()
    yield sqlite_url


def _connect(server: Served) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset after its answer included). A
    server that neither answers nor closes fails the test with a timeout."""
    chunks: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _one_answer(sock: socket.socket) -> bytes:
    """One answer on a connection the server keeps open (its head and a short body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(v) for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n")[1:])
                  if k.lower() == b"content-length")  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _send(server: Served, data: bytes) -> bytes:
    """Send ``data`` (the server may close before it has read it all) and read the answer."""
    with _connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return _answer(sock)


def _healthy(server: Served) -> None:
    deadline = time.monotonic() + WAIT
    while True:  # closed connections are let go on the server's next loop turn
        status = httpx2.get(f"{server.base}/health", timeout=WAIT).status_code
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


def test_heads_up_to_the_cap_are_served_larger_ones_get_431(db: str) -> None:
    with serving(db) as server:  # the default cap: 16 KiB of request line and headers
        small = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(140))  # ~15.5 KB
        assert _send(server, HEAD + small + b"\r\n").startswith(b"HTTP/1.1 200 ")
        large = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(170))  # ~18.8 KB
        answer = _send(server, HEAD + large + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
        assert answer.endswith(b'{"error": "request line and headers: larger than 16384 bytes"}')
        long_url = b"GET /health?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: rtbridge\r\n\r\n"
        assert _send(server, long_url).startswith(b"HTTP/1.1 431 ")
        _healthy(server)


def test_huge_headers_are_refused_without_holding_their_memory(db: str) -> None:
    """Issue 17: a 32 MB header was answered 200 and grew the server by 40 MB."""
    with serving(db) as server:
        _healthy(server)
        before = server.rss()
        for size in (1 << 20, 32 << 20):
            answer = _send(server, HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n")
            # The 431 may be lost to the reset that closing an unread socket sends.
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert server.rss() - before < 16 << 20
        _healthy(server)


def test_trailers_count_against_the_head_cap(db: str) -> None:
    with serving(db) as server:
        body = b"3\r\nk=x\r\n0\r\n" + b"X-Trailer: " + b"t" * (1 << 20) + b"\r\n\r\n"
        request = (b"POST /rtbs.json HTTP/1.1\r\nHost: rtbridge\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + body)  # fmt: skip
        # the request is in progress when its trailers pass the cap: closed, no answer
        assert _send(server, request) == b""
        _healthy(server)


def test_half_sent_heads_are_closed_after_the_head_timeout(db: str) -> None:
    """Issue 17: 40 half-sent requests were all still open after 104 s (slowloris)."""
    with serving(db, "--http-head-timeout", "1") as server:
        socks = [_connect(server) for _ in range(40)]
        for sock in socks:
            sock.sendall(HEAD + b"X-Slow: ")
        for sock in socks:
            answer = _answer(sock)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert answer.endswith(b'"request head not complete within 1 seconds"}')
            sock.close()
        with _connect(server) as silent:  # connected, nothing sent at all
            assert _answer(silent).startswith(b"HTTP/1.1 408 ")
        with _connect(server) as trickle:  # a header line now and then does not extend it
            sent = 0
            try:
                for sent in range(1, 100):  # 20 s of trickling if never closed
                    trickle.sendall(b"X-Drip: " + str(sent).encode() + b"\r\n")
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert sent < 99
        with _connect(server) as kept:  # the next head of a kept-alive connection too
            kept.sendall(HEAD + b"\r\n")
            assert _one_answer(kept).startswith(b"HTTP/1.1 200 ")
            kept.sendall(HEAD)
            assert _answer(kept).startswith(b"HTTP/1.1 408 ")
        _healthy(server)


def test_connections_over_the_limits_get_503_then_are_closed(db: str) -> None:
    flags = ("--http-concurrency", "3", "--http-max-connections", "5", "--http-keep-alive", "60")
    with serving(db, *flags) as server, contextlib.ExitStack() as held:
        for _ in range(2):  # answered, and held open (keep-alive)
            sock = held.enter_context(_connect(server))
            sock.sendall(HEAD + b"\r\n")
            assert _one_answer(sock).startswith(b"HTTP/1.1 200 ")
        # a 3rd connection: 3 open (its own included) is the concurrency limit
        answer = _send(server, HEAD + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        for _ in range(3):  # 5 open now: --http-max-connections
            held.enter_context(_connect(server))
        assert _send(server, HEAD + b"\r\n") == b""  # the 6th: closed at once, unanswered
        held.close()
        _healthy(server)
