"""Which errors mean "the database is down or busy" (503, retry) and which are bugs (500)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import exc as sa

from rtbridge.storage.engine import make_engine
from rtbridge.storage.outage import DatabaseUnavailable, is_outage
from rtbridge.storage.sql import transaction
from tests.support.sqlite_lock import Locker


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("database table is locked"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (sqlite3.OperationalError("no such table: reservation"), False),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), False),
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.errors.UndefinedTable("relation does not exist"), False),
        (sa.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")), True),
        (sa.OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such column: x")), False),
        (sa.TimeoutError("QueuePool limit reached"), True),
        (DatabaseUnavailable("down"), True),
        (ValueError("a bug"), False),
    ],
)
def test_outage_or_bug(error: BaseException, outage: bool) -> None:
    assert is_outage(error) is outage


def test_a_locked_file_is_database_unavailable_after_the_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}?timeout=0.2")
    with transaction(engine, write=True) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    locker = Locker(tmp_path / "x.db")
    try:
        with pytest.raises(DatabaseUnavailable), transaction(engine, write=True) as db:
            db.execute("INSERT INTO t VALUES (1)")
        with transaction(engine, write=False) as db:  # readers are not blocked (WAL)
            assert db.one("SELECT count(*) AS n FROM t") == {"n": 0}
    finally:
        locker.release()
    with transaction(engine, write=True) as db:  # and the writer's connection still works
        db.execute("INSERT INTO t VALUES (1)")
    engine.dispose()


def test_a_bad_sqlite_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        make_engine("sqlite:///x.db?timeout=soon")
