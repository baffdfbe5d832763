"""No hot path counts or scans reservations: every statement a ping (capped buyers, DID pool,
shield), a confirm, a cancel, the SIP claim and call end, the sweeper and a full buyer's
relief run is traced on SQLite and its plan read back. A full scan of ``reservation`` or a
``count(`` would make the cost grow with the table (issue 8)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.reservations import Reservations
from tests.conftest import Clock, write_config
from tests.support.demo import KEY_OPEN, one_buyer_config


def test_hot_paths_use_indexes_and_count_nothing(
    sqlite_url: str, tmp_path: Path, clock: Clock
) -> None:
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config(
        buyer="concurrency = 2\ndaily_cap = 50", key="ttl_seconds = 10",
        pool='"+18339510260", "+18334583385"')))  # fmt: skip
    traced: list[str] = []

    @event.listens_for(engine, "connect")
    def _trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(traced.append)

    engine.dispose()  # pooled connections reconnect, traced
    ops = Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)

    def ping(caller: str | None) -> str:
        req = PingRequest(key=KEY_OPEN, caller_number=caller, inbound_number=None)
        return ops.ping(req).uuid

    a = ping("+12025550101")
    ping("+12025550101")  # shielded
    b = ping("+12025550102")
    ping("+12025550103")  # full: relief probes, finds nothing due, refuses
    ops.update(a, KEY_OPEN, "confirmed")
    ops.update(b, KEY_OPEN, "cancelled")
    calls.find_pstn(engine, did="+18339510260", caller="+12025550101", now=clock())
    calls.claim(engine, uuid=a, publisher_id="p1", now=clock(), agent="t", source="x")
    calls.answered(engine, uuid=a, at=clock())
    calls.ended(engine, uuid=a, answer_at=clock(), end_at=clock() + timedelta(seconds=9),
                publisher_code=200, buyer_code=200, hangup_by="buyer", duration=9.0)  # fmt: skip
    c, d = ping("+12025550104"), ping("+12025550105")
    clock.advance(11)
    ping("+12025550106")  # full by the counters: relieves c and d, then reserves
    ping(None)
    clock.advance(11)
    ops.expire_due()
    ops.lookup(c, KEY_OPEN)
    del d

    statements = [s for s in traced if "reservation " in s]
    assert len(statements) >= 25
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for sql in statements:
            assert "count(" not in sql.lower(), sql
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
                continue
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not [p for p in plan if p.startswith("SCAN ")], (sql, plan)
    engine.dispose()


def test_metrics_read_only_the_live_rows(sqlite_url: str) -> None:
    """``/metrics`` counts live reservations by status: through the partial index of live
    rows, never the whole table."""
    from rtbridge.storage.reservations import LIVE
    from rtbridge.storage.sql import transaction

    engine = open_database(sqlite_url)
    with transaction(engine, write=False) as db:
        plan = [
            r["detail"]
            for r in db.rows(
                f"EXPLAIN QUERY PLAN SELECT status, count(*) AS n FROM reservation WHERE {LIVE} "  # noqa: S608
                "GROUP BY status",
                {"now": "2026-01-01 00:00:00.000000"},
            )
        ]
    assert any("USING INDEX ix_reservation_live_caller" in p for p in plan), plan
    engine.dispose()


def test_the_orphan_sweep_reads_only_the_index_of_open_calls(
    sqlite_url: str, tmp_path: Path, clock: Clock
) -> None:
    """The running agent sweeps for orphans every heartbeat: with nothing to close that is
    one read, answered from the partial index of open calls without a table row; closing
    one, and crash recovery, find the calls through it too — never a scan of
    ``callrecord``, which keeps every call ever made."""
    engine = open_database(sqlite_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config()))
    ops = Reservations(engine, CatalogCache(engine, recheck=0), clock=clock)
    uuids = [ops.ping(PingRequest(key=KEY_OPEN, caller_number=f"+1202555010{i}",
                                  inbound_number=None)).uuid for i in range(2)]  # fmt: skip
    for uuid in uuids:
        calls.claim(engine, uuid=uuid, publisher_id="p1", now=clock(), agent="a", source="x")
    traced: list[str] = []

    @event.listens_for(engine, "connect")
    def _trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(traced.append)

    engine.dispose()
    clock.advance(5)
    carried = calls.close_orphans(engine, agent="a", now=clock(), settled_before=clock(),
                                  carried=uuids)  # fmt: skip
    assert carried == []
    (sweep,) = [s for s in traced if "callrecord" in s]
    closed = calls.close_orphans(engine, agent="a", now=clock(), settled_before=clock(),
                                 carried=uuids[:1])  # fmt: skip
    assert [o.uuid for o in closed] == uuids[1:]
    assert calls.recover(engine, agent="a", now=clock()).closed == 1
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sweep)]
        assert plan == ["SEARCH callrecord USING COVERING INDEX ix_callrecord_open "
                        "(agent=? AND invite_at<?)"], plan  # fmt: skip
        reads = [s for s in traced if s.lstrip().startswith("SELECT") and "callrecord c" in s]
        assert len(reads) == 2, traced  # the sweep closing one, and recovery
        for sql in reads:  # closing orphans goes by their uuids; recovery by the index
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not [p for p in plan if p.startswith("SCAN ")], (sql, plan)
        assert any("ix_callrecord_open" in p for p in plan), plan
    engine.dispose()
