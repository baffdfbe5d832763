"""SIP agents' leases (SPEC §7): which process carries an agent's calls, and who closes them
when it is gone for good.

An agent's row in ``sipagent`` is its lease. Every start of the agent bumps ``epoch`` and
writes the process as ``holder``; every heartbeat advances ``seen_at`` and ``beats`` under
that epoch. A live peer that watched a lease stand still for its ``takeover_after`` takes it
over: one conditional UPDATE (the epoch and beats it watched; exactly one peer wins), then,
in the same transaction, the agent's open calls are closed as a restart would close them
(``calls.close_calls_of``). The taken agent — only paused, or cut off from the database —
finds at its next heartbeat (or claim) that its epoch moved on: it is *fenced*.

Every write of a call is conditional on the call being open, so whoever closes a call first
(the agent, its restart, a peer) writes it, once; the epoch keeps a fenced agent from taking
new calls (``calls.claim``), and tells it to hang up what it still carries. The holder is
written as a :class:`Holder` (a process, checkable for life from its own machine).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from rtbridge.storage.calls import Recovery, close_calls_of, died_during_call
from rtbridge.storage.sql import Db, transaction


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22):
    with the boot id, it tells a pid reused by another process from the one we knew."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    """A process, written into the lease as ``host pid N start T boot B ns S``."""

    host: str
    pid: int
    start: str
    boot: str
    namespace: str

    @classmethod
    def this_process(cls) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_ticks(pid),
                   _read("/proc/sys/kernel/random/boot_id")[:8], _pid_namespace())  # fmt: skip

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid} start {self.start} boot {self.boot} ns {self.namespace}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        words = text.split()
        if len(words) != 9 or words[1::2] != ["pid", "start", "boot", "ns"]:
            return None
        try:
            return cls(words[0], int(words[2]), words[4], words[6], words[8])
        except ValueError:
            return None

    @property
    def shown(self) -> str:
        """``host pid N``: the rest only tells a reused pid from the one that held it."""
        return f"{self.host} pid {self.pid}"

    def alive(self) -> bool | None:
        """Whether this process still runs, when that can be known from here (same kernel
        boot and pid namespace); None when it runs elsewhere."""
        here = Holder.this_process()
        if not (self.boot and self.namespace and self.start):
            return None
        if (self.boot, self.namespace) != (here.boot, here.namespace):
            return None
        return _start_ticks(self.pid) == self.start


@dataclass(frozen=True)
class Lease:
    """An agent's row as read: enough to decide whether it is live and to take it over."""

    name: str
    epoch: int
    holder: str | None
    beats: int
    seen_at: datetime
    takeover_after: float
    taken_by: str | None = None
    taken_at: datetime | None = None


_COLUMNS = "name, epoch, holder, beats, seen_at, takeover_after, taken_by, taken_at"


def _lease(db: Db, row: dict[str, Any]) -> Lease:
    seen_at = db.read_ts(row["seen_at"])
    assert seen_at is not None
    return Lease(name=row["name"], epoch=int(row["epoch"]), holder=row["holder"],
                 beats=int(row["beats"]), seen_at=seen_at,
                 takeover_after=float(row["takeover_after"]), taken_by=row["taken_by"],
                 taken_at=db.read_ts(row["taken_at"]))  # fmt: skip


def read(engine: Engine, name: str) -> Lease | None:
    with transaction(engine, write=False) as db:
        row = db.one(f"SELECT {_COLUMNS} FROM sipagent WHERE name = :n", {"n": name})
        return None if row is None else _lease(db, row)


