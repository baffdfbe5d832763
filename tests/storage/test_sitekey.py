"""The site key (``storage/sitekey.py``, issue 17 item 6): where it comes from, what a copy of
the database no longer gives away, and the upgrade of a database from before it — keys,
tokens and console sessions made then keep working, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, select
from starlette.testclient import TestClient

from rtbridge.admin import sessions
from rtbridge.admin.changes import write_session
from rtbridge.admin.offers import create_key
from rtbridge.cli.main import main
from rtbridge.http.app import create_app
from rtbridge.settings import Settings
from rtbridge.storage import sitekey
from rtbridge.storage.database import open_database
from rtbridge.storage.engine import alembic_config, make_engine
from rtbridge.storage.models import (
    AdminToken,
    AuditEntry,
    Campaign,
    ConsoleSession,
    PostbackKey,
    Publisher,
    Reservation,
)
from tests.conftest import DEMO

KEY = "legacy-key-0123456789"  # a key chosen by a person: 21 characters
GONE_KEY = "deleted-key-0123456789"  # deleted before the upgrade; its reservations stay
TOKEN = "rtba_legacy-token-0123456789abcdefghijklmnopqrstuv"
COOKIE = "legacy-cookie-0123456789abcdefghijklmnopqrstuvwxyz01"
OLD_UUID = "00000000-0000-4000-8000-000000000001"
GONE_UUID = "00000000-0000-4000-8000-000000000002"
ENV_KEY = "an-environment-site-key-0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sitekey.ENV, raising=False)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def dump(engine: Engine) -> str:
    """Every value of every table, as text: what a copy of the database holds."""
    out = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in conn.execute(table.select())]
    return "\n".join(out)


def legacy_database(url: str) -> None:
    """A database as rtbridge left it before the site key (schema 0009): SHA-256 ids and
    digests, 8-character hints, reservations and audit entries repeating the ids."""
    engine = make_engine(url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0009")
    now = datetime.now(UTC)
    with Session(engine) as s:
        # Tables whose models grew columns since 0009: their rows as 0009 had them.
        s.execute(text("INSERT INTO publisher (id, require_tls, require_srtp, managed_by) "
                       "VALUES ('pub-1', false, false, 'admin')"))  # fmt: skip
        s.execute(text("INSERT INTO campaign (id) VALUES ('auto')"))
        s.execute(text("INSERT INTO didnumber (number, campaign_id) "
                       "VALUES ('+18339510260', 'auto')"))  # fmt: skip
        s.execute(text(
            "INSERT INTO buyer (id, campaign_id, destination, payout, seconds, priority, weight, "
            "filters, srtp) VALUES ('acme', 'auto', 'sip:q@127.0.0.1:5070', 90.0, 120, 1, 1, "
            "'{}', 'off')"
        ))  # fmt: skip
        s.execute(
            text("INSERT INTO postbackkey (id, hint, publisher_id, campaign_id, "
                 "allow_missing_caller_number, ttl_seconds, auto_confirm, paused, managed_by) "
                 "VALUES (:id, :hint, 'pub-1', 'auto', true, 60, false, false, 'admin')"),
            {"id": sha256(KEY), "hint": KEY[:8] + "…"},
        )  # fmt: skip
        for uuid, key in ((OLD_UUID, KEY), (GONE_UUID, GONE_KEY)):
            s.execute(
                text("INSERT INTO reservation (uuid, key_id, publisher_id, campaign_id, status, "
                     "tags, created_at, updated_at, webhook_pending) VALUES (:u, :k, 'pub-1', "
                     "'auto', 'completed', '{}', :now, :now, false)"),
                {"u": uuid, "k": sha256(key), "now": now},
            )  # fmt: skip
        for key in (KEY, GONE_KEY):
            s.add(AuditEntry(at=now, actor="apply", action="create", resource=f"key/{key[:8]}…",
                             new={"id": sha256(key), "hint": key[:8] + "…"}))  # fmt: skip
        token = AdminToken(name="ops", token_hash=sha256(TOKEN), hint=TOKEN[:9] + "…",
                           created_at=now)  # fmt: skip
        s.add(token)
        s.flush()
        assert token.id is not None
        s.add(ConsoleSession(session_hash=sha256(COOKIE), token_id=token.id, actor="ops",
                             created_at=now, last_seen_at=now,
                             expires_at=now + timedelta(hours=1)))  # fmt: skip
        s.commit()
    engine.dispose()


@contextmanager
def serving(url: str) -> Iterator[TestClient]:
    settings = Settings(db_url=url, sip_enabled=False, sweep_interval=3600)
    with TestClient(create_app(settings)) as client:
        yield client


def test_keys_tokens_and_sessions_from_before_the_upgrade_keep_working(db_url: str) -> None:
    legacy_database(db_url)
    engine = open_database(db_url)  # migrates to 0010, then adopts the site key
    site = sitekey.for_engine(engine)
    try:
        with serving(db_url) as client:
            ping = client.post("/rtbs.json", data={"key": KEY})
            assert ping.status_code == 200 and ping.json()["status"] == "reserved", ping.text
            old = client.get(f"/rtbs/{OLD_UUID}.json", params={"key": KEY})
            assert old.status_code == 200, old.text  # still the key's own reservation
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            keys = client.get("/admin/keys", headers=bearer)
            assert keys.status_code == 200, keys.text
            (listed,) = keys.json()["keys"]
            assert listed["id"] == site.digest(sitekey.KEY, KEY) and listed["hint"] == "lega…"
            log = client.get("/admin/rtbs", headers=bearer, params={"key": listed["id"]})
            assert {r["uuid"] for r in log.json()["items"]} == {OLD_UUID, ping.json()["uuid"]}
        assert sessions.resolve(engine, COOKIE) is not None
        with Session(engine) as s:
            gone = s.get(Reservation, GONE_UUID)
            assert gone is not None and gone.key_id == site.digest(sitekey.KEY, GONE_KEY)
            audit = list(s.exec(select(AuditEntry).order_by(AuditEntry.id)))  # type: ignore[arg-type]
        assert [(e.resource, e.new) for e in audit[:2]] == [
            ("key/lega…", {"id": site.digest(sitekey.KEY, KEY), "hint": "lega…"}),
            ("key/dele…", {"id": site.digest(sitekey.KEY, GONE_KEY), "hint": "dele…"}),
        ]
        copy = dump(engine)
        for secret in (KEY, GONE_KEY, TOKEN, COOKIE):
            assert secret not in copy and sha256(secret) not in copy
        assert KEY[:5] not in copy  # the hints were cut to 4 characters, audit trail included
        if engine.dialect.name == "sqlite":  # nor in the file's freed space (secure_delete)
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db = Path(str(engine.url.database))
            blob = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
            for secret in (KEY, GONE_KEY, TOKEN, COOKIE):
                assert sha256(secret).encode() not in blob
    finally:
        engine.dispose()
    # a second start finds the key adopted: nothing is re-keyed twice
    engine = open_database(db_url)
    with Session(engine) as s:
        assert s.get(PostbackKey, site.digest(sitekey.KEY, KEY)) is not None
    engine.dispose()


def test_a_copy_of_the_database_cannot_test_a_guessed_key(db_url: str) -> None:
    """The stored id is the key's digest under the site key: guessing the key, someone with
    the copy but not the site key cannot compute what to compare it with."""
    engine = open_database(db_url)
    try:
        with write_session(engine) as s:
            s.add(Publisher(id="pub-1"))
            s.add(Campaign(id="auto"))
            s.commit()
        with write_session(engine) as s:
            made = create_key(s, actor="test", raw={"key": KEY, "publisher": "pub-1",
                                                    "campaign": "auto"})  # fmt: skip
        assert made["hint"] == "lega…" and len(made["hint"]) == 5
        other = sitekey.SiteKey(b"a-guess-at-the-site-key-0123456789abcdef", "guess")
        copy = dump(engine)
        assert made["id"] in copy
        assert sha256(KEY) not in copy and other.digest(sitekey.KEY, KEY) not in copy
        assert sitekey.for_engine(engine).digest(sitekey.KEY, KEY) == made["id"]
    finally:
        engine.dispose()


def test_sqlite_without_a_key_makes_a_key_file_beside_the_database(
    sqlite_url: str, no_env_key: None
) -> None:
    engine = open_database(sqlite_url)
    path = sitekey.key_file(engine)
    assert path is not None and path.name == "rtbridge.db.site-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= sitekey.MIN_LENGTH
    check = sitekey.for_engine(engine).check
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT value FROM setting WHERE name = 'site.key_check'"))
        assert stored.scalar() == check
    assert secret not in dump(engine)  # the key is beside the database, never in it
    engine.dispose()
    again = open_database(sqlite_url)  # the same file, the same key
    assert path.read_text().strip() == secret and sitekey.for_engine(again).check == check
    again.dispose()


def test_processes_making_the_key_file_at_once_agree(tmp_path: Path, no_env_key: None) -> None:
    engines = [make_engine(f"sqlite:///{tmp_path / 'new.db'}") for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            keys = list(pool.map(sitekey.configured, engines))
    finally:
        for engine in engines:
            engine.dispose()
    assert len({k.check for k in keys if k is not None}) == 1 and None not in keys
    assert [p.name for p in tmp_path.iterdir()] == ["new.db.site-key"]  # no temporary left


def test_processes_upgrading_at_once_re_key_once(db_url: str) -> None:
    legacy_database(db_url)
    engines = [make_engine(db_url) for _ in range(4)]
    engine = open_database(db_url)  # migrates and adopts, while the others adopt too
    try:
        with ThreadPoolExecutor(4) as pool:
            adopted = list(pool.map(sitekey.for_engine, engines))
        site = sitekey.for_engine(engine)
        assert {k.check for k in adopted} == {site.check}
        with Session(engine) as s:
            assert s.get(PostbackKey, site.digest(sitekey.KEY, KEY)) is not None
    finally:
        for e in (*engines, engine):
            e.dispose()


def test_the_environment_key_wins_and_another_key_is_refused(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(sitekey.ENV, ENV_KEY)
    engine = open_database(sqlite_url)
    assert sitekey.for_engine(engine).source == sitekey.ENV
    assert sitekey.key_file(engine) is not None and not sitekey.key_file(engine).exists()  # type: ignore[union-attr]
    engine.dispose()
    monkeypatch.setenv(sitekey.ENV, ENV_KEY[::-1])
    with pytest.raises(sitekey.SiteKeyError, match="set up with another site key"):
        open_database(sqlite_url)
    monkeypatch.delenv(sitekey.ENV)  # and without it: a key file, another key again
    assert main(["--db", sqlite_url, "apply", str(DEMO)]) == 2
    assert "another site key" in capsys.readouterr().err


def test_a_key_file_database_says_how_to_export_its_key(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, no_env_key: None
) -> None:
    engine = open_database(sqlite_url)
    path = sitekey.key_file(engine)
    engine.dispose()
    monkeypatch.setenv(sitekey.ENV, ENV_KEY)
    with pytest.raises(sitekey.SiteKeyError) as info:
        open_database(sqlite_url)
    assert f'export RTBRIDGE_SITE_KEY="$(cat {path})"' in str(info.value)
    monkeypatch.setenv(sitekey.ENV, Path(str(path)).read_text().strip())
    open_database(sqlite_url).dispose()  # the same key through the environment: accepted


def test_a_short_key_is_refused_before_anything_changes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(sitekey.ENV, "too-short")
    assert main(["--db", sqlite_url, "apply", str(DEMO)]) == 2
    err = capsys.readouterr().err
    assert "RTBRIDGE_SITE_KEY: the site key needs at least 32 characters" in err


@pytest.mark.postgres
def test_postgres_without_a_key_refuses_what_needs_one(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key file on a database shared by hosts: the API and the admin verbs refuse with a
    clear message; what needs no key (a SIP agent, its status port) still runs."""
    monkeypatch.delenv(sitekey.ENV)
    engine = open_database(postgres_url)
    try:
        with pytest.raises(sitekey.SiteKeyError, match="RTBRIDGE_SITE_KEY is not set"):
            sitekey.for_engine(engine)
    finally:
        engine.dispose()
    settings = Settings(db_url=postgres_url, sip_enabled=False, sweep_interval=3600)
    with pytest.raises(sitekey.SiteKeyError), TestClient(create_app(settings)):
        pass
    with TestClient(create_app(settings, api=False)) as status:
        assert status.get("/health").json()["status"] == "ok"
    assert main(["--db", postgres_url, "apply", str(DEMO)]) == 2
    assert "RTBRIDGE_SITE_KEY is not set: on postgresql" in capsys.readouterr().err


def test_webhook_secrets_derive_from_the_site_key_unless_the_webhook_key_is_set() -> None:
    assert Settings.from_env(env={"RTBRIDGE_SITE_KEY": ENV_KEY}).webhook_key == ENV_KEY
    both = {"RTBRIDGE_SITE_KEY": ENV_KEY, "RTBRIDGE_WEBHOOK_KEY": "w" * 32}
    assert Settings.from_env(env=both).webhook_key == "w" * 32  # secrets already handed out
    assert Settings.from_env(env={}).webhook_key is None
