"""The one place engines are created, and where the schema is brought up to date."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError

MIGRATIONS = Path(__file__).with_name("migrations")

# Execution option that makes a SQLite transaction take the write lock at BEGIN: a
# read-then-write (count a buyer's live reservations, then insert one) must not interleave
# with another process's, or a buyer is over-allocated. PostgreSQL uses row locks instead.
IMMEDIATE = "rtbridge_immediate"
# Execution option holding a SQLite engine's busy timeout in seconds (storage.sql queues its
# in-process writers for no longer than that either).
BUSY = "rtbridge_busy_timeout"
BUSY_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5  # PostgreSQL: seconds to connect, or to wait for a pooled connection
DEAD_PEER = 5  # PostgreSQL: seconds of silence from the server that end a connection
# PostgreSQL: seconds a round trip of storage/trips.py waits for its answers. A server that
# stops answering while its host still acknowledges (a process frozen, a disk hung) is not
# one DEAD_PEER finds out; this bounds a ping batch, and the publishers waiting for it, all
# the same. Far above any lock a batch may wait for behind another process's transaction.
ANSWER_WITHIN = 10.0


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, background_checkpoint: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (``sqlite:///file.db`` or ``postgresql://...``).

    ``background_checkpoint`` (SQLite): commits never checkpoint the WAL themselves; the
    caller runs a :class:`~rtbridge.storage.checkpoint.WalCheckpointer` instead."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed.render_as_string(hide_password=False), **kwargs)
        if background_checkpoint:

            @event.listens_for(engine, "connect")
            def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
                # A commit that crosses 1000 WAL pages would copy them back and fsync on the
                # request path: that was the p99 under load (bench/api.py: 30 ms -> 13 ms).
                dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

        return engine
    # An unreachable host fails a connect in CONNECT_TIMEOUT seconds instead of the kernel's
    # minutes (storage/outage.py: 503).
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", CONNECT_TIMEOUT)
    # A server that vanished without closing its connections (a host gone, a network black
    # hole) is found out in seconds rather than the kernel's 15 minutes: requests not
    # acknowledged within DEAD_PEER seconds, or no answer to keepalives on an idle
    # connection, fail the statement waiting on them. This bounds how long a ping batch,
    # which waits on the event loop (http/state.py), can hold the loop.
    wanted = {
        "connect_timeout": CONNECT_TIMEOUT,
        "tcp_user_timeout": DEAD_PEER * 1000,
        "keepalives": 1,
        "keepalives_idle": DEAD_PEER,
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }
    kwargs.setdefault("connect_args", {k: v for k, v in wanted.items() if k not in parsed.query})
    engine = create_engine(parsed, **kwargs)
    _ping_when_idle(engine)

    @event.listens_for(engine, "connect")
    def _no_automatic_prepare(dbapi_conn: Any, _record: Any) -> None:
        # psycopg prepares a statement run five times, and at every rollback while it has
        # some, deallocates all of the session's: the ping batch's own prepared statements
        # (storage/trips.py) with them, a failed batch each time.
        dbapi_conn.prepare_threshold = None

    return engine


# A pooled connection idle this long is tested before use and replaced when dead, so after a
# restart of the server the pool heals by itself. SQLAlchemy's pool_pre_ping tests every
# checkout: a round trip per ping batch, a fifth of its time on PostgreSQL (bench/api.py).
# A connection in use within the last second is taken as it is; should it have died in that
# second, its transaction fails (503) and it is thrown away (storage/sql.py).
IDLE_PING_AFTER = 1.0
_IDLE_SINCE = "rtbridge_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _test(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < IDLE_PING_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool throws it away and checks out another
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    # A memory database would be private to each pooled connection; use files (tmp in tests).
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:"):
        raise ValueError("sqlite needs a file path, e.g. sqlite:///rtbridge.db")
    # How long a writer waits for another process's write lock before the request gets 503
    # (storage/outage.py): ``?timeout=SECONDS`` in the URL, 10 s by default.
    try:
        busy = float(str(parsed.query.get("timeout", BUSY_TIMEOUT)))
    except ValueError:
        raise ValueError("sqlite URL: timeout must be a number of seconds") from None
    kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": busy})
    kwargs.setdefault("execution_options", {BUSY: busy})
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours (SQLAlchemy docs,
        # "Serializable isolation / Savepoints / Transactional DDL" for pysqlite).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates "%": a URL with percent-escapes (a password with "@", a
    # socket directory as ?host=%2Fvar%2Frun...) must reach Alembic with "%%".
    url = engine.url.render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent; safe on every start)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


__all__ = [
    "BUSY",
    "BUSY_TIMEOUT",
    "CONNECT_TIMEOUT",
    "IMMEDIATE",
    "is_sqlite",
    "make_engine",
    "migrate",
]
