"""The reservation operations of the publisher API (SPEC §3): ping, confirm, cancel, look up,
expire. Each is one transaction; buyer usage is counted inside it, under the campaign lock,
so concurrent pings in any number of processes never over-allocate a buyer (§3.5, §7)."""

from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from rtbridge.domain import lifecycle as st
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound, PausedKey, UnknownKey
from rtbridge.domain.inbound import choose_inbound
from rtbridge.domain.ping import PingRequest
from rtbridge.domain.selection import Chosen, NoTarget, Usage, choose_buyer, ineligibility
from rtbridge.storage.catalog import Catalog, CampaignInfo, CatalogCache
from rtbridge.storage.models import CallRecord, PostbackKey, Reservation, ReservationEvent
from rtbridge.storage.transactions import lock_campaign, utcnow, write_transaction

RES: Table = Reservation.__table__  # type: ignore[attr-defined]
EVENTS: Table = ReservationEvent.__table__  # type: ignore[attr-defined]
CALLS: Table = CallRecord.__table__  # type: ignore[attr-defined]
REASON_NO_FREE_DID = "no-free-did"


@dataclass(frozen=True)
class Outcome:
    """A reservation as the publisher sees it; ``http.publisher`` renders it."""

    uuid: str
    status: str
    sip_domain: str
    response_root: str | None
    reason: str | None = None
    payout: float | None = None
    seconds: int | None = None
    inbound_number: str | None = None
    expires_at: datetime | None = None
    ping_shield: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


def _record_event(conn: Connection, uuid: str, status: str, at: datetime, detail: str | None) -> None:
    conn.execute(insert(EVENTS).values(reservation_uuid=uuid, status=status, at=at, detail=detail))


def _live_condition(now: datetime) -> Any:
    """Rows that hold a unit of their buyer now (lifecycle.holds_buyer, as SQL)."""
    return or_(
        RES.c.status.in_(st.IN_CALL),
        and_(RES.c.status.in_(st.UNCLAIMED), RES.c.expires_at > now),
    )


def _usage(conn: Connection, campaign: CampaignInfo, now: datetime, exclude: str | None = None) -> dict[str, Usage]:
    ids = [b.rule.id for b in campaign.buyers]
    live_q = (
        select(RES.c.buyer_id, func.count())
        .where(RES.c.buyer_id.in_(ids), _live_condition(now))
        .group_by(RES.c.buyer_id)
    )
    if exclude:
        live_q = live_q.where(RES.c.uuid != exclude)
    live = dict(conn.execute(live_q).all())
    today: dict[str, int] = {}
    capped = [b.rule.id for b in campaign.buyers if b.rule.daily_cap is not None]
    if capped:
        # The UTC day; a buyer's cap resets at 00:00 UTC whatever its hours' zone.
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today_q = (
            select(RES.c.buyer_id, func.count())
            .where(
                RES.c.buyer_id.in_(capped),
                RES.c.created_at >= start,
                RES.c.status.in_(st.COUNTS_TODAY),
                or_(RES.c.status.notin_(st.UNCLAIMED), RES.c.expires_at > now),
            )
            .group_by(RES.c.buyer_id)
        )
        if exclude:
            today_q = today_q.where(RES.c.uuid != exclude)
        today = dict(conn.execute(today_q).all())
    return {i: Usage(live=live.get(i, 0), today=today.get(i, 0)) for i in ids}


