"""Plain SQL on the driver connection, for the statements on the hot path.

A ping is a handful of tiny statements; building and compiling SQLAlchemy expressions for
each cost more than running them (profiled: ~70% of a ping). Statements here are written
once with ``:name`` parameters and rewritten for the driver's style when first used. The
rows match what the SQLModel tables hold: SQLite keeps UTC times as
``YYYY-MM-DD HH:MM:SS.ffffff`` text and JSON as text, PostgreSQL has native types."""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine

from rtbridge.storage.engine import BUSY, BUSY_TIMEOUT
from rtbridge.storage.outage import DatabaseUnavailable, is_outage

_IDLE = TransactionStatus.IDLE
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Db:
    """One driver connection inside one transaction; see :func:`transaction`."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.sqlite = dialect == "sqlite"
        self.cursor = raw.cursor()

    # Values in and out --------------------------------------------------------------------
    def ts(self, value: datetime | None) -> Any:
        if value is None or not self.sqlite:
            return value
        if value.utcoffset():
            value = value.astimezone(UTC)
        # isoformat is C-fast (strftime was 7% of a ping under load, py-spy); the first 26
        # characters leave out the "+00:00" of an aware value without copying it first.
        return value.isoformat(" ", "microseconds")[:26]

    def read_ts(self, value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value.astimezone(UTC) if isinstance(value, datetime) else None
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def js(self, value: Any) -> str:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

    def read_js(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    # Statements ---------------------------------------------------------------------------
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        self.cursor.execute(sql if self.sqlite else _pyformat(sql), params or {})
        return self.cursor

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> None:
        self.cursor.executemany(sql if self.sqlite else _pyformat(sql), params)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return _dicts(self.execute(sql, params))

    # Round trips (PostgreSQL) -------------------------------------------------------------
    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """On PostgreSQL, statements run in here are sent together and answered in one round
        trip (psycopg's pipeline mode): results are there when a :meth:`submit`'s
        :meth:`Pending.rows` is read after the block, or when :meth:`commit` ends it. Each
        statement still runs alone and in order, with its own snapshot. SQLite runs each at
        once, as outside.

        Opening the transaction, psycopg would send its BEGIN and wait for the answer, a
        round trip of its own: here BEGIN is our first statement in the pipeline instead
        (the connection in autocommit mode until :func:`transaction` hands it back)."""
        if self.sqlite:
            yield
            return
        begin = self.raw.info.transaction_status == _IDLE
        if begin:
            self.raw.autocommit = True
        with self.raw.pipeline():
            if begin:
                self.cursor.execute("BEGIN")
            yield

    def submit(self, sql: str, params: Mapping[str, Any] | None = None) -> Pending:
        """A statement whose rows are read later (:meth:`pipeline`), on a cursor of its own."""
        cur = self.raw.cursor()
        cur.execute(sql if self.sqlite else _pyformat(sql), params or {})
        return Pending(cur)

    def commit(self) -> None:
        """Commit now; inside :meth:`pipeline`, in the same round trip as the statements
        before it. :func:`transaction` then has nothing left to commit.

        A transaction :meth:`pipeline` began is ended the same way, by a COMMIT statement
        queued in the pipeline: psycopg's ``commit()`` would wait for its answer, and the
        pipeline's end then wait once more for nothing."""
        if not self.sqlite and self.raw.autocommit:
            self.cursor.execute("COMMIT")
        else:
            self.raw.commit()

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def in_list(self, prefix: str, values: Sequence[Any], params: dict[str, Any]) -> str:
        """``(:p0, :p1, ...)`` for an IN clause, adding the values to ``params``."""
        names = [f"{prefix}{i}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        return "(" + ", ".join(f":{n}" for n in names) + ")"


class BulkInsert:
    """One INSERT of many rows: ``executemany`` on SQLite (in-process: a step per row costs
    nothing more), one multi-row ``VALUES`` statement on PostgreSQL (psycopg's
    ``executemany`` sends a statement per row, and reading their answers back cost a ping
    batch more than the inserts did; arrays to ``unnest`` are dumped in Python, slower
    still). ``columns``: (column, parameter) each; a parameter may fill two columns."""

    def __init__(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        self._head = f"INSERT INTO {table} ({', '.join(column for column, _ in columns)}) VALUES "
        self._params = [param for _, param in columns]
        self.sqlite = self._head + "(" + ", ".join(f":{param}" for param in self._params) + ")"
        self._postgres: dict[int, str] = {}  # by number of rows

    def run(self, db: Db, rows: Sequence[Mapping[str, Any]]) -> None:
        if db.sqlite:
            db.execute_many(self.sqlite, rows)
            return
        sql = self._postgres.get(len(rows))
        if sql is None:  # $n placeholders, sent as they are (a RawCursor): psycopg parses a
            # %s query on every execute once it is longer than its cache takes (4 KiB)
            width = len(self._params)
            sql = self._postgres[len(rows)] = self._head + ", ".join(
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                for r in range(len(rows))
            )
        with psycopg.RawCursor(db.raw) as cur:  # (in the transaction Db.pipeline began)
            cur.execute(sql, [row[param] for row in rows for param in self._params])


class Pending:
    """The rows of a :meth:`Db.submit`, read when asked for."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def rows(self) -> list[dict[str, Any]]:
        try:
            return _dicts(self._cursor)
        finally:
            self._cursor.close()


def _dicts(cur: Any) -> list[dict[str, Any]]:
    found = cur.fetchall()
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in found]


# SQLite allows one writer. Threads of one process that queue for it through SQLite's
# busy handler sleep-poll in steps of up to 100 ms: under the SIP agent's router and event
# threads that turned 300 calls/s into seconds of set-up (py-spy: every router in BEGIN
# IMMEDIATE). A lock per engine queues them fairly in-process; other processes still meet
# at SQLite's lock.
_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> threading.Lock:
    with _sqlite_writers_guard:
        lock = _sqlite_writers.get(engine)
        if lock is None:
            lock = _sqlite_writers[engine] = threading.Lock()
        return lock


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Db]:
    """A transaction on a pooled driver connection. ``write`` takes SQLite's write lock at
    BEGIN (see ``engine.IMMEDIATE``), queued in-process first; PostgreSQL callers lock what
    they need explicitly."""
    if write and engine.dialect.name == "sqlite":
        lock = _writer_lock(engine)
        # No longer than SQLite itself would wait: a file locked by another process must
        # answer 503 in the busy timeout, not after every queued writer's timeout in turn.
        if not lock.acquire(timeout=engine.get_execution_options().get(BUSY, BUSY_TIMEOUT)):
            raise DatabaseUnavailable("database is locked (writers of this process queued)")
        try:
            with _transaction(engine, write=True) as db:
                yield db
        finally:
            lock.release()
        return
    with _transaction(engine, write=write) as db:
        yield db


@contextmanager
def _transaction(engine: Engine, *, write: bool) -> Iterator[Db]:
    """Driver errors that mean "the database is down or locked" leave as
    :class:`~rtbridge.storage.outage.DatabaseUnavailable`; the connection they happened on
    is invalidated (PostgreSQL), not handed back to the pool, so the pool heals by itself."""
    try:
        fairy = engine.raw_connection()
    except Exception as exc:
        if is_outage(exc):
            raise DatabaseUnavailable(f"cannot connect: {_first_line(exc)}") from exc
        raise
    try:
        db = Db(fairy.driver_connection, engine.dialect.name)
        if db.sqlite:  # autocommit mode (engine.py): BEGIN is ours
            db.cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        elif db.raw.autocommit:  # left so by a Db.pipeline whose connection then failed
            db.raw.autocommit = False
        try:
            yield db
        except BaseException:
            # On a dead connection the rollback fails too; the first error is the one to tell.
            with suppress(Exception):
                db.raw.rollback()
            raise
        else:
            db.raw.commit()
        finally:
            # Db.pipeline began this transaction itself, in autocommit: the connection goes
            # back to the pool as it was lent (a dead one is thrown away below instead).
            if not db.sqlite and db.raw.autocommit:
                with suppress(Exception):
                    db.raw.autocommit = False
    except Exception as exc:
        if not is_outage(exc) or isinstance(exc, DatabaseUnavailable):
            raise
        if engine.dialect.name != "sqlite":  # a locked SQLite file leaves the connection fine
            fairy.invalidate(exc)
        raise DatabaseUnavailable(_first_line(exc)) from exc
    finally:
        fairy.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
