"""Whether a new INVITE may be routed at all, decided before any database work.

Three reasons to refuse, each with ``503 Service Unavailable`` + ``Retry-After`` (RFC 3261
§21.5.4: "try again later, or elsewhere"), never with a code that blames the callee:

- **draining** — the agent is stopping;
- **capacity** — every bridge the agent admits is taken (:mod:`rtbridge.sip.capacity`);
- **backlog** — ``max_routing`` INVITEs are already waiting for the router (the database
  is slower than the arrivals): queueing more only makes every one of them late, grows
  memory, and fills the bridges with calls whose publishers have given up;
- **rate** — the source sent more new INVITEs than ``invite_rate`` per second allows
  (a token bucket holding ``invite_burst``), like Kamailio's ``pike`` at the edge. One
  flooding source then costs a 503 per INVITE and leaves the routers, the database and the
  other sources' calls alone.

Refusing here leaves the reservation unclaimed, so the publisher can retry it elsewhere.
Pure Python; the agent calls :meth:`Admission.check` on its pjsua2 thread for every INVITE.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rtbridge.sip.auth.throttle import source_key
from rtbridge.sip.proxy import in_networks, networks

RefusalReason = Literal["draining", "capacity", "backlog", "rate"]


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason
    code: int = 503
    phrase: str = "Service Unavailable"


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class Admission:
    """Admission control of new INVITEs; not thread-safe (one caller: the agent thread).

    Memory is bounded by ``max_sources`` buckets (IPv4 addresses or IPv6 /64s, as the auth
    throttle keys them), least recently seen forgotten first: a forgotten source starts
    with a full bucket again, which errs on the side of admitting.
    """

    def __init__(
        self,
        *,
        bridges: int,
        max_routing: int,
        rate: float,
        burst: int,
        exempt: Sequence[str] = (),
        max_sources: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bridges = bridges
        self.max_routing = max_routing
        self._rate = rate
        self._burst = float(burst)
        self._exempt = networks(exempt)
        self._max_sources = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused: dict[RefusalReason, int] = {
            "draining": 0,
            "capacity": 0,
            "backlog": 0,
            "rate": 0,
        }

    def check(
        self, source_ip: str, *, active: int, draining: bool, routing: int = 0,
        free_slots: int = 1,
    ) -> Refusal | None:  # fmt: skip
        """None to admit; otherwise why not. ``active``: bridges alive now; ``routing``:
        INVITEs of them still waiting for the router's answer; ``free_slots``: pjsua call
        slots left for this call's buyer leg — legs that are no bridge's any more (a 503
        waiting for its ACK, a BYE being retransmitted to a gone peer) hold slots too, and
        a bridge admitted without one would fail to dial (PJ_ETOOMANY, 500)."""
        refusal: Refusal | None = None
        if draining:
            refusal = Refusal("draining")
        elif not self._take_token(source_ip):
            refusal = Refusal("rate")
        elif active >= self.bridges or free_slots < 1:
            refusal = Refusal("capacity")
        elif routing >= self.max_routing:
            refusal = Refusal("backlog")
        if refusal is not None:
            self.refused[refusal.reason] += 1
        return refusal

    def _take_token(self, source_ip: str) -> bool:
        if not self._rate or self._is_exempt(source_ip):
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

    def _is_exempt(self, source_ip: str) -> bool:
        return bool(self._exempt) and in_networks(source_ip, self._exempt)
