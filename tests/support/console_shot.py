"""docs/console.png, made again from the console as it is: deploy/demo.toml applied to a
throwaway database, ``rtbridge serve`` on a free port, an admin token ``alice`` signed in
with Debian's chromium (headless, driven by Playwright as the browser tests drive it), and
pub-1's page after a refused CIDR — the error shown under its field.

    .venv/bin/python -m tests.support.console_shot [docs/console.png]

tests/http/console/test_screenshot.py runs it."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.support.admin import make_token
from tests.support.server import serve

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "console.png"
VIEWPORT = {"width": 1280, "height": 760}


def shoot(out: Path) -> None:
    """Write the screenshot to ``out`` (PNG, the viewport's size)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is missing: scripts/system-deps test installs Debian's chromium")
    with tempfile.TemporaryDirectory(prefix="console-shot-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'rtbridge.db'}"
        rtbridge = [sys.executable, "-m", "rtbridge", "--db", url]
        # An entry with a note and an expiry beside the demo's own, as an admin would add it;
        # half a year ahead, so the picture looks the same whenever it is taken.
        expires = (datetime.now(UTC) + timedelta(days=180)).strftime("%Y-%m-%dT23:59:00Z")
        for args in (["apply", str(ROOT / "deploy" / "demo.toml")],
                     ["ips", "add", "pub-1", "203.0.113.0/24", "--note", "SBC Frankfurt",
                      "--expires", expires]):  # fmt: skip
            subprocess.run([*rtbridge, *args], check=True, capture_output=True, text=True)
        token = make_token(url, "alice")
        with serve(url) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_context(viewport=VIEWPORT, base_url=base).new_page()
            page.set_default_timeout(10_000)
            page.goto("/console/login")
            page.fill("input[name=token]", token)
            page.click("button:has-text('Sign in')")
            expect(page.locator("header .who")).to_contain_text("alice")
            page.goto("/console/publishers/pub-1")
            form = page.locator("#add-ip")
            form.locator("input[name=cidr]").fill("10.0.0.5/8")  # host bits set: refused
            form.locator("input[name=note]").fill("office")
            form.locator("button").click()
            expect(page.locator("#add-ip #err-cidr")).to_contain_text("has host bits set")
            expect(page.locator("#allowlist")).to_contain_text("SBC Frankfurt")
            page.mouse.move(0, 0)  # no hover highlight in the picture
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=OUT, help=f"default {OUT}")
    shoot(parser.parse_args().out)


if __name__ == "__main__":
    main()
