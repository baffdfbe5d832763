"""Round trips (storage/trips.py): statements sent together, on both databases, with the
failures a pipeline can meet on PostgreSQL: a failing statement, a session whose prepared
statements were dropped, a wait cancelled half way, two transactions in one trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from rtbridge.admin.apply import apply_file
from rtbridge.domain.errors import RtbError
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import trips
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.outage import DatabaseUnavailable
from rtbridge.storage.reservations import Outcome, Reservations
from rtbridge.storage.sql import numbered, transaction
from rtbridge.storage.trips import Trip
from tests.conftest import write_config
from tests.support.demo import KEY_OPEN, one_buyer_config

postgres_only = pytest.mark.postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    engine = open_database(str(request.getfixturevalue(name)))
    with transaction(engine, write=True) as db:
        db.execute("CREATE TABLE t (k VARCHAR(8) PRIMARY KEY, n INTEGER, at TIMESTAMP)")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = open_database(postgres_url)
    with transaction(engine, write=True) as db:
        db.execute("CREATE TABLE t (k VARCHAR(8) PRIMARY KEY, n INTEGER, at TIMESTAMP)")
    yield engine
    engine.dispose()


def _count(engine: Engine) -> int:
    with transaction(engine, write=False) as db:
        return int(db.rows("SELECT count(*) AS n FROM t")[0]["n"])


def test_numbered_parameters_keep_one_number_per_name() -> None:
    sql, names = numbered("SELECT :a, :b WHERE x IN (:a) AND y = 'c::text' AND z = :b::int")
    assert sql == b"SELECT $1, $2 WHERE x IN ($1) AND y = 'c::text' AND z = $2::int"
    assert names == ("a", "b")


def test_a_trip_reads_what_it_wrote_before_and_commits(engine: Engine) -> None:
    at = datetime(2026, 12, 6, 23, 59, 1, 250000, tzinfo=UTC)
    with transaction(engine, write=True) as db:
        trip = Trip(db)
        for i in range(3):
            trip.execute("INSERT INTO t (k, n, at) VALUES (:k, :n, :at)",
                         {"k": f"k{i}", "n": i, "at": db.ts(at)})  # fmt: skip
        rows = trip.query("SELECT k, n, at FROM t WHERE n >= :n ORDER BY k", {"n": 1})
        trip.commit()
        trip.run()
        got = rows.get()
    assert [(r["k"], r["n"]) for r in got] == [("k1", 1), ("k2", 2)]
    assert all(db.read_ts(r["at"]) == at.replace(tzinfo=UTC) for r in got)
    assert _count(engine) == 3


def test_a_failing_statement_fails_the_trip_and_writes_nothing(engine: Engine) -> None:
    with transaction(engine, write=True) as db:
        db.execute("INSERT INTO t (k, n) VALUES ('a', 1)")
    with (
        pytest.raises(Exception, match=r"(?i)unique|duplicate"),
        transaction(engine, write=True) as db,
    ):
        trip = Trip(db)
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 2)", {"k": "b"})
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 3)", {"k": "a"})  # taken
        after = trip.query("SELECT count(*) AS n FROM t")
        trip.run()
    assert _count(engine) == 1
    if engine.dialect.name != "sqlite":  # nothing after the failure ran: no rows to read
        with pytest.raises(RuntimeError, match="has not run"):
            after.get()
    with transaction(engine, write=True) as db:  # the pooled connection is fine
        trip = Trip(db)
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 2)", {"k": "b"})
        trip.run()
    assert _count(engine) == 2


@postgres_only
def test_prepared_statements_outlive_rollbacks_and_come_back_when_dropped(
    pg_engine: Engine,
) -> None:
    """psycopg drops every prepared statement of a session at a rollback when it prepared
    some itself; ours are off for it (storage/engine.py), and should they be dropped all the
    same, one trip fails and the next prepares them again."""

    def trip_once(n: int) -> None:
        with transaction(pg_engine, write=True) as db:
            trip = Trip(db)
            trip.execute("INSERT INTO t (k, n) VALUES (:k, :n)", {"k": f"k{n}", "n": n})
            trip.run()

    for n in range(3):
        trip_once(n)
    for _ in range(8):  # what psycopg would have prepared, then a rollback
        with pytest.raises(ZeroDivisionError), transaction(pg_engine, write=False) as db:
            db.rows("SELECT count(*) AS n FROM t")
            raise ZeroDivisionError
    trip_once(3)
    with transaction(pg_engine, write=False) as db:
        db.execute("DEALLOCATE ALL")
    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        trip_once(4)
    trip_once(4)
    assert _count(pg_engine) == 5


@postgres_only
def test_a_read_by_index_keeps_its_index_when_the_table_grows(pg_engine: Engine) -> None:
    """A read prepared while its table was small keeps the plan made then: it must go by
    the index still once the table has grown (no ANALYZE in between), else every batch
    scans the whole table. Planning it at each execution instead cost more than the read."""
    sql = "SELECT k FROM t WHERE n IN (:a, :b)"
    with transaction(pg_engine, write=True) as db:
        db.execute("CREATE INDEX t_n ON t (n)")
        db.execute("INSERT INTO t (k, n) SELECT 's' || i, -i FROM generate_series(1, 50) i")
        db.execute("ANALYZE t")  # one page: a sequential scan is the cheaper plan now
    for _ in range(8):  # past PostgreSQL's five custom plans: one plan for any values now
        with transaction(pg_engine, write=True) as db:
            trip = Trip(db)
            rows = trip.query(sql, {"a": 1, "b": 2}, by_index=True)
            trip.run()
            assert rows.get() == []
    with transaction(pg_engine, write=True) as db:
        db.execute("INSERT INTO t (k, n) SELECT 'k' || i, i FROM generate_series(1, 50000) i")
        name = trips._sessions[db.raw].names[numbered(sql)[0]].decode()
    with transaction(pg_engine, write=False) as db:  # sequential scans on again
        assert trips._sessions[db.raw].names[numbered(sql)[0]].decode() == name  # that session
        plan = "\n".join(r["QUERY PLAN"] for r in db.rows(f"EXPLAIN EXECUTE {name}('7', '8')"))
    assert "Seq Scan" not in plan and "t_n" in plan, plan


@postgres_only
def test_a_trip_after_a_commit_is_a_transaction_of_its_own(pg_engine: Engine) -> None:
    """Trip.then: the first trip's COMMIT stands when the second's statements fail."""
    with pytest.raises(psycopg.errors.UniqueViolation), transaction(pg_engine, write=True) as db:
        first = Trip(db)
        first.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "a"})
        first.commit()
        second = Trip(db)
        second.execute("INSERT INTO t (k, n) VALUES (:k, 2)", {"k": "b"})
        second.execute("INSERT INTO t (k, n) VALUES (:k, 3)", {"k": "a"})
        first.then(second)
        first.run()
    with transaction(pg_engine, write=False) as db:
        assert db.rows("SELECT k, n FROM t") == [{"k": "a", "n": 1}]


@postgres_only
def test_a_wait_cancelled_half_way_throws_the_connection_away(pg_engine: Engine) -> None:
    """A trip whose wait is cancelled leaves answers in flight: its connection is closed
    and dropped from the pool, not rolled back on, and the next transaction works."""

    async def cancelled() -> None:
        with transaction(pg_engine, write=True) as db:
            trip = Trip(db)
            trip.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "a"})
            trip.execute("SELECT pg_sleep(:s)", {"s": 5})
            task = asyncio.ensure_future(trip.run_async())
            await asyncio.sleep(0.2)
            task.cancel()
            await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert pg_engine.pool.checkedout() == 0
    assert _count(pg_engine) == 0
    with transaction(pg_engine, write=True) as db:
        trip = Trip(db)
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "a"})
        trip.run()
    assert _count(pg_engine) == 1


@postgres_only
def test_a_dead_server_in_a_trip_is_an_outage(pg_engine: Engine) -> None:
    with pytest.raises(DatabaseUnavailable), transaction(pg_engine, write=True) as db:
        trip = Trip(db)
        trip.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "a"})
        trip.run()
    assert _count(pg_engine) == 0


# Chains of ping batches (Reservations.ping_chain) -------------------------------------------


def _pings(n: int, start: int = 0, key: str = KEY_OPEN) -> list[PingRequest]:
    return [
        PingRequest(key=key, caller_number=f"+1202555{start + i:04d}", inbound_number=None)
        for i in range(n)
    ]


@postgres_only
def test_a_chain_answers_its_batches_in_order_each_committed(
    postgres_url: str, tmp_path: Path
) -> None:
    """Each batch's COMMIT rides with the next one's locks and reads; the caps hold across
    them as if the pings ran one by one, and a batch refused whole needs no trip."""
    engine = open_database(postgres_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config(buyer="concurrency = 7")))
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    batches = [_pings(3), _pings(2, 3, key="no-such-key-000000000"), _pings(3, 5), _pings(3, 8)]
    queue = list(batches)
    answered: list[list[Outcome | RtbError]] = []
    asyncio.run(ops.ping_chain(lambda: queue.pop(0) if queue else [], answered.append))
    assert [len(a) for a in answered] == [3, 2, 3, 3]
    assert all(isinstance(r, RtbError) for r in answered[1])
    flat = [r for a in (answered[0], answered[2], answered[3]) for r in a]
    assert [getattr(r, "status", None) for r in flat] == ["reserved"] * 7 + ["no-target"] * 2
    assert engine.pool.checkedout() == 0
    with transaction(engine, write=False) as db:
        assert db.rows("SELECT count(*) AS n FROM reservation")[0]["n"] == 9
        assert db.rows("SELECT units FROM buyerlive")[0]["units"] == 7
    # The writes and the callers' live reservations are prepared: planned once, the read
    # with sequential scans off (test_a_read_by_index_keeps_its_index_when_the_table_grows).
    prepared = [text for s in trips._sessions.values() for text in s.names]
    assert any(p.startswith(b"INSERT INTO reservation") for p in prepared)
    assert any(b"caller_number IN" in p for p in prepared)
    engine.dispose()


@postgres_only
def test_a_failed_batch_in_a_chain_fails_the_batches_not_answered(
    postgres_url: str, tmp_path: Path
) -> None:
    """A caller number too long for its column fails the second batch's rows; the third
    batch, begun in the same round trip, fails with it. The first stays committed."""
    engine = open_database(postgres_url)
    apply_file(engine, write_config(tmp_path, one_buyer_config()))
    ops = Reservations(engine, CatalogCache(engine, recheck=0))
    bad = PingRequest(KEY_OPEN, "+1" + "2" * 40, None)
    queue = [_pings(2), [*_pings(2, 2), bad], _pings(2, 4)]
    answered: list[list[Outcome | RtbError]] = []
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        asyncio.run(ops.ping_chain(lambda: queue.pop(0) if queue else [], answered.append))
    assert len(answered) == 1 and not queue
    with transaction(engine, write=False) as db:
        assert db.rows("SELECT count(*) AS n FROM reservation")[0]["n"] == 2
    again = [_pings(1, 9)]
    asyncio.run(ops.ping_chain(lambda: again.pop() if again else [], answered.append))
    assert getattr(answered[-1][0], "status", None) == "reserved"
    engine.dispose()


@postgres_only
@pytest.mark.parametrize("waiting", ["blocking", "on the loop"])
def test_a_server_that_stops_answering_is_an_outage_in_bounded_time(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch, waiting: str
) -> None:
    """A server that keeps the connection but does not answer (here: busy for 3 s) fails
    the trip after ANSWER_WITHIN, as an outage, and its connection is thrown away."""
    monkeypatch.setattr(trips, "ANSWER_WITHIN", 0.5)

    async def on_loop(trip: Trip) -> None:
        await trip.run_async()

    started = time.monotonic()
    with (
        pytest.raises(DatabaseUnavailable, match=r"did not answer in 0\.5 s"),
        transaction(pg_engine, write=True) as db,
    ):
        trip = Trip(db)
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "a"})
        trip.execute("SELECT pg_sleep(:s)", {"s": 3})
        if waiting == "blocking":
            trip.run()
        else:
            asyncio.run(on_loop(trip))
    assert 0.4 < time.monotonic() - started < 2.5
    assert pg_engine.pool.checkedout() == 0
    with transaction(pg_engine, write=True) as db:  # a new connection works
        trip = Trip(db)
        trip.execute("INSERT INTO t (k, n) VALUES (:k, 1)", {"k": "b"})
        trip.run()
    with transaction(pg_engine, write=False) as db:  # and the silent one's row never was
        assert db.rows("SELECT k FROM t") == [{"k": "b"}]
