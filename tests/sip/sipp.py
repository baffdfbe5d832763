"""Run SIPp (Debian ``sip-tester``) as a real SIP peer on free loopback ports.

A :class:`Sipp` is one SIPp process running one scenario from ``scenarios/``; it logs every
SIP message it sends and receives (``-trace_msg``) so tests can assert on status codes and
headers of what really crossed the wire. ``-timeout … -timeout_error`` makes a peer that
waits for something that never comes fail instead of hanging the suite.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

SCENARIOS = Path(__file__).parent / "scenarios"
_BLOCK = re.compile(r"^-{10,} .*$", re.MULTILINE)


def sipp_binary() -> str | None:
    return shutil.which("sipp")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Message:
    direction: str  # "sent" or "received"
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        parts = self.first_line.split()
        if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
            return int(parts[1])
        return None

    def header(self, name: str) -> str | None:
        prefix = name.lower() + ":"
        for line in self.text.split("\n")[1:]:
            if not line.strip():
                break
            if line.lower().startswith(prefix):
                return line.split(":", 1)[1].strip()
        return None


@dataclass
class SippResult:
    returncode: int
    messages: list[Message]
    log: str  # SIPp's screen/stderr, for failure messages

    def received(self) -> list[Message]:
        return [m for m in self.messages if m.direction == "received"]

    def statuses(self) -> list[int]:
        """Status codes of the responses received, in order."""
        return [m.status for m in self.received() if m.status is not None]

    def invite_answers(self) -> list[int]:
        """Final codes received for INVITEs (not for BYEs and the like), in order."""
        return [
            m.status
            for m in self.received()
            if m.status is not None
            and m.status >= 200
            and (m.header("CSeq") or "").upper().endswith("INVITE")
        ]

    def requests(self, method: str) -> list[Message]:
        return [m for m in self.received() if m.first_line.startswith(method + " ")]

    def response(self, code: int) -> Message:
        for m in self.received():
            if m.status == code:
                return m
        raise AssertionError(f"no {code} received; got {self.statuses()}\n{self.log}")


def _parse_messages(text: str) -> list[Message]:
    messages = []
    for block in _BLOCK.split(text):
        block = block.strip("\n")
        if not block:
            continue
        head, _, body = block.partition("\n")
        direction = "received" if "received" in head else "sent"
        messages.append(Message(direction, body.strip("\n").replace("\r", "")))
    return messages


class Sipp:
    """One SIPp process. UAS: ``remote=None``; UAC: ``remote="host:port"``."""

    def __init__(
        self,
        scenario: str,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        remote: str | None = None,
        transport: str = "UDP",
        service: str = "service",
        keys: dict[str, str] | None = None,
        calls: int = 1,
        rate: float | None = None,
        duration_ms: int = 500,
        rtp_echo: bool = False,
        timeout: float = 20.0,
        rewrite: dict[str, str] | None = None,
        media_host: str | None = None,
        inf: Path | None = None,
    ) -> None:
        self.host = host
        self.transport = transport
        self.port = free_port(host)
        # SIPp also echoes video at +2
        self.media_port = free_port(host, count=2, step=2, avoid=(self.port,))
        self.name = f"{Path(scenario).stem}-{self.port}"
        self.workdir = workdir
        self._message_file = workdir / f"{self.name}.msg"
        self._screen_file = workdir / f"{self.name}.out"
        all_keys = {"caller": "+12025550102", "display": "Alice", "rtp_port": str(self.media_port)}
        all_keys.update(keys or {})
        scenario_path = SCENARIOS / scenario
        if rewrite:  # e.g. another status line: SIPp refuses [keys] in one
            text = scenario_path.read_text()
            for old, new in rewrite.items():
                assert old in text, f"{old!r} not in {scenario}"
                text = text.replace(old, new)
            scenario_path = workdir / f"{self.name}.xml"
            scenario_path.write_text(text)
        args = [sipp_binary() or "sipp"]
        if remote is not None:
            args.append(remote)
        args += [
            "-sf", str(scenario_path),
            "-i", host,
            "-p", str(self.port),
            "-mi", media_host or host,
            "-mp", str(self.media_port),
            "-t", "t1" if transport == "TCP" else "u1",
            "-s", service,
            "-m", str(calls),
            "-l", str(calls),
            "-d", str(duration_ms),
            "-nostdin",
            "-trace_msg", "-message_file", str(self._message_file),
            "-timeout", f"{timeout}s", "-timeout_error",
            "-max_recv_loops", "1000",
        ]  # fmt: skip
        if rate is not None:
            args += ["-r", str(rate)]
        if inf is not None:  # one call per line: [field0], [field1]...
            args += ["-inf", str(inf)]
        if rtp_echo:
            args.append("-rtp_echo")
        for key, value in all_keys.items():
            args += ["-key", key, value]
        self.args = args
        self._out = self._screen_file.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def address(self) -> str:
        return hostport(self.host, self.port)

    def uri(self, user: str = "buyer", transport: str = "UDP") -> str:
        suffix = ";transport=tcp" if transport == "TCP" else ""
        return f"sip:{user}@{self.address}{suffix}"

    def wait_listening(self, timeout: float = 5.0) -> None:
        """Wait until the UAS has bound its port (SIPp takes a few ms to start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited early:\n{self._read_log()}")
            kind = socket.SOCK_STREAM if self.transport == "TCP" else socket.SOCK_DGRAM
            try:
                with socket.socket(_family(self.host), kind) as probe:
                    probe.bind((self.host, self.port))
            except OSError:
                return  # bound by SIPp
            time.sleep(0.02)
        raise TimeoutError("sipp did not start listening")

    def wait(self, timeout: float = 30.0) -> SippResult:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        text = self._message_file.read_text(errors="replace") if self._message_file.exists() else ""
        return SippResult(code, _parse_messages(text), self._read_log())

    def kill(self) -> None:
        """Idempotent cleanup for test teardown: no SIPp outlives its test."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._out.close()

    def _read_log(self) -> str:
        if not self._out.closed:
            self._out.flush()
        raw = self._screen_file.read_bytes() if self._screen_file.exists() else b""
        return " ".join(self.args) + "\n" + raw.decode(errors="replace")[-3000:]


def echo_uas(port: int) -> subprocess.Popen[bytes]:
    """SIPp's built-in UAS on 127.0.0.1:``port`` as a buyer for many calls: answers at once,
    echoes RTP, waits for the caller's BYE; no traces (the caller's are checked)."""
    return subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-l", "100000",
         "-mp", str(free_port(count=2, step=2, avoid=(port,))), "-rtp_echo"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
