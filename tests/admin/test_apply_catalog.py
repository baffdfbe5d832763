"""``rtbridge apply`` and the campaigns, buyers, DIDs and trunks an admin made (migration
0015), as issue 12 had it for publishers: kept, and reported as kept, unless ``--prune``;
adopted when the file lists them; the file's own rows still follow the file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from rtbridge.admin import offers, trunks
from rtbridge.admin.apply import apply_file
from rtbridge.admin.changes import write_session
from rtbridge.config.schema import ConfigError
from rtbridge.storage.database import open_database
from rtbridge.storage.models import Buyer, Campaign, DidNumber, Trunk
from tests.admin.test_apply import DEMO, Files
from tests.conftest import ROOT, ClientFactory
from tests.support.admin import make_token
from tests.support.terminal import Terminal

# What an admin made in the run that measured the bug (`apply --dry-run` said "removed" for
# the trunk, the buyer and the DID), and a campaign with a DID of its own.
MADE = ["trunk backup", "campaign spring", "buyer zenith", "DID +18005550100", "DID +18005550101"]
ZENITH = {"campaign": "auto", "id": "zenith", "destination": "+18005550199", "trunk": "backup",
          "payout": 50, "seconds": 60}  # fmt: skip
BACKUP = {"id": "backup", "ips": ["192.0.2.8/29"], "uri": "sip:{number}@192.0.2.9"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def _demo_apply(url: str, *extra: str) -> list[str]:
    """The console script, as scripts/demo runs it: its report, line by line."""
    done = subprocess.run(
        [sys.executable, "-m", "rtbridge", "apply", "deploy/demo.toml", *extra], cwd=ROOT,
        env={**os.environ, "RTBRIDGE_DB": url}, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def _said(lines: list[str], verb: str) -> set[str]:
    """``kept buyer zenith (not in the file, ...)`` → ``buyer zenith`` for ``verb`` "kept"."""
    return {line.removeprefix(f"{verb} ").split(" (")[0] for line in lines
            if line.startswith(f"{verb} ")}  # fmt: skip


def test_what_an_admin_made_survives_apply_unless_pruned(
    db_url: str,
    make_client: ClientFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(url=db_url)  # the demo file applied
    client.headers["Authorization"] = f"Bearer {make_token(db_url)}"
    for path, body in [("/admin/trunks", BACKUP), ("/admin/campaigns", {"id": "spring"}),
                       ("/admin/buyers", ZENITH),
                       ("/admin/dids", {"number": "+18005550100", "campaign": "auto"})]:  # fmt: skip
        made = client.post(path, json=body)
        assert made.status_code == 201 and made.json()["managed_by"] == "admin", made.text
    rtb = Terminal(db_url, capsys, monkeypatch)
    assert rtb("dids", "add", "--number", "+18005550101", "--campaign", "spring")[0] == 0
    resources = ["/admin/trunks/backup", "/admin/campaigns/spring", "/admin/buyers/zenith"]

    for dry in (["--dry-run"], []):
        report = _demo_apply(db_url, *dry)
        assert _said(report, "removed") == set() and _said(report, "kept") == set(MADE)
        assert report[-1].endswith("0 created, 0 updated, 0 removed, 5 kept")
    for path in resources:
        assert client.get(path).json()["managed_by"] == "admin"
    dids = client.get("/admin/dids").json()["dids"]
    assert {d["number"]: d["managed_by"] for d in dids} == {
        "+18005550100": "admin", "+18005550101": "admin",
        "+18334583385": "file", "+18339510260": "file"}  # fmt: skip

    dry = _demo_apply(db_url, "--prune", "--dry-run")
    assert _said(dry, "removed") == set(MADE) and _said(dry, "kept") == set()
    assert dry[-1] == "dry run, nothing written: 0 created, 0 updated, 5 removed"
    assert client.get("/admin/buyers/zenith").status_code == 200
    assert _said(_demo_apply(db_url, "--prune"), "removed") == set(MADE)
    for path in resources:
        assert client.get(path).status_code == 404
    assert [d["number"] for d in client.get("/admin/dids").json()["dids"]] == [
        "+18334583385", "+18339510260"]  # fmt: skip
    assert _demo_apply(db_url) == ["no changes", "0 created, 0 updated, 0 removed"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 't.db'}")
    apply_file(engine, DEMO)
    yield engine
    engine.dispose()


@pytest.fixture
def write(tmp_path: Path) -> Files:
    return Files(tmp_path)


def _admin_makes_zenith(engine: Engine) -> None:
    with write_session(engine) as s:
        trunks.create_trunk(s, actor="ops", raw=BACKUP)
    with write_session(engine) as s:
        offers.create_buyer(s, actor="ops", raw=ZENITH)


def test_the_files_own_rows_still_follow_it(engine: Engine, write: Files) -> None:
    _admin_makes_zenith(engine)
    text = (DEMO.read_text().replace("198.51.100.10:5060", "198.51.100.10:5080")
            .replace("payout = 90.0", "payout = 95.0")
            .replace('["+18339510260", "+18334583385"]', '["+18339510260"]'))  # fmt: skip
    report = apply_file(engine, write(text))
    assert report.updated == [
        "trunk carrier (uri 'sip:{number}@198.51.100.10:5060' -> "
        "'sip:{number}@198.51.100.10:5080')",
        "buyer acme (payout 90.0 -> 95.0)",
    ]
    assert report.removed == ["DID +18334583385"] and report.created == []
    assert sorted(report.kept) == ["buyer zenith", "trunk backup"]
    renamed = apply_file(engine, write(DEMO.read_text().replace('"acme"', '"acme2"')))
    assert renamed.created == ["buyer acme2", "DID +18334583385"]  # the DID back, too
    assert renamed.removed == ["buyer acme"]
    with Session(engine) as s:
        assert s.get(Buyer, "acme2").managed_by == "file"  # type: ignore[union-attr]
        assert s.get(DidNumber, "+18334583385").managed_by == "file"  # type: ignore[union-attr]


def test_the_file_adopts_what_it_lists(engine: Engine, write: Files) -> None:
    """Publishers' rule: a row the file lists is the file's from then on, made by whoever."""
    _admin_makes_zenith(engine)
    listed = DEMO.read_text().replace(
        "[[publishers]]",
        """
