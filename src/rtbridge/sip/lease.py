"""The SIP agent's side of its lease (``storage/leases.py``): taking it at start, keeping it
with heartbeats, noticing it was taken (fenced), rejoining, and taking over silent peers.

Who holds a lease is a *process* (``storage.leases.Holder``): host, pid, the pid's start
time, the kernel's boot id and the pid namespace. A process on this machine (same boot, same
pid namespace) can be checked for life directly, so a restart after a crash takes its lease at once while a second agent
started with a live agent's ``agent_id`` is refused at once. A holder elsewhere is judged
by its heartbeats only: it must stand still for its ``takeover_after``, timed on our own
monotonic clock (agents' wall clocks need not agree).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from rtbridge.sip.leftover_legs import LeftoverLegs
from rtbridge.storage import leases
from rtbridge.storage.calls import Recovery
from rtbridge.storage.leases import Holder, Lease
from rtbridge.timestamps import utcnow

log = logging.getLogger("rtbridge.sip.lease")
_ACQUIRE_TRIES = 20  # rows changing under us this often: something else is wrong


class LeaseRefused(RuntimeError):
    """The agent_id is held by a live agent: this one must not run under it."""


@dataclass
class _Watch:
    """A lease as last seen, and since when (monotonic) it has looked exactly so."""

    epoch: int
    beats: int
    seen_at: datetime  # an agent from before leases advances only this (rolling upgrades)
    since: float

    def same(self, lease: Lease) -> bool:
        return (self.epoch, self.beats, self.seen_at) == (lease.epoch, lease.beats, lease.seen_at)


@dataclass(frozen=True)
class TakenOver:
    """A peer's lease this agent took over, and what that closed."""

    lease: Lease
    recovery: Recovery


