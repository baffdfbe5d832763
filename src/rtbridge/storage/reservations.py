"""The reservation operations of the publisher API (SPEC §3): ping, confirm, cancel, look up,
expire. Each is one transaction; buyer usage is read from the counters inside it, under the
campaign lock, and the counters move in it (``storage/counters.py``), so concurrent pings in
any number of processes never over-allocate a buyer (§3.5, §7).

Status writes are conditional on the status read (``WHERE status = :old``): on PostgreSQL the
sweeper and the SIP agent do not take the campaign lock, and a write that lost such a race
must not move a counter a second time; it reads the row again instead."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from rtbridge.domain import bids
from rtbridge.domain import lifecycle as st
from rtbridge.domain.bids import BidAnswer, publisher_payout
from rtbridge.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PausedKey,
    RtbError,
    UnknownKey,
)
from rtbridge.domain.inbound import choose_inbound
from rtbridge.domain.ping import PingRequest
from rtbridge.domain.selection import (
    REASON_BLOCKED,
    VERDICT_WON,
    BuyerRule,
    Chosen,
    NoTarget,
    Usage,
    choose_buyer,
    choose_by_price,
    ineligibility,
)
from rtbridge.storage import caller_lists, callers
from rtbridge.storage.callers import query as seen_query
from rtbridge.storage.callers import read as read_seen
from rtbridge.storage.catalog import CampaignInfo, Catalog, CatalogCache, KeyInfo
from rtbridge.storage.counters import Tally, day_of, units
from rtbridge.storage.expiry import DUE_ANY, expire
from rtbridge.storage.models import LIVE_ROWS
from rtbridge.storage.sql import Db, transaction
from rtbridge.storage.transactions import lock_campaign, try_lock_sweep
from rtbridge.storage.trips import BulkInsert, Rows, Steps, Trip, drive, finish
from rtbridge.storage.uuids import uuid7
from rtbridge.timestamps import utcnow

REASON_NO_FREE_DID = "no-free-did"
# How many due reservations of a full buyer one reserving transaction expires at most.
RELIEF_LIMIT = 100

# "Holds a unit of its buyer now" (lifecycle.holds_buyer) as SQL, led by the partial index's
# own condition (models.LIVE_ROWS) so that SQLite reads the index of live rows only.
LIVE = f"{LIVE_ROWS} AND (status IN ('claimed', 'connected') OR expires_at > :now)"
_COLUMNS = (
    "uuid, key_id, status, reason, caller_number, inbound_number, tags, payout, "
    "seconds, buyer_id, created_at, expires_at, bid_id, destination"
)
_INSERT = BulkInsert(
    "reservation",
    [
        ("uuid", "uuid"), ("key_id", "key_id"), ("publisher_id", "publisher_id"),
        ("campaign_id", "campaign_id"), ("buyer_id", "buyer_id"), ("status", "status"),
        ("reason", "reason"), ("caller_number", "caller_number"),
        ("inbound_number", "inbound_number"), ("source_publisher_id", "source_publisher_id"),
        ("source_id", "source_id"), ("tags", "tags"), ("verdicts", "verdicts"),
        ("payout", "payout"), ("revenue", "revenue"), ("destination", "destination"),
        ("bid_id", "bid_id"),
        ("seconds", "seconds"), ("created_at", "created_at"), ("expires_at", "expires_at"),
        ("updated_at", "created_at"), ("webhook_pending", "webhook_pending"),
    ],
)  # fmt: skip
_BIDS = BulkInsert(
    "bid",
    [("reservation_uuid", "u"), ("buyer_id", "buyer"), ("at", "at"), ("outcome", "outcome"),
     ("reason", "reason"), ("amount", "amount"), ("latency_ms", "latency"),
     ("bid_id", "bid_id"), ("destination", "dest")],
)  # fmt: skip
_EVENT = (
    "INSERT INTO reservationevent (reservation_uuid, status, at, detail) "
    "VALUES (:uuid, :status, :at, :detail)"
)


Take = Callable[[], Sequence[PingRequest]]
Done = Callable[[list["Outcome | RtbError"]], None]


@dataclass
class _Pings:
    """A batch of pings: the catalog it is answered by, an answer per ping (refusals from
    the start), and the pings accepted for the database (index, request, key, campaign)."""

    catalog: Catalog
    results: list[Outcome | RtbError | None]
    accepted: list[tuple[int, PingRequest, KeyInfo, CampaignInfo]] = field(default_factory=list)

    def answers(self) -> list[Outcome | RtbError]:
        return [r for r in self.results if r is not None]


@dataclass
class _Batch:
    """What one group-commit transaction accumulates: the batch's callers' live
    reservations (read once, then kept up to date) and the rows to insert at the end."""

    live: dict[str, list[dict[str, Any]]]
    inserts: list[dict[str, Any]] = field(default_factory=list)
    bids: list[dict[str, Any]] = field(default_factory=list)  # the auctions' bid rows
    # (caller, buyer) -> when the caller last reached the buyer (storage/callers.py), read for
    # the batch's callers of campaigns with duplicate rules, and kept up to date by its pings
    seen: callers.Seen = field(default_factory=dict)
    # the entries of the batch's callers' lists (storage/caller_lists.py), for campaigns
    # some lists concern
    listed: caller_lists.Listed = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """A reservation as the publisher sees it; ``http.responses`` renders it. Not changed
    once made (not ``frozen``: its ``__init__`` would cost a ping three times as much)."""

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
    buyer_id: str | None = None  # not shown to publishers: which buyer won (bid metrics)


def record_event(db: Db, uuid: str, status: str, at: datetime, detail: str | None) -> None:
    db.execute(_EVENT, {"uuid": uuid, "status": status, "at": db.ts(at), "detail": detail})


def capped_usage(
    db: Db, tally: Tally, buyers: Sequence[BuyerRule], now: datetime, day: str, *,
    own: Mapping[str, Any] | None = None,
) -> dict[str, Usage]:  # fmt: skip
    """Usage of capped ``buyers`` from the counters, as every choice of a buyer reads it (a
    ping, a confirm, a failover). A buyer the counters call full first gets its due
    reservations expired here (once per transaction, bounded): the counters still hold those
    units until written down (see ``storage/counters.py``). ``own`` is a reservation being
    confirmed, which must not count against itself."""
    usage = _without(tally.usage([b.id for b in buyers], day), own, day)
    for rule in buyers:
        u = usage[rule.id]
        full = (rule.concurrency is not None and u.live >= rule.concurrency) or (
            rule.daily_cap is not None and u.today >= rule.daily_cap
        )
        if not full or rule.id in tally.relieved:
            continue
        tally.relieved.add(rule.id)
        exclude = None if own is None else str(own["uuid"])
        if expire(db, tally, now, limit=RELIEF_LIMIT, buyer_id=rule.id, exclude=exclude):
            usage.update(_without(tally.usage([rule.id], day), own, day))
    return usage


def _without(usage: dict[str, Usage], own: Mapping[str, Any] | None, day: str) -> dict[str, Usage]:
    if own is None or own["buyer_id"] not in usage:
        return usage
    live, used = units(own["status"])
    today = used if day_of(own["created_at"]) == day else 0
    u = usage[own["buyer_id"]]
    return {**usage, own["buyer_id"]: Usage(live=u.live - live, today=u.today - today)}


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

    def _key(self, catalog: Catalog, raw_key: str, *, allow_paused: bool = False) -> KeyInfo:
        key = catalog.key(raw_key)
        if key is None:
            raise UnknownKey("key: unknown postback key")
        if key.paused and not allow_paused:
            raise PausedKey("key: this postback key is paused")
        return key

    def _campaign(self, catalog: Catalog, key: KeyInfo) -> CampaignInfo:
        return catalog.campaigns.get(key.campaign_id) or CampaignInfo(key.campaign_id, (), ())

    # -- ping --------------------------------------------------------------------------------
    def ping(self, req: PingRequest) -> Outcome:
        result = self.ping_many([req])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def ping_many(self, requests: Sequence[PingRequest]) -> list[Outcome | RtbError]:
        """Answer several pings in one transaction, in order (group commit).

        Each sees the reservations of those before it, so caps hold exactly as if they ran
        one by one; the commit, the dearest step on SQLite, is paid once. A ping the rules
        refuse gets its error in its slot and does not disturb the others."""
        pings = self._accept(requests)
        if pings.accepted:
            with transaction(self.engine, write=True) as db:
                drive(self._ping_steps(db, pings))
        return pings.answers()

    async def ping_chain(self, take: Take, done: Done) -> None:
        """Batches of pings one after another on one PostgreSQL connection, as long as
        ``take`` gives one; ``done`` gets each one's answers, in order, once committed.

        Like :meth:`ping_many` for each batch, in fewer round trips: a batch's COMMIT is sent
        with the next one's BEGIN, locks and reads (``Trip.then``), so a batch costs one
        round trip, not two, while pings keep coming. The event loop serves other requests
        while the database answers. An error fails the batches taken and not done (the
        caller's to answer), and the connection's transaction is rolled back."""
        with transaction(self.engine, write=True) as db:
            started, refused = self._start(db, take)
            for answers in refused:
                done(answers)
            sent = False  # its first trip went with the previous batch's last
            while started is not None:
                steps, first = started
                if not sent:
                    await first.run_async()
                last = steps.send(None)
                started, refused = self._start(db, take)
                sent = started is not None
                if started is not None:
                    last.then(started[1])
                await last.run_async()
                done(finish(steps))
                for answers in refused:  # taken after it, so answered after it
                    done(answers)

    def _start(
        self, db: Db, take: Take
    ) -> tuple[tuple[Steps[list[Outcome | RtbError]], Trip] | None, list[list[Outcome | RtbError]]]:
        """The next batch ``take`` gives, begun: its steps and their first trip. Batches the
        rules refuse whole need no trip: their answers come second, and the batch after them
        is taken."""
        refused: list[list[Outcome | RtbError]] = []
        while requests := take():
            pings = self._accept(requests)
            if pings.accepted:
                steps = self._ping_steps(db, pings)
                return (steps, next(steps)), refused
            refused.append(pings.answers())
        return None, refused

    def _accept(self, requests: Sequence[PingRequest]) -> _Pings:
        """The pings whose key and caller pass, and the refusals of the others."""
        pings = _Pings(self.catalog.get(), [None] * len(requests))
        for i, req in enumerate(requests):
            try:
                key = self._key(pings.catalog, req.key)
                req.require_caller(key.allow_missing_caller_number)
            except RtbError as exc:
                pings.results[i] = exc
                continue
            pings.accepted.append((i, req, key, self._campaign(pings.catalog, key)))
        return pings

    def _ping_steps(self, db: Db, pings: _Pings) -> Steps[list[Outcome | RtbError]]:
        """One batch in ``db``'s transaction, as its two round trips (``storage/trips.py``):
        the second ends with the COMMIT."""
        accepted, catalog = pings.accepted, pings.catalog
        tally = Tally(db)
        callers = {req.caller_number for _, req, _, _ in accepted if req.caller_number}
        campaigns = {item[3].id: item[3] for item in accepted}
        # The first round trip: every lock first, in one order in every process, so batches
        # cannot deadlock; then, each in a statement of its own and so under all of them,
        # the callers' live reservations and the buyers' counters.
        trip = Trip(db)
        for campaign_id in sorted(campaigns):
            lock_campaign(trip, campaign_id)
        live = self._live_query(trip, callers)
        seen = seen_query(trip, {
            req.caller_number for _, req, _, c in accepted if req.caller_number and c.deduplicating
        })  # fmt: skip
        listed = caller_lists.query(trip, catalog.lists, {
            req.caller_number for _, req, _, c in accepted
            if req.caller_number and catalog.lists.concern(c.id)
        })  # fmt: skip
        capped = {b.id for c in campaigns.values() for b in c.capped}
        tally.expect(trip, capped, day_of(self.clock()))
        yield trip
        batch = _Batch(self._live_by_caller(db, live), seen=read_seen(db, seen),
                       listed=caller_lists.read(db, listed))  # fmt: skip
        for i, req, key, campaign in accepted:
            pings.results[i] = self._ping(db, tally, batch, catalog, key, campaign, req)
        trip = Trip(db)  # and the second: the rows, the counter moves and the commit
        if batch.inserts:
            _INSERT.add(trip, batch.inserts)
            for row in batch.inserts:
                tally.rollup.pinged(row)
        if batch.bids:
            _BIDS.add(trip, batch.bids)
        tally.flush(trip)
        trip.commit()
        yield trip
        return pings.answers()

    def _live_query(self, trip: Trip, callers: set[str]) -> Rows | None:
        """Ask for the live reservations of every caller in a batch, in one statement: what
        the ping shield and the DID choice need (§3.2, §3.3)."""
        if not callers:
            return None
        params: dict[str, Any] = {"now": trip.db.ts(self.clock())}
        names = trip.db.in_list("c", sorted(callers), params)
        return trip.query(
            f"SELECT {_COLUMNS} FROM reservation WHERE caller_number IN {names} AND {LIVE}",
            params,
            by_index=True,
        )

    def _live_by_caller(self, db: Db, live: Rows | None) -> dict[str, list[dict[str, Any]]]:
        """The batch's callers' live reservations by caller. Read under the campaign locks;
        each ping then filters by its own clock, and sees the batch's earlier reservations
        (_Batch)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for row in live.get() if live is not None else ():
            row["expires"] = db.read_ts(row["expires_at"])
            found.setdefault(row["caller_number"], []).append(row)
        return found

    def _ping(
        self, db: Db, tally: Tally, batch: _Batch, catalog: Catalog, key: KeyInfo,
        campaign: CampaignInfo, req: PingRequest,
    ) -> Outcome:  # fmt: skip
        """One ping: shield, choose, and a row for the batch to insert. The reservation row is
        the whole record of its creation (time, buyer, or the no-target reason): no history
        row is written for it. It is pending for the webhook outbox only when a webhook in
        the catalog wants its event (``Catalog.wants_creation``)."""
        now = self.clock()
        at = db.ts(now)
        taken: set[str] = set()
        if req.caller_number is not None:
            shielded = self._shield(db, batch, catalog, key, req.caller_number, now, taken)
            if shielded is not None:
                if req.bids:  # asked in vain: recorded against the reservation answered
                    batch.bids += _bid_rows(shielded.uuid, at, req.bids, {}, lost="ping-shield")
                return shielded
        uuid = req.uuid or uuid7()
        day = day_of(now)
        usage = capped_usage(db, tally, campaign.capped, now, day) if campaign.capped else {}
        if campaign.deduplicating and req.caller_number is not None:
            usage = _with_last(usage, campaign.deduplicating, batch.seen, req.caller_number)
        verdicts: dict[str, str] = {}
        refused = _refused(catalog, batch, campaign, req.caller_number, now)
        if refused:
            usage = {**usage, **{b: usage.get(b, Usage())._replace(blocked=True) for b in refused}}
        if refused is None:  # the whole campaign's lists refuse the caller
            verdicts = dict.fromkeys(campaign.buyer_ids, REASON_BLOCKED)
            choice: Chosen | NoTarget = NoTarget(REASON_BLOCKED)
        elif campaign.bidders:
            # an RTB buyer without a bid: what it answered instead (timeout, error…)
            for buyer_id, answer in (req.bids or {}).items():
                if answer.outcome != bids.BID:
                    verdicts[buyer_id] = answer.outcome
            choice = choose_by_price(
                campaign.rules, usage, req.tags, now, self.rng, prices=_prices(campaign, req),
                min_price=campaign.auction.min_bid, verdicts=verdicts,
            )  # fmt: skip
        else:
            choice = choose_buyer(campaign.rules, usage, req.tags, now, self.rng, verdicts)
        inbound = None
        if isinstance(choice, Chosen):
            inbound = choose_inbound(
                uuid=uuid,
                sip_domain=catalog.sip_domain,
                caller_number=req.caller_number,
                pool=campaign.pool,
                taken_for_caller=taken,
                requested=req.inbound_number,
                key_inbound=key.inbound_number,
            )
            if inbound is None:
                verdicts[choice.buyer.id] = REASON_NO_FREE_DID
                choice = NoTarget(REASON_NO_FREE_DID)
        row = {
            "uuid": uuid, "key_id": key.id, "publisher_id": key.publisher_id,
            "campaign_id": campaign.id, "caller_number": req.caller_number,
            "source_publisher_id": req.publisher_id, "source_id": req.source_id,
            "tags": db.js(dict(req.tags)), "verdicts": db.js(verdicts), "created_at": at,
            "status": st.NO_TARGET, "reason": None, "buyer_id": None, "inbound_number": None,
            "payout": None, "revenue": None, "seconds": None, "expires_at": None,
            "destination": None, "bid_id": None,
        }  # fmt: skip
        batch.inserts.append(row)
        if req.bids:
            batch.bids += _bid_rows(uuid, at, req.bids, verdicts)
        if isinstance(choice, NoTarget):
            row["reason"] = choice.reason
            row["webhook_pending"] = catalog.wants_creation(key.publisher_id, None)
            return Outcome(
                uuid, st.NO_TARGET, catalog.sip_domain, key.response_root, reason=choice.reason
            )
        buyer = campaign.buyer(choice.buyer.id)
        assert buyer is not None
        status = st.CONFIRMED if key.auto_confirm else st.RESERVED
        expires = now + timedelta(seconds=key.ttl_seconds)
        payout, revenue, seconds = buyer.payout, buyer.asks, buyer.seconds
        won = req.bids.get(buyer.rule.id) if req.bids and buyer.bidder is not None else None
        if won is not None:  # an RTB buyer's bid: its price, its destination, its expiry
            assert won.amount is not None
            revenue = won.amount
            payout = publisher_payout(won.amount, campaign.auction.publisher_share)
            row.update(destination=won.destination, bid_id=won.bid_id)
            seconds = won.seconds if won.seconds is not None else seconds
            if won.expires_in is not None:
                expires = min(expires, now + timedelta(seconds=won.expires_in))
        row.update(status=status, buyer_id=buyer.rule.id, inbound_number=inbound,
                   payout=payout, revenue=revenue, seconds=seconds,
                   expires_at=db.ts(expires),
                   webhook_pending=catalog.wants_creation(key.publisher_id, buyer.rule.id))  # fmt: skip
        if req.caller_number is not None:
            row["expires"] = expires  # for the shield of later pings in the batch
            batch.live.setdefault(req.caller_number, []).append(row)
        tally.move(buyer.rule.id, day, 1, 1)
        if buyer.rule.duplicate_window and buyer.rule.duplicate_after == "ping":
            tally.seen.add("ping", req.caller_number, buyer.rule.id, at)
            if req.caller_number is not None:  # later pings of the batch see it
                mark = batch.seen.setdefault((req.caller_number, buyer.rule.id), _unseen())
                mark["pinged_at"] = now
        return Outcome(
            uuid,
            status,
            catalog.sip_domain,
            key.response_root,
            payout=payout,
            seconds=seconds,
            inbound_number=inbound,
            expires_at=expires,
            buyer_id=buyer.rule.id,
        )

    def _shield(
        self, db: Db, batch: _Batch, catalog: Catalog, key: KeyInfo, caller: str, now: datetime,
        taken: set[str],
    ) -> Outcome | None:  # fmt: skip
        """Ping shield (§3.2): the caller's live reservation on this key, if any. Also fills
        ``taken`` with the DIDs the caller's other live reservations hold."""
        rows = [
            r for r in batch.live.get(caller, ()) if r["status"] in st.IN_CALL or r["expires"] > now
        ]
        taken.update(r["inbound_number"] for r in rows if r["inbound_number"])
        for row in rows:
            if row["key_id"] == key.id and row["status"] in st.UNCLAIMED:
                return self._outcome(db, catalog, key, row, now, ping_shield=True)
        return None

    # -- confirm / cancel / look up ---------------------------------------------------------
    def _row(self, db: Db, uuid: str, key: KeyInfo) -> dict[str, Any]:
        row = db.one(f"SELECT {_COLUMNS} FROM reservation WHERE uuid = :uuid", {"uuid": uuid})
        # Another key's reservation is "not found": a key must not learn of others' uuids.
        if row is None or row["key_id"] != key.id:
            raise NotFound(f"reservation {uuid} not found for this key")
        row["expires_at"] = db.read_ts(row["expires_at"])
        row["created_at"] = db.read_ts(row["created_at"])
        return row

    def lookup(self, uuid: str, raw_key: str) -> Outcome:
        catalog = self.catalog.get()
        key = self._key(catalog, raw_key, allow_paused=True)
        with transaction(self.engine, write=False) as db:
            row = self._row(db, uuid, key)
            call = db.one("SELECT * FROM callrecord WHERE reservation_uuid = :uuid", {"uuid": uuid})
            return self._outcome(db, catalog, key, row, self.clock(), call=call, details=True)

    def update(self, uuid: str, raw_key: str, status: str | None) -> Outcome:
        if status not in (st.CONFIRMED, st.CANCELLED):
            raise InvalidInput("status: must be 'confirmed' or 'cancelled'")
        catalog = self.catalog.get()
        key = self._key(catalog, raw_key, allow_paused=status == st.CANCELLED)
        campaign = self._campaign(catalog, key)
        with transaction(self.engine, write=True) as db:
            lock_campaign(db, campaign.id)
            tally = Tally(db)
            for _ in range(3):
                now = self.clock()
                row = self._row(db, uuid, key)
                current = st.effective_status(row["status"], row["expires_at"], now)
                if status == st.CANCELLED:
                    outcome = self._cancel(db, tally, catalog, key, row, current, now)
                else:
                    outcome = self._confirm(db, tally, catalog, key, campaign, row, current, now)
                if outcome is not None:
                    tally.flush()
                    return outcome
            raise Conflict("status: the reservation changed meanwhile; try again")

    def _transition(
        self, db: Db, tally: Tally, row: Mapping[str, Any], new: str, now: datetime, detail: str,
        expires_at: datetime | None = None,
    ) -> bool:  # fmt: skip
        """Write ``new`` over the status ``row`` was read with, moving the counters, with a
        history row (none for an expiry: ``expires_at`` says when). False when another
        process changed the row first (nothing written)."""
        extra = ", expires_at = :expires" if expires_at is not None else ""
        cur = db.execute(
            f"UPDATE reservation SET status = :status, updated_at = :now{extra} "
            "WHERE uuid = :uuid AND status = :old",
            {"status": new, "now": db.ts(now), "expires": db.ts(expires_at), "uuid": row["uuid"],
             "old": row["status"]},
        )  # fmt: skip
        if cur.rowcount != 1:
            return False
        tally.transition(row["buyer_id"], row["created_at"], row["status"], new)
        if new != st.EXPIRED:
            record_event(db, row["uuid"], new, now, detail)
        return True

    def _cancel(
        self, db: Db, tally: Tally, catalog: Catalog, key: KeyInfo, row: dict[str, Any],
        current: str, now: datetime,
    ) -> Outcome | None:  # fmt: skip
        if current == st.CANCELLED:
            return self._outcome(db, catalog, key, row, now)
        if current not in st.UNCLAIMED:
            raise Conflict(
                f"status: reservation is {current}; only reserved or confirmed ones can be cancelled"
            )
        if not self._transition(db, tally, row, st.CANCELLED, now, "cancelled by publisher"):
            return None
        return self._outcome(db, catalog, key, {**row, "status": st.CANCELLED}, now)

    def _confirm(
        self, db: Db, tally: Tally, catalog: Catalog, key: KeyInfo, campaign: CampaignInfo,
        row: dict[str, Any], current: str, now: datetime,
    ) -> Outcome | None:  # fmt: skip
        if current == st.CONFIRMED:
            return self._outcome(db, catalog, key, row, now)
        if current not in (st.RESERVED, st.EXPIRED):
            raise Conflict(f"status: reservation is {current}; only reserved ones can be confirmed")
        won_by_bid = row["destination"] is not None  # an RTB buyer's bid, with its own expiry
        if current == st.EXPIRED:
            # The hold lapsed: confirm only if the buyer could be reserved again right now
            # (never a bid: its price held until its expiry only).
            buyer = campaign.buyer(row["buyer_id"]) if row["buyer_id"] else None
            reason = "bid-expired" if won_by_bid else "buyer-removed"
            if buyer is not None and not won_by_bid:
                tags = db.read_js(row["tags"]) or {}
                usage = capped_usage(db, tally, [buyer.rule], now, day_of(now), own=row)
                reason = ineligibility(buyer.rule, usage[buyer.rule.id], tags, now) or ""
            if reason:
                if row["status"] != st.EXPIRED and not self._transition(
                    db, tally, row, st.EXPIRED, now, "ttl passed"
                ):
                    return None
                return Outcome(
                    row["uuid"], st.NO_TARGET, catalog.sip_domain, key.response_root, reason=reason
                )
        # a bid's reservation keeps its expiry: the bid's price holds until then only
        expires = row["expires_at"] if won_by_bid else now + timedelta(seconds=key.ttl_seconds)
        if not self._transition(
            db, tally, row, st.CONFIRMED, now, "confirmed by publisher", expires
        ):
            return None
        return self._outcome(
            db, catalog, key, {**row, "status": st.CONFIRMED, "expires_at": expires}, now
        )

    # -- expiry ------------------------------------------------------------------------------
    def expire_due(self, limit: int = 250) -> int:
        """Write ``expired`` on up to ``limit`` unclaimed reservations past their TTL, with
        their history rows and their units given back. Set-based and bounded, so a sweep stays
        short (it holds the write lock, and runs on the event loop with SQLite: 250 rows cost a
        few ms); the sweeper comes back at once while it finds full batches."""
        now = self.clock()
        with transaction(self.engine, write=False) as db:
            if (
                db.one(f"SELECT uuid FROM reservation WHERE {DUE_ANY} LIMIT 1", {"now": db.ts(now)})
                is None
            ):
                return 0  # the common case costs a read, not the write lock
        with transaction(self.engine, write=True) as db:
            if not try_lock_sweep(db):
                return 0  # another process is sweeping right now
            tally = Tally(db)
            expired = expire(db, tally, now, limit=limit)
            tally.flush()
            return expired

    # -- rendering ---------------------------------------------------------------------------
    def _outcome(
        self,
        db: Db,
        catalog: Catalog,
        key: KeyInfo,
        row: Mapping[str, Any],
        now: datetime,
        *,
        ping_shield: bool = False,
        call: Mapping[str, Any] | None = None,
        details: bool = False,
    ) -> Outcome:
        """``details`` (the look-up) adds the caller, the tags and the call outcome; ping
        answers keep exactly the documented fields."""
        expires_at = db.read_ts(row["expires_at"])
        status = st.effective_status(row["status"], expires_at, now)
        extra: dict[str, Any] = {}
        if details:
            extra["caller_number"] = row["caller_number"]
            extra["tags"] = db.read_js(row["tags"]) or {}
            extra["created_at"] = db.read_ts(row["created_at"])
            if call is not None:
                extra.update(_call_details(db, call))
        return Outcome(
            uuid=row["uuid"],
            status=status,
            sip_domain=catalog.sip_domain,
            response_root=key.response_root,
            reason=row["reason"],
            payout=row["payout"],
            seconds=row["seconds"],
            inbound_number=row["inbound_number"],
            expires_at=expires_at,
            ping_shield=ping_shield,
            details=extra,
        )


# A call's buyer attempts as its publisher sees them: neither which buyers nor where they
# were dialled (the publisher API never names the buyer), so those columns are not read.
_PUBLIC_ATTEMPTS = (
    "SELECT n, started_at, provisional_at, final_code, kind, ended_at FROM callattempt "
    "WHERE reservation_uuid = :u ORDER BY n"
)


def _public_attempts(db: Db, uuid: str) -> list[dict[str, Any]]:
    rows = db.rows(_PUBLIC_ATTEMPTS, {"u": uuid})
    for row in rows:
        for name in ("started_at", "provisional_at", "ended_at"):
            row[name] = db.read_ts(row[name])
    return rows


def _call_details(db: Db, call: Mapping[str, Any]) -> dict[str, Any]:
    converted = call["converted"]
    return {
        "duration": call["duration"],
        "converted": None if converted is None else bool(converted),
        "call": {
            "invite_at": db.read_ts(call["invite_at"]),
            "answered_at": db.read_ts(call["answer_at"]),
            "ended_at": db.read_ts(call["end_at"]),
            "duration": call["duration"],
            "converted": None if converted is None else bool(converted),
            "payout": call["payout"],
            "sip_code": call["publisher_code"],
            "buyer_sip_code": call["buyer_code"],
            "hangup_by": call["hangup_by"],
            "attempts": _public_attempts(db, call["reservation_uuid"]),
        },
    }


def _with_last(
    usage: Mapping[str, Usage], rules: Sequence[BuyerRule], seen: callers.Seen, caller: str
) -> dict[str, Usage]:
    """``usage`` with, for each buyer with a duplicate rule, when ``caller`` last reached its
    ``duplicate_after`` point (the selection skips a buyer it reached within the window)."""
    found = dict(usage)
    for rule in rules:
        last = callers.last(seen, caller, rule.id, rule.duplicate_after)
        if last is not None:
            found[rule.id] = found.get(rule.id, Usage())._replace(last=last)
    return found


def _refused(
    catalog: Catalog, batch: _Batch, campaign: CampaignInfo, caller: str | None, now: datetime
) -> frozenset[str] | None:
    """The buyers whose own caller lists refuse this ping's caller; None when the global or
    the campaign's lists refuse it (every buyer). A ping without a caller is checked at its
    INVITE instead (storage/invite_checks.py)."""
    lists = catalog.lists
    if caller is None or not lists.concern(campaign.id):
        return frozenset()
    found = caller_lists.matched(batch.listed, caller, now)
    if lists.refuses_campaign(found, campaign.id):
        return None
    return lists.refused_buyers(found, campaign.buyer_ids)


def _unseen() -> dict[str, Any]:
    return dict.fromkeys(callers.COLUMN.values())


def _prices(campaign: CampaignInfo, req: PingRequest) -> dict[str, float]:
    """Each buyer's price in an auction: a static buyer's revenue, an RTB buyer's bid (none
    when it did not bid, or was not asked)."""
    prices = {b.rule.id: b.asks for b in campaign.buyers if b.bidder is None}
    for buyer_id, answer in (req.bids or {}).items():
        if answer.outcome == bids.BID and answer.amount is not None:
            prices[buyer_id] = answer.amount
    return prices


def _bid_rows(
    uuid: str, at: Any, answers: Mapping[str, BidAnswer], verdicts: Mapping[str, str], *,
    lost: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The ``bid`` rows of one auction: a bid is won or lost (the verdict says why, or
    ``lost`` for all), any other answer keeps its outcome."""
    rows = []
    for buyer_id, a in answers.items():
        outcome, reason = a.outcome, a.reason
        if outcome == bids.BID:
            verdict = lost or verdicts.get(buyer_id)
            outcome = bids.WON if verdict == VERDICT_WON else bids.LOST
            reason = None if outcome == bids.WON else verdict
        rows.append({"u": uuid, "buyer": buyer_id, "at": at, "outcome": outcome,
                     "reason": reason, "amount": a.amount, "latency": a.latency_ms,
                     "bid_id": a.bid_id, "dest": a.destination})  # fmt: skip
    return rows
