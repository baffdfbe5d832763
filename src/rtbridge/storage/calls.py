"""What the SIP agent writes: the atomic claim of a reservation and its call record
(SPEC §3.7, §4.3, §4.4). Every function is one short transaction on the driver connection.

A claim keeps the buyer's units (a call in progress holds it as the reservation did); the end
of the call, or its recovery after a crash, gives the live unit back in the same transaction
(``storage/counters.py``). Those writes are conditional on the call still being open, so a
reservation closed twice (the agent's report racing recovery) moves its counter once."""

from __future__ import annotations

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


def answered(engine: Engine, *, uuid: str, at: datetime) -> None:
    with transaction(engine, write=True) as db:
        mark_answered(db, uuid=uuid, at=at)


def mark_answered(db: Db, *, uuid: str, at: datetime) -> None:
    """The buyer answered: ``connected``, with the answer time on the call record."""
    db.execute(
        "UPDATE reservation SET status = 'connected', updated_at = :at WHERE uuid = :u AND status = 'claimed'",
        {"u": uuid, "at": db.ts(at)},
    )
    db.execute(
        "UPDATE callrecord SET answer_at = :at WHERE reservation_uuid = :u",
        {"u": uuid, "at": db.ts(at)},
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
        f"{status}: {hangup_by or '?'} hung up" if answer_at else f"{status}: buyer {buyer_code} {detail}"
    )
    record_event(db, uuid, status, end_at, what.strip()[:256])


def recover(engine: Engine, *, agent: str, now: datetime) -> int:
    """On start, close calls a previous run of this agent left open (crash, kill -9): every
    reservation ends in a terminal state, and its buyer unit is released."""
    closed = 0
    with transaction(engine, write=True) as db:
        tally = Tally(db)
        rows = db.rows(
            "SELECT r.uuid, r.status, r.buyer_id, r.created_at FROM reservation r "
            "JOIN callrecord c ON c.reservation_uuid = r.uuid "
            "WHERE c.agent = :agent AND r.status IN ('claimed', 'connected')",
            {"agent": agent},
        )
        for row in rows:
            params = {"u": row["uuid"], "s": st.FAILED, "at": db.ts(now), "now": db.ts(now)}
            if db.execute(_CLOSE, params).rowcount != 1:
                continue
            closed += 1
            tally.transition(row["buyer_id"], row["created_at"], row["status"], st.FAILED)
            db.execute("UPDATE callrecord SET end_at = :now, hangup_by = 'agent' WHERE reservation_uuid = :u "
                       "AND end_at IS NULL", params)  # fmt: skip
            record_event(db, row["uuid"], st.FAILED, now, "agent restarted during the call")
        tally.flush()
    return closed
