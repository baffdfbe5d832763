"""Fixtures: real databases in temp dirs (SQLite) or a throwaway cluster (PostgreSQL), the
app driven through Starlette's TestClient with its lifespan running."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from rtbridge.admin.apply import apply_file
from rtbridge.http.app import create_app
from rtbridge.settings import Settings
from rtbridge.storage import database
from rtbridge.storage.database import open_database
from tests.support import postgres
from tests.support.admin import make_token
from tests.support.fresh_sqlite import FreshSqlite
from tests.support.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "deploy" / "demo.toml"


class Clock:
    """A settable clock for expiry tests (aware UTC, like timestamps.utcnow)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session", autouse=True)
def fresh_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """New SQLite databases get the migrated schema by a copy (tests/support/fresh_sqlite.py)."""
    fresh = FreshSqlite(tmp_path_factory.mktemp("schema"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(database, "migrate", fresh.migrate)
        yield


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rtbridge.db'}"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    if postgres.find_bin() is None:
        pytest.fail("PostgreSQL is missing: scripts/system-deps installs Debian's postgresql")
    with postgres.cluster() as url:
        yield url


# PostgreSQL needs the site key in every process (storage/sitekey.py: no key file there).
SITE_KEY = "test-site-key-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def postgres_url(postgres_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh schema per test: drop everything the previous test created. The site key is
    in the environment for the test and the processes it starts."""
    from sqlalchemy import create_engine, text

    monkeypatch.setenv("RTBRIDGE_SITE_KEY", SITE_KEY)
    engine = create_engine(postgres_cluster.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield postgres_cluster


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rtbridge.toml"
    path.write_text(text)
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(sqlite_url: str, tmp_path: Path, clock: Clock) -> Iterator[ClientFactory]:
    """``make_client(config_text=None)``: apply the demo file or ``config_text``, start the app
    (``settings``: Settings fields to change, ``options``: create_app's)."""
    clients: list[TestClient] = []

    def factory(
        config_text: str | None = None, *, url: str = sqlite_url,
        settings: Mapping[str, Any] | None = None, **options: object,
    ) -> TestClient:  # fmt: skip
        engine = open_database(url)
        apply_file(engine, DEMO if config_text is None else write_config(tmp_path, config_text))
        engine.dispose()
        changed = dict(settings or {})
        app = create_app(
            Settings(db_url=url, sip_enabled=False, sweep_interval=3600, **changed),
            clock=clock, **options,
        )  # fmt: skip
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


@pytest.fixture
def demo_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_database(sqlite_url)
    apply_file(engine, DEMO)
    yield engine
    engine.dispose()


@pytest.fixture
def admin(make_client: ClientFactory, sqlite_url: str) -> TestClient:
    """The app over the demo configuration, sending a valid admin token."""
    client = make_client()
    client.headers["Authorization"] = f"Bearer {make_token(sqlite_url)}"
    return client


@pytest.fixture
def rtb(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Terminal:
    """The ``rtbridge`` command on the demo configuration (as network admins run it)."""
    terminal = Terminal(sqlite_url, capsys, monkeypatch)
    status, _, err = terminal("apply", str(DEMO))
    assert status == 0, err
    return terminal
