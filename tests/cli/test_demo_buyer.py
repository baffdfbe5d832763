"""``rtbridge demo-buyer``: a real process answering SIPp, its audio checked by a real RTP
socket (:class:`~tests.sip.rtp.RtpPeer`, which sends a tone and counts the non-silent
packets that come back)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.sip.rtp import RtpPeer
from tests.sip.sipp import Sipp, sipp_binary
from tests.support.demo_buyer import demo_buyer
from tests.support.net import free_port

pytestmark = [pytest.mark.sip, pytest.mark.live]


@pytest.fixture(autouse=True)
def _sipp() -> None:
    if sipp_binary() is None:
        pytest.fail("sipp not installed (Debian package sip-tester); scripts/install installs it")


def test_answers_echoes_and_logs_each_call(tmp_path: Path) -> None:
    """Two calls, each rung (180) then answered (200); the caller's tone comes back; each
    ends on the caller's BYE with one log line; SIGTERM stops the process cleanly. It
    opens no database: none appears where it runs."""
    where = tmp_path / "cwd"
    where.mkdir()
    with demo_buyer(cwd=where) as buyer:
        for _ in range(2):
            peer = RtpPeer().start()
            try:
                uac = Sipp("uac_call.xml", tmp_path, remote=buyer.address, service="queue",
                           duration_ms=2000, keys={"rtp_port": str(peer.port)})  # fmt: skip
                result = uac.wait()
            finally:
                peer.stop()
            assert result.returncode == 0, result.log
            assert result.statuses()[-3:] == [180, 200, 200], result.statuses()  # ..., BYE's
            back = peer.tone_seconds()
            assert back >= 0.5, f"{back} s of the 2 s tone came back ({peer.sent} packets sent)"
        assert buyer.stop() == 0
        lines = buyer.lines()
    calls = [line for line in lines if line["msg"] == "call ended"]
    assert len(calls) == 2, lines
    for call in calls:
        assert call["code"] == 200 and call["to"].startswith("<sip:queue@")
        assert call["rtp_in"] > 0 and call["rtp_out"] > 0, call
    assert lines[-1]["msg"] == "demo buyer stopped"
    assert list(where.iterdir()) == []


def test_a_taken_port_or_a_bad_address_is_said_plainly() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtbridge", "demo-buyer", *args],
                              capture_output=True, text=True, timeout=30)  # fmt: skip

    with demo_buyer() as buyer:
        taken = run("--sip", buyer.address)
    assert taken.returncode == 1
    assert f"cannot answer on {buyer.address} (Address already in use)" in taken.stderr
    assert "is a demo buyer already running?" in taken.stderr
    bad = run("--sip", "nonsense")
    assert bad.returncode == 2 and "--sip: expected HOST:PORT" in bad.stderr
    v6 = run("--sip", f"[::1]:{free_port('::1')}")
    assert v6.returncode == 2 and "IPv4 only" in v6.stderr