class PeerWatch:
    """Watches the other agents' leases and takes over each one that stood still — same
    epoch, same heartbeat count — for its own ``takeover_after``, timed on this process's
    monotonic clock. Run by every agent at each heartbeat, and by the API process (an
    agent's site may lose its only agent). Any number of watchers: one wins each takeover,
    logs it and sends BYE on the legs of the calls it closed."""

    def __init__(
        self, engine: Engine, by: str, *, leftovers: LeftoverLegs | None = None,
        clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        """``by``: who takes over (an agent's id; the API's name), as the lease records it;
        ``leftovers``: where the closed calls' legs get their BYEs (None: nowhere, tests)."""
        self.engine = engine
        self.by = by
        self._leftovers = leftovers
        self._clock = clock
        self._monotonic = monotonic
        self._watching: dict[str, _Watch] = {}
        self.takeovers = 0  # leases taken over by this process, and the calls that closed
        self.calls_closed = 0

    def take_over_silent(self) -> list[TakenOver]:
        """One look at the peers' leases (each heartbeat, or the API's watch interval)."""
        now = self._monotonic()
        taken: list[TakenOver] = []
        seen_names = set()
        for lease in leases.peers(self.engine, me=self.by):
            seen_names.add(lease.name)
            watch = self._watching.get(lease.name)
            if watch is None or not watch.same(lease):
                self._watching[lease.name] = _Watch(lease.epoch, lease.beats, lease.seen_at, now)
                continue
            if now - watch.since < lease.takeover_after:
                continue
            recovery = leases.take_over(self.engine, lease, by=self.by, now=self._clock())
            del self._watching[lease.name]
            if recovery is not None:
                taken.append(TakenOver(lease, recovery))
                self._taken(lease, recovery)
        for name in set(self._watching) - seen_names:
            del self._watching[name]
        return taken

    def _taken(self, lease: Lease, recovery: Recovery) -> None:
        self.takeovers += 1
        self.calls_closed += recovery.closed
        log.warning("took over a silent agent's lease and closed its calls", extra={
            "by": self.by, "peer": lease.name, "peer_holder": lease.holder,
            "last_heartbeat": lease.seen_at, "calls_closed": recovery.closed,
            "legs_to_end": 2 * len(recovery.dialogs)})  # fmt: skip
        if self._leftovers is not None:
            self._leftovers.end(recovery.dialogs, whose=lease.name)


def api_watcher_name() -> str:
    """How the API process signs the takeovers it makes (``sipagent.taken_by``)."""
    return f"api {socket.gethostname()} pid {os.getpid()}"[:128]


class LeaseKeeper:
    """One agent's lease, and its watch over its peers' (:class:`PeerWatch`). Thread use:
    ``acquire`` before the agent starts; ``beat``, ``take_over_silent`` and ``rejoin`` on the
    agent's event thread; ``epoch`` read by the router's workers (an int: atomic)."""

    def __init__(
        self, engine: Engine, name: str, *, takeover_after: float, holder: Holder | None = None,
        leftovers: LeftoverLegs | None = None, clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        """``leftovers``: where the legs of calls it closes (a peer's) get their BYEs."""
        self.engine = engine
        self.name = name
        self.takeover_after = takeover_after
        self.holder = holder or Holder.this_process()
        self.epoch = 0  # 0: not held
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self.peers = PeerWatch(engine, name, leftovers=leftovers, clock=clock, monotonic=monotonic)
        self.fences = 0  # times this agent found its lease taken and rejoined

    def acquire(self) -> Recovery:
        """Take the lease, closing what a previous holder left open (its calls' dialogs are
        returned for their BYEs). Raises :class:`LeaseRefused` while a live process holds
        it; waits up to its ``takeover_after`` for a holder on another machine to prove
        itself silent."""
        watch: _Watch | None = None
        races = 0  # acquisitions lost to a row that changed meanwhile (not waits)
        while races < _ACQUIRE_TRIES:
            seen = leases.read(self.engine, self.name)
            if seen is not None and seen.holder and seen.holder != str(self.holder):
                holder = Holder.parse(seen.holder)
                alive = holder.alive() if holder is not None else None
                if alive:
                    raise LeaseRefused(self._in_use(seen, "it is running on this machine"))
                if alive is None:  # elsewhere: it must stand still for its takeover_after
                    now = self._monotonic()
                    if watch is None:
                        watch = _Watch(seen.epoch, seen.beats, seen.seen_at, now)
                    elif not watch.same(seen):
                        raise LeaseRefused(self._in_use(seen, "its heartbeats go on"))
                    if now - watch.since < seen.takeover_after:
                        self._sleep(min(0.25, seen.takeover_after / 8))
                        continue
            taken = leases.acquire(self.engine, name=self.name, holder=str(self.holder),
                                   takeover_after=self.takeover_after, now=self._clock(),
                                   seen=seen)  # fmt: skip
            if taken is not None:
                self.epoch, recovery = taken
                return recovery
            races += 1
        raise LeaseRefused(f"agent_id {self.name!r}: its lease kept changing while starting; "
                           "is another agent starting under the same id?")  # fmt: skip

    def _in_use(self, seen: Lease, why: str) -> str:
        return (
            f"agent_id {self.name!r} is held by another agent ({seen.holder}): {why}. Give each "
            "agent of the site its own agent_id ([agent] agent_id), or stop that one first"
        )

    def beat(self, at: datetime) -> bool:
        """Write the heartbeat; False when the lease was taken (this agent is fenced)."""
        return leases.beat(self.engine, name=self.name, epoch=self.epoch, at=at)

    def release(self) -> None:
        if self.epoch:
            leases.release(self.engine, name=self.name, epoch=self.epoch)

    def rejoin(self) -> Recovery:
        """After being fenced: a new epoch, closing the calls still recorded as this agent's
        that the peer did not see (claims made while it was being taken over)."""
        self.epoch = 0
        self.fences += 1
        return self.acquire()

    def take_over_silent(self) -> list[TakenOver]:
        """Take over the peers that went silent (:class:`PeerWatch`)."""
        return self.peers.take_over_silent()
