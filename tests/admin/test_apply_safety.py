"""Issue 12 in ``rtbridge apply``: rows made outside the file are kept unless ``--prune``;
the overlap and expiry rules of the admin API hold for the file's entries too."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from rtbridge.admin import offers, publishers
from rtbridge.admin.apply import apply_file
from rtbridge.admin.changes import write_session
from rtbridge.config.schema import ConfigError
from rtbridge.storage.database import open_database
from rtbridge.storage.models import (
    AllowlistEntry,
    PostbackKey,
    Publisher,
    Setting,
    SipCredential,
    Trunk,
)
from tests.admin.test_apply import DEMO, Files, demo_with

PASSWORD = "Admin-Made-Pass-1"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 't.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def write(tmp_path: Path) -> Files:
    return Files(tmp_path)


def _cidrs(engine: Engine) -> set[tuple[str, str]]:
    with Session(engine) as s:
        return {(e.publisher_id, e.cidr) for e in s.exec(select(AllowlistEntry))}


def _admin_adds(engine: Engine) -> None:
    """What an admin does through the service layer (API, CLI and console share it)."""
    with write_session(engine) as s:
        publishers.add_ip(s, actor="ops", publisher_id="pub-1", raw="192.0.2.0/24")
    with write_session(engine) as s:
        publishers.set_password(s, actor="ops", publisher_id="pub-1", username="extra",
                                password=PASSWORD)  # fmt: skip
    with write_session(engine) as s:
        publishers.create_publisher(s, actor="ops", raw={"id": "pub-7", "ips": ["203.0.113.0/24"]})
    with write_session(engine) as s:
        offers.create_key(s, actor="ops", raw={"publisher": "pub-7", "campaign": "auto",
                                               "key": "77777777-aaaa-4bbb-8ccc-dddddddddddd"})  # fmt: skip


def test_apply_keeps_what_was_made_outside_the_file(engine: Engine) -> None:
    apply_file(engine, DEMO)
    _admin_adds(engine)
    report = apply_file(engine, DEMO)
    assert report.removed == [] and not report.changed
    assert sorted(report.kept) == sorted([
        "allowlist entry 192.0.2.0/24 of pub-1", "allowlist entry 203.0.113.0/24 of pub-7",
        "SIP credential extra", "key 7777…", "publisher pub-7",
    ])  # fmt: skip
    assert any(line.startswith("kept publisher pub-7 (") and "--prune" in line
               for line in report.lines())  # fmt: skip
    assert report.summary().endswith(", 5 kept")
    assert ("pub-1", "192.0.2.0/24") in _cidrs(engine)
    # the dry run of --prune shows what it would remove, and removes nothing
    dry = apply_file(engine, DEMO, dry_run=True, prune=True)
    assert sorted(dry.removed) == sorted(report.kept) and dry.kept == []
    assert ("pub-7", "203.0.113.0/24") in _cidrs(engine)
    pruned = apply_file(engine, DEMO, prune=True)
    assert sorted(pruned.removed) == sorted(report.kept)
    with Session(engine) as s:
        assert s.get(Publisher, "pub-7") is None
        assert {c.username for c in s.exec(select(SipCredential))} == {"pub1"}
        assert len(list(s.exec(select(PostbackKey)))) == 3
    assert not apply_file(engine, DEMO).changed


def test_entries_the_file_drops_that_it_made_are_still_removed(
    engine: Engine, write: Files
) -> None:
    apply_file(engine, DEMO)
    report = apply_file(engine, write(demo_with('"127.0.0.1/32", "::1/128"', '"127.0.0.1/32"')))
    assert report.removed == ["allowlist entry ::1/128 of pub-1"] and report.kept == []


def test_the_file_adopts_an_entry_it_lists(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    with write_session(engine) as s:
        publishers.add_ip(s, actor="ops", publisher_id="pub-1", raw="192.0.2.0/24")
    listed = write(demo_with('"::1/128"', '"::1/128", "192.0.2.0/24"'))
    assert apply_file(engine, listed).updated == [
        "allowlist entry 192.0.2.0/24 of pub-1 (managed_by 'admin' -> 'file')"
    ]
    assert apply_file(engine, DEMO).removed == ["allowlist entry 192.0.2.0/24 of pub-1"]


def test_removing_a_publisher_that_keeps_outside_entries_is_refused(
    engine: Engine, write: Files
) -> None:
    two = DEMO.read_text() + '\n[[publishers]]\nid = "pub-2"\nips = ["203.0.113.0/24"]\n'
    apply_file(engine, write(two))
    with write_session(engine) as s:
        publishers.add_ip(s, actor="ops", publisher_id="pub-2", raw="192.0.2.0/24")
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, DEMO)
    assert refused.value.errors == [
        "publishers: publisher 'pub-2' is no longer in the file but keeps allowlist entry "
        "192.0.2.0/24, made outside it; remove that first or use --prune"
    ]
    assert ("pub-2", "203.0.113.0/24") in _cidrs(engine)  # nothing changed
    report = apply_file(engine, DEMO, prune=True)
    assert "publisher pub-2" in report.removed and ("pub-2", "192.0.2.0/24") not in _cidrs(engine)


NESTED = """
[[publishers]]
id = "pub-3"
ips = [{ cidr = "127.0.0.64/26"OPTION }]
"""


def test_overlapping_entries_across_publishers_in_the_file(engine: Engine, write: Files) -> None:
    base = demo_with('"127.0.0.1/32"', '"127.0.0.0/24"')
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, write(base + NESTED.replace("OPTION", "")))
    around, inside = refused.value.errors  # both sides of the pair, each naming the other
    assert around.startswith("publishers[0].ips[0]: 127.0.0.0/24 contains")
    assert "pub-3's 127.0.0.64/26" in around
    assert inside.startswith("publishers[1].ips[0]: 127.0.0.64/26 sits inside")
    assert "pub-1's 127.0.0.0/24" in inside and "allow_overlap = true" in inside
    assert _cidrs(engine) == set()  # nothing written
    apply_file(engine, write(base + NESTED.replace("OPTION", ", allow_overlap = true")))
    with Session(engine) as s:
        nested = s.exec(select(AllowlistEntry).where(AllowlistEntry.publisher_id == "pub-3")).one()
    assert nested.allow_overlap and nested.managed_by == "file"


def test_a_file_entry_overlapping_an_admin_made_one_is_refused(
    engine: Engine, write: Files
) -> None:
    apply_file(engine, DEMO)
    with write_session(engine) as s:
        publishers.create_publisher(s, actor="ops", raw={"id": "pub-8", "ips": ["10.8.0.0/16"]})
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, write(demo_with('"::1/128"', '"::1/128", "10.8.1.0/24"')))
    assert refused.value.errors[0].startswith("publishers[0].ips[2]: 10.8.1.0/24 sits inside")
    assert "pub-8's 10.8.0.0/16" in refused.value.errors[0]


def test_an_admin_accepted_overlap_does_not_break_the_file(engine: Engine) -> None:
    """The demo's restart: an admin nested a partner inside pub-1's range with the flag;
    re-applying the unchanged file keeps working and keeps the entry."""
    apply_file(engine, DEMO)
    with write_session(engine) as s:
        publishers.create_publisher(s, actor="ops", raw={"id": "pub-3", "ips": [
            {"cidr": "127.0.0.0/8", "allow_overlap": True}]})  # fmt: skip
    report = apply_file(engine, DEMO)
    assert not report.changed and ("pub-3", "127.0.0.0/8") in _cidrs(engine)


def test_past_expiry_in_the_file_is_refused_unless_unchanged(engine: Engine, write: Files) -> None:
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    text = demo_with('"::1/128"', f'{{ cidr = "::1/128", expires_at = {past.isoformat()} }}')
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, write(text))
    assert refused.value.errors[0].startswith("publishers[0].ips[1].expires_at: ")
    # an entry that lapsed since the file was applied does not make the file unappliable
    apply_file(engine, DEMO)
    with Session(engine) as s:
        row = s.exec(select(AllowlistEntry).where(AllowlistEntry.cidr == "::1/128")).one()
        row.expires_at = past
        s.add(row)
        s.commit()
    assert not apply_file(engine, write(text)).changed


def test_the_demo_keeps_what_the_admin_added(tmp_path: Path, make_client: object) -> None:
    """scripts/demo's own apply step, a real admin API call in between, and the step again."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.support.admin import make_token

    script = (ROOT / "scripts" / "demo").read_text()
    [step] = [
        line.split()
        for line in script.splitlines()
        if " apply " in line and not line.startswith("#")
    ]
    assert step[0].endswith("rtbridge") and step[1:] == ["apply", "deploy/demo.toml"]
    url = f"sqlite:///{tmp_path / 'rtbridge.db'}"

    def demo_apply(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtbridge", *step[1:], *extra], cwd=ROOT,
                              env={**os.environ, "RTBRIDGE_DB": url}, capture_output=True,
                              text=True, timeout=60, check=True)  # fmt: skip

    demo_apply()
    client = make_client(url=url)  # type: ignore[operator]
    client.headers["Authorization"] = f"Bearer {make_token(url)}"
    added = client.post("/admin/publishers/pub-1/ips", json={"cidr": "192.0.2.0/24"})
    assert added.status_code == 201, added.text
    again = demo_apply()
    assert "kept allowlist entry 192.0.2.0/24 of pub-1" in again.stdout
    cidrs = [e["cidr"] for e in client.get("/admin/publishers/pub-1/ips").json()["ips"]]
    assert "192.0.2.0/24" in cidrs
    dry = demo_apply("--prune", "--dry-run").stdout
    assert "removed allowlist entry 192.0.2.0/24 of pub-1" in dry
    assert dry.endswith("dry run, nothing written: 0 created, 0 updated, 1 removed\n")


