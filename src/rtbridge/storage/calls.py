"""What the SIP agent writes: the atomic claim of a reservation and its call record
(SPEC §3.7, §4.3, §4.4). Every function is one short transaction on the driver connection.

A claim keeps the buyer's units (a call in progress holds it as the reservation did); the end
of the call, or its recovery after a crash, gives the live unit back in the same transaction
(``storage/counters.py``). Those writes are conditional on the call still being open, so a
reservation closed twice (the agent's report racing recovery) moves its counter once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain import lifecycle as st
from rtbridge.storage.counters import Tally
from rtbridge.storage.models import LIVE_ROWS, UNCLAIMED_ROWS
from rtbridge.storage.reservations import record_event
from rtbridge.storage.sql import Db, transaction

_CLAIMABLE = f"{UNCLAIMED_ROWS} AND expires_at > :now"
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


def claim(
    engine: Engine, *, uuid: str, publisher_id: str | None, now: datetime, agent: str, source: str,
    via: str = "sip",
) -> Claimed | NotClaimed:  # fmt: skip
    """Take the reservation for a call. The conditional UPDATE is the whole race: of many
    INVITEs for one uuid, in any number of processes, exactly one sees a row change.
    ``publisher_id`` None means a trusted trunk (PSTN path), which may take any publisher's."""
    with transaction(engine, write=True) as db:
        params: dict[str, Any] = {"u": uuid, "now": db.ts(now), "p": publisher_id}
        owner = "" if publisher_id is None else " AND publisher_id = :p"
        cur = db.execute(
            f"UPDATE reservation SET status = 'claimed', updated_at = :now "
            f"WHERE uuid = :u AND {_CLAIMABLE}{owner}",
            params,
        )
        if cur.rowcount != 1:
            return _refusal(db, uuid, publisher_id, now)
        row = db.one(
            "SELECT publisher_id, buyer_id, caller_number, tags, seconds, payout FROM reservation WHERE uuid = :u",
            params,
        )
        assert row is not None
        record_event(db, uuid, st.CLAIMED, now, f"{via} INVITE from {source} on {agent}")
        db.execute(
            "INSERT INTO callrecord (reservation_uuid, agent, source, via, invite_at) "
            "VALUES (:u, :agent, :source, :via, :now)",
            {**params, "agent": agent, "source": source[:128], "via": via},
        )
    return Claimed(uuid, row["publisher_id"], row["buyer_id"], row["caller_number"],
                   db.read_js(row["tags"]) or {}, row["seconds"] or 0, row["payout"] or 0.0)  # fmt: skip


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
        mark_answered(db, uuid=uuid, at=at, dialogs=dialogs)


