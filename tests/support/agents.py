"""``rtbridge sip`` processes as a site runs them: one per port, sharing a database and a
nonce secret, each with /health and /metrics on a status port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, wait_for_port

NONCE_SECRET = "cluster-test-nonce-secret-0123456789"


@dataclass
class AgentProcess:
    """One agent; ``start()`` (again after ``kill()``) runs it on the same ports."""

    db_url: str
    workdir: Path
    options: str = ""  # more [agent] lines
    host: str = "127.0.0.1"
    max_calls: int = 128  # 0: every slot the build has
    rtp_ports: int = 400
    rtp_min: int = 0  # 0: a free port
    port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        rtp = self.rtp_min or free_port(count=1)
        self.config = self.workdir / f"agent-{self.port}.toml"
        self.config.write_text(
            f'[agent]\nhosts = ["{self.host}"]\nport = {self.port}\nmedia_address = "{self.host}"\n'
            f"rtp_port_min = {rtp}\nrtp_port_max = {rtp + self.rtp_ports}\n"
            f"max_calls = {self.max_calls}\nlog_level = 1\n"
            "drain_timeout = 2.0\n"
            f"{self.options}\n"
        )
        self.log = self.workdir / f"agent-{self.port}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def agent_id(self) -> str:
        """What this agent writes as ``callrecord.agent``: its ``agent_id``, by default
        hostname:port (sip/b2bua/startup.py)."""
        import socket

        return f"{socket.gethostname()}:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "RTBRIDGE_DB": self.db_url, "RTBRIDGE_NONCE_SECRET": NONCE_SECRET}

    def start(self) -> AgentProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rtbridge", "sip", "--sip-config", str(self.config),
                 "--http", f"127.0.0.1:{self.status_port}", "--log-level", "warning"],
                env=self.env(), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for_port("127.0.0.1", self.status_port, timeout=30)
            # the port answering is not enough: make sure it is this agent, on its SIP port
            if self.status().get("port") != self.port:
                raise TimeoutError
        except (TimeoutError, OSError, KeyError, ValueError):
            raise RuntimeError(f"agent did not start:\n{self.log_text()}") from None
        return self

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/health", timeout=5) as r:
            return dict(json.loads(r.read())["sip"])

    def kill(self) -> None:
        """kill -9: no drain, no BYEs, no records written."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # stop now, no drain
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_until(predicate: object, timeout: float = 10.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False
