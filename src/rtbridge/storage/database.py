"""Opening a site's database as every command does before touching data: the engine
(:mod:`rtbridge.storage.engine`), the schema brought to the newest revision, and the site
key adopted (:mod:`rtbridge.storage.sitekey`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rtbridge.storage import sitekey
from rtbridge.storage.engine import make_engine, migrate


def open_database(url: str, **kwargs: Any) -> Engine:
    """Create the engine, migrate, and adopt the site key when there is one
    (``storage/sitekey.py``): what every command does before touching data."""
    engine = make_engine(url, **kwargs)
    try:
        migrate(engine)
        sitekey.prepare(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def missing_file(url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist, else None.

    Opening a SQLite URL creates its file, so a command pointed at the wrong place would
    otherwise make a new, empty database there and answer as if the site had no data. A
    PostgreSQL server never creates a database on connect: nothing to check there."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # make_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).expanduser().absolute()
    return None if path.exists() else path
