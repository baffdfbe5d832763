"""The sender's POSTs keep their connection between deliveries, and a kept connection that
the receiver closed while idle costs a retry on a new one, not a failed attempt."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rtbridge.webhooks import transport
from rtbridge.webhooks.transport import post

_OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def _request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))  # fmt: skip
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


@contextmanager
def _server(answers_per_connection: int) -> Iterator[tuple[str, list[int]]]:
    """Answers 204 to ``answers_per_connection`` requests per connection, then closes it
    without a word (as an idle timeout does); yields the URL and requests per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    counts: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            counts.append(0)
            with conn:
                while counts[-1] < answers_per_connection and _request(conn):
                    conn.sendall(_OK)
                    counts[-1] += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook?x=1", counts
    finally:
        listener.close()


def test_posts_share_one_connection() -> None:
    with _server(100) as (url, counts):
        assert [post(url, b"{}", {}, 2.0) for _ in range(3)] == [(204, None)] * 3
        transport.close_idle()
    assert counts == [3]


def test_a_connection_closed_while_idle_is_retried_on_a_new_one() -> None:
    with _server(1) as (url, counts):
        assert [post(url, b"{}", {}, 2.0) for _ in range(3)] == [(204, None)] * 3
        transport.close_idle()
    assert counts == [1, 1, 1]


def test_no_answer_is_an_error_not_a_status() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    code, error = post(f"http://127.0.0.1:{port}/", b"{}", {}, 1.0)
    assert code is None and error is not None and "Refused" in error


def test_a_stopping_sender_closes_the_kept_connections() -> None:
    """``close_idle`` (Sender.stop's last step): no kept socket is left for the collector,
    where it would be an unclosed-socket ResourceWarning in whatever runs next."""
    with _server(100) as (url, _):
        assert post(url, b"{}", {}, 2.0) == (204, None)
        kept = list(transport._idle)
        assert kept and all(conn.sock is not None for conn in kept)
        transport.close_idle()
        assert transport._idle == set() and all(conn.sock is None for conn in kept)
        assert post(url, b"{}", {}, 2.0) == (204, None)  # the thread's table reconnects
        transport.close_idle()
