"""Checkpoint the SQLite WAL on a thread of its own, off the request path.

A PASSIVE checkpoint copies committed pages into the database file without blocking readers
or writers; sqlite3 releases the GIL while it works and fsyncs, so the event loop keeps
serving. Used with ``make_engine(..., background_checkpoint=True)``."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger("rtbridge.storage")


class WalCheckpointer:
    def __init__(self, engine: Engine, *, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtbridge-wal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.checkpoint()  # leave a short WAL behind

    def checkpoint(self) -> tuple[int, int, int]:
        """(busy, WAL frames, frames checkpointed), as ``PRAGMA wal_checkpoint`` reports."""
        fairy = self._engine.raw_connection()
        try:
            raw = fairy.driver_connection
            assert raw is not None  # a checked-out connection always has its driver connection
            row = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return (int(row[0]), int(row[1]), int(row[2]))
        finally:
            fairy.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.checkpoint()
            except Exception:  # a failed checkpoint only leaves the WAL longer; retry
                log.exception("WAL checkpoint failed; retrying")
