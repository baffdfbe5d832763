"""A loopback RTB bidder for the benchmarks: answers every ``POST`` with a bid in the
``rtbridge`` format after ``--delay-ms`` (20), on ``--ports`` listening ports (5), so one
process stands for five buyers.

It is a bare asyncio protocol on uvloop rather than a web framework: the benchmarks measure
the *client*, and a bidder that spent its core parsing would cap the client's figures at its
own rate (at 64 pings in flight, five buyers get ~16,000 requests a second). Keep-alive
HTTP/1.1 with ``Content-Length`` only: what the clients under test send.

``GET /_stats`` answers ``{"connections": n, "requests": n}``: connections that carried at
least one ``POST`` since the start, and the ``POST``s answered (how a benchmark checks that
its client kept its connections).

    python bench/bidder.py [--ports 5] [--delay-ms 20] [--host 127.0.0.1]

prints ``{"ports": [...]}`` on one line once listening, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import cast

import uvloop

_BID = json.dumps(
    {"bid": 12.5, "destination": "sip:queue@buyer.example.net", "expires_in": 60, "bid_id": "b-1"}
).encode()
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_MAX_HEAD = 16384


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    def body(self) -> bytes:
        return json.dumps({"connections": self.connections, "requests": self.requests}).encode()


class Bidder(asyncio.Protocol):
    """One connection: requests parsed from the buffer, each answered ``delay`` later (the
    clients send one request at a time on a connection, so answers keep their order)."""

    def __init__(self, stats: Stats, delay: float) -> None:
        self.stats = stats
        self.delay = delay
        self.buffer = b""
        self.posted = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD and self.transport:
                    self.transport.close()
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if head.startswith(b"get /_stats"):
                self._send(self.stats.body())
            else:
                if not self.posted:
                    self.posted = True
                    self.stats.connections += 1
                asyncio.get_running_loop().call_later(self.delay, self._bid)

    def _bid(self) -> None:
        self.stats.requests += 1
        self._send(_BID)

    def _send(self, body: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_HEAD % len(body) + body)


async def serve(host: str, ports: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    servers = [
        await loop.create_server(lambda: Bidder(stats, delay), host, 0, backlog=1024)
        for _ in range(ports)
    ]
    bound = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"ports": bound}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.ports, args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
