"""The ``bid`` rows' retention: every RTB buyer's answer to every auction is a row (written
with its ping, storage/reservations.py), kept ``bid_retention_days`` and deleted oldest
first, a bounded batch per transaction, so pruning never holds the write lock for long."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from rtbridge.storage.sql import transaction
from rtbridge.timestamps import utcnow

BATCH = 5000  # rows deleted per transaction


def prune(engine: Engine, retention_days: int, *, now: datetime | None = None,
          batches: int = 20) -> int:  # fmt: skip
    """Delete bids asked more than ``retention_days`` ago (at most ``batches`` x
    :data:`BATCH` of them: the next run goes on); how many went."""
    before = (now or utcnow()) - timedelta(days=retention_days)
    deleted = 0
    for _ in range(batches):
        with transaction(engine, write=True) as db:
            gone = db.execute(
                "DELETE FROM bid WHERE id IN (SELECT id FROM bid WHERE at < :before "
                "ORDER BY id LIMIT :n)",
                {"before": db.ts(before), "n": BATCH},
            ).rowcount
        deleted += gone
        if gone < BATCH:
            break
    return deleted
