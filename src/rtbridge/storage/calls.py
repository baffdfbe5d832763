"""What the SIP agent writes: the atomic claim of a reservation and its call record
(SPEC §3.7, §4.3, §4.4). Every function is one short transaction on the driver connection.

A claim keeps the buyer's units (a call in progress holds it as the reservation did); the end
of the call, or its recovery after a crash, gives the live unit back in the same transaction
(``storage/counters.py``). Those writes are conditional on the call still being open, so a
reservation closed twice (the agent's report racing recovery) moves its counter once."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain import lifecycle as st
from rtbridge.domain.failover import Attempt
from rtbridge.domain.money import revenue_or_payout
from rtbridge.storage.attempts import record as record_attempts
from rtbridge.storage.counters import Tally
from rtbridge.storage.models import HANGUPS_ASKED, LIVE_ROWS, UNCLAIMED_ROWS
from rtbridge.storage.reservations import record_event
from rtbridge.storage.rollups import EARNED, key_of
from rtbridge.storage.sql import Db, transaction

_CLAIMABLE = f"{UNCLAIMED_ROWS} AND expires_at > :now"
# What a reservation's rollup key is made of (storage/rollups.py key_of)
_KEY_COLUMNS = "status, reason, buyer_id, publisher_id, campaign_id, created_at, caller_number"
_CLOSE = (
    "UPDATE reservation SET status = :s, updated_at = :at "
    "WHERE uuid = :u AND status IN ('claimed', 'connected')"
)


@dataclass(frozen=True)
class Claimed:
    uuid: str
    publisher_id: str
    buyer_id: str
    caller_number: str | None
    tags: dict[str, str]
    seconds: int
    payout: float
    destination: str | None = None  # a winning bid's (an RTB buyer's); None: the buyer's own


@dataclass(frozen=True)
class NotClaimed:
    """Why the INVITE cannot have this reservation; ``code`` is the SIP answer (§4.5)."""

    code: int
    reason: str


def _refusal(db: Db, uuid: str, publisher_id: str | None, now: datetime) -> NotClaimed:
    row = db.one(
        "SELECT status, publisher_id, expires_at FROM reservation WHERE uuid = :u", {"u": uuid}
    )
    if row is None:
        return NotClaimed(404, "Not Found")
    if publisher_id is not None and row["publisher_id"] != publisher_id:
        return NotClaimed(403, "Forbidden (reservation of another publisher)")
    status = st.effective_status(row["status"], db.read_ts(row["expires_at"]), now)
    if status == st.NO_TARGET:
        return NotClaimed(404, "Not Found (the ping reserved no buyer)")
    if status == st.EXPIRED:
        return NotClaimed(410, "Gone (reservation expired)")
    if status == st.CANCELLED:
        return NotClaimed(410, "Gone (reservation cancelled)")
    return NotClaimed(410, "Gone (reservation already used)")


# The answer of an agent whose lease was taken over (storage/leases.py): a call it took now
# would be nobody's to close; the proxy in front retries the INVITE on a live agent.
FENCED = NotClaimed(503, "Service Unavailable (agent's lease taken over)")


_HOLDS_LEASE = " WHERE EXISTS (SELECT 1 FROM sipagent WHERE name = :lease AND epoch = :epoch)"


class _Fenced(Exception):
    """Rolls the claim back: the claiming agent no longer holds its lease."""


def claim(
    engine: Engine, *, uuid: str, publisher_id: str | None, now: datetime, agent: str, source: str,
    via: str = "sip", epoch: int | None = None, attestation: tuple[str, str | None] | None = None,
) -> Claimed | NotClaimed:  # fmt: skip
    """Take the reservation for a call. The conditional UPDATE is the whole race: of many
    INVITEs for one uuid, in any number of processes, exactly one sees a row change.
    ``publisher_id`` None means a trusted trunk (PSTN path), which may take any publisher's.
    ``epoch``: the agent's lease; the claim is made only while the agent still holds it
    (:data:`FENCED` otherwise, nothing written). ``attestation``: the INVITE's STIR/SHAKEN
    level and, when it failed, why (``sip/attester.py``), kept on the reservation."""
    try:
        return _claim(engine, uuid=uuid, publisher_id=publisher_id, now=now, agent=agent,
                      source=source, via=via, epoch=epoch,
                      attestation=attestation or (None, None))  # fmt: skip
    except _Fenced:
        return FENCED


def _claim(
    engine: Engine, *, uuid: str, publisher_id: str | None, now: datetime, agent: str, source: str,
    via: str, epoch: int | None, attestation: tuple[str | None, str | None],
) -> Claimed | NotClaimed:  # fmt: skip
    with transaction(engine, write=True) as db:
        params: dict[str, Any] = {"u": uuid, "now": db.ts(now), "p": publisher_id}
        owner = "" if publisher_id is None else " AND publisher_id = :p"
        level, why = attestation
        cur = db.execute(
            f"UPDATE reservation SET status = 'claimed', updated_at = :now, attestation = :a, "
            f"attestation_why = :aw WHERE uuid = :u AND {_CLAIMABLE}{owner}",
            {**params, "a": level, "aw": None if why is None else why[:128]},
        )
        if cur.rowcount != 1:
            return _refusal(db, uuid, publisher_id, now)
        row = db.one(
            "SELECT publisher_id, campaign_id, buyer_id, caller_number, tags, seconds, payout, "
            "destination, status, reason, created_at FROM reservation WHERE uuid = :u",
            params,
        )
        assert row is not None
        record_event(db, uuid, st.CLAIMED, now, f"{via} INVITE from {source} on {agent}")
        # "lease" repeats "agent": PostgreSQL types a parameter once, and the two uses differ
        values = {**params, "agent": agent, "source": source[:128], "via": via, "epoch": epoch,
                  "lease": agent}  # fmt: skip
        held = "" if epoch is None else _HOLDS_LEASE
        inserted = db.execute(
            "INSERT INTO callrecord (reservation_uuid, agent, source, via, invite_at) "
            f"SELECT :u, :agent, :source, :via, :now{held}",
            values,
        ).rowcount
        if inserted != 1:
            raise _Fenced
        tally = Tally(db)
        tally.rollup.add(key_of(row), calls=1)
        tally.flush()
    return Claimed(uuid, row["publisher_id"], row["buyer_id"], row["caller_number"],
                   db.read_js(row["tags"]) or {}, row["seconds"] or 0, row["payout"] or 0.0,
                   row["destination"])  # fmt: skip


def find_pstn(engine: Engine, *, did: str, caller: str, now: datetime) -> str | None:
    """The live reservation a PSTN arrival belongs to: matched by (dialled DID, caller id),
    which the ping handed out so that the pair is unique among live reservations (§3.3)."""
    with transaction(engine, write=False) as db:
        row = db.one(
            # LIVE_ROWS too: the partial index of a caller's live reservations (models.py)
            f"SELECT uuid FROM reservation WHERE caller_number = :caller AND {LIVE_ROWS} "
            f"AND inbound_number = :did AND {_CLAIMABLE} ORDER BY created_at DESC LIMIT 1",
            {"did": did, "caller": caller, "now": db.ts(now)},
        )
    return None if row is None else str(row["uuid"])


def answered(
    engine: Engine, *, uuid: str, at: datetime, dialogs: Mapping[str, Any] | None = None
) -> None:
    with transaction(engine, write=True) as db:
        tally = Tally(db)
        mark_answered(db, tally, uuid=uuid, at=at, dialogs=dialogs)
        tally.flush()


def mark_answered(
    db: Db, tally: Tally, *, uuid: str, at: datetime, dialogs: Mapping[str, Any] | None = None
) -> None:
    """The buyer answered: ``connected``, with the answer time on the call record, and
    the legs' dialogs (``sip/dialogs.py``) that a recovery would end with a BYE."""
    moved = db.execute(
        "UPDATE reservation SET status = 'connected', updated_at = :at WHERE uuid = :u AND status = 'claimed'",
        {"u": uuid, "at": db.ts(at)},
    ).rowcount
    if moved != 1:
        return  # already connected or closed (an event replayed after an outage): once only
    db.execute(
        "UPDATE callrecord SET answer_at = :at, dialogs = :dialogs WHERE reservation_uuid = :u",
        {"u": uuid, "at": db.ts(at), "dialogs": db.js(dialogs) if dialogs else None},
    )
    record_event(db, uuid, st.CONNECTED, at, "buyer answered")
    row = db.one(f"SELECT {_KEY_COLUMNS} FROM reservation WHERE uuid = :u", {"u": uuid})
    if row is not None:
        tally.rollup.add(key_of(row), answered=1)
        tally.seen.add("connected", row["caller_number"], row["buyer_id"], db.ts(at))


