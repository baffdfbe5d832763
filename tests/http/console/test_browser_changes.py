"""Changing things in the console with a real browser, as an operator in Los Angeles would:
times typed in UTC read back as typed, whatever the browser's own zone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.http.console.browser import Live, running, shot, sign_in

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
