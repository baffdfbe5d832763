"""Opening a site's database as every command does before touching data: the engine
(:mod:`rtbridge.storage.engine`), the schema brought to the newest revision, and the site
key adopted (:mod:`rtbridge.storage.sitekey`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

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