def acquire(
    engine: Engine, *, name: str, holder: str, takeover_after: float, now: datetime,
    seen: Lease | None,
) -> tuple[int, Recovery] | None:  # fmt: skip
    """Take ``name``'s lease for this process, which found it as ``seen`` (None: no row),
    and close the open calls a previous holder left (at its last heartbeat). The new epoch
    and what was closed; None when the row changed since it was read (another process
    started, beat or took it over meanwhile: read it again). The last takeover's who, when
    and how many stay on the row: the history of the lease, not its state."""
    with transaction(engine, write=True) as db:
        params = {"n": name, "h": holder, "t": takeover_after, "now": db.ts(now)}
        if seen is None:
            inserted = db.execute(
                "INSERT INTO sipagent (name, started_at, seen_at, epoch, holder, beats, takeover_after) "
                "VALUES (:n, :now, :now, 1, :h, 0, :t) ON CONFLICT (name) DO NOTHING",
                params,
            ).rowcount
            return (1, Recovery(0, [], None)) if inserted == 1 else None
        moved = db.execute(
            "UPDATE sipagent SET epoch = epoch + 1, holder = :h, started_at = :now, seen_at = :now, "
            "beats = 0, takeover_after = :t WHERE name = :n AND epoch = :e AND beats = :b",
            {**params, "e": seen.epoch, "b": seen.beats},
        ).rowcount
        if moved != 1:
            return None
        recovery = close_calls_of(db, agent=name, last_seen=seen.seen_at, now=now,
                                  why=died_during_call(seen.seen_at))  # fmt: skip
    return seen.epoch + 1, recovery


def note_refusals(engine: Engine, *, name: str, refusals: list[dict[str, Any]]) -> None:
    """The agent's last refused INVITEs (``sip/recent_refusals.py``), newest first, on its
    lease row: where ``GET /admin/refusals`` reads them, from any process."""
    with transaction(engine, write=True) as db:
        db.execute(
            "UPDATE sipagent SET refusals = :r WHERE name = :n", {"r": db.js(refusals), "n": name}
        )


def beat(engine: Engine, *, name: str, epoch: int, at: datetime) -> bool:
    """The heartbeat: the agent was carrying its calls at ``at``. False when its lease is no
    longer ``epoch`` (taken over, or started again elsewhere): the agent is fenced."""
    with transaction(engine, write=True) as db:
        return bool(
            db.execute(
                "UPDATE sipagent SET beats = beats + 1, "
                "seen_at = CASE WHEN seen_at < :at THEN :at ELSE seen_at END "
                "WHERE name = :n AND epoch = :e",
                {"n": name, "e": epoch, "at": db.ts(at)},
            ).rowcount
            == 1
        )


def release(engine: Engine, *, name: str, epoch: int) -> None:
    """A clean stop: the lease is free at once (a restart elsewhere need not wait)."""
    with transaction(engine, write=True) as db:
        db.execute(
            "UPDATE sipagent SET holder = NULL WHERE name = :n AND epoch = :e",
            {"n": name, "e": epoch},
        )


def peers(engine: Engine, *, me: str) -> list[Lease]:
    """The other agents' leases worth watching: held ones, and released or taken ones that
    still have open calls (a stop that could not close them). The open calls are probed in
    the partial index of open calls (models.py), never a table scan."""
    with transaction(engine, write=False) as db:
        rows = db.rows(
            f"SELECT {_COLUMNS} FROM sipagent a WHERE a.name <> :me AND (a.holder IS NOT NULL "
            "OR EXISTS (SELECT 1 FROM callrecord c WHERE c.agent = a.name AND c.end_at IS NULL))",
            {"me": me},
        )
        return [_lease(db, r) for r in rows]


def take_over(engine: Engine, lease: Lease, *, by: str, now: datetime) -> Recovery | None:
    """Take a silent agent's lease (as watched: ``lease``) and close its open calls at its
    last heartbeat, in one transaction. None when the lease moved meanwhile (the agent beat
    again, restarted, or another peer won)."""
    with transaction(engine, write=True) as db:
        params = {"n": lease.name, "e": lease.epoch, "b": lease.beats, "by": by,
                  "now": db.ts(now)}  # fmt: skip
        moved = db.execute(
            "UPDATE sipagent SET epoch = epoch + 1, holder = NULL, taken_by = :by, taken_at = :now "
            "WHERE name = :n AND epoch = :e AND beats = :b",
            params,
        ).rowcount
        if moved != 1:
            return None
        why = f"agent {lease.name} went silent; closed by {by} at its last heartbeat"
        recovery = close_calls_of(db, agent=lease.name, last_seen=lease.seen_at, now=now, why=why)
        db.execute(
            "UPDATE sipagent SET taken_calls = :c WHERE name = :n", {**params, "c": recovery.closed}
        )
    return recovery
