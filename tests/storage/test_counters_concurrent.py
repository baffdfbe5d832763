"""Counters under contention, on both databases: publisher threads ping, confirm and cancel
while an agent thread claims and ends calls, a sweeper expires, and a dead agent's calls are
recovered — each on its own connection, the real clock, a 1 s TTL. Afterwards every counter
equals its recount and no buyer was ever over a cap (judged from the history alone)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from rtbridge.admin.apply import apply_file
from rtbridge.domain.ping import PingRequest
from rtbridge.storage import calls
from rtbridge.storage.catalog import CatalogCache
from rtbridge.storage.database import open_database
from rtbridge.storage.recount import check_counters
from rtbridge.storage.reservations import Reservations
from rtbridge.timestamps import utcnow
from tests.conftest import write_config
from tests.support.allocation import over_allocations
from tests.support.demo import KEY_OPEN

CAPS = {"b1": (4, 30), "b2": (3, 20)}
CONFIG = f"""
[[campaigns]]
id = "c1"

[[campaigns.buyers]]
id = "b1"
destination = "sip:b1@127.0.0.1:5070"
payout = 10.0
seconds = 30
concurrency = {CAPS["b1"][0]}
daily_cap = {CAPS["b1"][1]}

[[campaigns.buyers]]
id = "b2"
destination = "sip:b2@127.0.0.1:5071"
payout = 9.0
seconds = 30
concurrency = {CAPS["b2"][0]}
daily_cap = {CAPS["b2"][1]}
priority = 2

[[publishers]]
id = "p1"

[[keys]]
key = "{KEY_OPEN}"
publisher = "p1"
campaign = "c1"
allow_missing_caller_number = true
ttl_seconds = 1
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_counters_hold_under_contention(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    apply_file(engine, write_config(tmp_path, CONFIG))
    ops = Reservations(engine, CatalogCache(engine))
    reserved: list[str] = []
    answers: Counter[str] = Counter()
    errors: list[BaseException] = []
    started = time.monotonic()
    lock = threading.Lock()

    def running() -> bool:
        """At least 2.5 s, then until the caps were really in play (a slow, shared machine
        needs longer to get there), at most 20 s."""
        elapsed = time.monotonic() - started
        if elapsed < 2.5:
            return True
        with lock:
            enough = answers["reserved"] > 20 and answers["concurrency-cap-reached"] > 20
        return not enough and elapsed < 20

    def guarded(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced after join
                errors.append(exc)

        return run

    @guarded
    def publisher() -> None:
        rng = random.Random()
        while running():
            out = ops.ping(PingRequest(key=KEY_OPEN, caller_number=None, inbound_number=None))
            with lock:
                answers[out.reason or out.status] += 1
                if out.status == "reserved":
                    reserved.append(out.uuid)
                pick = rng.choice(reserved) if reserved else None
            if pick and rng.random() < 0.2:
                try:
                    ops.update(pick, KEY_OPEN, rng.choice(["confirmed", "cancelled"]))
                except Exception as exc:  # 409: claimed, completed, expired … meanwhile
                    assert type(exc).__name__ == "Conflict", exc

    @guarded
    def agent() -> None:
        rng = random.Random()
        while running():
            with lock:
                pick = reserved[-1] if reserved else None
            if pick is None:
                time.sleep(0.01)
                continue
            name = "dead" if rng.random() < 0.2 else "live"
            got = calls.claim(engine, uuid=pick, publisher_id="p1", now=utcnow(), agent=name,
                              source="x")  # fmt: skip
            if isinstance(got, calls.NotClaimed) or name == "dead":
                continue  # the dead agent never reports: recovered below
            answered = utcnow() if rng.random() < 0.5 else None
            if answered:
                calls.answered(engine, uuid=pick, at=answered)
            time.sleep(rng.random() * 0.05)
            end = utcnow()
            duration = (end - answered).total_seconds() if answered else 0.0
            calls.ended(engine, uuid=pick, answer_at=answered, end_at=end, publisher_code=200,
                        buyer_code=200, hangup_by="buyer", duration=duration)  # fmt: skip

    @guarded
    def sweeper() -> None:
        """Expires, and now and then recovers the dead agent's calls as a peer taking its
        lease over would: each holds a unit until then, and without it five dead claims
        (a fifth of all) could hold every unit and starve the run of reservations."""
        rounds = 0
        while running():
            ops.expire_due(limit=5)
            rounds += 1
            if rounds % 10 == 0:
                calls.recover(engine, agent="dead", now=utcnow())
            time.sleep(0.05)

    threads = [
        threading.Thread(target=t) for t in (publisher, publisher, publisher, agent, sweeper)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        calls.recover(engine, agent="dead", now=utcnow() + timedelta(milliseconds=1))
        report = check_counters(engine)
        assert report.differences == (), report
        assert over_allocations(engine, 1.0, CAPS) == []
        # the caps were really in play, not just never reached
        assert answers["reserved"] > 20 and answers["concurrency-cap-reached"] > 20, answers
    finally:  # a failure must not leave pooled connections to the collector (next test)
        engine.dispose()
