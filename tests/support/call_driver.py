"""A stand-in SIP agent for crash tests: a separate process that moves live reservations
through claim → connect → complete/fail with the storage functions the SIP router uses, many
calls at a time, so that a SIGKILL lands in the middle of calls. Like the real agent it first
recovers the calls a previous run under the same name left open.

    python -m tests.support.call_driver DB_URL AGENT SECONDS
"""

from __future__ import annotations

import random
import sys
import threading
import time

from sqlalchemy import Engine

from rtbridge.storage import calls
from rtbridge.storage.database import open_database
from rtbridge.storage.sql import transaction
from rtbridge.timestamps import utcnow


def _newest_reserved(engine: Engine) -> str | None:
    with transaction(engine, write=False) as db:
        row = db.one(
            "SELECT uuid FROM reservation WHERE status IN ('reserved', 'confirmed') "
            "AND expires_at > :now ORDER BY expires_at DESC LIMIT 1",
            {"now": db.ts(utcnow())},
        )
    return None if row is None else str(row["uuid"])


def main(url: str, agent: str, seconds: float) -> None:
    engine = open_database(url)
    print(f"recovered {calls.recover(engine, agent=agent, now=utcnow()).closed}", flush=True)
    stop = time.monotonic() + seconds

    def caller() -> None:
        rng = random.Random()
        while time.monotonic() < stop:
            uuid = _newest_reserved(engine)
            claimed = uuid is not None and calls.claim(
                engine, uuid=uuid, publisher_id=None, now=utcnow(), agent=agent, source="driver"
            )
            if uuid is None or not isinstance(claimed, calls.Claimed):
                time.sleep(0.01)
                continue
            answered = utcnow() if rng.random() < 0.7 else None
            if answered is not None:
                calls.answered(engine, uuid=uuid, at=answered)
            time.sleep(rng.uniform(0.2, 1.0))  # the call lasts: a kill finds some open
            end = utcnow()
            calls.ended(engine, uuid=uuid, answer_at=answered, end_at=end, publisher_code=200,
                        buyer_code=200 if answered else 486, hangup_by="buyer",
                        duration=(end - answered).total_seconds() if answered else 0.0)  # fmt: skip

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