def ended(
    engine: Engine, *, uuid: str, answer_at: datetime | None, end_at: datetime, publisher_code: int | None,
    buyer_code: int | None, hangup_by: str | None, duration: float, detail: str = "",
    attempts: Sequence[Attempt] = (),
) -> None:  # fmt: skip
    with transaction(engine, write=True) as db:
        tally = Tally(db)
        mark_ended(db, tally, uuid=uuid, answer_at=answer_at, end_at=end_at,
                   publisher_code=publisher_code, buyer_code=buyer_code, hangup_by=hangup_by,
                   duration=duration, detail=detail, attempts=attempts)  # fmt: skip
        tally.flush()


def mark_ended(
    db: Db, tally: Tally, *, uuid: str, answer_at: datetime | None, end_at: datetime,
    publisher_code: int | None, buyer_code: int | None, hangup_by: str | None, duration: float,
    detail: str = "", attempts: Sequence[Attempt] = (),
) -> None:  # fmt: skip
    """Close the call: ``completed`` with duration and ``converted`` (duration ≥ the
    reservation's seconds: its buyer's, the one that answered) when the buyer answered, else
    ``failed`` keeping the SIP code. ``attempts``: the call's attempts not recorded yet (its
    last, and any whose failover could not be written), recorded with the close only, so a
    replayed event adds none twice.
    The buyer's counters move in ``tally``, which the caller flushes once per transaction
    (one fixed order of counter rows per transaction: no deadlocks between agents)."""
    row = db.one(
        f"SELECT seconds, payout, revenue, {_KEY_COLUMNS} FROM reservation WHERE uuid = :u",
        {"u": uuid},
    )
    if row is None or row["status"] not in st.IN_CALL:
        return  # already closed (e.g. by recovery): the first word stands
    status = st.COMPLETED if answer_at is not None else st.FAILED
    converted = answer_at is not None and duration >= (row["seconds"] or 0)
    if db.execute(_CLOSE, {"s": status, "at": db.ts(end_at), "u": uuid}).rowcount != 1:
        return  # closed by another transaction since the read
    tally.transition(row["buyer_id"], row["created_at"], row["status"], status)
    earned = _count_end(tally, row, answered=answer_at is not None, duration=duration,
                        converted=converted, at=end_at)  # fmt: skip
    record_attempts(db, uuid, attempts)
    db.execute(
        "UPDATE callrecord SET answer_at = :ans, end_at = :at, publisher_code = :pc, buyer_code = :bc, "
        "hangup_by = :hb, duration = :d, converted = :cv, payout = :pay, revenue = :rev "
        "WHERE reservation_uuid = :u",
        {"ans": db.ts(answer_at), "at": db.ts(end_at), "pc": publisher_code, "bc": buyer_code,
         "hb": hangup_by, "d": round(duration, 3), "cv": converted, **earned, "u": uuid},
    )  # fmt: skip
    what = (
        f"{status}: {hangup_by or '?'} hung up"
        if answer_at
        else f"{status}: buyer {buyer_code} {detail}"
    )
    record_event(db, uuid, status, end_at, what.strip()[:256])


