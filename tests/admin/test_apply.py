"""``rtbridge apply`` against a real, migrated SQLite database (SPEC §5)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from rtbridge.admin.apply import Report, apply_document, apply_file
from rtbridge.config.schema import ConfigError, load_file
from rtbridge.storage.catalog import load_catalog
from rtbridge.storage.database import open_database
from rtbridge.storage.models import (
    AllowlistEntry,
    Buyer,
    Campaign,
    DidNumber,
    PostbackKey,
    Publisher,
    Setting,
    SipCredential,
    Trunk,
)
from tests.support.keys import key_id

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo.toml"
PASSWORD = "s3cret-Pass-123"
KEYS = (
    "f38240dd-7f65-4e17-a4d7-2e09ccafad0e",
    "6b1f0c1e-3c57-4d3b-9f6e-0d2f5a8c7e11",
    "0a7d3c55-2b8e-4f61-a9c4-5e3b7d9f1a22",
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = open_database("sqlite:///" + str(db_path))
    yield engine
    engine.dispose()


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def __call__(self, text: str) -> Path:
        self.n += 1
        path = self.root / f"config{self.n}.toml"
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def write(tmp_path: Path) -> Files:
    return Files(tmp_path)


def dump(db_path: Path) -> list[str]:
    """Every row of every table, as SQL text (the migration table included). Closed here:
    ``with connect()`` only commits, and Python 3.13 warns of an unclosed connection."""
    with closing(sqlite3.connect(db_path)) as conn:
        return list(conn.iterdump())


def rows(engine: Engine, model: type) -> list[object]:
    with Session(engine) as s:
        return list(s.exec(select(model)))


def demo_with(old: str, new: str) -> str:
    text = DEMO.read_text()
    assert old in text
    return text.replace(old, new, 1)


def test_first_run_creates_everything_then_no_changes(engine: Engine) -> None:
    report = apply_file(engine, DEMO)
    assert report.changed
    assert report.created == [
        "sip.domain sip.rtb.example.com",
        "trunk carrier",
        "campaign auto",
        "buyer acme",
        "DID +18339510260",
        "DID +18334583385",
        "publisher pub-1",
        "allowlist entry 127.0.0.1/32 of pub-1",
        "allowlist entry ::1/128 of pub-1",
        "SIP credential pub1",
        "key f382…",
        "key 6b1f…",
        "key 0a7d…",
    ]
    assert report.updated == [] and report.removed == []
    assert report.summary() == "13 created, 0 updated, 0 removed"

    again = apply_file(engine, DEMO)
    assert not again.changed
    assert again.lines() == ["no changes"]
    assert again.summary() == "0 created, 0 updated, 0 removed"

    assert len(rows(engine, Buyer)) == 1
    assert len(rows(engine, DidNumber)) == 2
    assert len(rows(engine, PostbackKey)) == 3


def test_rows_hold_the_file(engine: Engine) -> None:
    apply_file(engine, DEMO)
    with Session(engine) as s:
        buyer = s.get(Buyer, "acme")
        assert buyer is not None
        assert (
            buyer.campaign_id,
            buyer.destination,
            buyer.payout,
            buyer.seconds,
            buyer.concurrency,
            buyer.daily_cap,
        ) == ("auto", "sip:queue@127.0.0.1:5070", 90.0, 120, 10, 500)
        key = s.get(PostbackKey, key_id(engine, KEYS[1]))
        assert key is not None
        assert key.inbound_number == "+18339510260" and key.allow_missing_caller_number
        assert key.hint == "6b1f…"
        assert s.get(PostbackKey, key_id(engine, KEYS[2])).response_root == "rtb"  # type: ignore[union-attr]
        setting = s.get(Setting, "sip.domain")
        assert setting is not None and setting.value == "sip.rtb.example.com"
    catalog = load_catalog(engine)
    assert catalog.sip_domain == "sip.rtb.example.com"


def test_idempotent_with_every_kind_of_value(engine: Engine, write: Files) -> None:
    path = write(f'''
[sip]
domain = "sip.example.com"
[[trunks]]
id = "carrier"
ips = ["198.51.100.10/32", "2001:db8:1::/48"]
uri = "sip:{{number}}@198.51.100.10"
username = "acct"
password = "Trunk-Pass-4567"
realm = "carrier.example"
[[campaigns]]
id = "c"
numbers = ["+18339510260"]
[[campaigns.buyers]]
id = "b"
destination = "+18005550100"
payout = 12
seconds = 60
hours = "Mon-Fri 09:00-17:00 America/New_York"
filters = {{ caller_state = ["CA", "NY"], vertical = "auto" }}
trunk = "carrier"
[[publishers]]
id = "p"
name = "Pub"
ips = [{{ cidr = "10.0.0.0/8", note = "lab", expires_at = 2030-01-01T00:00:00Z }}, "::1"]
credentials = [{{ username = "u1", password = "{PASSWORD}" }}]
[[keys]]
key = "{KEYS[0]}"
publisher = "p"
campaign = "c"
auto_confirm = true
paused = true
response_root = "rtb"
''')
    first = apply_file(engine, path)
    assert len(first.created) == 10
    assert apply_file(engine, path).lines() == ["no changes"]


def test_update_reports_old_and_new(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    changed = demo_with("payout = 90.0", "payout = 95.5").replace(
        "concurrency = 10", "concurrency = 3"
    )
    report = apply_file(engine, write(changed))
    assert report.created == [] and report.removed == []
    assert report.updated == ["buyer acme (payout 90.0 -> 95.5, concurrency 10 -> 3)"]
    with Session(engine) as s:
        buyer = s.get(Buyer, "acme")
        assert buyer is not None and buyer.payout == 95.5 and buyer.concurrency == 3


def test_key_update_names_the_hint_not_the_key(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    report = apply_file(engine, write(demo_with("ttl_seconds = 60", "ttl_seconds = 90")))
    assert report.updated == ["key f382… (ttl_seconds 60 -> 90)"]
    assert not any(KEYS[0] in line for line in report.lines())


def test_removals(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    smaller = write(f'''
[[trunks]]
id = "carrier"
ips = ["198.51.100.10/32"]
uri = "sip:{{number}}@198.51.100.10:5060"
[[campaigns]]
id = "auto"
numbers = ["+18339510260"]
[[publishers]]
id = "pub-1"
ips = ["127.0.0.1/32"]
[[keys]]
key = "{KEYS[0]}"
publisher = "pub-1"
campaign = "auto"
allow_missing_caller_number = true
''')
    report = apply_file(engine, smaller)
    assert sorted(report.removed) == sorted(
        [
            "key 6b1f…",
            "key 0a7d…",
            "buyer acme",
            "DID +18334583385",
            "allowlist entry ::1/128 of pub-1",
            "SIP credential pub1",
        ]
    )
    assert report.created == [] and report.updated == []
    assert rows(engine, Buyer) == [] and rows(engine, SipCredential) == []
    assert [d.number for d in rows(engine, DidNumber)] == ["+18339510260"]  # type: ignore[attr-defined]
    assert apply_file(engine, smaller).lines() == ["no changes"]


def test_remove_whole_tree_children_before_parents(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    report = apply_file(engine, write("trunks = []\ncampaigns = []\npublishers = []\nkeys = []\n"))
    assert report.removed[:3] == ["key f382…", "key 6b1f…", "key 0a7d…"]
    assert report.removed[-2:] == ["campaign auto", "publisher pub-1"]
    assert len(report.removed) == 13 - 1  # everything but sip.domain
    for model in (
        Trunk,
        Campaign,
        Buyer,
        DidNumber,
        Publisher,
        AllowlistEntry,
        SipCredential,
        PostbackKey,
    ):
        assert rows(engine, model) == [], model


def test_children_created_after_parents_in_one_file(engine: Engine, write: Files) -> None:
    # A new campaign + publisher + key in one run (foreign keys are enforced on SQLite).
    apply_file(engine, DEMO)
    text = (
        DEMO.read_text()
        + f'''
[[campaigns]]
id = "home"
numbers = ["+18005550001"]
[[publishers]]
id = "pub-2"
[[keys]]
key = "{"k" * 20}"
publisher = "pub-2"
campaign = "home"
'''
    )
    report = apply_file(engine, write(text))
    assert report.created == [
        "campaign home",
        "DID +18005550001",
        "publisher pub-2",
        "key kkkk…",
    ]


def test_moving_a_key_to_a_new_campaign_and_removing_the_old(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    text = (
        DEMO.read_text()
        .replace('id = "auto"', 'id = "auto2"')
        .replace('campaign = "auto"', 'campaign = "auto2"')
    )
    report = apply_file(engine, write(text))
    assert "campaign auto" in " ".join(report.removed)
    assert "created campaign auto2" in report.lines()
    assert {k.campaign_id for k in rows(engine, PostbackKey)} == {"auto2"}  # type: ignore[attr-defined]


def test_removal_orphaning_a_key_is_refused_and_changes_nothing(
    engine: Engine, write: Files, db_path: Path
) -> None:
    apply_file(engine, DEMO)
    before = dump(db_path)
    # Keys are left out of the file, so they stay: their campaign cannot go.
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write('[[campaigns]]\nid = "other"\n'))
    assert info.value.errors == [
        f"keys: key {k[:4]}… still uses removed campaign 'auto'" for k in KEYS
    ]
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write("publishers = []\n"), dry_run=True)
    assert info.value.errors == [
        f"keys: key {k[:4]}… still uses removed publisher 'pub-1'" for k in KEYS
    ]
    with pytest.raises(ConfigError):
        apply_file(engine, write("publishers = []\n"))
    assert dump(db_path) == before


def test_dry_run_changes_nothing(engine: Engine, write: Files, db_path: Path) -> None:
    empty = dump(db_path)
    preview = apply_file(engine, DEMO, dry_run=True)
    assert dump(db_path) == empty
    real = apply_file(engine, DEMO)
    assert preview == real  # the same report

    before = dump(db_path)
    changed = write(
        demo_with("payout = 90.0", "payout = 1.0").replace(
            "credentials = [", "# no creds\ncredentials = [] # ["
        )
    )
    report = apply_file(engine, changed, dry_run=True)
    assert report.updated == ["buyer acme (payout 90.0 -> 1.0)"]
    assert report.removed == ["SIP credential pub1"]
    assert dump(db_path) == before
    assert apply_file(engine, DEMO).lines() == ["no changes"]


def test_sections_left_out_are_untouched(engine: Engine, write: Files, db_path: Path) -> None:
    apply_file(engine, DEMO)
    before = {
        m.__name__: rows(engine, m)
        for m in (Trunk, Campaign, Buyer, DidNumber, SipCredential, PostbackKey)
    }
    report = apply_file(
        engine,
        write(
            '[[publishers]]\nid = "pub-1"\nname = "First"\nips = ["127.0.0.1/32", "::1/128"]\n'
            f'credentials = [{{ username = "pub1", password = "{PASSWORD}" }}]\n'
        ),
    )
    assert report.updated == ["publisher pub-1 (name None -> 'First')"]
    assert report.created == [] and report.removed == []
    after = {
        m.__name__: rows(engine, m)
        for m in (Trunk, Campaign, Buyer, DidNumber, SipCredential, PostbackKey)
    }
    assert after == before
    assert apply_file(engine, write("")).lines() == ["no changes"]


def test_credentials_stored_as_ha1_only(engine: Engine, write: Files, db_path: Path) -> None:
    trunk_password = "Trunk-Pass-4567"
    text = DEMO.read_text().replace(
        'uri = "sip:{number}@198.51.100.10:5060"',
        'uri = "sip:{number}@198.51.100.10:5060"\nusername = "acct"\n'
        f'password = "{trunk_password}"\nrealm = "carrier.example"',
    )
    report = apply_file(engine, write(text))
    engine.dispose()
    with Session(engine) as s:
        cred = s.exec(select(SipCredential)).one()
        realm = "sip.rtb.example.com"
        assert cred.realm == realm
        assert cred.ha1_md5 == hashlib.md5(f"pub1:{realm}:{PASSWORD}".encode()).hexdigest()  # noqa: S324
        assert cred.ha1_sha256 == hashlib.sha256(f"pub1:{realm}:{PASSWORD}".encode()).hexdigest()
        trunk = s.get(Trunk, "carrier")
        assert (
            trunk is not None
            and trunk.auth_ha1_md5
            == hashlib.md5(  # noqa: S324
                f"acct:carrier.example:{trunk_password}".encode()
            ).hexdigest()
        )
    engine.dispose()
    stored = "\n".join(dump(db_path))
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    for secret in (PASSWORD, trunk_password, *KEYS):
        assert secret not in stored
        assert secret.encode() not in raw
        assert all(secret not in line for line in report.lines())


def test_password_change_is_reported_without_the_secret(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    report = apply_file(engine, write(demo_with(PASSWORD, "An0ther-Secret!")))
    assert report.updated == ["SIP credential pub1 (secret changed)"]
    assert "An0ther-Secret!" not in "\n".join(report.lines())
    assert PASSWORD not in "\n".join(report.lines())


def test_domain_change_without_publishers_is_refused(
    engine: Engine, write: Files, db_path: Path
) -> None:
    apply_file(engine, DEMO)
    before = dump(db_path)
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write('[sip]\ndomain = "sip.new.example.com"\n'))
    (error,) = info.value.errors
    assert error.startswith(
        "sip.domain: changing the domain invalidates the stored SIP credentials"
    )
    assert dump(db_path) == before


def test_domain_change_with_publishers_rehashes(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    report = apply_file(
        engine, write(demo_with('domain = "sip.rtb.example.com"', 'domain = "sip.new.example.com"'))
    )
    assert report.updated == [
        "sip.domain (sip.rtb.example.com -> sip.new.example.com)",
        "SIP credential pub1 (realm 'sip.rtb.example.com' -> 'sip.new.example.com', "
        "secret changed)",
    ]
    cred = rows(engine, SipCredential)[0]
    new_realm = "sip.new.example.com"
    assert cred.ha1_md5 == hashlib.md5(f"pub1:{new_realm}:{PASSWORD}".encode()).hexdigest()  # type: ignore[attr-defined]  # noqa: S324


def test_domain_change_without_credentials_is_fine(engine: Engine, write: Files) -> None:
    apply_file(engine, write('[sip]\ndomain = "a.example.com"\n'))
    report = apply_file(engine, write('[sip]\ndomain = "b.example.com"\n'))
    assert report.updated == ["sip.domain (a.example.com -> b.example.com)"]


def test_credentials_without_domain_use_the_default_realm(engine: Engine, write: Files) -> None:
    apply_file(
        engine,
        write(
            f'[[publishers]]\nid = "p"\ncredentials = [{{ username = "u", '
            f'password = "{PASSWORD}" }}]\n'
        ),
    )
    assert rows(engine, SipCredential)[0].realm == "localhost"  # type: ignore[attr-defined]


def test_invalid_file_changes_nothing(engine: Engine, write: Files, db_path: Path) -> None:
    apply_file(engine, DEMO)
    before = dump(db_path)
    with pytest.raises(ConfigError):
        apply_file(engine, write(demo_with("payout = 90.0", 'payout = "free"')))
    assert dump(db_path) == before


def test_apply_file_checks_references_against_the_database(engine: Engine, write: Files) -> None:
    apply_file(engine, DEMO)
    key_only = write(f'[[keys]]\nkey = "{KEYS[0]}"\npublisher = "pub-1"\ncampaign = "auto"\n')
    report = apply_file(engine, key_only)  # publisher and campaign exist in the database
    assert sorted(report.removed) == ["key 0a7d…", "key 6b1f…"]
    assert report.updated == ["key f382… (allow_missing_caller_number True -> False)"]
    with pytest.raises(ConfigError) as info:
        apply_file(
            engine, write(f'[[keys]]\nkey = "{KEYS[0]}"\npublisher = "nobody"\ncampaign = "auto"\n')
        )
    assert info.value.errors == ["keys[0].publisher: no publisher 'nobody'"]


def test_apply_document_directly(engine: Engine) -> None:
    doc = load_file(DEMO)
    assert isinstance(apply_document(engine, doc), Report)
    assert apply_document(engine, doc, dry_run=True).lines() == ["no changes"]


def test_config_version_moves_only_on_change(engine: Engine, write: Files) -> None:
    def version() -> str | None:
        with Session(engine) as s:
            row = s.get(Setting, "config.version")
            return row.value if row else None

    apply_file(engine, DEMO)
    v1 = version()
    assert v1 is not None
    apply_file(engine, DEMO)
    assert version() == v1
    apply_file(engine, write(demo_with("payout = 90.0", "payout = 91.0")), dry_run=True)
    assert version() == v1
    apply_file(engine, write(demo_with("payout = 90.0", "payout = 91.0")))
    assert version() == str(int(v1) + 1)


NUMBER_BUYER = """
[[trunks]]
id = "carrier"
uri = "sip:{number}@198.51.100.10"
[[campaigns]]
id = "c"
[[campaigns.buyers]]
id = "named"
destination = "+18005550100"
trunk = "carrier"
payout = 1
seconds = 1
"""


def test_removing_a_trunk_a_buyer_names_is_refused(
    engine: Engine, write: Files, db_path: Path
) -> None:
    apply_file(engine, write(NUMBER_BUYER))
    before = dump(db_path)
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write("trunks = []\n"))  # campaigns left out: the buyer stays
    assert info.value.errors == ["trunks: buyer 'named' still uses removed trunk 'carrier'"]
    assert dump(db_path) == before


def test_removing_the_last_trunk_of_a_number_buyer_is_refused(
    engine: Engine, write: Files, db_path: Path
) -> None:
    apply_file(engine, write(NUMBER_BUYER.replace('trunk = "carrier"\n', "")))
    before = dump(db_path)
    with pytest.raises(ConfigError) as info:
        apply_file(engine, write("trunks = []\n"), dry_run=True)
    assert info.value.errors == ["trunks: buyer 'named' dials a number and needs a trunk"]
    assert dump(db_path) == before
    # Removing the buyer with its trunk in one file is fine.
    report = apply_file(engine, write("trunks = []\ncampaigns = []\n"))
    assert sorted(report.removed) == ["buyer named", "campaign c", "trunk carrier"]
