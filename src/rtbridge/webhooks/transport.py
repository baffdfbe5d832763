"""POSTing a signed body: one kept-alive connection per sending thread and receiver.

A new connection per POST (what ``urllib.request.urlopen`` does) cost the sender most of
its Python time per delivery, and the receiver a handshake each, under the GIL that the
serving process's event loop shares. ``http.client`` follows no redirect (a redirect is an
answer, not a 2xx: following it would turn the POST into a GET) and uses no proxy (an
environment proxy must not see, or break, signed event bodies)."""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse
from collections import OrderedDict

_KEPT = 16  # idle connections a thread keeps, one per receiver (host and port)
_READ = 65536  # of a response body; a longer one is not read to its end (and not kept)
_local = threading.local()
_TLS = ssl.create_default_context()
# Every kept (idle) connection of every thread, so a stopping sender can close them: left to
# the collector when a pool thread ends, each would be an unclosed-socket ResourceWarning.
_idle: set[http.client.HTTPConnection] = set()
_idle_lock = threading.Lock()

Connection = http.client.HTTPConnection


def _kept() -> OrderedDict[tuple[str, str], Connection]:
    kept: OrderedDict[tuple[str, str], Connection] | None = getattr(_local, "kept", None)
    if kept is None:
        kept = _local.kept = OrderedDict()
    return kept


def _connect(scheme: str, host: str, port: int | None, timeout: float) -> Connection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=_TLS)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _keep(key: tuple[str, str], conn: Connection) -> None:
    kept = _kept()
    kept[key] = conn
    with _idle_lock:
        _idle.add(conn)
    while len(kept) > _KEPT:
        evicted = kept.popitem(last=False)[1]
        with _idle_lock:
            _idle.discard(evicted)
        evicted.close()


def _take(key: tuple[str, str]) -> Connection | None:
    conn = _kept().pop(key, None)
    if conn is not None:
        with _idle_lock:
            _idle.discard(conn)
    return conn


def close_idle() -> None:
    """Close every kept connection (a stopping sender's last step). A thread that still
    holds one of them in its table reconnects on its next POST (http.client does)."""
    with _idle_lock:
        idle = list(_idle)
        _idle.clear()
    for conn in idle:
        conn.close()


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """(HTTP status, error text: None for a 2xx); the status is None when no answer came.
    A kept connection the receiver closed meanwhile is retried once on a new one."""
    try:
        parts = urllib.parse.urlsplit(url)
        # the scheme is http or https: subscriptions.read_url refuses anything else
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url[:100]}")
        host, port = parts.hostname, parts.port
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    except ValueError as exc:
        return None, f"ValueError: {exc}"[:256]
    key = (parts.scheme, parts.netloc)
    head = {**headers, "content-type": "application/json", "user-agent": "rtbridge-webhooks"}
    for _ in range(2):
        conn = _take(key)
        reused = conn is not None
        if conn is None:
            conn = _connect(parts.scheme, host, port, timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        try:
            conn.request("POST", target, body=body, headers=head)
            response = conn.getresponse()
            response.read(_READ)
            code = int(response.status)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            conn.close()
            if reused:
                continue  # closed while idle: the request did not get through
            return None, f"{type(exc).__name__}: {exc}"[:256]
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            return None, f"{type(exc).__name__}: {exc}"[:256]
        if response.isclosed() and not response.will_close:
            _keep(key, conn)
        else:
            conn.close()
        return code, None if 200 <= code < 300 else f"HTTP {code}"
    return None, "RemoteDisconnected: the receiver closed the connection"
