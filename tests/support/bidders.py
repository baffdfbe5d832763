"""Loopback RTB buyers for tests: one HTTP/1.1 server on 127.0.0.1 whose paths answer bid
requests as a test says (a status, a JSON or raw body, after a delay), recording every
request it gets (path, headers, body). Kept-alive connections, as real bidders keep them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # a dict or list: JSON; bytes: as they are; None: no body
    delay: float = 0.0  # seconds before answering


def bid(amount: float, destination: str = "sip:buyer@buyer.example.net", **more: Any) -> Answer:
    """A bid in the rtbridge format."""
    return Answer(body={"bid": amount, "destination": destination, **more})


@dataclass
class Asked:
    path: str
    headers: dict[str, str]
    body: Any  # the JSON the bidder was sent


@dataclass
class Bidders:
    answers: dict[str, Answer] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)  # client addresses seen
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def asked_at(self, path: str) -> list[Asked]:
        return [a for a in self.asked if a.path == path]


def _handler(bidders: Bidders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                sent = json.loads(raw)
            except ValueError:
                sent = raw
            bidders.connections.add(self.client_address[:2])
            bidders.asked.append(Asked(self.path, dict(self.headers.items()), sent))
            answer = bidders.answers.get(self.path, Answer(404))
            if answer.delay:
                time.sleep(answer.delay)
            body = answer.body
            data = (
                body
                if isinstance(body, bytes)
                else b""
                if body is None
                else json.dumps(body).encode()
            )
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a storm of auctions connects at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up on a slow answer (the auction's deadline) is
        expected here, not a failure of the bidder."""


def serve_bidders() -> Iterator[Bidders]:
    """A :class:`Bidders` listening until the generator is closed (a pytest fixture's body)."""
    bidders = Bidders()
    server = _Server(("127.0.0.1", 0), _handler(bidders))
    server.daemon_threads = True
    bidders.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield bidders
    finally:
        server.shutdown()
        server.server_close()