# The demo's trunk is 198.51.100.10/32; pub-1's entries are 127.0.0.1/32 and ::1/128.
DEMO_TRUNK = 'ips = ["198.51.100.10/32"]'


def _trunk(engine: Engine) -> Trunk:
    with Session(engine) as s:
        return s.exec(select(Trunk).where(Trunk.id == "carrier")).one()


def test_a_trunk_overlapping_an_entry_in_the_same_file_is_refused(
    engine: Engine, write: Files
) -> None:
    """Issue 17: both are new in this file; the entry's side names the trunk once."""
    over = demo_with(DEMO_TRUNK, 'ips = ["127.0.0.0/24"]')
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, write(over))
    assert refused.value.errors == [
        "publishers[0].ips[0]: 127.0.0.1/32 overlaps trunk carrier's 127.0.0.0/24 (a source in "
        "both is trusted without a challenge as the carrier for calls to pool DIDs and as the "
        "publisher for reservation uuids); set allow_overlap = true on the entry to accept it"
    ]
    assert _cidrs(engine) == set()  # nothing written
    apply_file(
        engine, write(over.replace('["127.0.0.0/24"]', '["127.0.0.0/24"]\nallow_overlap = true'))
    )
    assert _trunk(engine).allow_overlap and _trunk(engine).ips == ["127.0.0.0/24"]
    assert not apply_file(engine, write(over.replace(
        '["127.0.0.0/24"]', '["127.0.0.0/24"]\nallow_overlap = true'))).changed  # fmt: skip


