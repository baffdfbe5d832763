"""The transaction every admin change runs in, and the translation of validation errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from rtbridge.config.schema import ConfigError
from rtbridge.domain.errors import InvalidInput
from rtbridge.storage.catalog import bump_version
from rtbridge.storage.engine import IMMEDIATE


def write_session(engine: Engine) -> Session:
    """A session whose transaction takes SQLite's write lock at BEGIN: an admin change reads
    (does it exist?) then writes, and must not lose a race with a ping's write in between
    (a deferred transaction would fail with SQLITE_BUSY_SNAPSHOT instead of waiting)."""
    return Session(engine.execution_options(**{IMMEDIATE: True}))


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


def merge(current: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The resource as the file would spell it after ``patch``; ``null`` clears a field
    (back to its default), as leaving it out of the file would."""
    merged = {**current, **body(patch)}
    return {k: v for k, v in merged.items() if v is not None}
