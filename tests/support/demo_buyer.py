"""``rtbridge demo-buyer`` as a real subprocess on a free port, its JSON log lines at hand."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support.net import free_port, wait_for_port


@dataclass
class DemoBuyer:
    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line it wrote so far."""
        self.log.seek(0)
        return [json.loads(line) for line in self.log.read().decode().splitlines() if line]

    def calls(self) -> list[dict[str, Any]]:
        """Its one line per ended call."""
        return [line for line in self.lines() if line["msg"] == "call ended"]

    def stop(self) -> int:
        """SIGTERM, and its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the demo buyer did not stop on SIGTERM") from None


@contextmanager
def demo_buyer(*, cwd: Path | None = None) -> Iterator[DemoBuyer]:
    """A demo buyer listening on a free port of 127.0.0.1, run in ``cwd``; stopped afterwards."""
    port = free_port()
    args = [sys.executable, "-m", "rtbridge", "demo-buyer", "--sip", f"127.0.0.1:{port}"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        buyer = DemoBuyer(port, proc, log)
        try:
            wait_for_port("127.0.0.1", port)  # TCP: it listens on UDP and TCP at once
            yield buyer
        finally:
            buyer.stop()
