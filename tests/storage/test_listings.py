"""The console's listings page by keyset over thousands of rows: every row exactly once,
newest first, filters applied, each page from the primary key (no sort of the table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlmodel import Session

from rtbridge.storage import listings
from rtbridge.storage.database import open_database

N = 3000


def _fill(engine: Engine) -> list[str]:
    """N reservations over N seconds (uuid v7 order = time order), a call for every third."""
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    uuids = []
    for i in range(N):
        at = start + timedelta(seconds=i)
        ms = int(at.timestamp() * 1000)
        h = f"{ms:012x}"
        uuid = f"{h[:8]}-{h[8:]}-7000-8000-{i:012x}"
        uuids.append(uuid)
        status = ("no-target", "expired", "completed")[i % 3]
        stamp = at.replace(tzinfo=None).isoformat(" ", "microseconds")
        rows.append({"u": uuid, "k": f"key{i % 2}", "p": f"p{i % 4}", "s": status,
                     "r": "no-buyers" if status == "no-target" else None, "t": stamp,
                     "b": None if status == "no-target" else "b1"})  # fmt: skip
        if status == "completed":
            calls.append({"u": uuid, "t": stamp, "c": i % 2 == 0})
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO reservation (uuid, key_id, publisher_id, campaign_id, buyer_id, status, "
            "reason, tags, created_at, expires_at, updated_at) "
            "VALUES (:u, :k, :p, 'c1', :b, :s, :r, '{}', :t, :t, :t)"), rows)  # fmt: skip
        conn.execute(text(
            "INSERT INTO callrecord (reservation_uuid, via, invite_at, end_at, publisher_code, "
            "buyer_code, hangup_by, duration, converted, payout) "
            "VALUES (:u, 'sip', :t, :t, 200, 200, 'buyer', 61.0, :c, 12.5)"), calls)  # fmt: skip
    return uuids


def test_rtb_log_pages_through_every_row_once_newest_first(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    uuids = _fill(engine)
    seen: list[str] = []
    before = None
    # How fast a page is, is not asserted here (a timing measures the machine, and fails on
    # a loaded one): what keeps a page cheap is that it is a search on the key, never a scan
    # and a sort, and test_pages_walk_the_primary_keys reads that from SQLite's plans.
    with Session(engine) as session:
        while True:
            page = listings.rtb_log(session, before=before, limit=100)
            seen += [r["uuid"] for r in page.rows]
            if page.next_before is None:
                break
            before = page.next_before
    assert seen == uuids[::-1]
    with Session(engine) as session:
        only = listings.rtb_log(session, publisher="p1", status="no-target", key_id="key1",
                                limit=500).rows  # fmt: skip
        assert only and all(r["publisher"] == "p1" and r["status"] == "no-target" for r in only)
        assert all(r["reason"] == "no-buyers" for r in only)
        since = datetime(2026, 12, 1, 0, 10, tzinfo=UTC)
        until = since + timedelta(seconds=30)
        window = listings.rtb_log(session, since=since, until=until).rows
        assert [r["created_at"] for r in window][-1] == since and len(window) == 30
    engine.dispose()


def test_call_log_pages_by_id_and_filters(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    _fill(engine)
    with Session(engine) as session:
        ids: list[int] = []
        before = None
        while True:
            page = listings.call_log(session, before=before, limit=250)
            rows, before = page.rows, page.next_before
            ids += [r["id"] for r in rows]
            if before is None:
                break
        assert ids == sorted(ids, reverse=True) and len(ids) == N // 3
        rows = listings.call_log(session, converted=True, publisher="p0", limit=500).rows
        assert rows and all(r["converted"] and r["publisher"] == "p0" for r in rows)
        assert listings.live_calls(session) == []  # every call here has ended
    engine.dispose()


def test_pages_walk_the_primary_keys(sqlite_url: str) -> None:
    """Read back SQLite's plans: a page is a search on the key, never a scan plus a sort."""
    engine = open_database(sqlite_url)
    _fill(engine)
    plans: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            found = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
            plans.append(" | ".join(str(row[-1]) for row in found))

    with Session(engine) as session:
        listings.rtb_log(session, before="01a2354e-0000-7000-8000-000000000000", limit=50)
        listings.call_log(session, before=500, limit=50)
        listings.live_calls(session)
    assert len(plans) == 3, plans
    for plan in plans[:2]:
        assert "TEMP B-TREE" not in plan, plan  # no sort: the key's own order
    assert "SEARCH reservation USING" in plans[0], plans[0]
    assert "SEARCH callrecord USING INTEGER PRIMARY KEY" in plans[1], plans[1]
    # live calls: only a small partial index is read (and sorted): live reservations, or
    # open call records (the orphan sweep's index), whichever the planner prefers
    assert "ix_reservation_live_caller" in plans[2] or "ix_callrecord_open" in plans[2], plans[2]
    engine.dispose()