def _count_end(
    tally: Tally, reservation: Mapping[str, Any], *, answered: bool, duration: float,
    converted: bool, at: datetime,
) -> dict[str, float]:  # fmt: skip
    """The end of a call in the rollups (storage/rollups.py) and, converted, in its caller's
    marks (storage/callers.py) and the auto-blocking lists of its scope
    (storage/caller_lists.py); what it earned, for its call record (:func:`_earned`)."""
    earned = _earned(reservation, converted)
    if converted:
        tally.seen.add("converted", reservation["caller_number"], reservation["buyer_id"],
                       tally.db.ts(at))  # fmt: skip
        tally.auto_blocks.add(tally.db, reservation, at)
    key = key_of(reservation)
    tally.rollup.add(
        key, converted=int(converted), talk_seconds=round(duration, 3) if answered else 0.0,
        payout=earned["pay"], revenue=earned["rev"],
    )  # fmt: skip
    tally.db.committed.append(
        partial(EARNED.add, key[2], key[3], int(converted), earned["pay"], earned["rev"])
    )
    return earned


def _earned(reservation: Mapping[str, Any], converted: bool) -> dict[str, float]:
    """The call record's money (``pay``, ``rev``): the reservation's on conversion, else 0."""
    if not converted:
        return {"pay": 0.0, "rev": 0.0}
    payout = reservation["payout"] or 0.0
    return {"pay": payout, "rev": revenue_or_payout(reservation["revenue"], payout) or 0.0}


