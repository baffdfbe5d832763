"""Free loopback ports and waiting for servers (uvicorn's tests do the same)."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Iterable

# Below Linux's ephemeral range (32768-60999): a port chosen here and bound a moment later
# by a server must not be taken meanwhile by some client's outgoing socket (a database
# connection, an HTTP request), which the kernel numbers from that range. Seen in the
# cluster test: an agent's status port taken, the agent gone, the failover test failed.
_LOW, _HIGH = 20000, 32768


def free_port(
    host: str = "127.0.0.1", *, count: int = 1, step: int = 1, avoid: Iterable[int] = ()
) -> int:
    """A port p where p, p+step, … (count ports) are free on UDP and TCP right now (SIP
    listens on both; SIPp and RTP need runs of ports), none of them in ``avoid``: ports
    already chosen for the same process and not bound yet (a SIPp's SIP port, chosen just
    before its media ports, was once chosen again for them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    taken = set(avoid)
    for _ in range(200):
        base = random.randrange(_LOW, max(_LOW + 2, _HIGH - count * step), 2)
        ports = [base + i * step for i in range(count)]
        if taken.intersection(ports):
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in ports:
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        sock = stack.enter_context(socket.socket(family, kind))
                        sock.bind((host, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port")


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
