"""Debian's Kamailio running deploy/kamailio/kamailio.cfg — the file a site runs — in front
of the agents a test starts, on loopback addresses of the test's choosing."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )


@dataclass
class Kamailio:
    host: str
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def kamailio(
    workdir: Path, agents: list[str], *, host: str = "127.0.0.10", failover_ms: int = 1000
) -> Iterator[Kamailio]:
    """Kamailio on ``host`` (UDP and TCP, a free port) dispatching to ``agents`` (HOST:PORT)."""
    binary = kamailio_binary()
    if binary is None:
        raise RuntimeError(
            "kamailio is missing: scripts/system-deps test installs Debian's kamailio"
        )
    run = workdir / "kamailio"
    run.mkdir(exist_ok=True)
    agents_list = run / "agents.list"
    agents_list.write_text("".join(f"1 sip:{agent} 0 0\n" for agent in agents))
    port = free_port(host)
    log = run / "kamailio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-DD", "-E", "-f", str(CONFIG), "-Y", str(run), "-P", str(run / "pid"),
             "-w", str(run), "-m", "64", "-M", "8",
             "-A", f'DISPATCHER_LIST="{agents_list}"', "-A", f"FAILOVER_MS={failover_ms}",
             "-l", f"udp:{host}:{port}", "-l", f"tcp:{host}:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _udp_bound(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        time.sleep(0.3)  # its worker processes take the socket over from the main one
        yield Kamailio(host, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _udp_bound(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False