def hangups_asked(engine: Engine, *, agent: str) -> list[str]:
    """The open calls of ``agent`` an admin asked to hang up (``admin/calls.py``): one read
    of a partial index that holds only such calls."""
    with transaction(engine, write=False) as db:
        rows = db.rows(
            f"SELECT reservation_uuid FROM callrecord WHERE agent = :a AND {HANGUPS_ASKED}",
            {"a": agent},
        )
    return [str(r["reservation_uuid"]) for r in rows]


def heartbeat(engine: Engine, *, agent: str, at: datetime) -> None:
    """The agent was carrying calls at ``at`` (never moves back: heartbeats of one agent
    are written in order, but a restarted process may race its predecessor's last one)."""
    with transaction(engine, write=True) as db:
        db.execute(
            "INSERT INTO sipagent (name, started_at, seen_at) VALUES (:a, :at, :at) "
            "ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at "
            "WHERE sipagent.seen_at < excluded.seen_at",
            {"a": agent, "at": db.ts(at)},
        )


# A call this agent has open: the partial index ``ix_callrecord_open`` (models.py) holds
# exactly these rows, by agent and INVITE time, so neither recovery nor the orphan sweep
# reads a closed call.
_OPEN_CALLS = (
    "SELECT r.uuid, r.status, r.buyer_id, r.created_at, r.seconds, r.payout, r.revenue, "
    "r.publisher_id, r.campaign_id, r.reason, r.caller_number, "
    "c.invite_at, c.answer_at, c.dialogs FROM callrecord c "
    "JOIN reservation r ON r.uuid = c.reservation_uuid "
    "WHERE c.agent = :agent AND c.end_at IS NULL AND r.status IN ('claimed', 'connected')"
)


