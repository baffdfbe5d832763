"""A SQLite file write-locked by another process past the busy timeout (issue 11, item 3):
pings, confirms and cancels answer ``503`` + ``Retry-After`` with the usual JSON error — never
a 500 — the group-commit batcher keeps every waiting request and answers each, and service
returns by itself once the lock is gone, with every buyer counter equal to its recount."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rtbridge.storage.engine import make_engine
from rtbridge.storage.recount import check_counters
from tests.conftest import ClientFactory
from tests.support.demo import KEY_OPEN
from tests.support.sqlite_lock import Locker

BUSY = 0.3  # the server's busy timeout (?timeout= in the URL); the lock is held far longer


def test_locked_sqlite_answers_503_and_recovers(
    make_client: ClientFactory, sqlite_url: str, tmp_path: Path
) -> None:
    url = f"{sqlite_url}?timeout={BUSY}"
    client = make_client(url=url)
    before = client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550100"})
    assert before.status_code == 200, before.text
    uuid = before.json()["uuid"]

    locker = Locker(tmp_path / "rtbridge.db")
    try:
        started = time.monotonic()

        def ping(i: int) -> tuple[int, str | None, dict[str, object]]:
            r = client.post(
                "/rtbs.json", data={"key": KEY_OPEN, "caller_number": f"+1202555{i:04d}"}
            )
            return r.status_code, r.headers.get("retry-after"), r.json()

        # Concurrent pings wait in one group-commit batch: every one is answered.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ping, range(200, 216)))
        confirm = client.put(f"/rtbs/{uuid}.json", data={"key": KEY_OPEN, "status": "confirmed"})
        elapsed = time.monotonic() - started
        # Readers are not blocked by a writer (WAL): the lookup still answers.
        lookup = client.get(f"/rtbs/{uuid}.json", params={"key": KEY_OPEN})
    finally:
        locker.release()

    for status, retry_after, body in [*answers, (confirm.status_code,
                                                 confirm.headers.get("retry-after"),
                                                 confirm.json())]:  # fmt: skip
        assert status == 503, body
        assert retry_after is not None and retry_after.isdigit(), retry_after
        assert set(body) == {"error"} and "retry" in str(body["error"]), body
    assert elapsed < 30 * BUSY + 5, "each batch must wait one busy timeout, not pile them up"
    assert lookup.status_code == 200 and lookup.json()["status"] == "reserved"

    # The lock is gone: service is back on the next request, nothing was half-written.
    after = client.post("/rtbs.json", data={"key": KEY_OPEN, "caller_number": "+12025550199"})
    assert after.status_code == 200, after.text
    again = client.put(f"/rtbs/{uuid}.json", data={"key": KEY_OPEN, "status": "confirmed"})
    assert again.status_code == 200 and again.json()["status"] == "confirmed"
    engine = make_engine(url)
    try:
        report = check_counters(engine)
        assert report.ok, report
        with engine.connect() as conn:
            count = conn.exec_driver_sql("SELECT count(*) FROM reservation").scalar()
        assert count == 2  # the refused pings left no row behind
    finally:
        engine.dispose()
