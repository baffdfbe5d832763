"""A real webhook receiver for the tests: a stdlib HTTP server on a free loopback port, in a
thread, that verifies every signature and records what it got."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rtbridge.webhooks import signing


@dataclass
class Received:
    msg_id: str
    body: dict[str, Any]
    verified: bool
    code: int


@dataclass
class Receiver:
    url: str
    secret: str | None = None  # set once the webhook exists
    # answers to give, in order, before answering 200 for ever
    script: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.msg_id for r in self.got if r.code == 200]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Until ``count`` requests were answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                ok = [r for r in self.got if r.code == 200]
            if len(ok) >= count:
                return ok
            time.sleep(0.05)
        raise AssertionError(
            f"{len(self.ids())} deliveries of {count} within {timeout}s: {self.got}"
        )


@contextmanager
def receiver(**options: Any) -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            r = box[0]
            raw = self.rfile.read(int(self.headers["content-length"]))
            head = {k.lower(): v for k, v in self.headers.items()}
            verified = r.secret is not None and signing.verify(
                r.secret, head, raw, now=int(time.time())
            )
            if r.delay:
                time.sleep(r.delay)
            with r.lock:
                code = r.script.pop(0) if r.script else 200
                r.got.append(Received(head.get("webhook-id", ""), json.loads(raw), verified, code))
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", **options))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
