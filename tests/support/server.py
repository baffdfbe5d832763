"""``rtbridge serve`` as a real subprocess on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port, wait_for_port


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:PORT
    pid: int

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.base.removeprefix("http://").split(":")
        return host, int(port)

    def rss(self) -> int:
        """The server's resident memory now, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for process {self.pid}")


@contextmanager
def serve(db_url: str, *extra: str, sip: str | None = "off") -> Iterator[str]:
    """Yield the base URL of a live server; stop it (SIGTERM) afterwards. ``sip=None``
    leaves where SIP listens to the agent file (``--sip-config`` in ``extra``)."""
    with serving(db_url, *extra, sip=sip) as served:
        yield served.base


@contextmanager
def serving(db_url: str, *extra: str, sip: str | None = "off") -> Iterator[Served]:
    """:func:`serve`, yielding the process id too."""
    port = free_port()
    env = {**os.environ, "RTBRIDGE_DB": db_url}
    sip_args = [] if sip is None else ["--sip", sip]
    args = [sys.executable, "-m", "rtbridge", "serve", "--http", f"127.0.0.1:{port}",
            *sip_args, "--log-level", "warning", *extra]  # fmt: skip
    # Output to a file, not a pipe: a server that logs a lot (an outage test) must not
    # block on a full pipe that nobody reads until it stops.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", port)
            yield Served(f"http://127.0.0.1:{port}", proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                out = log.read().decode(errors="replace")[-8000:]
                raise AssertionError(f"server exited {proc.returncode}:\n{out}")
