"""What the agent thread checks between pjsua2 events, on timers of its own.

- every ``heartbeat_interval``: the heartbeat, which keeps the agent's lease (whoever closes
  a dead agent's calls bills them up to its last one; the router sweeps orphans and watches
  its peers' leases with it), stray calls (a pjsua call no leg of the agent owns is hung up:
  SPEC §4.6), and the flood logs' interval lines;
- every poll: whether a heartbeat found the lease taken over (then: hang up unrecorded,
  rejoin), what OPTIONS probes hear (503 while no call would be admitted), and whether to
  give memory back after a burst (:mod:`~rtbridge.sip.b2bua.memory`);
- every ``rtp_timeout / 4`` s at most: RTP inactivity, a slice of the bridges at a time
  (:meth:`Bridge.check_media`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable

import pjsua2 as pj

from rtbridge.sip.b2bua.bridge import Bridge
from rtbridge.sip.b2bua.delivery import Delivery
from rtbridge.sip.b2bua.memory import MemoryTrim
from rtbridge.sip.b2bua.state import AgentState

log = logging.getLogger("rtbridge.sip.b2bua.supervision")
# How long a call pjsua is hanging up may stay in its table: a BYE's transaction lasts up to
# 64 * T1 = 32 s when the far end never answers it.
_BYE_GRACE = 40.0


class Supervision:
    def __init__(
        self, state: AgentState, delivery: Delivery, tick_logs: Callable[[float], None],
        fence: Callable[[], None],
    ) -> None:  # fmt: skip
        """``fence``: hang up every call without recording it (the lease was taken)."""
        self._state = state
        self._delivery = delivery
        self._tick_logs = tick_logs
        self._fence = fence
        self._fenced = False  # this thread's view: fenced, and the rejoin asked for
        self._next_heartbeat = 0.0
        self._next_media_check = 0.0
        self._media_round: deque[Bridge] = deque()
        self._options_code: int | None = None  # the library's is process-wide: set at start
        self._memory = MemoryTrim(delivery.run, enabled=state.config.memory_trim)

    def tick(self, now: float) -> None:
        """Once per poll of the agent thread."""
        config = self._state.config
        self._check_fence()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + config.heartbeat_interval
            if not self._fenced:  # a fenced agent's lease is not its own to beat
                self._delivery.heartbeat(self._state.bridges, config.heartbeat_interval)
            self._hang_up_asked()
            self.end_strays()
            self._tick_logs(now)
        if config.rtp_timeout and now >= self._next_media_check:
            self._check_media(now)
        self.update_options_status()
        self._memory.tick(now, len(self._state.legs), self._state.counters.invites)

    def _hang_up_asked(self) -> None:
        """End the calls an admin asked to hang up (``admin/calls.py``), as the heartbeats
        found them: both legs, recorded ``hangup_by = "admin"``."""
        asked = self._delivery.take_hangups()
        if not asked:
            return
        for bridge in list(self._state.bridges):
            if bridge.plan is not None and bridge.plan.reservation_uuid in asked:
                log.warning("hanging up a call, as an admin asked",
                            extra={"uuid": bridge.plan.reservation_uuid})  # fmt: skip
                bridge.end_by("admin")

    def _check_fence(self) -> None:
        """A heartbeat found the lease taken over (the agent was paused or cut off from the
        database past ``takeover_after``, and a peer closed its calls): hang up everything,
        record nothing, take no call, then rejoin under a new epoch."""
        fenced = self._state.fenced.is_set()
        if fenced and not self._fenced:
            self._fenced = True
            self._fence()
            self._delivery.rejoin(self._state.config.heartbeat_interval)
        elif self._fenced and not fenced:
            self._fenced = False
            log.warning("rejoined: taking calls again")

    def end_strays(self) -> None:
        """Hang up every pjsua call no leg of this agent owns (SPEC §4.6: no call that is
        not a leg of a bridge). The dial gate and the screen leave pjsua no way to make
        one; this is the net under them."""
        endpoint = self._state.endpoint
        assert endpoint is not None
        owned = {leg.getId() for leg in self._state.legs if not leg.disconnected}
        ended, horizon = self._state.ended, time.monotonic() - _BYE_GRACE
        for call_id, at in list(ended.items()):  # legs ended lately: still hanging up
            if at < horizon:
                del ended[call_id]
        owned.update(ended)
        for call_id in endpoint.ep.utilCallIds():
            if call_id not in owned:
                self._state.counters.stray_calls += 1
                log.error("hanging up a call no bridge owns", extra={"pjsua_call_id": call_id})
                with contextlib.suppress(pj.Error):
                    endpoint.ep.utilHangupCall(call_id, 503)

    def update_options_status(self) -> None:
        """What OPTIONS probes hear (pjproject/patches/0004): 503 while no call would be
        admitted, so a dispatcher stops sending here; 200 again once there is room."""
        state = self._state
        full = len(state.bridges) >= state.capacity.bridges
        code = 503 if state.stopping or full else 200
        if code != self._options_code and state.endpoint is not None:
            self._options_code = code
            state.endpoint.ep.utilSetOptionsStatus(code, state.config.retry_after)

    def _check_media(self, now: float) -> None:
        """RTP inactivity, a slice of the bridges per tick so that each is looked at every
        ``rtp_timeout / 4`` s at most — not all of them at once: reading a leg's stream
        statistics costs a few microseconds per leg."""
        bridges, timeout = self._state.bridges, self._state.config.rtp_timeout
        period = timeout / 4
        tick = min(1.0, period)
        self._next_media_check = now + tick
        if not self._media_round:
            self._media_round.extend(bridges)
        for _ in range(min(len(self._media_round), math.ceil(len(bridges) * tick / period))):
            bridge = self._media_round.popleft()
            if bridge in bridges:
                bridge.check_media(now, timeout)
