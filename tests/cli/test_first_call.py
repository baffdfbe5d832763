"""README's "First ping" and "First call", run as written against a live ``rtbridge serve``
and ``rtbridge demo-buyer``: only the ports (free ones for 8080, 5060 and 5070) and the
database differ. Then one more call whose media is a real RTP socket, to prove that the buyer's echo
crosses the bridge back to the publisher."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.sip.rtp import RtpPeer
from tests.sip.sipp import Sipp, sipp_binary
from tests.support.demo import KEY_OPEN
from tests.support.demo_buyer import DemoBuyer, demo_buyer
from tests.support.net import free_port
from tests.support.server import serve
from tests.support.tone import ulaw

pytestmark = [pytest.mark.sip, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[2]


def readme_block(heading: str, language: str = "sh") -> str:
    """The first ``language`` code block of the README's ``## heading`` section."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(f"\n## {heading}\n") :]
    section = section[: section.index("\n## ", 1)]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None, f"no ```{language} block under ## {heading}"
    return block.group(1)


def first_call_commands() -> str:
    """The shell block of README's "First call" section."""
    return readme_block("First call")


@dataclass
class Demo:
    http: str  # http://127.0.0.1:PORT
    sip: str  # 127.0.0.1:PORT
    buyer: DemoBuyer


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """deploy/demo.toml applied (its buyer moved to the demo buyer's free port), serve with
    the SIP agent on a free port, and the demo buyer."""
    if sipp_binary() is None:
        pytest.fail("sipp not installed (Debian package sip-tester); scripts/install installs it")
    tmp = tmp_path_factory.mktemp("first-call")
    with demo_buyer() as buyer:
        config = (ROOT / "deploy" / "demo.toml").read_text()
        assert 'destination = "sip:queue@127.0.0.1:5070"' in config
        demo_file = tmp / "demo.toml"
        demo_file.write_text(config.replace("127.0.0.1:5070", buyer.address))
        db = f"sqlite:///{tmp / 'rtbridge.db'}"
        applied = subprocess.run([sys.executable, "-m", "rtbridge", "--db", db, "apply",
                                  str(demo_file)], capture_output=True, text=True)  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        sip = f"127.0.0.1:{free_port()}"
        with serve(db, sip=sip) as base:
            yield Demo(base, sip, buyer)


def test_the_readme_first_ping_reserves_the_demo_buyer(demo: Demo) -> None:
    """The README's curl, as written but for the port, answers what the README shows: the
    same fields, and the same values where the README gives one (it elides the uuid and
    the times with "…")."""
    script = readme_block("First ping")
    assert "http://127.0.0.1:8080" in script
    script = script.replace("http://127.0.0.1:8080", demo.http)
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    shown = json.loads(readme_block("First ping", "json"))
    assert list(answer) == list(shown), answer
    numbers = re.search(r"^numbers = \[(.*)\]$", (ROOT / "deploy" / "demo.toml").read_text(), re.M)
    assert numbers is not None
    pool = re.findall(r'"(\+\d+)"', numbers.group(1))
    assert answer["inbound_number"] in pool and shown["inbound_number"] in pool, (answer, pool)
    for field, value in shown.items():
        if "…" in str(value):
            tail = str(value).split("…")[1]
            assert str(answer[field]).endswith(tail) and len(str(answer[field])) > len(tail)
        elif field != "inbound_number":  # any number of the pool
            assert answer[field] == value, (field, answer)
    assert answer["sip_address"] == f"{answer['uuid']}@sip.rtb.example.com"


def test_the_readme_first_calls_are_answered_and_completed(demo: Demo) -> None:
    """Both calls (allowlisted, digest) answered 200 and ended by BYE: SIPp exits 0 only
    then, and `set -e` stops at the first that does not. Each reservation ends `completed`,
    and the demo buyer received the PCMU tone that SIPp sent through the bridge."""
    script = first_call_commands()
    for old, new in (("http://127.0.0.1:8080", demo.http), ("127.0.0.1:5060", demo.sip)):
        assert old in script
        script = script.replace(old, new)
    before = len(demo.buyer.calls())
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    answers = [json.loads(found) for found in re.findall(r'(\{"uuid":.*\})$', run.stdout, re.M)]
    assert len(answers) == 2, run.stdout[-4000:]
    for answer in answers:
        assert answer["status"] == "completed", answer
        call = answer["call"]
        assert call["sip_code"] == 200 and call["buyer_sip_code"] == 200, call
        assert call["hangup_by"] == "publisher" and call["duration"] > 0, call
    calls = demo.buyer.calls()[before:]
    assert len(calls) == 2, demo.buyer.lines()
    assert all(call["rtp_in"] > 0 and call["rtp_out"] > 0 for call in calls), calls


def test_the_demo_buyer_echo_comes_back_across_the_bridge(demo: Demo, tmp_path: Path) -> None:
    """A tone sent from a real RTP socket comes back: through the agent to the demo buyer
    and back through the agent (the agent itself sends only silence)."""
    ping = httpx2.post(f"{demo.http}/rtbs.json", params={"key": KEY_OPEN})
    uuid = ping.json()["uuid"]
    peer = RtpPeer().start()
    try:
        uac = Sipp("uac_call.xml", tmp_path, remote=demo.sip, service=uuid, duration_ms=2000,
                   keys={"rtp_port": str(peer.port)})  # fmt: skip
        result = uac.wait()
    finally:
        peer.stop()
    assert result.returncode == 0 and result.invite_answers() == [200], result.log
    back = peer.tone_seconds()
    assert back >= 0.5, f"{back} s of the 2 s tone came back ({peer.sent} packets sent)"
    looked_up = httpx2.get(f"{demo.http}/rtbs/{uuid}.json", params={"key": KEY_OPEN}).json()
    assert looked_up["status"] == "completed", looked_up


def test_the_shipped_tone_is_what_the_scenarios_say() -> None:
    """deploy/sipp/tone.ulaw: 1 s of 440 Hz as raw G.711 mu-law, no header (SIPp 3.6 sends
    a file's bytes as they are), 440 whole periods so it loops without a click."""
    tone = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * n / 8000))) for n in range(8000))
    assert (ROOT / "deploy" / "sipp" / "tone.ulaw").read_bytes() == tone