def mark_answered(
    db: Db, *, uuid: str, at: datetime, dialogs: Mapping[str, Any] | None = None
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


def ended(
    engine: Engine, *, uuid: str, answer_at: datetime | None, end_at: datetime, publisher_code: int | None,
    buyer_code: int | None, hangup_by: str | None, duration: float, detail: str = "",
) -> None:  # fmt: skip
    with transaction(engine, write=True) as db:
        tally = Tally(db)
        mark_ended(db, tally, uuid=uuid, answer_at=answer_at, end_at=end_at,
                   publisher_code=publisher_code, buyer_code=buyer_code, hangup_by=hangup_by,
                   duration=duration, detail=detail)  # fmt: skip
        tally.flush()


def mark_ended(
    db: Db, tally: Tally, *, uuid: str, answer_at: datetime | None, end_at: datetime,
    publisher_code: int | None, buyer_code: int | None, hangup_by: str | None, duration: float,
    detail: str = "",
) -> None:  # fmt: skip
    """Close the call: ``completed`` with duration and ``converted`` (duration ≥ the
    reservation's seconds) when the buyer answered, else ``failed`` keeping the SIP code.
    The buyer's counters move in ``tally``, which the caller flushes once per transaction
    (one fixed order of counter rows per transaction: no deadlocks between agents)."""
    row = db.one(
        "SELECT seconds, payout, status, buyer_id, created_at FROM reservation WHERE uuid = :u",
        {"u": uuid},
    )
    if row is None or row["status"] not in st.IN_CALL:
        return  # already closed (e.g. by recovery): the first word stands
    status = st.COMPLETED if answer_at is not None else st.FAILED
    converted = answer_at is not None and duration >= (row["seconds"] or 0)
    if db.execute(_CLOSE, {"s": status, "at": db.ts(end_at), "u": uuid}).rowcount != 1:
        return  # closed by another transaction since the read
    tally.transition(row["buyer_id"], row["created_at"], row["status"], status)
    db.execute(
        "UPDATE callrecord SET answer_at = :ans, end_at = :at, publisher_code = :pc, buyer_code = :bc, "
        "hangup_by = :hb, duration = :d, converted = :cv, payout = :pay WHERE reservation_uuid = :u",
        {"ans": db.ts(answer_at), "at": db.ts(end_at), "pc": publisher_code, "bc": buyer_code,
         "hb": hangup_by, "d": round(duration, 3), "cv": converted,
         "pay": row["payout"] if converted else 0.0, "u": uuid},
    )  # fmt: skip
    what = (
        f"{status}: {hangup_by or '?'} hung up"
        if answer_at
        else f"{status}: buyer {buyer_code} {detail}"
    )
    record_event(db, uuid, status, end_at, what.strip()[:256])


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


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` closed, and the dialogs of the legs still to be sent a BYE:
    ``{"publisher": {...}, "buyer": {...}}`` per answered call (``sip/dialogs.py``)."""

    closed: int
    dialogs: list[Mapping[str, Any]]
    last_seen: datetime | None


def recover(engine: Engine, *, agent: str, now: datetime) -> Recovery:
    """On start, close the calls a previous run of this agent left open (crash, kill -9),
    then register this run. Every reservation ends in a terminal state and its buyer unit
    is released. A call is taken to have ended at the agent's last heartbeat — the dead
    process carried it until then at least — so its duration, conversion and payout are
    kept (``completed`` when it was answered, ``failed`` otherwise), marked
    ``hangup_by = "fault"``. Without a heartbeat (an agent from before them), at ``now``."""
    closed = 0
    legs: list[Mapping[str, Any]] = []
    with transaction(engine, write=True) as db:
        beat = db.one("SELECT seen_at FROM sipagent WHERE name = :a", {"a": agent})
        last_seen = db.read_ts(beat["seen_at"]) if beat is not None else None
        tally = Tally(db)
        rows = db.rows(
            "SELECT r.uuid, r.status, r.buyer_id, r.created_at, r.seconds, r.payout, "
            "c.invite_at, c.answer_at, c.dialogs FROM reservation r "
            "JOIN callrecord c ON c.reservation_uuid = r.uuid "
            "WHERE c.agent = :agent AND r.status IN ('claimed', 'connected')",
            {"agent": agent},
        )
        for row in rows:
            answer_at = db.read_ts(row["answer_at"])
            invite_at = db.read_ts(row["invite_at"]) or now
            end_at = min(now, max(last_seen or now, answer_at or invite_at))
            status = st.COMPLETED if answer_at is not None else st.FAILED
            if (
                db.execute(_CLOSE, {"u": row["uuid"], "s": status, "at": db.ts(end_at)}).rowcount
                != 1
            ):
                continue
            closed += 1
            tally.transition(row["buyer_id"], row["created_at"], row["status"], status)
            duration = (end_at - answer_at).total_seconds() if answer_at is not None else 0.0
            converted = answer_at is not None and duration >= (row["seconds"] or 0)
            db.execute(
                "UPDATE callrecord SET end_at = :at, hangup_by = 'fault', duration = :d, "
                "converted = :cv, payout = :pay, publisher_code = COALESCE(publisher_code, :pc) "
                "WHERE reservation_uuid = :u AND end_at IS NULL",
                {"u": row["uuid"], "at": db.ts(end_at), "d": round(duration, 3), "cv": converted,
                 "pay": (row["payout"] or 0.0) if converted else 0.0,
                 "pc": 200 if answer_at is not None else 500},
            )  # fmt: skip
            seen = "its last heartbeat" if last_seen is not None else "its restart"
            record_event(
                db,
                row["uuid"],
                status,
                end_at,
                f"{status}: agent died during the call; ended at {seen}",
            )
            dialogs = db.read_js(row["dialogs"])
            if dialogs:
                legs.append(dialogs)
        tally.flush()
        db.execute(
            "INSERT INTO sipagent (name, started_at, seen_at) VALUES (:a, :now, :now) "
            "ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at",
            {"a": agent, "now": db.ts(now)},
        )
    return Recovery(closed, legs, last_seen)
