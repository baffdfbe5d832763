"""The operator console in a real browser: Debian's chromium, headless, driven by Playwright,
against ``rtbridge serve`` (HTTP + the SIP agent in one process) on a real SQLite file, with
SIPp as the publisher's SBC and as the buyer (``browser.py``). Each test saves a screenshot of
the pages it visits in ``$RTBRIDGE_ARTIFACTS`` (default ``tests-artifacts/``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.http.console.browser import KEY1, KEY2, KEY3, PASSWORD, Live, running, shot, sign_in
from tests.sip.sipp import Sipp, hostport

pytestmark = [pytest.mark.browser, pytest.mark.sip, pytest.mark.live]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running(tmp_path_factory.mktemp("console")) as console:
        yield console


def test_sign_in_and_out(page: Page, live: Live) -> None:
    page.goto("/console/login")
    page.fill("input[name=token]", "rtba_not-a-token")
    page.click("button:has-text('Sign in')")
    expect(page.locator("#err-token")).to_contain_text("unknown or revoked")
    sign_in(page, live)
    expect(page.locator("h1")).to_contain_text("Dashboard — today")  # the console opens on it
    expect(page.locator("#totals")).to_contain_text("pings")
    shot(page, "dashboard")
    page.click("nav a:has-text('Publishers')")
    expect(page.locator("h1")).to_have_text("Publishers")
    expect(page.locator("table")).to_contain_text("Publisher Two")
    shot(page, "publishers")
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(f"{live.base}/console/login")
    page.goto("/console/audit")
    expect(page.locator("input[name=token]")).to_be_visible()  # back at the sign-in form


def test_allowlist_entry_accepts_then_refuses_a_real_invite(page: Page, live: Live) -> None:
    """Add 127.0.0.4/32 to p2 (which has only digest credentials) in the browser: the agent
    accepts an INVITE from there without a challenge; remove it: 401 again."""
    source = "127.0.0.4"
    sign_in(page, live)
    assert live.dial(live.ping(KEY2)["uuid"], "uac_failure.xml", host=source) == 401
    page.goto("/console/publishers/p2")
    form = page.locator("#add-ip")
    form.locator("input[name=cidr]").fill("10.0.0.5/8")  # host bits set: refused, in place
    form.locator("button").click()
    expect(page.locator("#add-ip #err-cidr")).to_contain_text("has host bits set")
    shot(page, "allowlist-error")
    form = page.locator("#add-ip")
    form.locator("input[name=cidr]").fill(f"{source}/32")
    form.locator("input[name=note]").fill("browser test SBC")
    form.locator("button").click()
    expect(page.locator(".notice")).to_have_text(
        re.compile(rf"Added allowlist entry {source}/32 \(rule \d+\) to publisher p2\.")
    )
    row = page.locator("#allowlist tr", has_text=f"{source}/32")
    expect(row).to_contain_text("browser test SBC")
    shot(page, "publisher")
    # serve's agent shares the console's catalog, which a write reloads before the page
    # answers (http/handlers.write): the next INVITE sees the change, no waiting.
    assert live.dial(live.ping(KEY2)["uuid"], "uac_call.xml", host=source) == 200

    row.locator("a:has-text('Remove')").click()  # asks first (test_browser_changes.py)
    page.click("#confirm button:has-text('Yes, remove it')")
    expect(page.locator(".notice")).to_have_text(
        f"Removed allowlist entry {source}/32 from publisher p2."
    )
    expect(page.locator("#allowlist")).not_to_contain_text(f"{source}/32")
    refused = live.ping(KEY2)["uuid"]
    assert live.dial(refused, "uac_failure.xml", host=source) == 401
    # The agent page lists the refusal once the agent's next heartbeat wrote it (2 s).
    row = page.locator("#refusals tr", has_text=refused)
    for _ in range(20):
        page.goto("/console/agent")
        if row.count():
            break
        time.sleep(0.5)
    expect(row).to_contain_text(source)
    expect(row).to_contain_text("401")
    expect(row).to_contain_text("missing-credentials")
    shot(page, "refusals")

    page.goto("/console/audit?resource=ip/p2")
    expect(page.locator("tbody tr").first).to_contain_text("alice")
    expect(page.locator("tbody")).to_contain_text("delete")
    shot(page, "audit")


def test_bulk_paste_gives_each_line_a_verdict(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/publishers/p1")
    page.click("summary:has-text('Bulk paste')")
    page.fill(
        "#bulk-ips textarea", "203.0.113.0/24 office\nnot-a-network\n127.0.0.1/32\n2001:db8:7::/48"
    )
    page.click("#bulk-ips button:has-text('Add all')")
    verdicts = page.locator("table.verdicts tbody tr")
    expect(verdicts).to_have_count(4)
    expect(verdicts.nth(0)).to_contain_text("added as 203.0.113.0/24")
    expect(verdicts.nth(1)).to_contain_text("not a CIDR network")
    expect(verdicts.nth(2)).to_contain_text("already on p1's allowlist")
    expect(verdicts.nth(3)).to_contain_text("added as 2001:db8:7::/48")
    shot(page, "bulk-paste")


def test_rotate_a_credential_and_check_it(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/publishers/p2")
    row = page.locator("#credentials tr", has_text="pub2")
    row.locator("input[name=password]").fill("short")
    row.locator("button:has-text('Rotate')").click()
    expect(page.locator("#add-credential #err-password")).to_contain_text("too weak")
    row = page.locator("#credentials tr", has_text="pub2")
    row.locator("input[name=password]").fill("")  # empty: the console generates one
    row.locator("button:has-text('Rotate')").click()
    expect(page.locator(".secret h2")).to_contain_text("'pub2' rotated")
    new_password = page.locator("#secret-value").inner_text().strip()
    assert len(new_password) >= 12 and new_password != PASSWORD
    shot(page, "credential-rotated")
    page.goto("/console/publishers/p2")  # shown once: the page itself never shows it again
    expect(page.locator(".secret")).to_have_count(0)
    assert new_password not in page.content()

    page.goto("/console/check")
    for password, verdict in ((PASSWORD, "Refused"), (new_password, "Accepted as p2")):
        page.fill("#check input[name=username]", "pub2")
        page.fill("#check input[name=password]", password)
        page.click("#check button")
        expect(page.locator("#verdict h2")).to_contain_text(verdict)
    expect(page.locator("#verdict")).to_contain_text("digest user pub2")
    page.fill("#check input[name=username]", "")
    page.fill("#check input[name=ip]", "127.0.0.1")
    page.click("#check button")
    expect(page.locator("#verdict h2")).to_contain_text("Accepted as p1")
    expect(page.locator("#verdict")).to_contain_text("127.0.0.1/32")
    shot(page, "check")
    # the SIP agent agrees at once: a digest INVITE with the new password is bridged
    uuid = live.ping(KEY2)["uuid"]
    peer = Sipp("uac_digest_call.xml", live.workdir, host="127.0.0.5",
                remote=hostport("127.0.0.1", live.sip_port), service=uuid, duration_ms=200,
                rewrite={"USERNAME": "pub2", "PASSWORD": new_password})  # fmt: skip
    assert peer.wait().statuses()[-1] == 200


def test_find_a_ping_in_the_rtb_log_and_a_call_in_the_call_log(page: Page, live: Live) -> None:
    reserved = live.ping(KEY1, caller_number="+12025550199")["uuid"]
    missed = live.ping(KEY3)
    assert missed["status"] == "no-target"
    sign_in(page, live)
    # a call in progress shows on the live page (3 s: long enough to convert, seconds = 1)
    call = Sipp("uac_call.xml", live.workdir, host="127.0.0.1", service=reserved,
                remote=hostport("127.0.0.1", live.sip_port), duration_ms=3000)  # fmt: skip
    page.goto("/console/live")
    deadline = time.monotonic() + 5
    while "connected" not in page.locator("tbody").inner_text() and time.monotonic() < deadline:
        time.sleep(0.2)
        page.goto("/console/live")
    row = page.locator("tbody tr", has_text=reserved)
    expect(row).to_contain_text("p1")
    expect(row).to_contain_text("b1")
    expect(row).to_contain_text("connected")
    expect(row.locator("td").nth(8)).to_have_text(re.compile(r"0:0\d"))  # duration so far
    shot(page, "live-calls")
    assert call.wait().statuses()[-1] == 200

    page.goto("/console/rtb")
    page.select_option("#rtb-filters select[name=status]", "no-target")
    page.click("#rtb-filters button:has-text('Filter')")
    row = page.locator("tbody tr", has_text=missed["uuid"])
    expect(row).to_contain_text("no-buyers")
    expect(page.locator("tbody")).not_to_contain_text(reserved)
    page.select_option("#rtb-filters select[name=status]", "")
    page.select_option("#rtb-filters select[name=key]", label="one0… (p1)")
    page.click("#rtb-filters button:has-text('Filter')")
    expect(page.locator("tbody")).to_contain_text(reserved)
    page.goto("/console/rtb")  # an operator with a uuid from a publisher's ticket
    page.fill("#rtb-filters input[name=uuid]", missed["uuid"])
    page.click("#rtb-filters button:has-text('Filter')")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("no-buyers")
    shot(page, "rtb-log")

    page.goto("/console/calls")
    page.select_option("#call-filters select[name=publisher]", "p1")
    page.click("#call-filters button:has-text('Filter')")
    row = page.locator("tbody tr", has_text=reserved)
    expect(row).to_contain_text("+12025550199")
    expect(row).to_contain_text("12.50")  # converted: the payout is earned
    expect(row.locator("td").nth(5)).to_have_text("none")  # attestation: an unsigned call
    expect(row.locator("td").nth(8)).to_have_text("publisher")  # who hung up
    expect(row.locator("td").nth(10)).to_have_text("yes")
    shot(page, "call-log")
    with page.expect_download() as download:
        page.click("#csv")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("invite_at,") and reserved in csv_text
    row.locator(f"a:has-text('{reserved[:8]}')").first.click()  # the uuid: its story
    expect(page.locator("#verdicts")).to_contain_text("b1: chosen")
    expect(page.locator("#call")).to_contain_text("yes")

    page.goto("/console/live")
    expect(page.locator("tbody")).to_contain_text("No call in progress.")
    page.goto("/console/agent")
    expect(page.locator("main")).to_contain_text("taking calls")
    expect(page.locator("main")).to_contain_text("/ 7")  # bridge capacity of 16 slots
    expect(page.locator("#agents tbody tr")).to_have_count(1)
    expect(page.locator("#agents")).to_contain_text("live")
    shot(page, "agent")


def test_buyer_form_campaigns_trunks_and_keys(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/campaigns")
    page.click("#campaign-empty a:has-text('Add a buyer')")
    page.fill("#buyer input[name=id]", "b2")
    page.fill("#buyer input[name=destination]", "sip:b2@127.0.0.1:9")
    page.fill("#buyer input[name=payout]", "lots")
    page.fill("#buyer input[name=seconds]", "30")
    page.click("#buyer button")
    expect(page.locator("#err-payout")).to_be_visible()
    shot(page, "buyer-error")
    page.fill("#buyer input[name=payout]", "20")
    page.fill("#buyer textarea[name=filters]", "caller_state = CA, NY")
    page.click("#buyer button")
    expect(page.locator(".notice")).to_have_text("Added buyer b2 to campaign empty.")
    expect(page.locator("#campaign-empty")).to_contain_text("caller_state: CA, NY")
    shot(page, "campaigns")
    # the running configuration has it: a ping on that campaign now reserves b2
    assert live.ping(KEY3, caller_state="CA")["status"] == "reserved"
    page.uncheck("#failover-empty input[name=failover-busy]")
    page.fill("#failover-empty input[name=max_attempts]", "2")
    page.click("#failover-empty button")
    expect(page.locator(".notice")).to_have_text(
        "Saved campaign empty: failover no-answer, busy, rejected, unreachable → no-answer, "
        "rejected, unreachable; buyers tried per call 3 → 2."
    )
    expect(page.locator("#failover-empty input[name=failover-busy]")).not_to_be_checked()
    expect(page.locator("#failover-empty input[name=max_attempts]")).to_have_value("2")
    page.goto("/console/trunks")
    expect(page.locator("h1")).to_contain_text("Trunks")
    shot(page, "trunks")
    page.goto("/console/keys")
    expect(page.locator("tbody tr")).to_have_count(3)
    shot(page, "keys")


def test_hang_up_a_live_call(page: Page, live: Live) -> None:
    """A real call through the agent, bridged and talking; Hang up on the live calls page
    asks first; the agent ends both legs at its next heartbeat, recorded as the admin's."""
    sign_in(page, live)
    uuid = live.ping(KEY1)["uuid"]
    publisher = Sipp("uac_remote_bye.xml", live.workdir, remote=hostport("127.0.0.1", live.sip_port),
                     service=uuid, timeout=60)  # fmt: skip
    row = page.locator("#live tr", has_text=uuid)
    for _ in range(40):
        page.goto("/console/live")
        if row.count() and "connected" in row.inner_text():
            break
        time.sleep(0.25)
    expect(row).to_contain_text("connected")
    expect(row).to_contain_text("c1")  # its campaign
    row.locator("a:has-text('Hang up')").click()
    expect(page.locator("#confirm h1")).to_contain_text(f"Hang up the call {uuid}")
    shot(page, "hang-up")
    page.click("#confirm button:has-text('Yes, hang it up')")
    expect(page.locator(".notice")).to_contain_text(f"to hang up call {uuid}")
    ended = publisher.wait(15)  # the agent's BYE reached the publisher, which answered it
    assert ended.returncode == 0 and ended.requests("BYE")
    page.goto(f"/console/rtbs/{uuid}")
    expect(page.locator("#call")).to_contain_text("admin")
    expect(page.locator("#audit")).to_contain_text("hangup")
