"""Round trips: the statements of one step of a transaction, sent to the database together.

A ping batch needs two steps (``storage/reservations.py``): lock and read, then write and
commit. On PostgreSQL each step is one :class:`Trip`, sent in libpq's pipeline mode and
answered in one round trip. It goes to libpq directly (``psycopg.pq``), not through psycopg's
cursors, which cost about 28 µs of Python per statement against 1.5 µs here (measured with a
pipeline of BEGIN, six lookups and COMMIT); psycopg's ``Transformer`` still dumps the
parameters and loads the rows, so values are what a cursor gives. The wait for the answer
either blocks (:meth:`Trip.run`) or lets the event loop serve requests meanwhile
(:meth:`Trip.run_async`, the HTTP server's ping batches, ``Reservations.ping_chain``).

On SQLite, in-process, there is nothing to save: each statement runs as it is added.

Steps are written once, as a generator yielding its trips (:data:`Steps`), and driven by
:func:`drive` (blocking), or trip by trip by a caller that sends some of them together."""

from __future__ import annotations

import asyncio
import select
import time
import weakref
from collections.abc import Generator, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

from rtbridge.storage.engine import ANSWER_WITHIN
from rtbridge.storage.sql import Db, numbered

T = TypeVar("T")
Steps = Generator["Trip", None, T]

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_ERROR = (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.PIPELINE_ABORTED)
_IDLE = pq.TransactionStatus.IDLE

_PREPARED_MAX = 512
_NO_SEQSCAN = b"SET LOCAL enable_seqscan = off"


class _Session:
    """The statements prepared on one connection (its server session), by text. A ping
    batch's are a few shapes (an IN list or a VALUES list per length), so the bound is only
    a safeguard. They last as long as the session: psycopg's own prepared statements are off
    on our connections (storage/engine.py), since psycopg drops every statement of the
    session, ours too, at each rollback it sees while it has some of its own. Names are
    never used twice in a session, whatever was dropped.

    After five executions PostgreSQL may keep one plan for any values, made with the
    statistics of the time. That is what saves planning each batch's statements: the INSERT,
    counter moves and lock have one plan anyway; a read of a growing table by an index
    (``Trip.query(by_index=True)``, the callers' live reservations) is planned with
    sequential scans off, for the plan kept while the table was small was a sequential
    scan, 3-7 ms a batch once the table had grown (bench/api.py, before autovacuum analysed
    it). Planning that read at each batch instead, as before, cost PostgreSQL ~140 us a
    batch, more than the read itself (pg_stat_statements)."""

    def __init__(self) -> None:
        self.names: dict[bytes, bytes] = {}
        self._made = 0

    def new_name(self) -> bytes:
        self._made += 1
        return b"rtb_%d" % self._made


_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()


