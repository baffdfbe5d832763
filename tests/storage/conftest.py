"""The storage tests' database: SQLite and PostgreSQL alike, with the test module's site file
(its ``CONFIG``) applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import write_config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    made = open_database(str(request.getfixturevalue(name)))
    apply_file(made, write_config(tmp_path, request.module.CONFIG))
    request.addfinalizer(made.dispose)
    return made
