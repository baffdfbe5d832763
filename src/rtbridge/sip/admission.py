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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rtbridge.sip.auth.allowlist import IPAddress
from rtbridge.sip.rate import SourceRate

RefusalReason = Literal["draining", "capacity", "backlog", "rate"]


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason
    code: int = 503
    phrase: str = "Service Unavailable"


class Admission:
    """Admission control of new INVITEs; not thread-safe (one caller: the agent thread).

    The per-source rate is a :class:`~rtbridge.sip.rate.SourceRate` (IPv4 addresses or IPv6
    /64s, bounded memory).
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
        self._rate = SourceRate(
            rate=rate, burst=burst, exempt=exempt, max_sources=max_sources, clock=clock
        )
        self.refused: dict[RefusalReason, int] = {
            "draining": 0,
            "capacity": 0,
            "backlog": 0,
            "rate": 0,
        }

    def check(
        self, source_ip: IPAddress | str, *, active: int, draining: bool, routing: int = 0,
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
        elif not self._rate.take(source_ip):
            refusal = Refusal("rate")
        elif active >= self.bridges or free_slots < 1:
            refusal = Refusal("capacity")
        elif routing >= self.max_routing:
            refusal = Refusal("backlog")
        if refusal is not None:
            self.refused[refusal.reason] += 1
        return refusal
