"""What the agent's parts share on the pjsua2 thread: the live legs and bridges, the started
library, the counters ``/health`` reports, and whether the agent is stopping.

Written by the agent thread only. :meth:`Agent.status` reads the counters from other threads:
each is an int or a dict copied whole, atomic under the GIL, so a snapshot may be a poll
behind but never torn."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.bridge import Bridge
from rtbridge.sip.b2bua.endpoint import Endpoint
from rtbridge.sip.b2bua.leg import Leg
from rtbridge.sip.capacity import Capacity
from rtbridge.sip.status import SetupTimes


@dataclass
class Counters:
    """Since the agent started."""

    invites: int = 0  # new INVITEs seen
    routing: int = 0  # INVITEs waiting for the router now
    answers: collections.Counter[int] = field(default_factory=collections.Counter)  # to publishers
    auth_failures: collections.Counter[str] = field(default_factory=collections.Counter)
    setup: SetupTimes = field(default_factory=SetupTimes)  # INVITE to 200, answered calls
    # requests the screen refused (sip/screen.py), by (why, method label)
    screened: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    media_refused: collections.Counter[str] = field(default_factory=collections.Counter)  # party
    failovers: collections.Counter[str] = field(default_factory=collections.Counter)  # by kind
    # routed INVITEs by STIR/SHAKEN attestation (A, B, C, none, failed)
    attestations: collections.Counter[str] = field(default_factory=collections.Counter)
    # INVITEs refused 403 by a check before their claim, by reason (storage/invite_checks.py)
    checks_refused: collections.Counter[str] = field(default_factory=collections.Counter)
    stray_calls: int = 0  # pjsua calls no leg owned, hung up
    dtmf_relayed: int = 0


@dataclass
class AgentState:
    config: AgentConfig
    capacity: Capacity
    legs: set[Leg] = field(default_factory=set)  # every pjsua2 Call alive (SPEC §8: kept
    bridges: set[Bridge] = field(default_factory=set)  # until DISCONNECTED)
    counters: Counters = field(default_factory=Counters)
    endpoint: Endpoint | None = None  # the started library (None before and after)
    # call id -> when its leg disconnected (monotonic): pjsua reports a call disconnected
    # when it starts hanging it up, and holds it until its BYE transaction ends (up to 32 s)
    ended: dict[int, float] = field(default_factory=dict)
    draining: threading.Event = field(default_factory=threading.Event)  # no new calls
    stop_requested: threading.Event = field(default_factory=threading.Event)
    # set by the event thread when a heartbeat finds the lease taken over, cleared once the
    # agent rejoined (supervision.py): meanwhile no calls are taken and none is recorded
    fenced: threading.Event = field(default_factory=threading.Event)

    @property
    def stopping(self) -> bool:
        """No new calls now: draining, stopping, or fenced."""
        return self.draining.is_set() or self.stop_requested.is_set() or self.fenced.is_set()

    @property
    def retry_after(self) -> tuple[tuple[str, str], ...]:
        """The header every 503 carries."""
        return (("Retry-After", str(self.config.retry_after)),)
