"""The smoke subset: what a deployment does first, end to end, on whatever Python runs the
suite. scripts/test runs every test on the default interpreter, then scripts/smoke runs just
these (``pytest -m smoke``) in the virtualenv of each other supported Python, so one that
breaks a compiled dependency (uvloop, httptools, psycopg, pydantic-core, greenlet, pjsua2) or
the SIP agent shows up in CI. The live site is ``rtbridge serve`` with the agent in process
and SIPp as the buyer (the ``service`` fixture of tests/sip/b2bua/test_startup.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import DEMO
from tests.sip.b2bua.test_startup import KEY1, KEY2, Service, service  # noqa: F401  (the fixture)
from tests.support.admin import make_token

pytestmark = [pytest.mark.smoke, pytest.mark.sip, pytest.mark.live]


def test_ping_reserves_with_a_sip_address(service: Service) -> None:  # noqa: F811
    answer = httpx2.post(f"{service.base}/rtbs.json", data={"key": KEY1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (
        body["status"] == "reserved"
        and body["sip_address"] == f"{body['uuid']}@sip.rtb.example.com"
    )
    assert service.lookup(body["uuid"])["status"] == "reserved"
    health = httpx2.get(f"{service.base}/health").json()
    assert health["status"] == "ok" and health["sip"]["draining"] is False


def test_allowlisted_sipp_call_is_bridged(service: Service) -> None:  # noqa: F811
    uuid = service.ping()
    publisher = service.dial(uuid, duration_ms=300).wait()
    assert publisher.returncode == 0, publisher.log
    assert publisher.statuses()[-1] == 200
    buyer = service.buyer.wait()
    assert buyer.returncode == 0, buyer.log
    assert buyer.requests("INVITE")[0].header("X-RTB-UUID") == uuid
    body = service.wait_for(uuid, "completed")
    assert body["status"] == "completed" and body["call"]["sip_code"] == 200, body


def test_digest_sipp_call_is_challenged_then_bridged(service: Service) -> None:  # noqa: F811
    uuid = service.ping(KEY2)
    publisher = service.dial(uuid, "uac_digest_call.xml", host="127.0.0.2", duration_ms=300,
                             rewrite={"USERNAME": "pub2", "PASSWORD": "s3cret-Pass-456"}).wait()  # fmt: skip
    assert publisher.returncode == 0, publisher.log
    assert 401 in publisher.statuses() and publisher.statuses()[-1] == 200
    assert service.wait_for(uuid, "completed", KEY2)["status"] == "completed"


def test_rtbridge_apply_through_the_console_script(sqlite_url: str) -> None:
    """The ``rtbridge`` entry point this interpreter's virtualenv installed, on the demo file."""
    script = Path(sys.executable).parent / "rtbridge"
    command = [str(script), "--db", sqlite_url, "apply", str(DEMO)]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("13 created, 0 updated, 0 removed"), first.stdout
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.stdout.splitlines() == ["no changes", "0 created, 0 updated, 0 removed"]


@pytest.mark.browser
def test_console_sign_in_in_a_browser(service: Service, sqlite_url: str) -> None:  # noqa: F811
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: scripts/system-deps test installs Debian's chromium")
    token = make_token(sqlite_url, "alice")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(base_url=service.base)
        page.set_default_timeout(10_000)
        page.goto("/console/")
        expect(page).to_have_url(f"{service.base}/console/login?next=%2Fconsole%2F")
        page.fill("input[name=token]", "rtba_not-a-token")
        page.click("button:has-text('Sign in')")
        expect(page.locator("#err-token")).to_contain_text("unknown or revoked")
        page.fill("input[name=token]", token)
        page.click("button:has-text('Sign in')")
        expect(page.locator("header .who")).to_contain_text("alice")
        expect(page.locator("h1")).to_contain_text("Dashboard — today")  # the console's first page
        browser.close()
