"""Read-only, paged listings for people watching the system: the RTB log (every ping's
reservation, no-target ones included), the call log, the bid log (every RTB buyer's answer
to every ping), and the calls in progress.

Paging is by keyset, never OFFSET: a page is "the next ``limit`` rows older than the last
one shown", which walks the primary key's B-tree from that row, so the hundredth page of a
million rows costs what the first does. Reservations page by ``uuid`` (version 7: ordered by
creation time, see ``uuids.py``), calls by their integer ``id``. No index is added to the
reservation table for these screens: every index there is written by every ping, and the
filters (key, publisher, status, time, ...) are applied while walking the key, newest first.
Bids page by their integer ``id`` too; one ping's bids are found by the reservation index.

The same functions serve the console's pages and the admin API's ``/admin/rtbs``,
``/admin/calls`` and ``/admin/bids`` (JSON and CSV), so a filter means one thing wherever it
is used.
New rows never move a page: they arrive at the newest end (a later uuid, a higher id), so
walking older from a cursor sees neither duplicates nor gaps while pings keep coming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from rtbridge.domain import bids
from rtbridge.domain import lifecycle as st
from rtbridge.domain.money import margin, revenue_or_payout
from rtbridge.storage.attempts import ATTEMPT_FAILED, of_calls
from rtbridge.storage.leases import Holder
from rtbridge.storage.models import (
    LIVE_ROWS,
    Bid,
    CallRecord,
    Reservation,
    ReservationEvent,
    SipAgent,
)
from rtbridge.storage.sql import Db
from rtbridge.timestamps import utcnow

MAX_PAGE = 1000

# The columns of each view, in the order CSV exports write them (http/csvfile.py).
RTB_COLUMNS = ["created_at", "uuid", "key_id", "publisher", "campaign", "buyer", "status",
               "reason", "caller_number", "inbound_number", "payout_offered", "revenue_offered",
               "seconds", "expires_at", "source_id", "tags", "attestation",
               "attestation_why"]  # fmt: skip
CALL_COLUMNS = ["invite_at", "answer_at", "end_at", "uuid", "publisher", "campaign", "buyer",
                "caller_number", "via", "source", "publisher_code", "buyer_code", "hangup_by",
                "duration", "converted", "payout_earned", "revenue_earned", "margin_earned",
                "status", "attempts", "attempts_detail", "attestation",
                "attestation_why"]  # fmt: skip
# What became of one bidder's answer (bidding/): the winner, the beaten, a bidder that
# declined (204 or a bid of 0), one past the deadline, one that failed (a transport error
# or a 5xx), one whose answer broke its format's rules.
BID_OUTCOMES = bids.OUTCOMES
BID_COLUMNS = ["at", "id", "rtb", "buyer", "outcome", "amount", "latency_ms", "reason", "bid_id",
               "destination"]  # fmt: skip


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    # pass as ``before`` for the next (older) page; None: last page. A reservation's uuid in
    # the RTB log, a call record's id in the call log.
    next_before: Any


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def _reservation_view(row: Reservation, now: datetime) -> dict[str, Any]:
    return {
        "uuid": row.uuid,
        "created_at": row.created_at,
        "key_id": row.key_id,
        "publisher": row.publisher_id,
        "campaign": row.campaign_id,
        "buyer": row.buyer_id,
        "status": st.effective_status(row.status, row.expires_at, now),
        "reason": row.reason,
        "caller_number": row.caller_number,
        "inbound_number": row.inbound_number,
        "attestation": row.attestation,  # its INVITE's STIR/SHAKEN, None before one came
        "attestation_why": row.attestation_why,
        # offered: what the reservation was made at, earned by the call only on conversion
        "payout_offered": row.payout,
        "revenue_offered": revenue_or_payout(row.revenue, row.payout),
        "seconds": row.seconds,
        "expires_at": row.expires_at,
        "source_id": row.source_id,
        "tags": row.tags,
    }


def rtb_log(
    session: Session,
    *,
    key_id: str | None = None,
    publisher: str | None = None,
    campaign: str | None = None,
    buyer: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    caller_number: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    uuid: str | None = None,
    before: str | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> Page:
    """Reservations newest first. ``status`` is the status a reader sees (``expired``
    includes unclaimed ones past their TTL not yet swept) at ``now`` (the clock the
    publisher API answers by); ``uuid`` finds one."""
    now = now or utcnow()
    limit = _limit(limit)
    query = select(Reservation)
    if uuid:
        query = query.where(col(Reservation.uuid) == uuid.strip().lower())
    if key_id:
        query = query.where(col(Reservation.key_id) == key_id)
    if publisher:
        query = query.where(col(Reservation.publisher_id) == publisher)
    if campaign:
        query = query.where(col(Reservation.campaign_id) == campaign)
    if buyer:
        query = query.where(col(Reservation.buyer_id) == buyer)
    if reason:
        query = query.where(col(Reservation.reason) == reason)
    if caller_number:
        query = query.where(col(Reservation.caller_number) == caller_number)
    if status == st.EXPIRED:
        query = query.where(
            (col(Reservation.status) == st.EXPIRED)
            | (col(Reservation.status).in_(st.UNCLAIMED) & (col(Reservation.expires_at) <= now))
        )
    elif status in st.UNCLAIMED:
        query = query.where(col(Reservation.status) == status, col(Reservation.expires_at) > now)
    elif status:
        query = query.where(col(Reservation.status) == status)
    if since is not None:
        query = query.where(col(Reservation.created_at) >= since)
    if until is not None:
        query = query.where(col(Reservation.created_at) < until)
    if before:
        query = query.where(col(Reservation.uuid) < before)
    query = query.order_by(col(Reservation.uuid).desc()).limit(limit + 1)
    found = list(session.exec(query))
    rows = [_reservation_view(r, now) for r in found[:limit]]
    return Page(rows, rows[-1]["uuid"] if len(found) > limit else None)


def _call_view(call: CallRecord, res: Reservation) -> dict[str, Any]:
    return {
        "id": call.id,
        "uuid": call.reservation_uuid,
        "publisher": res.publisher_id,
        "campaign": res.campaign_id,
        "buyer": res.buyer_id,
        "caller_number": res.caller_number,
        "attestation": res.attestation,
        "attestation_why": res.attestation_why,
        "via": call.via,
        "source": call.source,
        "agent": call.agent,
        "invite_at": call.invite_at,
        "answer_at": call.answer_at,
        "end_at": call.end_at,
        "publisher_code": call.publisher_code,
        "buyer_code": call.buyer_code,
        "hangup_by": call.hangup_by,
        "duration": call.duration,
        "converted": call.converted,
        "payout_earned": call.payout,
        "revenue_earned": revenue_or_payout(call.revenue, call.payout),
        "margin_earned": margin(call.revenue, call.payout),
        "status": res.status,
    }


def call_log(
    session: Session,
    *,
    publisher: str | None = None,
    campaign: str | None = None,
    buyer: str | None = None,
    status: str | None = None,
    converted: bool | None = None,
    hangup_by: str | None = None,
    publisher_code: int | None = None,
    buyer_code: int | None = None,
    min_duration: float | None = None,
    via: str | None = None,
    attestation: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    uuid: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """Call records newest first, with their reservation's publisher, buyer and status."""
    limit = _limit(limit)
    query = select(CallRecord, Reservation).join(
        Reservation, col(Reservation.uuid) == col(CallRecord.reservation_uuid)
    )
    if uuid:
        query = query.where(col(CallRecord.reservation_uuid) == uuid.strip().lower())
    if publisher:
        query = query.where(col(Reservation.publisher_id) == publisher)
    if campaign:
        query = query.where(col(Reservation.campaign_id) == campaign)
    if buyer:
        query = query.where(col(Reservation.buyer_id) == buyer)
    if status:
        query = query.where(col(Reservation.status) == status)
    if converted is not None:
        query = query.where(col(CallRecord.converted).is_(converted))
    if hangup_by:
        query = query.where(col(CallRecord.hangup_by) == hangup_by)
    if publisher_code is not None:
        query = query.where(col(CallRecord.publisher_code) == publisher_code)
    if buyer_code is not None:
        query = query.where(col(CallRecord.buyer_code) == buyer_code)
    if min_duration is not None:
        query = query.where(col(CallRecord.duration) >= min_duration)
    if via:
        query = query.where(col(CallRecord.via) == via)
    if attestation:
        query = query.where(col(Reservation.attestation) == attestation)
    if since is not None:
        query = query.where(col(CallRecord.invite_at) >= since)
    if until is not None:
        query = query.where(col(CallRecord.invite_at) < until)
    if before is not None:
        query = query.where(col(CallRecord.id) < before)
    query = query.order_by(col(CallRecord.id).desc()).limit(limit + 1)
    found = list(session.exec(query))
    rows = [_call_view(c, r) for c, r in found[:limit]]
    _add_attempts(session, rows)
    return Page(rows, rows[-1]["id"] if len(found) > limit else None)


