"""What the browser tests share: a live console (``rtbridge serve`` with the SIP agent, on a
real SQLite file, a SIPp buyer answering), signing in with chromium, and screenshots in
``$RTBRIDGE_ARTIFACTS`` (default ``tests-artifacts/``). Each browser test module starts its
own console with :func:`running` (module scope), so one module's changes never reach another's
assertions; ``conftest.py`` holds the ``browser`` and ``page`` fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from playwright.sync_api import Page, expect

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import ROOT, write_config
from tests.sip.sipp import Sipp, hostport
from tests.support.admin import make_token
from tests.support.net import free_port
from tests.support.server import serve

KEY1 = "one00001-console-key-p1"  # p1: allowlisted 127.0.0.1
KEY2 = "two00002-console-key-p2"  # p2: digest credentials only
KEY3 = "nobuyer3-console-key-p1"  # a campaign without buyers: every ping is no-target
PASSWORD = "s3cret-Pass-456"


def config(buyer_uri: str) -> str:
    """Two publishers (one by IP, one by digest), campaign c1 with buyer b1 (the SIPp at
    ``buyer_uri``), campaign ``empty`` with none, and a key for each pairing."""
    return f"""
[sip]
domain = "sip.rtb.example.com"

[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "{buyer_uri}"
payout = 12.5
seconds = 1

[[campaigns]]
id = "empty"

[[publishers]]
id = "p1"
name = "Publisher One"
ips = [{{ cidr = "127.0.0.1/32", note = "loopback SBC" }}]

[[publishers]]
id = "p2"
name = "Publisher Two"
credentials = [{{ username = "pub2", password = "{PASSWORD}" }}]

[[keys]]
key = "{KEY1}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true

[[keys]]
key = "{KEY2}"
publisher = "p2"
campaign = "c1"
allow_missing_caller_number = true

[[keys]]
key = "{KEY3}"
publisher = "p1"
campaign = "empty"
allow_missing_caller_number = true
"""


@dataclass
class Live:
    base: str
    sip_port: int
    token: str
    workdir: Path
    db_url: str

    def ping(self, key: str, **params: str) -> dict[str, str]:
        answer = httpx2.post(f"{self.base}/rtbs.json", data={"key": key, **params})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def dial(self, uuid: str, scenario: str, host: str = "127.0.0.1", talk_ms: int = 200) -> int:
        """One INVITE for ``uuid`` from ``host``; the final answer's code."""
        peer = Sipp(scenario, self.workdir, host=host, remote=hostport("127.0.0.1", self.sip_port),
                    service=uuid, duration_ms=talk_ms)  # fmt: skip
        result = peer.wait()
        return result.statuses()[-1]


@contextmanager
def running(workdir: Path, extra_config: str = "") -> Iterator[Live]:
    """A console on :func:`config` (plus ``extra_config``, TOML appended to it) and an admin
    token ``alice``."""
    buyer = Sipp("uas_answer.xml", workdir, rtp_echo=True, calls=20, timeout=600)
    buyer.wait_listening()
    url = f"sqlite:///{workdir / 'rtbridge.db'}"
    engine = open_database(url)
    apply_file(engine, write_config(workdir, config(buyer.uri()) + extra_config))
    engine.dispose()
    token = make_token(url, "alice")
    sip_port, rtp = free_port("127.0.0.1"), free_port("127.0.0.1")
    agent_file = workdir / "agent.toml"
    agent_file.write_text(f"""[agent]
hosts = ["127.0.0.1"]
port = {sip_port}
media_address = "127.0.0.1"
rtp_port_min = {rtp}
rtp_port_max = {rtp + 40}
max_calls = 16
ring_timeout = 3.0
""")
    try:
        with serve(url, "--sip-config", str(agent_file), sip=None) as base:
            yield Live(base, sip_port, token, workdir, url)
    finally:
        buyer.kill()


ARTIFACTS = Path(os.environ.get("RTBRIDGE_ARTIFACTS") or ROOT / "tests-artifacts") / "console"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, live: Live) -> None:
    page.goto("/console/")
    expect(page).to_have_url(f"{live.base}/console/login?next=%2Fconsole%2F")
    shot(page, "login")
    page.fill("input[name=token]", live.token)
    page.click("button:has-text('Sign in')")
    expect(page.locator("header .who")).to_contain_text("alice")
