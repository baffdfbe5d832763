"""What admin-facing tests share: an admin token made the way ``rtbridge admin-token create``
makes it, and the bytes of a SQLite database (to prove a secret is not stored in them)."""

from __future__ import annotations

from pathlib import Path

from rtbridge.admin import tokens
from rtbridge.admin.changes import write_session
from rtbridge.storage.database import open_database


def make_token(url: str, name: str = "ops") -> str:
    engine = open_database(url)
    try:
        with write_session(engine) as session:
            return tokens.create(session, actor="test", name=name)
    finally:
        engine.dispose()


def db_bytes(sqlite_url: str) -> bytes:
    """The database file and its WAL/SHM siblings, as one byte string."""
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))
