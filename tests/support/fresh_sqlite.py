"""A new SQLite database in milliseconds: the schema the migrations make, copied (SQLite's
backup) from one database migrated at the start of the test session, instead of running
every migration again: ~200 ms a database, most of a small test's time, and some 600 tests
make one.

Only ``open_database``'s migration in the test process is replaced, and only for a SQLite
database without tables; one with tables (an older schema a test built) is migrated for real.
The migrations themselves are tested on their own (tests/storage/test_migrations.py, which
calls ``storage.engine.migrate``), and every process a test starts migrates as users' do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from rtbridge.storage.engine import is_sqlite, make_engine, migrate


class FreshSqlite:
    def __init__(self, directory: Path) -> None:
        self.template = directory / "migrated.db"
        engine = make_engine(f"sqlite:///{self.template}")
        try:
            migrate(engine)
        finally:
            engine.dispose()

    def migrate(self, engine: Engine) -> None:
        """``storage.engine.migrate``, by a copy of the template when the database is new."""
        if is_sqlite(engine):
            with engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                if raw.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
                    source = sqlite3.connect(self.template)
                    try:
                        source.backup(raw)
                    finally:
                        source.close()
                    return
        migrate(engine)