def _bid_view(row: Bid) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "rtb": row.reservation_uuid,
        "buyer": row.buyer_id,
        "outcome": row.outcome,
        "amount": row.amount,
        "latency_ms": row.latency_ms,
        "reason": row.reason,
        "bid_id": row.bid_id,
        "destination": row.destination,
    }


def bid_log(
    session: Session,
    *,
    rtb: str | None = None,
    buyer: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """Bids newest first (by ``id``, the order they were written); ``rtb`` is one ping's
    reservation uuid, ``since`` and ``until`` bound when each bidder was asked."""
    limit = _limit(limit)
    query = select(Bid)
    if rtb:
        query = query.where(col(Bid.reservation_uuid) == rtb.strip().lower())
    if buyer:
        query = query.where(col(Bid.buyer_id) == buyer)
    if outcome:
        query = query.where(col(Bid.outcome) == outcome)
    if since is not None:
        query = query.where(col(Bid.at) >= since)
    if until is not None:
        query = query.where(col(Bid.at) < until)
    if before is not None:
        query = query.where(col(Bid.id) < before)
    query = query.order_by(col(Bid.id).desc()).limit(limit + 1)
    found = list(session.exec(query))
    rows = [_bid_view(b) for b in found[:limit]]
    return Page(rows, rows[-1]["id"] if len(found) > limit else None)


def bids_of(session: Session, uuid: str) -> list[dict[str, Any]]:
    """One ping's bids as its story shows them: the winner first, then by amount (highest
    first, no-bids and failures last), then by how fast each answered."""
    found = session.exec(select(Bid).where(col(Bid.reservation_uuid) == uuid))
    rows = [_bid_view(b) for b in found]
    rows.sort(key=lambda b: (b["outcome"] != "won", b["amount"] is None, -(b["amount"] or 0),
                             b["latency_ms"] is None, b["latency_ms"] or 0, b["buyer"]))  # fmt: skip
    return rows


def _attempt_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": row["n"],
        "buyer": row["buyer_id"],
        "destination": row["destination"],
        "started_at": row["started_at"],
        "provisional_at": row["provisional_at"],
        "final_code": row["final_code"],
        "reason": row["reason"],
        "kind": row["kind"],
        "ended_at": row["ended_at"],
    }


