"""The loop that delivers webhooks: dispatch new events into deliveries, claim a batch of
due ones, POST them concurrently, settle the outcomes — then again. It runs as a thread in
``rtbridge serve`` (unless ``--webhooks off``) or alone (``rtbridge webhooks run``); several
may share one database (``outbox`` takes rows with SKIP LOCKED on PostgreSQL).

At least once: a delivery is marked delivered only after a 2xx, in a transaction after the
POST. A process killed in between sends it again when its lease ends, under the same
``webhook-id`` — at most ``batch`` duplicates per kill. Retries back off exponentially with
jitter (``retry_min`` doubling up to ``retry_max``) and give up after ``max_attempts``
(about a day with the defaults): the delivery is then ``failed``, listed, and can be sent
again by hand (``redeliver``)."""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from rtbridge.storage.outage import is_outage
from rtbridge.storage.transactions import utcnow
from rtbridge.webhooks import outbox, signing

log = logging.getLogger("rtbridge.webhooks")


@dataclass(frozen=True)
class SenderOptions:
    interval: float = 0.25  # seconds between rounds when there was nothing to do
    timeout: float = 5.0  # per POST
    batch: int = 8  # deliveries in flight per process (also the duplicate bound per kill)
    retry_min: float = 5.0
    retry_max: float = 3600.0
    max_attempts: int = 32  # with the defaults: about 21 hours of retries

    @property
    def lease(self) -> float:
        """How long a claimed delivery stays taken: the POSTs of one batch run side by side,
        so one timeout plus a margin for settling."""
        return 2 * self.timeout + 5


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a 2xx: following it would turn the POST into a GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Direct connections: an environment proxy must not see (or break) signed event bodies.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """(HTTP status, error text); the status is None when no answer came."""
    # the scheme is http or https: subscriptions.read_url refuses anything else
    request = urllib.request.Request(  # noqa: S310
        url,
        data=body,
        method="POST",
        headers={**headers, "content-type": "application/json", "user-agent": "rtbridge-webhooks"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:256]


class Sender:
    """One delivering loop over one database. ``master_key``: RTBRIDGE_WEBHOOK_KEY (without
    it events are still dispatched, so nothing piles up, but nothing is sent)."""

    def __init__(
        self, engine: Engine, master_key: str | None, options: SenderOptions | None = None, *,
        clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.master_key = master_key
        self.options = options or SenderOptions()
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = Stats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(self.options.batch, thread_name_prefix="webhook-post")
        self._warned = False

    # -- one round ---------------------------------------------------------------------------
    def round(self) -> int:
        """Dispatch, then send one batch; returns how many deliveries were attempted."""
        self.stats.dispatched += outbox.dispatch(self.engine, now=self.clock())
        if self.master_key is None or len(self.master_key) < signing.MIN_MASTER_KEY:
            if not self._warned and outbox.pending_count(self.engine):
                log.error("webhook deliveries wait: RTBRIDGE_WEBHOOK_KEY is not set (or too short)")
                self._warned = True
            return 0
        now = self.clock()
        lease = now + timedelta(seconds=self.options.lease)
        claims = outbox.claim(self.engine, now=now, limit=self.options.batch, lease_until=lease)
        if not claims:
            return 0
        results = list(self._pool.map(self._attempt, claims))
        outbox.settle(self.engine, results, now=self.clock())
        for r in results:
            self.stats.count("delivered" if r.ok else "retried" if r.retry_at else "failed")
        return len(claims)

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
        """Until :meth:`stop`. A database outage pauses it (1 s), nothing else ends it."""
        while not self._stop.is_set():
            try:
                busy = self.round()
            except Exception as exc:
                if is_outage(exc):
                    log.warning("webhooks: database unavailable; retrying: %s", exc)
                else:
                    log.exception("webhooks: round failed; retrying")
                self._stop.wait(1.0)
                continue
            if not busy:
                self._stop.wait(self.options.interval)

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