def test_a_page_of_calls_reads_its_attempts_in_one_indexed_query(sqlite_url: str) -> None:
    """Every call of a page with its buyer attempts in order, from one statement on
    ``callattempt`` (traced at the driver: it runs on the session's own connection) that
    searches an index by reservation instead of scanning every attempt ever made."""
    engine = open_database(sqlite_url)
    uuids = _fill(engine)
    called = uuids[2::3]  # the reservations with a call (_fill)
    attempts = [
        {"u": uuid, "n": n, "b": f"b{n}", "t": "2026-12-01 00:00:00.000000",
         "k": "busy" if n < 3 else "answered", "c": 486 if n < 3 else 200}
        for i, uuid in enumerate(called) for n in range(1, i % 3 + 2)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO callattempt (reservation_uuid, n, buyer_id, destination, started_at, "
            "final_code, kind, ended_at) VALUES (:u, :n, :b, 'sip:x@192.0.2.1', :t, :c, :k, :t)"
        ), attempts)  # fmt: skip
    traced: list[str] = []

    @event.listens_for(engine, "connect")
    def _trace(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(traced.append)

    engine.dispose()  # pooled connections reconnect, traced
    with Session(engine) as session:
        rows = listings.call_log(session, limit=100).rows
        reads = [s for s in traced if "FROM callattempt" in s]
        plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + reads[0]).fetchall()
    assert len(reads) == 1, reads
    steps = " | ".join(str(p[-1]) for p in plan)
    assert "SEARCH callattempt USING" in steps and "SCAN callattempt" not in steps, steps
    by_uuid = {r["uuid"]: r for r in rows}
    assert len(rows) == 100 and all("attempts" in r for r in rows)
    for i, uuid in enumerate(called):
        if uuid in by_uuid:
            tried = by_uuid[uuid]["attempts"]
            assert [a["n"] for a in tried] == list(range(1, i % 3 + 2))
            assert [a["buyer"] for a in tried] == [f"b{n}" for n in range(1, i % 3 + 2)]
    flat = listings.flat_call(by_uuid[called[-1]])
    assert flat["attempts_detail"].startswith("1 b1 486 busy")
    engine.dispose()


def test_agents_lease_states_and_the_calls_each_took_over(sqlite_url: str) -> None:
    """A held lease is live up to its own takeover_after and silent past it; a released one
    taken over since its start is taken over, else stopped; a lease held again after a
    takeover is live and keeps who took it last; what a peer took over is summed over every
    lease it took; a holder that is not rtbridge's ``host pid N ...`` is shown as written."""
    engine = open_database(sqlite_url)
    now = datetime.now(UTC)
    full = "edge pid 7 start 1 boot b ns n"
    agents = [  # name, seen this long ago, takeover_after, holder, taken_by, taken_calls
        ("a-held", 5.0, 6.0, full, None, None),
        ("b-quiet", 30.0, 20.0, "odd-holder", None, None),
        ("c-stopped", 1.0, 6.0, None, None, None),
        ("d-taken", 60.0, 6.0, None, "a-held", 3),
        ("e-taken", 60.0, 6.0, None, "a-held", 0),
        ("f-taken", 60.0, 6.0, None, "b-quiet", 2),
        ("g-rejoined", 1.0, 6.0, full, "b-quiet", 1),
    ]
    with engine.begin() as conn:
        for name, ago, after, holder, by, closed in agents:
            seen = (now - timedelta(seconds=ago)).replace(tzinfo=None).isoformat(" ")
            conn.execute(text(
                "INSERT INTO sipagent (name, started_at, seen_at, epoch, holder, beats, "
                "takeover_after, taken_by, taken_at, taken_calls) "
                "VALUES (:n, :s, :s, 1, :h, 0, :t, :by, CASE WHEN :by IS NULL THEN NULL ELSE :s END, :c)"
            ), {"n": name, "s": seen, "h": holder, "t": after, "by": by, "c": closed})  # fmt: skip
        conn.execute(
            text("UPDATE sipagent SET taken_at = '2026-01-01 00:00:00' WHERE name = 'g-rejoined'")
        )  # taken over before this run started
    with Session(engine) as session:
        rows = {r["name"]: r for r in listings.agents(session)}
    assert {n: r["state"] for n, r in rows.items()} == {
        "a-held": "live", "b-quiet": "silent", "c-stopped": "stopped",
        "d-taken": "taken over", "e-taken": "taken over", "f-taken": "taken over",
        "g-rejoined": "live",
    }  # fmt: skip
    assert rows["a-held"]["holder"] == "edge pid 7" and rows["b-quiet"]["holder"] == "odd-holder"
    assert {n: r["took_over"] for n, r in rows.items()} == {
        "a-held": 3, "b-quiet": 3, "c-stopped": 0, "d-taken": 0, "e-taken": 0, "f-taken": 0,
        "g-rejoined": 0,
    }  # fmt: skip
    assert rows["d-taken"]["taken_by"] == "a-held" and rows["d-taken"]["taken_calls"] == 3
    assert rows["d-taken"]["taken_at"] == rows["d-taken"]["seen_at"]
    engine.dispose()
