"""Which URLs name a SQLite file that is not there (what commands other than apply, serve and
sip refuse rather than create: tests/cli/test_main.py runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtbridge.storage.database import missing_file, open_database


def test_a_sqlite_file_is_missing_until_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///rtbridge.db", f"sqlite:///{tmp_path / 'rtbridge.db'}",
                "sqlite:///rtbridge.db?timeout=3"):  # fmt: skip
        assert missing_file(url) == tmp_path / "rtbridge.db"
    assert list(tmp_path.iterdir()) == []  # asking creates nothing
    open_database("sqlite:///rtbridge.db").dispose()
    assert missing_file("sqlite:///rtbridge.db") is None


@pytest.mark.parametrize(
    "url", ["postgresql://rtb@127.0.0.1:1/none", "sqlite://", "sqlite:///:memory:", "not a url"]
)
def test_nothing_to_check_for_other_urls(url: str) -> None:
    """PostgreSQL never creates a database on connect; the rest are refused by make_engine
    with their own message."""
    assert missing_file(url) is None
