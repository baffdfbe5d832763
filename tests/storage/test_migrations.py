"""The Alembic revisions build exactly the schema the models describe, on both databases,
and downgrade cleanly: a model change without its migration fails here."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import rtbridge.storage.models  # noqa: F401  (registers the tables)
from rtbridge.storage.engine import alembic_config, make_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_migrations_match_the_models_and_downgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with engine.connect() as conn:
        names = set(conn.dialect.get_table_names(conn))
    assert names <= {"alembic_version"}
    migrate(engine)  # and back up again
    engine.dispose()
