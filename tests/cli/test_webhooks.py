"""``rtbridge webhooks add|list|rotate|deliveries|remove`` on a real SQLite file, through the
same service layer (and audit trail) as the admin API."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO
from tests.support.admin import db_bytes
from tests.support.terminal import Terminal
from tests.webhooks.conftest import MASTER


@pytest.fixture
def rtb(sqlite_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Terminal:  # fmt: skip
    """The ``rtbridge`` command on the demo configuration."""
    terminal = Terminal(sqlite_url, capsys, monkeypatch)
    status, _, err = terminal("apply", str(DEMO))
    assert status == 0, err
    return terminal


@pytest.fixture
def rtb_key(rtb: Terminal, monkeypatch: pytest.MonkeyPatch) -> Terminal:
    monkeypatch.setenv("RTBRIDGE_WEBHOOK_KEY", MASTER)
    return rtb


def test_add_list_rotate_remove(rtb_key: Terminal) -> None:
    rtb = rtb_key
    status, out, err = rtb("webhooks", "add", "buyer", "acme", "https://hooks.example.com/a",
                           "--events", "answered,failed")  # fmt: skip
    assert status == 0, err
    secret = out.rsplit(" ", 1)[-1].strip()
    assert secret.startswith("whsec_")
    listed = rtb("webhooks", "list")[1].splitlines()
    assert listed[0].split() == ["ID", "OWNER", "URL", "EVENTS", "ENABLED"]
    (row,) = listed[1:]
    hook = row.split()[0]
    assert row.split()[1:4] == ["buyer/acme", "https://hooks.example.com/a", "answered,failed"]
    assert secret not in "".join(listed)

    status, out, err = rtb("webhooks", "rotate", hook)
    rotated = out.rsplit(" ", 1)[-1].strip()
    assert status == 0 and rotated.startswith("whsec_") and rotated != secret, err
    assert rtb("webhooks", "deliveries", hook)[0] == 0
    assert rtb("webhooks", "remove", hook)[0] == 0
    assert rtb("webhooks", "list")[1].splitlines()[1:] == []
    trail = rtb.audit("--resource", "webhook")  # newest first, all by this terminal's user
    assert [line.split()[2] for line in trail] == ["delete", "rotate", "create"], trail
    assert all(f"webhook/{hook}" in line for line in trail)
    raw = db_bytes(rtb.db)
    assert secret.encode() not in raw and rotated.encode() not in raw


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "buyer", "nobody", "https://h.example.com/"], "buyer"),
        (["add", "publisher", "pub-1", "ftp://h.example.com/"], "url"),
        (["add", "publisher", "pub-1", "https://h.example.com/", "--events", "bogus"], "events"),
    ],
)
def test_bad_input_changes_nothing(rtb_key: Terminal, args: list[str], message: str) -> None:
    status, out, err = rtb_key("webhooks", *args)
    assert status in (1, 2) and message in err and out == "", (status, out, err)
    assert rtb_key("webhooks", "list")[1].splitlines()[1:] == []


def test_without_the_master_key_nothing_is_made(
    rtb: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RTBRIDGE_WEBHOOK_KEY", raising=False)
    monkeypatch.delenv("RTBRIDGE_SITE_KEY", raising=False)  # it would serve as the master key
    status, out, err = rtb("webhooks", "add", "publisher", "pub-1", "https://h.example.com/")
    assert status != 0 and "RTBRIDGE_WEBHOOK_KEY" in err and out == ""
    assert rtb("webhooks", "list")[1].splitlines()[1:] == []
