"""The transaction every admin change runs in, and the translation of validation errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text
from sqlmodel import Session

from rtbridge.config.schema import ConfigError
from rtbridge.domain.errors import InvalidInput
from rtbridge.storage.catalog import bump_version
from rtbridge.storage.engine import IMMEDIATE

# pg_advisory_xact_lock key of admin changes ("rtb-admin" as a number)
_ADMIN_LOCK = 0x7274622D61646D
_ADMIN_LOCK_SQL = text(f"SELECT pg_advisory_xact_lock({_ADMIN_LOCK})")


def write_session(engine: Engine) -> Session:
    """A session whose transaction is the only admin change running. An admin change reads
    (does it exist? does it overlap another publisher's CIDR?) then writes, and two of them
    must not both pass the check. SQLite: the write lock at BEGIN (a deferred transaction
    would also fail with SQLITE_BUSY_SNAPSHOT against a ping's write instead of waiting).
    PostgreSQL: a transaction-scoped advisory lock — pings never take it."""
    session = Session(engine.execution_options(**{IMMEDIATE: True}))
    if engine.dialect.name == "postgresql":
        event.listen(session, "after_begin", _take_admin_lock)
    return session


def _take_admin_lock(session: Session, transaction: Any, connection: Any) -> None:
    connection.execute(_ADMIN_LOCK_SQL)


def read_session(engine: Engine) -> Session:
    return Session(engine)


def commit(session: Session) -> None:
    """Bump the configuration version in the same transaction, then commit."""
    bump_version(session)
    session.commit()


@contextmanager
def validating() -> Iterator[None]:
    """``ConfigError`` (the file's error list) becomes one 422 message, same wording."""
    try:
        yield
    except ConfigError as exc:
        raise InvalidInput("; ".join(exc.errors)) from None


def body(raw: Any) -> dict[str, Any]:
    """A request body must be an object of fields."""
    if not isinstance(raw, dict):
        raise InvalidInput("body: must be a JSON object of fields")
    return raw


def as_read(patch: dict[str, Any], managed_by: str) -> dict[str, Any]:
    """``patch`` without ``managed_by``, which a view shows and a client may send back as read
    (the view is the request's shape). Another value is refused: only ``apply`` changes it,
    by adopting a row its file lists."""
    if "managed_by" not in patch:
        return patch
    if patch["managed_by"] != managed_by:
        raise InvalidInput("managed_by: only rtbridge apply changes it (a row its file lists "
                           "becomes 'file')")  # fmt: skip
    return {k: v for k, v in patch.items() if k != "managed_by"}


def merge(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The resource as the file would spell it after ``patch``; ``null`` clears a field
    (back to its default), as leaving it out of the file would."""
    merged = {**current, **body(patch)}
    return {k: v for k, v in merged.items() if v is not None}
