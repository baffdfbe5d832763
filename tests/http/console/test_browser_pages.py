"""Every console page, found the way an operator finds it: from the landing page, following
each same-origin link breadth-first (GET only), so a page added later is walked without
touching this file. Signed in as an admin, with something on every page (publishers with
allowlist entries, credentials and keys, campaigns with buyers and DIDs, a trunk, pings and a
call), each page must answer 200, show no Python repr where a value belongs
(``<built-in method keys of dict object at 0x…>`` in the publishers' KEYS column was one), and
fit a 1440 px window without scrolling sideways. Each page is saved as ``walk-<path>.png`` in
``$RTBRIDGE_ARTIFACTS``."""

from __future__ import annotations

import re
import urllib.parse
from collections import deque
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.http.console.browser import KEY1, KEY2, KEY3, Live, running, shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.sip, pytest.mark.live]

MORE = """
[[trunks]]
id = "carrier"
ips = ["198.51.100.10/32"]
uri = "sip:{number}@198.51.100.10:5060"

[[campaigns]]
id = "pool"
numbers = ["+18339510260", "+18334583385"]

[[campaigns.buyers]]
id = "zenith"
destination = "+18005550100"
trunk = "carrier"
payout = 40
seconds = 90
concurrency = 4
daily_cap = 100
hours = "Mon-Fri 09:00-17:00 America/New_York"
filters = { caller_state = ["CA", "NY"] }

[[campaigns.buyers]]
id = "a-buyer-with-a-rather-long-identifier"
destination = "sip:overflow-queue-for-the-night-shift@buyer-with-a-long-name.example.net:5061"
payout = 35.25
seconds = 60
srtp = "optional"
"""

# Python's reprs, as they would read on a page (the HTML escaping undone by the browser).
LEAKS = re.compile(r"<built-in|<bound method|<function |<class '| object at 0x[0-9a-f]+")
WIDTH = 1440  # a laptop's browser window, maximised
MAX_PAGES = 300  # a walk that finds more is following a loop (a link that makes new links)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running(tmp_path_factory.mktemp("console-walk"), MORE) as console:
        # a call that completes, a ping with no buyer, a reservation left waiting
        uuid = console.ping(KEY1, caller_number="+12025550199")["uuid"]
        assert console.dial(uuid, "uac_call.xml", talk_ms=1500) == 200
        assert console.ping(KEY3)["status"] == "no-target"
        assert console.ping(KEY2)["status"] == "reserved"
        yield console


def _name(url: str) -> str:
    """``/console/publishers/p1?x=1`` → ``walk-publishers-p1-x-1``, a file name."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.removeprefix("/console").strip("/") or "home"
    return "walk-" + re.sub(r"[^A-Za-z0-9.]+", "-", f"{path} {parts.query}".strip())[:120]


def _links(page: Page, origin: str) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    found = []
    for href in hrefs:
        url = urllib.parse.urldefrag(href).url
        path = urllib.parse.urlsplit(url).path
        if url.startswith(origin + "/console") and not path.endswith(("/logout", "/login")):
            found.append(url)
    return found


def _leaks(page: Page) -> list[str]:
    """Reprs in the page's text (hidden parts, such as closed ``<details>``, included) or in
    a field's value, and table cells that say just ``None``."""
    text: str = page.evaluate("document.body.textContent")
    values: list[str] = page.eval_on_selector_all(
        "input:not([type=hidden]), textarea, option", "els => els.map(e => e.value)"
    )
    cells: list[str] = page.eval_on_selector_all(
        "td, th", "els => els.map(e => e.textContent.trim())"
    )
    found = [m.group(0) for m in LEAKS.finditer(text)]
    found += [f"field value {v!r}" for v in values if LEAKS.search(v) or v == "None"]
    found += ["a cell that says None" for c in cells if c == "None"]
    return found


def _too_wide(page: Page) -> list[str]:
    """The page must fit the window's width (1440 px): no sideways scrolling, also with
    every ``<details>`` (an entry's edit form, the bulk paste) open."""
    found = []
    for state in ("as loaded", "with every <details> open"):
        if state != "as loaded":
            page.eval_on_selector_all("details", "els => els.forEach(d => { d.open = true })")
        width: int = page.evaluate("document.documentElement.scrollWidth")
        if width > WIDTH:
            found.append(f"{width} px wide {state}")
    return found


def walk(page: Page, origin: str) -> dict[str, list[str]]:
    """Every page reachable from ``/console/``: its problems by URL (none: an empty list)."""
    queue = deque([f"{origin}/console/"])
    seen = set(queue)
    problems: dict[str, list[str]] = {}
    while queue:
        url = queue.popleft()
        assert len(problems) < MAX_PAGES, f"more than {MAX_PAGES} pages: {sorted(problems)}"
        answer = page.request.get(url)
        if answer.url != url:  # /console/ → /console/publishers: walk each page once
            if answer.url in seen:
                continue
            url = answer.url
            seen.add(url)
        kind = answer.headers.get("content-type", "")
        if answer.status != 200 or not kind.startswith("text/html"):
            ok = answer.status == 200 and url.split("?")[0].endswith(("csv", "permissions"))
            problems[url] = [] if ok else [f"answered {answer.status} {kind}"]
            continue  # a download (the CSV, the Kamailio file): nothing to read or follow
        page.goto(url)
        shot(page, _name(url))
        problems[url] = _leaks(page) + _too_wide(page)
        for link in _links(page, origin):
            if link not in seen:
                seen.add(link)
                queue.append(link)
    return problems


def test_every_page_shows_values_and_fits_the_window(browser: Browser, live: Live) -> None:
    context = browser.new_context(viewport={"width": WIDTH, "height": 900}, base_url=live.base)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, live)
        problems = walk(page, live.base)
    finally:
        context.close()
    walked = {urllib.parse.urlsplit(u).path.removeprefix("/console") for u in problems}
    for wanted in ("/publishers", "/publishers/p1", "/keys", "/campaigns", "/buyers/zenith",
                   "/campaigns/pool/buyers/new", "/trunks", "/check", "/live", "/rtb", "/calls",
                   "/agent", "/audit", "/calls.csv", "/export/kamailio-permissions"):  # fmt: skip
        assert wanted in walked, f"{wanted} not reached from the landing page: {sorted(walked)}"
    assert any(p.startswith("/calls/") for p in walked), "no call's page was reached"
    bad = [f"{url}: {', '.join(found)}" for url, found in problems.items() if found]
    assert bad == [], "\n".join(bad)
