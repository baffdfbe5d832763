"""The cross-process locks that make write transactions safe on both databases (SQLite takes
its one write lock at BEGIN, see ``storage.sql.transaction``)."""

from __future__ import annotations

import zlib

from rtbridge.storage.sql import Db
from rtbridge.storage.trips import Trip

_LOCK_NAMESPACE = 0x5254  # "RT": first key of the two-int advisory locks, ours alone


def lock_campaign(db: Db | Trip, campaign_id: str) -> None:
    """Serialise allocations within one campaign until the transaction ends.

    SQLite already holds the database write lock (BEGIN IMMEDIATE). On PostgreSQL a
    transaction-scoped advisory lock keyed by the campaign does it without locking rows that
    readers need; under READ COMMITTED each later statement sees every earlier commit. In a
    :class:`Trip`, the lock is taken in its round trip."""
    if db.sqlite:
        return
    key = zlib.crc32(campaign_id.encode())  # stable across processes, unlike hash()
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