def test_a_trunk_network_added_over_a_kept_entry_is_refused(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    with write_session(engine) as s:  # made outside the file: the file keeps it
        publishers.create_publisher(s, actor="ops", raw={"id": "pub-8", "ips": ["10.8.0.0/16"]})
    grown = demo_with(DEMO_TRUNK, 'ips = ["198.51.100.10/32", "10.8.7.0/24"]')
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, write(grown))
    (error,) = refused.value.errors
    assert error.startswith("trunks[0].ips[1]: 10.8.7.0/24 overlaps pub-8's 10.8.0.0/16 (")
    assert error.endswith("set allow_overlap = true on the trunk to accept it")
    assert _trunk(engine).ips == ["198.51.100.10/32"]  # nothing written
    # the network it had stays acceptable: an unchanged file still applies
    assert not apply_file(engine, DEMO).changed


def test_a_service_write_during_apply_waits_for_it(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running service writes between apply's first read and its first write (a ping, a
    heartbeat): it waits for apply's transaction, which does not fail with "database is
    locked" as a deferred transaction would (its read snapshot is stale by then)."""
    from rtbridge.admin import apply as apply_module

    database = tmp_path / "t.db"
    written: list[str] = []

    def service_write() -> None:
        with sqlite3.connect(database, timeout=10) as conn:
            conn.execute("INSERT INTO setting (name, value) VALUES ('probe', 'x')")
        written.append("probe")

    real = apply_module._sync_domain

    def domain_then_a_service_write(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)  # apply has read by now
        other = threading.Thread(target=service_write)
        other.start()
        other.join(0.5)  # it commits now unless apply holds the write lock
        threads.append(other)
        return found

    threads: list[threading.Thread] = []
    monkeypatch.setattr(apply_module, "_sync_domain", domain_then_a_service_write)
    report = apply_file(engine, DEMO)
    assert report.created, "apply went through"
    threads[0].join(10)
    assert written == ["probe"], "the service's write went through after apply"
    with Session(engine) as s:
        assert {p.id for p in s.exec(select(Publisher))} and s.get(Setting, "probe") is not None