class Reservations:
    """Reservation operations over one database; thread-safe (no state but the catalog)."""

    def __init__(
        self,
        engine: Engine,
        catalog: CatalogCache,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self.rng = rng or random.Random()

    # -- the key -----------------------------------------------------------------------------
    def _key(self, catalog: Catalog, raw_key: str) -> PostbackKey:
        key = catalog.key(raw_key)
        if key is None:
            raise UnknownKey("key: unknown postback key")
        if key.paused:
            raise PausedKey("key: this postback key is paused")
        return key

    def _campaign(self, catalog: Catalog, key: PostbackKey) -> CampaignInfo:
        return catalog.campaigns.get(key.campaign_id) or CampaignInfo(key.campaign_id, (), ())

    # -- ping --------------------------------------------------------------------------------
    def ping(self, req: PingRequest) -> Outcome:
        catalog = self.catalog.get()
        key = self._key(catalog, req.key)
        req.require_caller(key.allow_missing_caller_number)
        campaign = self._campaign(catalog, key)
        uuid = str(uuidlib.uuid4())
        with write_transaction(self.engine) as conn:
            lock_campaign(conn, campaign.id)
            now = self.clock()
            taken: set[str] = set()
            if req.caller_number is not None:
                shielded = self._shield(conn, catalog, key, req.caller_number, now, taken)
                if shielded is not None:
                    return shielded
            usage = _usage(conn, campaign, now)
            choice = choose_buyer(campaign.rules, usage, req.tags, now, self.rng)
            base = {
                "uuid": uuid, "key_id": key.id, "publisher_id": key.publisher_id,
                "campaign_id": campaign.id, "caller_number": req.caller_number,
                "source_publisher_id": req.publisher_id, "source_id": req.source_id,
                "tags": dict(req.tags), "created_at": now, "updated_at": now,
            }  # fmt: skip
            inbound = None
            if isinstance(choice, Chosen):
                inbound = choose_inbound(
                    uuid=uuid, sip_domain=catalog.sip_domain, caller_number=req.caller_number,
                    pool=campaign.pool, taken_for_caller=taken,
                    requested=req.inbound_number, key_inbound=key.inbound_number,
                )  # fmt: skip
                if inbound is None:
                    choice = NoTarget(REASON_NO_FREE_DID)
            if isinstance(choice, NoTarget):
                conn.execute(insert(RES).values(**base, status=st.NO_TARGET, reason=choice.reason))
                _record_event(conn, uuid, st.NO_TARGET, now, choice.reason)
                return Outcome(uuid, st.NO_TARGET, catalog.sip_domain, key.response_root, reason=choice.reason)
            buyer = campaign.buyer(choice.buyer.id)
            assert buyer is not None
            status = st.CONFIRMED if key.auto_confirm else st.RESERVED
            expires = now + timedelta(seconds=key.ttl_seconds)
            conn.execute(
                insert(RES).values(
                    **base, status=status, buyer_id=buyer.rule.id, inbound_number=inbound,
                    payout=buyer.payout, seconds=buyer.seconds, expires_at=expires,
                )  # fmt: skip
            )
            _record_event(conn, uuid, status, now, f"buyer {buyer.rule.id}")
        return Outcome(
            uuid, status, catalog.sip_domain, key.response_root,
            payout=buyer.payout, seconds=buyer.seconds, inbound_number=inbound, expires_at=expires,
        )  # fmt: skip

    def _shield(
        self, conn: Connection, catalog: Catalog, key: PostbackKey, caller: str, now: datetime,
        taken: set[str],
    ) -> Outcome | None:
        """Ping shield (§3.2): the caller's live reservation on this key, if any. Also fills
        ``taken`` with the DIDs the caller's other live reservations hold."""
        rows = conn.execute(
            select(RES).where(RES.c.caller_number == caller, _live_condition(now))
        ).mappings().all()
        for row in rows:
            if row["inbound_number"]:
                taken.add(row["inbound_number"])
        for row in rows:
            if row["key_id"] == key.id and row["status"] in st.UNCLAIMED:
                return self._outcome(catalog, key, row, now, ping_shield=True)
        return None

    # -- confirm / cancel / look up ---------------------------------------------------------
    def _row(self, conn: Connection, uuid: str, key: PostbackKey) -> Mapping[str, Any]:
        row = conn.execute(select(RES).where(RES.c.uuid == uuid)).mappings().first()
        # Another key's reservation is "not found": a key must not learn of others' uuids.
        if row is None or row["key_id"] != key.id:
            raise NotFound(f"reservation {uuid} not found for this key")
        return row

    def lookup(self, uuid: str, raw_key: str) -> Outcome:
        catalog = self.catalog.get()
        key = catalog.key(raw_key)
        if key is None:
            raise UnknownKey("key: unknown postback key")
        with self.engine.connect() as conn:
            row = self._row(conn, uuid, key)
            call = conn.execute(select(CALLS).where(CALLS.c.reservation_uuid == uuid)).mappings().first()
        return self._outcome(catalog, key, row, self.clock(), call=call, details=True)

    def update(self, uuid: str, raw_key: str, status: str | None) -> Outcome:
        if status not in (st.CONFIRMED, st.CANCELLED):
            raise InvalidInput("status: must be 'confirmed' or 'cancelled'")
        catalog = self.catalog.get()
        key = self._key(catalog, raw_key)
        campaign = self._campaign(catalog, key)
        with write_transaction(self.engine) as conn:
            lock_campaign(conn, campaign.id)
            now = self.clock()
            row = self._row(conn, uuid, key)
            current = st.effective_status(row["status"], row["expires_at"], now)
            if status == st.CANCELLED:
                return self._cancel(conn, catalog, key, row, current, now)
            return self._confirm(conn, catalog, key, campaign, row, current, now)

    def _transition(
        self, conn: Connection, uuid: str, new: str, now: datetime, detail: str, **values: Any
    ) -> None:
        conn.execute(update(RES).where(RES.c.uuid == uuid).values(status=new, updated_at=now, **values))
        _record_event(conn, uuid, new, now, detail)

    def _cancel(
        self, conn: Connection, catalog: Catalog, key: PostbackKey, row: Mapping[str, Any],
        current: str, now: datetime,
    ) -> Outcome:
        if current == st.CANCELLED:
            return self._outcome(catalog, key, row, now)
        if current not in st.UNCLAIMED:
            raise Conflict(f"status: reservation is {current}; only reserved or confirmed ones can be cancelled")
        self._transition(conn, row["uuid"], st.CANCELLED, now, "cancelled by publisher")
        return self._outcome(catalog, key, {**row, "status": st.CANCELLED}, now)

    def _confirm(
        self, conn: Connection, catalog: Catalog, key: PostbackKey, campaign: CampaignInfo,
        row: Mapping[str, Any], current: str, now: datetime,
    ) -> Outcome:
        if current == st.CONFIRMED:
            return self._outcome(catalog, key, row, now)
        if current not in (st.RESERVED, st.EXPIRED):
            raise Conflict(f"status: reservation is {current}; only reserved ones can be confirmed")
        expires = now + timedelta(seconds=key.ttl_seconds)
        if current == st.EXPIRED:
            # The hold lapsed: confirm only if the buyer could be reserved again right now.
            buyer = campaign.buyer(row["buyer_id"]) if row["buyer_id"] else None
            reason = "buyer-removed"
            if buyer is not None:
                usage = _usage(conn, campaign, now, exclude=row["uuid"])
                reason = ineligibility(buyer.rule, usage[buyer.rule.id], row["tags"] or {}, now) or ""
            if reason:
                if row["status"] != st.EXPIRED:
                    self._transition(conn, row["uuid"], st.EXPIRED, now, "ttl passed")
                return Outcome(row["uuid"], st.NO_TARGET, catalog.sip_domain, key.response_root, reason=reason)
        self._transition(conn, row["uuid"], st.CONFIRMED, now, "confirmed by publisher", expires_at=expires)
        return self._outcome(catalog, key, {**row, "status": st.CONFIRMED, "expires_at": expires}, now)

    # -- expiry ------------------------------------------------------------------------------
    def expire_due(self) -> int:
        """Write ``expired`` on unclaimed reservations past their TTL, with their history row."""
        now = self.clock()
        due = and_(RES.c.status.in_(st.UNCLAIMED), RES.c.expires_at <= now)
        with self.engine.connect() as conn:
            if conn.execute(select(RES.c.uuid).where(due).limit(1)).first() is None:
                return 0  # the common case costs a read, not the write lock
        with write_transaction(self.engine) as conn:
            uuids = conn.execute(select(RES.c.uuid).where(due)).scalars().all()
            if uuids:
                conn.execute(update(RES).where(RES.c.uuid.in_(uuids), due).values(status=st.EXPIRED, updated_at=now))
                conn.execute(insert(EVENTS), [
                    {"reservation_uuid": u, "status": st.EXPIRED, "at": now, "detail": "ttl passed"} for u in uuids
                ])  # fmt: skip
        return len(uuids)

    # -- rendering ---------------------------------------------------------------------------
    def _outcome(
        self, catalog: Catalog, key: PostbackKey, row: Mapping[str, Any], now: datetime, *,
        ping_shield: bool = False, call: Mapping[str, Any] | None = None, details: bool = False,
    ) -> Outcome:
        """``details`` (the look-up) adds the caller, the tags and the call outcome; ping
        answers keep exactly the documented fields."""
        status = st.effective_status(row["status"], row["expires_at"], now)
        extra: dict[str, Any] = {}
        if details:
            extra["caller_number"] = row["caller_number"]
            extra["tags"] = row["tags"] or {}
            extra["created_at"] = row["created_at"]
            if call is not None:
                extra.update(_call_details(call))
        return Outcome(
            uuid=row["uuid"], status=status, sip_domain=catalog.sip_domain,
            response_root=key.response_root, reason=row["reason"], payout=row["payout"],
            seconds=row["seconds"], inbound_number=row["inbound_number"],
            expires_at=row["expires_at"], ping_shield=ping_shield, details=extra,
        )  # fmt: skip


def _call_details(call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "duration": call["duration"],
        "converted": call["converted"],
        "call": {
            "invite_at": call["invite_at"], "answered_at": call["answer_at"],
            "ended_at": call["end_at"], "duration": call["duration"],
            "converted": call["converted"], "payout": call["payout"],
            "sip_code": call["publisher_code"], "buyer_sip_code": call["buyer_code"],
            "hangup_by": call["hangup_by"],
        }
    }  # fmt: skip

