"""A postback key's id as the database stores it: its digest under the site key
(``storage/sitekey.py``), for tests that look a key up by id."""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.testclient import TestClient

from rtbridge.storage import sitekey


def key_id(where: Engine | TestClient, key: str) -> str:
    """``where``: the engine, or a client of the app (its lifespan's engine)."""
    engine = where if isinstance(where, Engine) else where.app.state.rtbridge.engine  # type: ignore[attr-defined]
    return sitekey.for_engine(engine).digest(sitekey.KEY, key)