[[campaigns.buyers]]
id = "zenith"
destination = "+18005550199"
trunk = "backup"
payout = 50
seconds = 60

[[trunks]]
id = "backup"
ips = ["192.0.2.8/29"]
uri = "sip:{number}@192.0.2.9"

[[publishers]]""",
    )
    report = apply_file(engine, write(listed))
    assert report.updated == [
        "trunk backup (managed_by 'admin' -> 'file')",
        "buyer zenith (managed_by 'admin' -> 'file')",
    ]
    assert report.kept == [] and not apply_file(engine, write(listed)).changed
    dropped = apply_file(engine, DEMO)  # now the file's: gone once the file drops them
    assert dropped.removed == ["trunk backup", "buyer zenith"] and dropped.kept == []


def test_an_admin_edit_of_a_file_row_lasts_until_the_next_apply(engine: Engine) -> None:
    """Publishers' rule again: editing a row the file manages leaves it the file's."""
    with write_session(engine) as s:
        offers.update_buyer(s, actor="ops", buyer_id="acme", raw={"payout": 95})
    with Session(engine) as s:
        assert s.get(Buyer, "acme").managed_by == "file"  # type: ignore[union-attr]
    with write_session(engine) as s:
        trunks.update_trunk(s, actor="ops", trunk_id="carrier", raw={"uri": "sip:{number}@x.test"})
    with write_session(engine) as s:
        offers.remove_did(s, actor="ops", number="+18334583385")
    report = apply_file(engine, DEMO)
    assert report.created == ["DID +18334583385"]
    assert report.updated == [
        "trunk carrier (uri 'sip:{number}@x.test' -> 'sip:{number}@198.51.100.10:5060')",
        "buyer acme (payout 95.0 -> 90.0)",
    ]
    with Session(engine) as s:
        assert s.get(Trunk, "carrier").managed_by == "file"  # type: ignore[union-attr]


SPRING = '\n[[campaigns]]\nid = "spring"\n'


def test_dropping_a_campaign_that_keeps_admin_rows_is_refused(engine: Engine, write: Files) -> None:
    apply_file(engine, write(DEMO.read_text().replace("[[publishers]]", SPRING + "[[publishers]]")))
    with write_session(engine) as s:
        offers.add_did(s, actor="ops", raw={"number": "+18005550101", "campaign": "spring"})
    with write_session(engine) as s:
        offers.create_buyer(s, actor="ops", raw={"campaign": "spring", "id": "zenith",
                                                 "destination": "sip:q@192.0.2.1", "payout": 5,
                                                 "seconds": 60})  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        apply_file(engine, DEMO)
    assert refused.value.errors == [
        f"campaigns: campaign 'spring' is no longer in the file but keeps {what}, made outside "
        "it; remove that first or use --prune"
        for what in ("buyer zenith", "DID +18005550101")
    ]
    with Session(engine) as s:
        assert s.get(Campaign, "spring") is not None  # nothing changed
    pruned = apply_file(engine, DEMO, prune=True)
    assert sorted(pruned.removed) == ["DID +18005550101", "buyer zenith", "campaign spring"]


def test_an_admin_key_may_use_a_kept_campaign(engine: Engine) -> None:
    """The keys the file lists name its own campaigns; one made outside it may name a campaign
    made outside it, which the file keeps, so the key is no orphan."""
    with write_session(engine) as s:
        offers.create_campaign(s, actor="ops", raw={"id": "spring"})
    with write_session(engine) as s:
        offers.create_key(s, actor="ops", raw={"publisher": "pub-1", "campaign": "spring",
                                               "key": "88888888-aaaa-4bbb-8ccc-dddddddddddd"})  # fmt: skip
    report = apply_file(engine, DEMO)
    assert sorted(report.kept) == ["campaign spring", "key 8888…"] and not report.changed
