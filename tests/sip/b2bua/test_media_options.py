"""What the PyPI wheel could not do, end to end against a second pjsua2 (tests/sip/peer.py):
TLS signalling with SDES-SRTP on both legs, and transcoding G.729 / G.722 <-> G.711.

Each peer plays its own tone and records what it hears; a tone found in the other side's
recording crossed the agent in that direction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sip.b2bua.support import UUID, AgentFactory, ScriptedRouter, bridge_to
from tests.support.net import free_port
from tests.support.tone import wav_power

pytestmark = pytest.mark.sip

PEER = Path(__file__).resolve().parents[1] / "peer.py"
PUBLISHER_HZ, BUYER_HZ = 440, 1000


class PeerProcess:
    def __init__(self, tmp_path: Path, role: str, name: str, *args: str) -> None:
        self.record = tmp_path / f"{name}.wav"
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), role, "--record", str(self.record), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if role == "uas":  # wait for {"listening": ...}: bound and ready (pjlib logs first)
            assert self.proc.stdout is not None
            line = "-"
            while line and not line.startswith('{"listening"'):
                line = self.proc.stdout.readline()
            assert line, self._failure()

    def result(self, timeout: float = 30) -> dict[str, object]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert self.proc.returncode == 0 and lines, f"peer failed:\n{out}\n{err[-3000:]}"
        return dict(json.loads(lines[-1]))

    def _failure(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate()
        return err[-3000:]


def test_tls_and_srtp_on_both_legs(
    make_agent: AgentFactory, tmp_path: Path, certificate: tuple[str, str]
) -> None:
    cert, key = certificate
    buyer_port = free_port()
    buyer = PeerProcess(tmp_path, "uas", "buyer", "--port", str(buyer_port), "--tls", cert, key,
                        "--srtp", "required", "--freq", str(BUYER_HZ), "--once")  # fmt: skip
    target = f"sip:buyer@127.0.0.1:{buyer_port};transport=tls"
    agent, router = make_agent(
        ScriptedRouter(bridge_to(target, srtp="required")), hosts=("127.0.0.1",),
        tls=True, tls_port=0, tls_cert_file=cert, tls_key_file=key, tls_ca_file=cert,
    )  # fmt: skip
    publisher = PeerProcess(
        tmp_path, "uac", "publisher", "--to",
        f"sip:{UUID}@127.0.0.1:{agent.tls_port};transport=tls",
        "--tls", cert, key, "--srtp", "required", "--freq", str(PUBLISHER_HZ),
    )  # fmt: skip
    pub, buy = publisher.result(), buyer.result()
    assert pub["status"] == 200
    invite = router.invites[0]
    assert invite.transport == "TLS" and invite.offer_srtp
    assert pub["media"] == {"codec": "PCMU", "proto": "RTP/SAVP"}
    assert buy["media"] == {"codec": "PCMU", "proto": "RTP/SAVP"}
    assert wav_power(publisher.record, BUYER_HZ) > 0.3, "buyer -> publisher audio"
    assert wav_power(buyer.record, PUBLISHER_HZ) > 0.3, "publisher -> buyer audio"
    assert router.ended().publisher_code == 200


@pytest.mark.parametrize("codec", ["G729", "G722"])
def test_transcoded_to_g711(make_agent: AgentFactory, tmp_path: Path, codec: str) -> None:
    """A G.711 publisher and a buyer that speaks only G.729 (Debian's libbcg729) or G.722:
    the agent's conference bridge transcodes both ways."""
    buyer_port = free_port()
    buyer = PeerProcess(tmp_path, "uas", "buyer", "--port", str(buyer_port), "--codec", codec,
                        "--freq", str(BUYER_HZ), "--once")  # fmt: skip
    agent, router = make_agent(ScriptedRouter(bridge_to(f"sip:buyer@127.0.0.1:{buyer_port}")))
    publisher = PeerProcess(tmp_path, "uac", "publisher", "--to",
                            f"sip:{UUID}@127.0.0.1:{agent.port}", "--codec", "PCMU",
                            "--freq", str(PUBLISHER_HZ), "--dtmf", "42")  # fmt: skip
    pub, buy = publisher.result(), buyer.result()
    assert pub["status"] == 200
    assert pub["media"] == {"codec": "PCMU", "proto": "RTP/AVP"}
    assert buy["media"] == {"codec": codec, "proto": "RTP/AVP"}
    assert buy["digits"] == "42", "DTMF relayed across codecs"
    assert wav_power(publisher.record, BUYER_HZ) > 0.3, "buyer -> publisher audio"
    assert wav_power(buyer.record, PUBLISHER_HZ) > 0.3, "publisher -> buyer audio"
    assert router.ended().publisher_code == 200
