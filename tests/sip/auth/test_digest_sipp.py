"""Cross-check with an independent digest implementation: SIPp (Debian ``sip-tester``).

A tiny UDP UAS on a free loopback port answers SIPp's INVITE with our :class:`Challenge`,
verifies the retried INVITE with :class:`Authenticator` and answers 200 or 403. SIPp must
get through with the right password and be refused with the wrong one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtbridge.sip.auth.allowlist import Credential, Directory
from rtbridge.sip.auth.authenticator import Accepted, Authenticator, Challenge, Decision, Refused

pytestmark = pytest.mark.sip

REALM = "sip.rtb.example.com"
USERNAME = "pub1"
PASSWORD = "s3cret-Pass-123"
SERVICE = "0b6f3c2e-6a40-4a57-9d2e-3f1c5d9f0a11"

_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="digest cross-check">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      [authentication username=%(username)s password=%(password)s]
      Content-Length: 0

    ]]>
  </send>
  <recv response="%(final)s"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch%(ack_branch)s]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


@dataclass
class _Uas:
    """Minimal UDP UAS: 401 with our challenge, then 200/403 by our verdict."""

    authenticator: Authenticator
    directory: Directory
    sock: socket.socket = field(init=False)
    decisions: list[Decision] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = self._handle(data.decode("utf-8", "replace"), peer)
            if reply is not None:
                self.sock.sendto(reply.encode(), peer)

    def stop(self) -> None:
        self._stop.set()

    def _handle(self, message: str, peer: tuple[str, int]) -> str | None:
        head = message.split("\r\n\r\n", 1)[0].split("\r\n")
        if not head[0].startswith("INVITE "):
            return None  # ACK
        headers: list[tuple[str, str]] = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        authorization = next((v for n, v in headers if n.lower() == "authorization"), None)
        if authorization is not None:
            self.authorizations.append(authorization)
        decision = self.authenticator.authenticate(
            method="INVITE",
            source_ip=f"{peer[0]}:{peer[1]}",
            authorization=authorization,
            directory=self.directory,
        )
        self.decisions.append(decision)
        extra: tuple[tuple[str, str], ...] = ()
        if isinstance(decision, Accepted):
            status = "200 OK"
        elif isinstance(decision, Challenge):
            status = "401 Unauthorized"
            extra = decision.headers
        else:
            assert isinstance(decision, Refused)
            status = f"{decision.code} {decision.reason}"
        lines = [f"SIP/2.0 {status}"]
        for name, value in headers:
            if name.lower() in ("via", "from", "call-id", "cseq"):
                lines.append(f"{name}: {value}")
            elif name.lower() == "to":
                lines.append(f"{name}: {value};tag=uas1")
        lines += [f"{n}: {v}" for n, v in extra]
        if status.startswith("200"):
            lines.append(f"Contact: <sip:uas@127.0.0.1:{self.port}>")
        lines.append("Content-Length: 0")
        return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture
def sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(
            "sipp not installed (Debian package sip-tester); scripts/system-deps installs it"
        )
    return path


@pytest.fixture
def run_uas() -> Iterator[list[_Uas]]:
    servers: list[_Uas] = []
    yield servers
    for server in servers:
        server.stop()
        server.sock.close()


def _run(
    sipp: str, tmp_path: Path, uas: _Uas, *, password: str, final: str
) -> subprocess.CompletedProcess[str]:
    scenario = tmp_path / "digest.xml"
    scenario.write_text(
        _SCENARIO
        % {
            "username": USERNAME,
            "password": password,
            "final": final,
            # ACK for a 2xx is its own transaction; for a non-2xx it reuses the INVITE's branch.
            "ack_branch": "" if final == "200" else "-1",
        }
    )
    thread = threading.Thread(target=uas.serve, daemon=True)
    thread.start()
    try:
        return subprocess.run(
            [
                sipp,
                f"127.0.0.1:{uas.port}",
                "-sf",
                str(scenario),
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-s",
                SERVICE,
                "-nostdin",
                "-timeout",
                "8s",
                "-timeout_error",
                "-recv_timeout",
                "4000",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    finally:
        uas.stop()
        thread.join(timeout=2)


# SIPp 3.6 answers the first challenge it reads and aborts ("authentication must use MD5 or
# AKAv1-MD5", exit 255) when that one is SHA-256 — so with it, MD5 must be offered first.
# SHA-256 itself is checked against the RFC 7616 vectors in test_digest.py.
@pytest.mark.parametrize("offered", [("MD5",), ("MD5", "SHA-256")], ids=["md5", "md5+sha256"])
@pytest.mark.parametrize(
    ("password", "final"), [(PASSWORD, "200"), ("not-the-password", "403")], ids=["right", "wrong"]
)
def test_sipp_digest(
    sipp: str,
    tmp_path: Path,
    run_uas: list[_Uas],
    offered: tuple[str, ...],
    password: str,
    final: str,
) -> None:
    algorithm = offered[0]
    authenticator = Authenticator(realm=REALM, secret=b"s" * 32, algorithms=offered)
    directory = Directory(
        credentials=[
            Credential.from_password(
                username=USERNAME, publisher_id="pub-1", password=PASSWORD, realm=REALM
            )
        ]
    )
    uas = _Uas(authenticator, directory)
    run_uas.append(uas)

    result = _run(sipp, tmp_path, uas, password=password, final=final)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert isinstance(uas.decisions[0], Challenge)
    assert len(uas.authorizations) == 1
    assert f"algorithm={algorithm}" in uas.authorizations[0].replace('"', "")
    last = uas.decisions[-1]
    if final == "200":
        assert last == Accepted("pub-1", f"digest user {USERNAME} ({algorithm})")
    else:
        assert last == Refused(403, "Forbidden")