class Rows:
    """The rows of one statement of a trip, as dicts; there once the trip has run."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] | None = None

    def get(self) -> list[dict[str, Any]]:
        if self._rows is None:
            raise RuntimeError("the trip these rows belong to has not run")
        return self._rows


class Trip:
    """Statements sent together: on PostgreSQL in one pipeline, BEGIN first when the
    connection is idle, and answered in one round trip; on SQLite run as they are added.

    Each statement still runs alone and in order, with its own snapshot: a lock taken by one
    holds for the reads after it. A failing statement fails the trip with its own error (the
    ones after it are not run), and the transaction is rolled back as for any error."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.sqlite = db.sqlite
        # (statement, parameters, its rows if read): prepared when it has parameters
        self._queued: list[tuple[bytes, Sequence[Any], Rows | None]] = []
        self._by_index = False  # sequential scans turned off (query(by_index=True))

    # Adding statements --------------------------------------------------------------------
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._add(sql, params or {}, None)

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, by_index: bool = False
    ) -> Rows:
        """``by_index``: a read of a growing table that must go by an index whatever size the
        table had when its plan was made (see :class:`_Session`): on PostgreSQL the trip
        turns sequential scans off before it, for the rest of the transaction."""
        if by_index and not self.db.sqlite and not self._by_index:
            self._by_index = True
            self._queued.append((_NO_SEQSCAN, (), None))
        rows = Rows()
        self._add(sql, params or {}, rows)
        return rows

    def execute_numbered(self, sql: bytes, values: Sequence[Any]) -> None:
        """A PostgreSQL statement already written with ``$n`` parameters (PostgreSQL only)."""
        assert not self.db.sqlite
        self._queued.append((sql, values, None))

    def then(self, other: Trip) -> None:
        """Send ``other`` in this trip's round trip, after this one's COMMIT: ``other`` then
        begins a transaction of its own (PostgreSQL only). ``other`` must not be run."""
        assert not self.db.sqlite and self._queued[-1][0] == b"COMMIT"
        self._queued.append((b"BEGIN", (), None))
        self._queued.extend(other._queued)
        other._queued = []

    def commit(self) -> None:
        """End the transaction as the trip's last statement; :func:`sql.transaction` then
        finds nothing left to commit."""
        if self.db.sqlite:
            self.db.raw.commit()
        else:
            self._queued.append((b"COMMIT", (), None))

    def _add(self, sql: str, params: Mapping[str, Any], rows: Rows | None) -> None:
        if self.db.sqlite:
            if rows is None:
                self.db.execute(sql, params)
            else:
                rows._rows = self.db.rows(sql, params)
            return
        text, names = numbered(sql)
        self._queued.append((text, [params[name] for name in names], rows))

    # Running ------------------------------------------------------------------------------
    def run(self) -> None:
        """Send the statements and wait for their answers, blocking."""
        deadline = time.monotonic() + ANSWER_WITHIN
        for wait in self._exchange():
            _wait_blocking(self.db.raw.pgconn.socket, wait, deadline)

    async def run_async(self) -> None:
        """Send the statements and wait for their answers on the running event loop."""
        deadline = asyncio.get_running_loop().time() + ANSWER_WITHIN
        for wait in self._exchange():
            await _wait_on_loop(self.db.raw.pgconn.socket, wait, deadline)

    def _exchange(self) -> Generator[bool, None, None]:
        """Yields whenever it must wait for the socket: True to write, False to read."""
        if self.db.sqlite or not self._queued:
            return
        conn = self.db.raw
        pgconn = conn.pgconn
        # Until the pipeline is out of the way, an interruption (an error, a cancelled wait)
        # leaves answers in flight that nothing could match: sql.transaction then closes the
        # connection instead of rolling back on it.
        self.db.broken = True
        if pgconn.transaction_status == _IDLE:
            # Our own BEGIN in the pipeline: psycopg's would wait for its answer first.
            # The connection stays in autocommit until sql.transaction hands it back.
            conn.autocommit = True
            self._queued.insert(0, (b"BEGIN", (), None))
        transformer = Transformer(conn)
        session = _sessions.get(conn) or _sessions.setdefault(conn, _Session())
        prepared = session.names
        fresh: dict[bytes, bytes] = {}  # prepared by this trip
        preparing: list[tuple[bytes, bytes] | None] = []  # per result: a statement prepared
        pgconn.enter_pipeline_mode()
        for text, values, _ in self._queued:
            if not values:  # BEGIN, COMMIT, SET: nothing to prepare
                pgconn.send_query_params(text, None)
                preparing.append(None)
                continue
            # Text, of types the server infers from where each parameter stands, so that one
            # prepared statement serves every value (psycopg's own choice of a type by the
            # value, int2 for a small number, would need one per combination).
            dumped = transformer.dump_sequence(values, [PyFormat.TEXT] * len(values))
            name = prepared.get(text) or fresh.get(text)
            if name is None and len(prepared) + len(fresh) < _PREPARED_MAX:
                name = fresh[text] = session.new_name()
                pgconn.send_prepare(name, text)
                preparing.append((text, name))
            if name is None:
                pgconn.send_query_params(text, dumped)
            else:
                pgconn.send_query_prepared(name, dumped)
            preparing.append(None)
        pgconn.pipeline_sync()
        while pgconn.flush():
            yield True
        results = yield from _results(pgconn, len(preparing))
        pgconn.exit_pipeline_mode()
        self.db.broken = False
        for made, result in zip(preparing, results, strict=True):
            if made is not None and result.status == pq.ExecStatus.COMMAND_OK:
                prepared[made[0]] = made[1]
        failed = next((r for r in results if r.status == pq.ExecStatus.FATAL_ERROR), None)
        if failed is not None:
            error = errors.error_from_result(failed, encoding=conn.info.encoding)
            if isinstance(error, errors.InvalidSqlStatementName):
                prepared.clear()  # dropped behind our back (see storage/engine.py): again
            raise error
        answers = [r for made, r in zip(preparing, results, strict=True) if made is None]
        for (_, _, rows), result in zip(self._queued, answers, strict=True):
            if rows is not None:
                transformer.set_pgresult(result)
                names = [result.fname(i).decode() for i in range(result.nfields)]  # type: ignore[union-attr]
                loaded = transformer.load_rows(0, result.ntuples, tuple)
                rows._rows = [dict(zip(names, row, strict=True)) for row in loaded]


