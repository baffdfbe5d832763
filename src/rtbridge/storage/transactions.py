"""Write transactions that are safe across processes on both databases."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from rtbridge.storage.engine import IMMEDIATE, is_sqlite
from rtbridge.storage.sql import Db

_LOCK_NAMESPACE = 0x5254  # "RT": first key of the two-int advisory lock, ours alone


def utcnow() -> datetime:
    """Aware UTC, the form every timestamp column takes and returns."""
    return datetime.now(UTC)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds SQLite's write lock from BEGIN (see ``IMMEDIATE``)."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


def lock_campaign(conn: Connection, campaign_id: str) -> None:
    """Serialise allocations within one campaign until the transaction ends.

    SQLite already holds the database write lock (BEGIN IMMEDIATE). On PostgreSQL a
    transaction-scoped advisory lock keyed by the campaign does it without locking rows that
    readers need; under READ COMMITTED each later statement sees every earlier commit."""
    if conn.dialect.name == "sqlite":
        return
    key = zlib.crc32(campaign_id.encode())  # stable across processes, unlike hash()
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:ns, :key)"),
        {"ns": _LOCK_NAMESPACE, "key": key - (1 << 31)},
    )


def lock_campaign_raw(db: Db, campaign_id: str) -> None:
    """:func:`lock_campaign` on a driver connection (``storage.sql``)."""
    if db.sqlite:
        return
    key = zlib.crc32(campaign_id.encode())
    db.execute(
        "SELECT pg_advisory_xact_lock(:ns, :key)", {"ns": _LOCK_NAMESPACE, "key": key - (1 << 31)}
    )


def try_lock_sweep(db: Db) -> bool:
    """One expiry sweeper at a time across processes (PostgreSQL; SQLite's write lock already
    serialises), so a reservation gets one ``expired`` history row, not one per process."""
    if db.sqlite:
        return True
    row = db.one("SELECT pg_try_advisory_xact_lock(:ns, 0) AS ok", {"ns": _LOCK_NAMESPACE + 1})
    return bool(row and row["ok"])


__all__ = ["is_sqlite", "lock_campaign", "utcnow", "write_transaction"]
