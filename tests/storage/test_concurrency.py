"""SPEC §3.5/§7: concurrent pings never over-allocate a buyer — with two live server
processes sharing one database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx2
import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.storage.database import open_database
from tests.conftest import write_config
from tests.support.demo import KEY_OPEN, one_buyer_config
from tests.support.server import serve

PINGS = 200
CONCURRENCY = 5


async def _storm(bases: list[str]) -> list[dict]:
    limits = httpx2.Limits(max_connections=PINGS, max_keepalive_connections=0)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> dict:
            base = bases[i % len(bases)]
            r = await client.post(
                f"{base}/rtbs.json", data={"key": KEY_OPEN, "caller_number": f"+1202555{i:04d}"}
            )
            assert r.status_code == 200, r.text
            return r.json()

        return await asyncio.gather(*(one(i) for i in range(PINGS)))


def _run(url: str, tmp_path: Path) -> None:
    engine = open_database(url)
    apply_file(
        engine,
        write_config(tmp_path, one_buyer_config(buyer=f"concurrency = {CONCURRENCY}", pool="")),
    )
    engine.dispose()
    with ExitStack() as stack:
        bases = [stack.enter_context(serve(url)) for _ in range(2)]
        answers = asyncio.run(_storm(bases))
    statuses = Counter(a["status"] for a in answers)
    assert statuses == {"reserved": CONCURRENCY, "no-target": PINGS - CONCURRENCY}
    assert {a["reason"] for a in answers if a["status"] == "no-target"} == {
        "concurrency-cap-reached"
    }
    assert len({a["uuid"] for a in answers}) == PINGS


@pytest.mark.live
def test_200_concurrent_pings_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    _run(sqlite_url, tmp_path)


@pytest.mark.live
@pytest.mark.postgres
def test_200_concurrent_pings_postgres(postgres_url: str, tmp_path: Path) -> None:
    _run(postgres_url, tmp_path)
