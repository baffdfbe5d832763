"""Per-source token buckets: how many SIP requests one sender may send per second.

One mechanism for the two limits of the agent: new INVITEs (``invite_rate``, admission) and
requests of every method (``request_rate``, the request screen). A source is an IPv4
address or an IPv6 /64 (:func:`rtbridge.sip.auth.throttle.source_key`): one subscriber
usually owns a whole /64, so keying by the full address would let one sender rotate through
2**64 keys. Pure Python; one caller (the agent's pjsua2 thread), so no lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from rtbridge.sip.auth.allowlist import IPAddress
from rtbridge.sip.auth.throttle import source_key
from rtbridge.sip.proxy import in_networks, networks


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class SourceRate:
    """``rate`` tokens per second per source, at most ``burst`` saved up; ``rate`` 0 = off.

    Memory is bounded by ``max_sources`` buckets, least recently seen forgotten first: a
    forgotten source starts with a full bucket again, which errs on the side of admitting.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        exempt: Sequence[str] = (),
        max_sources: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._exempt = networks(exempt)
        self._max_sources = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """Sources remembered now."""
        return len(self._buckets)

    def take(self, source_ip: IPAddress | str) -> bool:
        """Spend one token of ``source_ip``'s bucket; False when it has none left."""
        if not self._rate or (self._exempt and in_networks(source_ip, self._exempt)):
            return True
        key = source_key(source_ip)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            if len(self._buckets) > self._max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