def _add_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Each call's buyer attempts, in order (``storage/attempts.py``): one query for the
    whole page, in the session's own transaction, so they agree with the calls read."""
    if not rows:
        return
    conn = session.connection()
    db = Db(conn.connection.driver_connection, conn.dialect.name)
    try:
        found = of_calls(db, [r["uuid"] for r in rows])
    finally:
        db.cursor.close()
    for row in rows:
        row["attempts"] = [_attempt_view(a) for a in found.get(row["uuid"], [])]


def flat_call(row: dict[str, Any]) -> dict[str, Any]:
    """A call log row as CSV writes it (``CALL_COLUMNS``): its attempts as their number and
    one text, an attempt per ``;`` as n, buyer, final code and kind —
    ``1 b1 486 busy; 2 b2 200 answered`` (``-`` for what is not known)."""
    attempts = row["attempts"]
    detail = "; ".join(
        f"{a['n']} {a['buyer']} {a['final_code'] or '-'} {a['kind'] or '-'}" for a in attempts
    )
    return {**row, "attempts": len(attempts), "attempts_detail": detail}


def history(session: Session, uuid: str) -> list[dict[str, Any]]:
    """A reservation's history rows, oldest first: its status changes, and between them
    its calls' failed buyer attempts (``attempt-failed``, not a status: the reservation
    stays claimed while the call goes on to the next buyer)."""
    query = (
        select(ReservationEvent)
        .where(col(ReservationEvent.reservation_uuid) == uuid)
        .order_by(col(ReservationEvent.id))
    )
    return [
        {"at": e.at, "status": e.status, "detail": e.detail,
         "attempt": e.status == ATTEMPT_FAILED}
        for e in session.exec(query)
    ]  # fmt: skip


