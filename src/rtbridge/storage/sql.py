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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Engine

from rtbridge.storage.engine import BUSY, BUSY_TIMEOUT
from rtbridge.storage.outage import DatabaseUnavailable, is_outage

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


@lru_cache(maxsize=256)
def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``:name`` parameters as libpq's ``$n`` (``storage/trips.py`` sends statements to
    libpq itself), and the names in the order of ``n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _NAMED.sub(number, sql).encode(), tuple(names)


class Db:
    """One driver connection inside one transaction; see :func:`transaction`."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.sqlite = dialect == "sqlite"
        self.cursor = raw.cursor()
        self.broken = False  # a Trip was interrupted: the connection cannot be used again
        self.committed: list[Callable[[], None]] = []  # run once the transaction commits

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

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def in_list(self, prefix: str, values: Sequence[Any], params: dict[str, Any]) -> str:
        """``(:p0, :p1, ...)`` for an IN clause, adding the values to ``params``."""
        names = [f"{prefix}{i}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        return "(" + ", ".join(f":{n}" for n in names) + ")"


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
    db: Db | None = None
    try:
        db = Db(fairy.driver_connection, engine.dialect.name)
        if db.sqlite:  # autocommit mode (engine.py): BEGIN is ours
            db.cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        elif db.raw.autocommit:  # left so by a Trip whose connection then failed
            db.raw.autocommit = False
        try:
            yield db
        except BaseException:
            # On a dead connection the rollback fails too; the first error is the one to tell.
            with suppress(Exception):
                if db.broken:  # answers still in flight: nothing more can be said on it
                    db.raw.close()
                else:
                    db.raw.rollback()
            raise
        else:
            db.raw.commit()
            for then in db.committed:
                then()
        finally:
            # A Trip began this transaction itself, in autocommit: the connection goes
            # back to the pool as it was lent (a dead one is thrown away below instead).
            if not db.sqlite and db.raw.autocommit:
                with suppress(Exception):
                    db.raw.autocommit = False
    except BaseException as exc:
        outage = isinstance(exc, Exception) and is_outage(exc)
        ours = isinstance(exc, DatabaseUnavailable)  # said already, by whoever raised it
        # A locked SQLite file leaves the connection fine.
        if (db is not None and db.broken) or (
            outage and not ours and engine.dialect.name != "sqlite"
        ):
            fairy.invalidate(exc if isinstance(exc, Exception) else None)
        if not outage or ours:
            raise
        raise DatabaseUnavailable(_first_line(exc)) from exc
    finally:
        fairy.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
