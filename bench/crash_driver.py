"""The stand-in agent of ``bench/crash_rollups.py``: ``tests/support/call_driver.py`` (claim,
answer or not, end, through the storage functions the SIP router uses) with a heartbeat, as
a live agent writes one, every second.

Without it, the serves' watch over silent agents (``sip/lease.py``) would take the lease of
a driver that runs longer than its ``takeover_after`` (6 s) and close its calls under it:
then a kill could find no call open. With it, only a driver that is dead, or left dead, is
taken over. The calls a previous run left open are recovered first, before any heartbeat:
``calls.recover`` ends them at the last heartbeat of the run that died, which a new one
would move.

    python -m bench.crash_driver DB_URL AGENT SECONDS
"""

from __future__ import annotations

import sys
import threading

from rtbridge.storage import calls
from rtbridge.storage.database import open_database
from rtbridge.timestamps import utcnow
from tests.support import call_driver

BEAT = 1.0  # seconds between heartbeats (the agent's default is 2 s)


def main(url: str, agent: str, seconds: float) -> None:
    engine = open_database(url)
    # call_driver.main recovers too, and finds nothing: this run's heartbeats have started
    print(f"recovered {calls.recover(engine, agent=agent, now=utcnow()).closed}", flush=True)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(BEAT):
            try:
                calls.heartbeat(engine, agent=agent, at=utcnow())
            except Exception as exc:  # a busy database: the next beat will do
                print(f"heartbeat failed: {exc}", flush=True)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        call_driver.main(url, agent, seconds)
    finally:
        stop.set()
        beating.join()
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
