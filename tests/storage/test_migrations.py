"""The Alembic revisions build exactly the schema the models describe, on both databases,
and downgrade cleanly: a model change without its migration fails here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel

import rtbridge.storage.models  # noqa: F401  (registers the tables)
from rtbridge.storage.database import open_database
from rtbridge.storage.engine import alembic_config, make_engine, migrate
from rtbridge.storage.recount import check_counters


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_migrations_match_the_models_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
    assert names <= {"alembic_version"}
    migrate(engine)  # and back up again
    engine.dispose()


def test_counters_are_filled_from_existing_reservations(db_url: str) -> None:
    """A database with reservations from before the counters gets them counted on upgrade."""
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    now = datetime.now(UTC)
    rows = [  # (status, created_at): live, used today, used yesterday, given back
        ("reserved", now), ("claimed", now), ("completed", now),
        ("failed", now - timedelta(days=1)), ("expired", now), ("cancelled", now),
    ]  # fmt: skip
    with engine.begin() as conn:
        for i, (status, created) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO reservation (uuid, key_id, publisher_id, campaign_id, buyer_id, "
                    "status, tags, created_at, expires_at, updated_at) VALUES (:u, 'k', 'p', "
                    "'c', 'b1', :s, '{}', :t, :t, :t)"
                ),
                {"u": f"00000000-0000-4000-8000-{i:012d}", "s": status,
                 "t": created if engine.dialect.name != "sqlite" else
                 created.replace(tzinfo=None).isoformat(" ", "microseconds")},
            )  # fmt: skip
    migrate(engine)
    assert check_counters(engine).differences == ()
    with engine.connect() as conn:
        live = conn.execute(text("SELECT units FROM buyerlive")).scalar()
        days = dict(conn.execute(text("SELECT day, units FROM buyerday")).all())  # type: ignore[arg-type]
    assert live == 2
    assert days == {
        now.date().isoformat(): 3,
        (now - timedelta(days=1)).date().isoformat(): 1,
    }
    engine.dispose()


@pytest.mark.postgres
def test_a_url_with_percent_escapes_migrates(postgres_url: str) -> None:
    """A password with '@' or '%' is percent-escaped in the URL; Alembic's ConfigParser
    must not read those escapes as interpolation (the cluster trusts any password)."""
    url = postgres_url.replace("postgres@", "postgres:p%40ss%25word@")
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM reservation").scalar() == 0
    finally:
        engine.dispose()


def test_managed_by_is_filled_from_the_audit_trail(db_url: str) -> None:
    """0007: a row whose last ``create`` was by ``apply`` is the file's; any other (made by an
    admin, or of unknown origin) is kept by a later apply unless --prune."""
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    now = datetime.now(UTC)
    at = now if engine.dialect.name != "sqlite" else now.replace(tzinfo=None).isoformat(" ")
    with engine.begin() as conn:
        for pid in ("from-file", "from-api", "unknown"):
            conn.execute(text("INSERT INTO publisher (id) VALUES (:p)"), {"p": pid})
        conn.execute(text("INSERT INTO allowlistentry (publisher_id, cidr) VALUES "
                          "('from-file', '10.0.0.0/8'), ('from-api', '10.1.0.0/16')"))  # fmt: skip
        for actor, resource in [("apply", "publisher/from-file"), ("ops", "publisher/from-api"),
                                ("apply", "ip/from-file/10.0.0.0/8"),
                                ("apply", "ip/from-api/10.1.0.0/16"),
                                ("ops", "ip/from-api/10.1.0.0/16")]:  # fmt: skip
            conn.execute(
                text("INSERT INTO auditentry (at, actor, action, resource) "
                     "VALUES (:at, :a, 'create', :r)"),
                {"at": at, "a": actor, "r": resource},
            )  # fmt: skip
    migrate(engine)
    with engine.connect() as conn:
        pubs = dict(conn.execute(text("SELECT id, managed_by FROM publisher")).all())  # type: ignore[arg-type]
        ips = dict(conn.execute(text("SELECT cidr, managed_by FROM allowlistentry")).all())  # type: ignore[arg-type]
    assert pubs == {"from-file": "file", "from-api": "admin", "unknown": "admin"}
    assert ips == {"10.0.0.0/8": "file", "10.1.0.0/16": "admin"}  # the latest create counts
    engine.dispose()


def test_managed_by_of_the_catalog_is_filled_from_the_audit_trail(db_url: str) -> None:
    """0015, by 0007's rule, for campaigns, buyers, DIDs and trunks: the latest ``create`` by
    ``apply`` makes a row the file's; an admin's, or none at all, keeps it from removal."""
    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0014")
    now = datetime.now(UTC)
    at = now if engine.dialect.name != "sqlite" else now.replace(tzinfo=None).isoformat(" ")
    with engine.begin() as conn:
        for sql in [
            "INSERT INTO campaign (id) VALUES ('from-file'), ('from-api')",
            "INSERT INTO buyer (id, campaign_id, destination, payout, seconds, priority, weight, "
            "filters, srtp) VALUES ('b-file', 'from-file', 'sip:q@192.0.2.1', 1, 1, 1, 1, '{}', "
            "'off'), ('b-unknown', 'from-api', 'sip:q@192.0.2.1', 1, 1, 1, 1, '{}', 'off')",
            "INSERT INTO didnumber (number, campaign_id) VALUES ('+18005550100', 'from-file'), "
            "('+18005550101', 'from-api')",
            "INSERT INTO trunk (id, ips, uri) VALUES ('t-file', '[]', 'sip:{number}@192.0.2.1'), "
            "('t-api', '[]', 'sip:{number}@192.0.2.2')",
        ]:
            conn.execute(text(sql))
        for actor, resource in [("apply", "campaign/from-file"), ("ops", "campaign/from-api"),
                                ("apply", "buyer/b-file"), ("apply", "did/+18005550100"),
                                ("cli:ops", "did/+18005550101"), ("apply", "trunk/t-file"),
                                ("apply", "trunk/t-api"), ("ops", "trunk/t-api")]:  # fmt: skip
            conn.execute(
                text("INSERT INTO auditentry (at, actor, action, resource) "
                     "VALUES (:at, :a, 'create', :r)"),
                {"at": at, "a": actor, "r": resource},
            )  # fmt: skip
    migrate(engine)
    with engine.connect() as conn:
        found = {
            table: dict(conn.execute(text(sql)).all())
            for table, sql in [
                ("campaign", "SELECT id, managed_by FROM campaign"),
                ("buyer", "SELECT id, managed_by FROM buyer"),
                ("didnumber", "SELECT number, managed_by FROM didnumber"),
                ("trunk", "SELECT id, managed_by FROM trunk"),
            ]
        }
    assert found == {
        "campaign": {"from-file": "file", "from-api": "admin"},
        "buyer": {"b-file": "file", "b-unknown": "admin"},
        "didnumber": {"+18005550100": "file", "+18005550101": "admin"},
        "trunk": {"t-file": "file", "t-api": "admin"},  # the latest create counts
    }
    engine.dispose()
