"""x5u chains by URL, so an INVITE does not cost a fetch: a chain is kept until its leaf
expires or for an hour, whichever comes first; a failed fetch is remembered for a minute,
so a sender naming a URL that hangs cannot make every one of its INVITEs wait for it again.
Concurrent look-ups of one URL share one fetch. At most ``size`` URLs are kept, the least
recently used dropped first: a sender inventing a URL per INVITE costs memory no more."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

from cryptography import x509

from rtbridge.sip.stir.attestation import Failed

Chain = list[x509.Certificate]


class ChainCache:
    def __init__(
        self,
        fetch: Callable[[str], Chain],
        *,
        clock: Callable[[], float],
        wait: float,
        good_for: float = 3600.0,
        failure_for: float = 60.0,
        size: int = 1000,
    ) -> None:
        """``wait``: how long a look-up waits for another thread's fetch of the same URL
        (the fetch's own deadline, and a margin)."""
        self._fetch = fetch
        self._clock = clock
        self._wait = wait
        self._good_for = good_for
        self._failure_for = failure_for
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Chain | Failed]] = OrderedDict()
        self._fetching: dict[str, Future[Chain | Failed]] = {}

    def get(self, url: str) -> Chain:
        """The chain at ``url``, or the Failed its fetch ended with."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get(url)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(url)
                return _unwrap(entry[1])
            pending = self._fetching.get(url)
            mine = pending is None
            if pending is None:
                pending = self._fetching[url] = Future()
        if not mine:
            try:
                return _unwrap(pending.result(timeout=self._wait))
            except TimeoutError:
                raise Failed("x5u unreachable: still being fetched") from None
        try:
            outcome: Chain | Failed = self._fetch(url)
        except Failed as problem:
            outcome = problem
        except BaseException:  # a bug in the fetch: the waiters must not hang on it
            with self._lock:
                del self._fetching[url]
            pending.set_result(Failed("x5u fetch failed"))
            raise
        self._store(url, outcome)
        pending.set_result(outcome)
        return _unwrap(outcome)

    def _store(self, url: str, outcome: Chain | Failed) -> None:
        with self._lock:
            now = self._clock()
            until = now + self._failure_for
            if not isinstance(outcome, Failed):
                leaf_expiry = outcome[0].not_valid_after_utc.timestamp()
                until = max(until, min(leaf_expiry, now + self._good_for))
            self._entries[url] = (until, outcome)
            self._entries.move_to_end(url)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
            del self._fetching[url]


def _unwrap(outcome: Chain | Failed) -> Chain:
    if isinstance(outcome, Failed):
        raise Failed(outcome.why)
    return outcome