def _close_as_fault(
    db: Db, tally: Tally, row: Mapping[str, Any], *, last_seen: datetime | None, now: datetime,
    why: str,
) -> str | None:  # fmt: skip
    """Close one open call its agent no longer carries, as of ``last_seen`` (when the agent
    was last known to carry it; ``now`` without one): ``completed`` up to then when it was
    answered — duration, conversion and payout kept — else ``failed``; ``hangup_by =
    "fault"``, the buyer's counters moved in ``tally``, a history row saying ``why``. The
    status written, or None when another transaction closed it first."""
    answer_at = db.read_ts(row["answer_at"])
    invite_at = db.read_ts(row["invite_at"]) or now
    end_at = min(now, max(last_seen or now, answer_at or invite_at))
    status = st.COMPLETED if answer_at is not None else st.FAILED
    if db.execute(_CLOSE, {"u": row["uuid"], "s": status, "at": db.ts(end_at)}).rowcount != 1:
        return None
    tally.transition(row["buyer_id"], row["created_at"], row["status"], status)
    duration = (end_at - answer_at).total_seconds() if answer_at is not None else 0.0
    converted = answer_at is not None and duration >= (row["seconds"] or 0)
    earned = _count_end(tally, row, answered=answer_at is not None, duration=duration,
                        converted=converted, at=end_at)  # fmt: skip
    db.execute(
        "UPDATE callrecord SET end_at = :at, hangup_by = 'fault', duration = :d, "
        "converted = :cv, payout = :pay, revenue = :rev, "
        "publisher_code = COALESCE(publisher_code, :pc) "
        "WHERE reservation_uuid = :u AND end_at IS NULL",
        {"u": row["uuid"], "at": db.ts(end_at), "d": round(duration, 3), "cv": converted,
         **earned, "pc": 200 if answer_at is not None else 500},
    )  # fmt: skip
    record_event(db, row["uuid"], status, end_at, f"{status}: {why}"[:256])
    return status


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` (or a lease's takeover) closed, and the dialogs of the legs still
    to be sent a BYE: ``{"publisher": {...}, "buyer": {...}}`` per answered call
    (``sip/dialogs.py``)."""

    closed: int
    dialogs: list[Mapping[str, Any]]
    last_seen: datetime | None


def close_calls_of(
    db: Db, *, agent: str, last_seen: datetime | None, now: datetime, why: str
) -> Recovery:
    """Close every open call of ``agent``, a process that is gone, as of ``last_seen`` (its
    last heartbeat; ``now`` without one) — see :func:`_close_as_fault` — inside the caller's
    transaction, counters included."""
    closed = 0
    legs: list[Mapping[str, Any]] = []
    tally = Tally(db)
    for row in db.rows(_OPEN_CALLS, {"agent": agent}):
        if _close_as_fault(db, tally, row, last_seen=last_seen, now=now, why=why) is None:
            continue
        closed += 1
        dialogs = db.read_js(row["dialogs"])
        if dialogs:
            legs.append(dialogs)
    tally.flush()
    return Recovery(closed, legs, last_seen)


def recover(engine: Engine, *, agent: str, now: datetime) -> Recovery:
    """Close the calls a previous run of this agent left open (crash, kill -9), then register
    this run's heartbeat. Every reservation ends in a terminal state and its buyer unit is
    released. A call is taken to have ended at the agent's last heartbeat — the dead process
    carried it until then at least — so its duration, conversion and payout are kept
    (``completed`` when it was answered, ``failed`` otherwise), marked ``hangup_by =
    "fault"``. Without a heartbeat (an agent from before them), at ``now``. The SIP agent
    does this through its lease (``storage/leases.py``), which also fences the old run."""
    with transaction(engine, write=True) as db:
        beat = db.one("SELECT seen_at FROM sipagent WHERE name = :a", {"a": agent})
        last_seen = db.read_ts(beat["seen_at"]) if beat is not None else None
        recovery = close_calls_of(db, agent=agent, last_seen=last_seen, now=now,
                                  why=died_during_call(last_seen))  # fmt: skip
        db.execute(
            "INSERT INTO sipagent (name, started_at, seen_at) VALUES (:a, :now, :now) "
            "ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at",
            {"a": agent, "now": db.ts(now)},
        )
    return recovery


def died_during_call(last_seen: datetime | None) -> str:
    """The history row's words for a call closed because its agent died."""
    seen = "its last heartbeat" if last_seen is not None else "its restart"
    return f"agent died during the call; ended at {seen}"


@dataclass(frozen=True)
class Orphan:
    """A call :func:`close_orphans` closed: its reservation, the status written, and why."""

    uuid: str
    status: str
    why: str


_ORPHANS_PER_SWEEP = 500  # bound one sweep's write transaction; the rest go next heartbeat
ORPHAN_CLAIMED = "claimed, but no bridge of the agent holds it (the claim's answer was lost)"
ORPHAN_ANSWERED = "answered, but no bridge of the agent holds it (its end was never recorded)"


def close_orphans(
    engine: Engine, *, agent: str, now: datetime, settled_before: datetime,
    carried: Collection[str],
) -> list[Orphan]:  # fmt: skip
    """While the agent runs: close its open calls that no bridge of it carries — a claim
    committed whose answer the agent never got (the connection dropped after COMMIT), an
    end of call whose record was lost — exactly as :func:`recover` closes a dead run's
    (``hangup_by = "fault"``, counters moved, a history row), ended at ``now``.

    Only calls invited before ``settled_before`` are looked at: the agent promises that
    every claim of its own from before then that it still carries is in ``carried``
    (``Carried`` in sip/router.py). The common case, nothing to close, is one read of the
    partial index of open calls (agent, invite_at) that never touches a table row."""
    with transaction(engine, write=False) as db:
        rows = db.rows(
            "SELECT reservation_uuid FROM callrecord WHERE agent = :agent AND end_at IS NULL "
            "AND invite_at < :before",
            {"agent": agent, "before": db.ts(settled_before)},
        )
    lost = sorted(r["reservation_uuid"] for r in rows if r["reservation_uuid"] not in carried)
    lost = lost[:_ORPHANS_PER_SWEEP]
    if not lost:
        return []
    closed: list[Orphan] = []
    with transaction(engine, write=True) as db:
        tally = Tally(db)
        names = ", ".join(f":u{i}" for i in range(len(lost)))
        params: dict[str, Any] = {"agent": agent, **{f"u{i}": u for i, u in enumerate(lost)}}
        for row in db.rows(f"{_OPEN_CALLS} AND r.uuid IN ({names})", params):
            why = ORPHAN_ANSWERED if row["answer_at"] is not None else ORPHAN_CLAIMED
            status = _close_as_fault(db, tally, row, last_seen=now, now=now, why=why)
            if status is not None:
                closed.append(Orphan(row["uuid"], status, why))
        tally.flush()
    return closed
