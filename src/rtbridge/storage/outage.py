"""When the database is the problem rather than the request: restarted, unreachable, or (SQLite)
write-locked by another process past the busy timeout. Both front doors answer it the same way
— HTTP ``503`` + ``Retry-After``, SIP ``503`` + ``Retry-After`` — instead of a 500, and the
connection pool drops the connection it happened on so the next request gets a fresh one."""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import exc as sa

# SQLite's OperationalError also says "no such table" and other bugs; only these are states
# of the database file that pass by themselves (SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR,
# SQLITE_CANTOPEN).
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o error", "unable to open")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or written now; the caller may retry shortly."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database is down or busy" rather than a bug or bad data.

    PostgreSQL's driver raises ``OperationalError`` for lost and refused connections, server
    shutdown (57P01), cancelled statements and serialisation failures, ``InterfaceError`` for
    a connection already closed; SQLAlchemy wraps them when the ORM ran the statement, and
    raises its own ``TimeoutError`` when the pool has no connection to give."""
    if isinstance(exc, DatabaseUnavailable | sa.TimeoutError | sa.DisconnectionError):
        return True
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sa.OperationalError | sa.InterfaceError) and exc.orig is None:
            return True
        if exc.orig is not None:
            return is_outage(exc.orig)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(word in message for word in _SQLITE_TRANSIENT)
    return False