class BulkInsert:
    """One INSERT of many rows: ``executemany`` on SQLite (in-process: a step per row costs
    nothing more), one multi-row ``VALUES`` statement on PostgreSQL (one statement per row
    would each be answered, and reading their answers back cost a ping batch more than the
    inserts did; arrays to ``unnest`` are dumped in Python, slower still). ``columns``:
    (column, parameter) each; a parameter may fill two columns. ``tail`` ends the statement
    (an ``ON CONFLICT`` clause)."""

    def __init__(self, table: str, columns: Sequence[tuple[str, str]], tail: str = "") -> None:
        self._head = f"INSERT INTO {table} ({', '.join(column for column, _ in columns)}) VALUES "
        self._tail = f" {tail}" if tail else ""
        self._params = [param for _, param in columns]
        self.sqlite = (
            self._head + "(" + ", ".join(f":{param}" for param in self._params) + ")" + self._tail
        )
        self._postgres: dict[int, bytes] = {}  # by number of rows

    def add(self, trip: Trip, rows: Sequence[Mapping[str, Any]]) -> None:
        if trip.db.sqlite:
            trip.db.execute_many(self.sqlite, rows)
            return
        sql = self._postgres.get(len(rows))
        if sql is None:
            width = len(self._params)
            values = ", ".join(
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                for r in range(len(rows))
            )
            sql = self._postgres[len(rows)] = (self._head + values + self._tail).encode()
        trip.execute_numbered(sql, [row[param] for row in rows for param in self._params])


def _results(pgconn: pq.abc.PGconn, count: int) -> Generator[bool, None, list[pq.abc.PGresult]]:
    """One result per statement, then the pipeline's sync."""
    results: list[pq.abc.PGresult] = []
    while True:
        pgconn.consume_input()
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:  # the end of one statement's results
                continue
            if result.status == _SYNC:
                if len(results) != count:
                    raise psycopg.OperationalError(
                        f"pipeline answered {len(results)} statements of {count}"
                    )
                return results
            if result.status not in _OK and result.status not in _ERROR:
                raise psycopg.OperationalError(f"unexpected result in a pipeline: {result.status}")
            results.append(result)
        yield False


def _silent() -> psycopg.OperationalError:
    return psycopg.OperationalError(f"the database did not answer in {ANSWER_WITHIN:g} s")


def _wait_blocking(fd: int, write: bool, deadline: float) -> None:
    left = deadline - time.monotonic()
    ready = select.select([fd], [fd] if write else [], [], max(left, 0))
    if not any(ready):
        raise _silent()


async def _wait_on_loop(fd: int, write: bool, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    def give_up() -> None:
        if not ready.done():
            ready.set_exception(_silent())

    if write:
        loop.add_writer(fd, wake)
    loop.add_reader(fd, wake)  # (writing: the server may answer, or fail, before taking all)
    timer = loop.call_at(deadline, give_up)
    try:
        await ready
    finally:
        timer.cancel()
        loop.remove_reader(fd)
        if write:
            loop.remove_writer(fd)


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` to its end, each trip blocking until answered."""
    try:
        trip = next(steps)
        while True:
            try:
                trip.run()
            except BaseException as exc:
                trip = steps.throw(exc)  # its transaction rolls back and the error goes on
            else:
                trip = steps.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def finish(steps: Steps[T]) -> T:
    """The value of ``steps``, whose last trip has run."""
    try:
        steps.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("steps yielded a trip after their last")
