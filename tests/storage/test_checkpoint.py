"""The WAL is checkpointed by the background thread, not by commits (SQLite)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from rtbridge.storage.checkpoint import WalCheckpointer
from rtbridge.storage.database import open_database


def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    engine = open_database(f"sqlite:///{db}", background_checkpoint=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (x TEXT)"))
    for _ in range(30):  # well past the 1000-page autocheckpoint threshold
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO filler VALUES (:x)"), [{"x": "y" * 4000}] * 40)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 1000 * 4096  # nothing checkpointed it on the way
    busy, frames, done = WalCheckpointer(engine).checkpoint()
    assert busy == 0 and frames > 1000 and done == frames
    engine.dispose()