def live_calls(session: Session, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Calls in progress (claimed or connected, not ended), oldest first, with how long each
    has run. The LIVE_ROWS term lets SQLite walk the small partial index of live
    reservations instead of the whole table."""
    now = utcnow()
    query = (
        select(CallRecord, Reservation)
        .join(Reservation, col(Reservation.uuid) == col(CallRecord.reservation_uuid))
        .where(text(f"reservation.{LIVE_ROWS}"))
        .where(col(Reservation.status).in_(st.IN_CALL), col(CallRecord.end_at).is_(None))
        .order_by(col(CallRecord.invite_at))
        .limit(limit)
    )
    out = []
    for call, res in session.exec(query):
        view = _call_view(call, res)
        view["running"] = (now - call.invite_at).total_seconds()
        view["talking"] = (now - call.answer_at).total_seconds() if call.answer_at else None
        view["hangup_requested_at"] = call.hangup_requested_at
        out.append(view)
    return out


# An agent's lease as the agents page names it (storage/leases.py).
LIVE, SILENT, STOPPED, TAKEN_OVER = "live", "silent", "stopped", "taken over"


def _lease_state(agent: SipAgent, silent_for: float) -> str:
    if agent.holder is None:  # released: taken over (taken_at after its start), or stopped
        taken = agent.taken_at is not None and agent.taken_at >= agent.started_at
        return TAKEN_OVER if taken else STOPPED
    # Held, but quiet past its takeover_after: a live peer takes it over at its next heartbeat.
    # Judged on this process's wall clock against the agent's (peers time it on their own
    # monotonic clocks): a clock off by more than takeover_after shows a live agent silent.
    return SILENT if silent_for > agent.takeover_after else LIVE


def _holder_shown(holder: str | None) -> str | None:
    """The process holding a lease as ``host pid N`` (``Holder.shown``); as written when it is
    not a holder rtbridge wrote."""
    parsed = Holder.parse(holder) if holder is not None else None
    return parsed.shown if parsed is not None else holder


def agents(session: Session) -> list[dict[str, Any]]:
    """Every SIP agent that has run on this database: its lease (``state``: live, silent,
    stopped or taken over; who took it over, when, and the open calls that closed), its last
    heartbeat (written every ``heartbeat_interval``, 2 s by default, while its pjsua2 thread
    works), the calls it carries now, and ``took_over``: the calls it closed taking over
    others' leases — counted over each lease's last takeover (a lease keeps who took it last,
    when, and how many calls that closed). A stopped or dead agent keeps its row."""
    now = utcnow()
    carrying = dict(
        session.exec(
            select(CallRecord.agent, func.count())
            .join(Reservation, col(Reservation.uuid) == col(CallRecord.reservation_uuid))
            .where(text(f"reservation.{LIVE_ROWS}"))
            .where(col(Reservation.status).in_(st.IN_CALL), col(CallRecord.end_at).is_(None))
            .group_by(col(CallRecord.agent))
        ).all()
    )
    took_over: dict[str | None, int] = {
        peer: int(closed or 0)
        for peer, closed in session.exec(
            select(SipAgent.taken_by, func.sum(SipAgent.taken_calls))
            .where(col(SipAgent.taken_by).is_not(None))
            .group_by(col(SipAgent.taken_by))
        )
    }
    out = []
    for a in session.exec(select(SipAgent).order_by(col(SipAgent.name))):
        silent_for = (now - a.seen_at).total_seconds()
        out.append({
            "name": a.name,
            "state": _lease_state(a, silent_for),
            "epoch": a.epoch,
            "holder": _holder_shown(a.holder),
            "started_at": a.started_at,
            "seen_at": a.seen_at,
            "silent_for": silent_for,
            "takeover_after": a.takeover_after,
            "taken_by": a.taken_by,
            "taken_at": a.taken_at,
            "taken_calls": a.taken_calls,
            "took_over": took_over.get(a.name, 0),
            "calls": carrying.get(a.name, 0),
            "refusals": a.refusals or [],  # its last refused INVITEs, newest first
        })  # fmt: skip
    return out
