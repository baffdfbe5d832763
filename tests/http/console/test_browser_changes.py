"""Changing things in the console with a real browser, as an operator in Los Angeles would:
every Remove and Delete asks first and the notice names what went; a buyer is deleted from its
own page; times typed in UTC read back as typed, whatever the browser's own zone."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.http.console.browser import KEY1, Live, running, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.sip, pytest.mark.live]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running(tmp_path_factory.mktemp("console-changes")) as console:
        yield console


@pytest.fixture
def page(browser: Browser, live: Live) -> Iterator[Page]:
    """A browser far from UTC, with a 12-hour clock: what a date control would show in."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=live.base,
                                  timezone_id="America/Los_Angeles", locale="en-US")  # fmt: skip
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_remove_asks_first_and_only_the_answer_removes(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/publishers/p1")
    page.fill("#add-ip input[name=cidr]", "10.0.0.0/8")
    page.fill("#add-ip input[name=note]", "office")
    page.click("#add-ip button")
    row = page.locator("#allowlist tbody tr", has_text="10.0.0.0/8")
    row.locator("a:has-text('Remove')").click()
    question = page.locator("#confirm")
    expect(question.locator("h1")).to_have_text(
        re.compile(r"Remove allowlist entry 10\.0\.0\.0/8 \(rule \d+\) from publisher p1\?")
    )
    expect(question).to_contain_text("then need SIP credentials (401)")
    shot(page, "confirm-remove")
    question.locator("a:has-text('Cancel')").click()  # going back removes nothing
    expect(page).to_have_url(re.compile(r"/console/publishers/p1#allowlist$"))
    expect(page.locator("#allowlist")).to_contain_text("10.0.0.0/8")
    page.go_back()  # the question again (a reload, a second tab): asking twice changes nothing
    page.goto("/console/publishers/p1")
    expect(page.locator("#allowlist")).to_contain_text("10.0.0.0/8")

    page.locator("#allowlist tbody tr", has_text="10.0.0.0/8").locator(
        "a:has-text('Remove')"
    ).click()
    page.click("#confirm button:has-text('Yes, remove it')")
    expect(page.locator(".notice")).to_have_text(
        "Removed allowlist entry 10.0.0.0/8 from publisher p1."
    )
    expect(page.locator("#allowlist")).not_to_contain_text("10.0.0.0/8")
    expect(page.locator("#allowlist")).to_contain_text("127.0.0.1/32")  # only that one went
    shot(page, "removed-notice")

    page.goto("/console/campaigns")
    page.click("#campaign-c1 a:has-text('Delete campaign')")
    expect(page.locator("#confirm")).to_contain_text("Refused while keys use it")
    page.click("#confirm button:has-text('Yes, delete it')")
    expect(page.locator(".error-box")).to_contain_text("still has 2 key(s)")  # refused: kept
    expect(page.locator("#campaign-c1")).to_be_visible()


def test_a_buyer_is_deleted_from_its_own_page(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/campaigns/c1/buyers/new")
    page.fill("#buyer input[name=id]", "zenith")
    page.fill("#buyer input[name=destination]", "sip:zenith@127.0.0.1:9")
    page.fill("#buyer input[name=payout]", "75")
    page.fill("#buyer input[name=seconds]", "30")
    page.fill("#buyer input[name=priority]", "0")  # before b1: c1's pings reserve it
    page.click("#buyer button")
    expect(page.locator(".notice")).to_have_text("Added buyer zenith to campaign c1.")
    before = live.ping(KEY1)["uuid"]
    page.click("#campaign-c1 a:has-text('zenith')")
    page.fill("#buyer input[name=payout]", "80")
    page.click("#buyer button")
    expect(page.locator(".notice")).to_have_text(
        "Saved buyer zenith of campaign c1: payout 75.0 → 80.0."
    )
    page.click("#campaign-c1 a:has-text('zenith')")
    page.click("a:has-text('Delete zenith')")
    expect(page.locator("#confirm h1")).to_have_text("Delete buyer zenith of campaign c1?")
    shot(page, "confirm-buyer-delete")
    page.click("#confirm button:has-text('Yes, delete it')")
    expect(page.locator(".notice")).to_have_text("Deleted buyer zenith of campaign c1.")
    expect(page.locator("#campaign-c1")).not_to_contain_text("zenith")
    expect(page.locator("#campaign-c1")).to_contain_text("b1")
    after = live.ping(KEY1)["uuid"]  # the running configuration has lost zenith at once
    for uuid, buyer in ((before, "zenith"), (after, "b1")):
        page.goto(f"/console/rtb?uuid={uuid}")
        expect(page.locator("tbody tr").locator("td").nth(7)).to_have_text(buyer)
    page.goto("/console/audit?resource=buyer/zenith")
    expect(page.locator("tbody tr").first).to_contain_text("delete")
    expect(page.locator("tbody tr").first).to_contain_text("alice")
    page.goto("/console/buyers/zenith")
    expect(page.locator("main")).to_contain_text("no buyer 'zenith'")


def test_an_expiry_typed_in_utc_reads_back_unchanged(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/publishers/p2")
    form = page.locator("#add-ip")
    expect(form.locator("input[name=expires_at]")).to_have_attribute(
        "placeholder", "YYYY-MM-DD HH:MM"
    )
    expect(form).to_contain_text("Expires (UTC, optional)")
    form.locator("input[name=cidr]").fill("198.51.100.0/24")
    form.locator("input[name=expires_at]").fill("2031-07-08 21:10")
    form.locator("button").click()
    row = page.locator("#allowlist tr", has_text="198.51.100.0/24")
    expect(row).to_contain_text("2031-07-08T21:10:00.000Z")  # 21:10 UTC, not 21:10 in LA
    row.locator("summary:has-text('Edit')").click()
    expiry = row.locator("input[name=expires_at]")
    expect(expiry).to_have_value("2031-07-08 21:10")
    shot(page, "expiry-utc")

    expiry.fill("07/08/2031 9:10 PM")  # what a date control would have shown: refused
    row.locator("button:has-text('Save')").click()
    row = page.locator("#allowlist tr", has_text="198.51.100.0/24")
    expect(row.locator("small.error")).to_contain_text("write YYYY-MM-DD HH:MM")
    expect(row.locator("input[name=expires_at]")).to_have_value("07/08/2031 9:10 PM")
    shot(page, "expiry-refused")
    page.goto("/console/publishers/p2")  # nothing changed
    row = page.locator("#allowlist tr", has_text="198.51.100.0/24")
    expect(row).to_contain_text("2031-07-08T21:10:00.000Z")

    row.locator("summary:has-text('Edit')").click()
    row.locator("input[name=expires_at]").fill("2032-01-02 03:04")
    row.locator("button:has-text('Save')").click()
    expect(page.locator(".notice")).to_be_visible()
    row = page.locator("#allowlist tr", has_text="198.51.100.0/24")
    expect(row).to_contain_text("2032-01-02T03:04:00.000Z")
    row.locator("summary:has-text('Edit')").click()
    expect(row.locator("input[name=expires_at]")).to_have_value("2032-01-02 03:04")


def test_the_log_filters_take_utc_times(page: Page, live: Live) -> None:
    sign_in(page, live)
    page.goto("/console/rtb")
    since = page.locator("#rtb-filters input[name=since]")
    expect(since).to_have_attribute("placeholder", "YYYY-MM-DD HH:MM")
    since.fill("2030-01-01 00:00")
    page.click("#rtb-filters button:has-text('Filter')")
    expect(page.locator("tbody")).to_contain_text("No pings match.")
    expect(page.locator("#rtb-filters input[name=since]")).to_have_value("2030-01-01 00:00")
    page.fill("#rtb-filters input[name=since]", "1/1/2030")
    page.click("#rtb-filters button:has-text('Filter')")
    expect(page.locator("#err-since")).to_contain_text("write YYYY-MM-DD HH:MM")
