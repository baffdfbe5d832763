"""Fixtures for the operator console: the demo configuration, a signed-in TestClient; for the
browser tests, chromium and a page on a module's live console."""

from __future__ import annotations

import re
import shutil
import urllib.parse
from collections.abc import Iterator

import httpx2
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.testclient import TestClient

from tests.conftest import ClientFactory
from tests.http.console.browser import Live
from tests.support.admin import make_token

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form as a browser does; returns the session's CSRF token."""
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "token": token, "next": "/console/publishers"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console/publishers").text)


def notice_of(answer: httpx2.Response) -> str:
    """The notice a change's redirect carries to the page it lands on."""
    query = urllib.parse.urlsplit(answer.headers["location"]).query
    return urllib.parse.parse_qs(query)["notice"][0]


class Console:
    """A signed-in client and its CSRF token."""

    def __init__(self, client: TestClient, csrf: str, token: str) -> None:
        self.client, self.csrf, self.token = client, csrf, token

    def post(self, path: str, **data: str) -> httpx2.Response:
        return self.client.post(path, data={"csrf": self.csrf, **data}, follow_redirects=False)


@pytest.fixture
def console(make_client: ClientFactory, sqlite_url: str) -> Console:
    client = make_client()
    token = make_token(sqlite_url)
    return Console(client, sign_in(client, token), token)


# -- the browser tests (browser.py): each module brings its own ``live`` console -------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: scripts/system-deps test installs Debian's chromium")
    with sync_playwright() as playwright:
        # Playwright's own browser download cannot run here: drive Debian's build.
        yield playwright.chromium.launch(executable_path=chromium, headless=True)


@pytest.fixture
def page(browser: Browser, live: Live) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 800}, base_url=live.base)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()
