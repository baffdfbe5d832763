"""The loop that delivers webhooks: dispatch new events into deliveries, claim a batch of
due ones, POST them concurrently, settle the outcomes — then again. It runs as a thread in
``rtbridge serve`` (unless ``--webhooks off``) or alone (``rtbridge webhooks run``); several
may share one database (``outbox`` takes rows with SKIP LOCKED on PostgreSQL).

At least once: a delivery is marked delivered only after a 2xx, in a transaction after the
POST (the next round's one write transaction, or the last one when the loop stops). A
process killed in between sends it again when its lease ends, under the same
``webhook-id`` — at most ``batch`` (the deliveries claimed per round) duplicates per kill.

Cheap for the pings beside it: a round reads pending events and builds their bodies
outside any write transaction, then writes once (``outbox.exchange``) through the same
in-process writer queue the pings use; an idle round writes nothing, and the pause between
rounds is short while there is work and grows to ``interval`` when there is none. Retries back off exponentially with
jitter (``retry_min`` doubling up to ``retry_max``) and give up after ``max_attempts``
(about a day with the defaults): the delivery is then ``failed``, listed, and can be sent
again by hand (``redeliver``)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from rtbridge.domain.recording_links import RecordingLinks
from rtbridge.storage.outage import is_outage
from rtbridge.timestamps import utcnow
from rtbridge.webhooks import outbox, signing, transport
from rtbridge.webhooks.transport import post

log = logging.getLogger("rtbridge.webhooks")


@dataclass(frozen=True)
class SenderOptions:
    interval: float = 0.25  # longest pause between rounds, reached when idle
    pause: float = 0.02  # pause after a round that found work (lets events gather)
    timeout: float = 5.0  # per POST
    batch: int = 64  # deliveries claimed per round (also the duplicate bound per kill)
    posts: int = 8  # POSTs in flight at once (at most ``batch``)
    # Share of the time a backlog may take: in ``serve`` the sender's Python shares the GIL
    # with the pings' event loop, so there it rests as long again as a full round took.
    duty: float = 0.5
    retry_min: float = 5.0
    retry_max: float = 3600.0
    max_attempts: int = 32  # with the defaults: about 21 hours of retries

    @property
    def lease(self) -> float:
        """How long a claimed delivery stays taken: the batch is POSTed ``posts`` at a time,
        so one timeout per wave plus a margin for settling."""
        waves = -(-self.batch // max(1, min(self.posts, self.batch)))
        return waves * self.timeout + self.timeout + 5


@dataclass
class Stats:
    """Counters for /metrics (``rtbridge_webhook_deliveries_total{result}``); plain ints
    written by the one sender thread."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dispatched: int = 0

    def count(self, result: str) -> None:
        setattr(self, result, getattr(self, result) + 1)


class Sender:
    """One delivering loop over one database. ``master_key``: Settings.webhook_key (without
    it events are still dispatched, so nothing piles up, but nothing is sent). ``links``:
    the recordings' signed links (without: ``url`` null)."""

    def __init__(
        self, engine: Engine, master_key: str | None, options: SenderOptions | None = None, *,
        clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None,
        links: RecordingLinks | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.links = links  # signs recording.completed's links (storage/recording_links.py)
        self.master_key = master_key
        self.options = options or SenderOptions()
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = Stats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max(1, min(self.options.posts, self.options.batch)), thread_name_prefix="webhook-post"
        )
        self._warned = False
        self._results: list[outbox.Result] = []  # POSTed, not yet written

    # -- one round ---------------------------------------------------------------------------
    def round(self) -> int:
        """Read and build new events, then one write: settle the last round's outcomes, record
        the events, claim a batch; POST it. Returns deliveries attempted, or -1 when there
        was nothing at all to do (nothing written)."""
        sending = self.master_key is not None and len(self.master_key) >= signing.MIN_MASTER_KEY
        now = self.clock()
        # small stretches of Python per round: the GIL is shared with the event loop
        work = outbox.prepare(self.engine, now=now, limit=2 * self.options.batch, due=sending,
                              links=self.links)  # fmt: skip
        results = self._results
        if not (work.events or work.due or results):
            return -1
        lease = now + timedelta(seconds=self.options.lease)
        limit = self.options.batch if sending else 0
        self._results = []
        try:
            made, claims = outbox.exchange(self.engine, work, results, now=now, limit=limit,
                                           lease_until=lease)  # fmt: skip
        except BaseException:
            self._results = results  # written with the next round's transaction
            raise
        self._count(results)
        self.stats.dispatched += made
        if not sending:
            if not self._warned and outbox.pending_count(self.engine):
                log.error("webhook deliveries wait: RTBRIDGE_SITE_KEY (or RTBRIDGE_WEBHOOK_KEY) "
                          "is not set (or too short)")  # fmt: skip
                self._warned = True
            return 0
        self._results = list(self._pool.map(self._attempt, claims))
        return len(claims)

    def flush(self) -> None:
        """Write outcomes POSTed but not yet written (when the loop ends)."""
        if self._results:
            outbox.settle(self.engine, self._results, now=self.clock())
            self._count(self._results)
            self._results = []

    def _count(self, results: list[outbox.Result]) -> None:
        for r in results:
            self.stats.count("delivered" if r.ok else "retried" if r.retry_at else "failed")

    def _attempt(self, claim: outbox.Claim) -> outbox.Result:
        secret = signing.derive_secret(self.master_key, claim.webhook_id, claim.salt)
        body = claim.body.encode()
        head = signing.headers(secret, claim.id, int(time.time()), body)
        code, error = post(claim.url, body, head, self.options.timeout)
        if code is not None and 200 <= code < 300:
            return outbox.Result(claim, ok=True, code=code)
        retry_at = None
        if claim.attempts < self.options.max_attempts:
            retry_at = self.clock() + timedelta(seconds=self.backoff(claim.attempts))
        log.info("webhook delivery %s to %s failed (attempt %d): %s", claim.id, claim.url,
                 claim.attempts, error)  # fmt: skip
        return outbox.Result(claim, ok=False, code=code, error=error, retry_at=retry_at)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: doubling from ``retry_min``, capped, times a
        random 0.75 to 1 so a receiver that was down is not hit by every sender at once."""
        o = self.options
        return float(min(o.retry_max, o.retry_min * 2 ** min(attempts - 1, 30))) * self.rng.uniform(
            0.75, 1.0
        )

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Until :meth:`stop`. A database outage pauses it (1 s), nothing else ends it. The
        pause: none after a full batch (a backlog), ``pause`` after a round with work,
        doubling from there up to ``interval`` while idle."""
        o, idle = self.options, self.options.pause
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    done = self.round()
                except Exception as exc:
                    if is_outage(exc):
                        log.warning("webhooks: database unavailable; retrying: %s", exc)
                    else:
                        log.exception("webhooks: round failed; retrying")
                    self._stop.wait(1.0)
                    continue
                if done >= o.batch:
                    idle = o.pause
                    if o.duty < 1:
                        self._stop.wait((time.monotonic() - began) * (1 / max(o.duty, 0.05) - 1))
                    continue
                if done >= 0:
                    idle = o.pause
                    self._stop.wait(o.pause)
                    continue
                self._stop.wait(idle)
                idle = min(o.interval, max(idle, 0.001) * 2)
        finally:
            try:
                self.flush()
            except Exception:
                log.exception("webhooks: outcomes not written; they are sent again")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="webhooks", daemon=True)
        self._thread.start()

    def stop_soon(self) -> None:
        """Ask :meth:`run` to return after the round in progress (a signal handler's call)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.timeout + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        transport.close_idle()
