"""An immutable snapshot of the configuration the hot paths read (keys, campaigns, buyers,
DID pools, the SIP domain, who has webhooks), loaded in one go and refreshed when
``config.version`` moves.

Reading it from memory instead of the database keeps a ping to the statements that must be
transactional (usage counts and the insert)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial

from sqlalchemy import Engine, text, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from rtbridge.domain.caller_lists import CallerList as ListRule
from rtbridge.domain.caller_lists import CallerLists
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.domain.hours import parse_hours
from rtbridge.domain.selection import BuyerRule
from rtbridge.storage import sitekey
from rtbridge.storage.models import (
    PREFIX_ROWS,
    Buyer,
    CallerList,
    Campaign,
    DidNumber,
    PostbackKey,
    Setting,
    Trunk,
    Webhook,
)

DEFAULT_SIP_DOMAIN = "localhost"
DEFAULT_CONNECT_TIMEOUT = 2.0  # seconds a buyer has to send any answer (SPEC §4.4)
VERSION_SETTING = "config.version"
DOMAIN_SETTING = "sip.domain"


@dataclass(frozen=True)
class Bidder:
    """How an RTB buyer is asked for its bids (bidding/)."""

    url: str
    format: str = "rtbridge"
    headers: str | None = None  # sealed JSON (storage/sealed.py), opened when first asked
    hide_caller: bool = False


@dataclass(frozen=True)
class Auction:
    """A campaign some of whose buyers bid: how long a ping waits, the publisher's share of
    the winning bid, the least bid taken."""

    deadline_ms: int = 250
    publisher_share: float = 1.0
    min_bid: float = 0.01


@dataclass(frozen=True)
class BuyerInfo:
    rule: BuyerRule
    destination: str | None  # None: an RTB buyer's, which each bid brings
    payout: float | None  # to the publisher; None: an RTB buyer's (a share of its bid)
    seconds: int
    trunk_id: str | None
    srtp: str = "off"  # SDES-SRTP on the leg to this buyer
    media_networks: tuple[str, ...] = ()  # CIDRs its media may move to (sip/media_home.py)
    ring_timeout: float | None = None  # None: the agent's ring_timeout
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # to a first answer, else "unreachable"
    revenue: float | None = None  # from the buyer; None: its payout (see :attr:`asks`)
    bidder: Bidder | None = None  # an RTB buyer: asked for a bid on every ping
    record: bool = False  # its answered calls are recorded (its own, else its campaign's)
    # A recorded call's notice (an absolute WAV path: sip/announcements.py), its own else its
    # campaign's; "" when it records none, or does not record
    announcement: str = ""

    @property
    def asks(self) -> float:
        """What a static buyer pays per converted call (domain/money.py); 0 for an RTB
        buyer, whose every bid says."""
        if self.revenue is not None:
            return self.revenue
        return self.payout or 0.0


@dataclass(frozen=True)
class CampaignInfo:
    id: str
    buyers: tuple[BuyerInfo, ...]
    pool: tuple[str, ...]
    # the buyer failures that send a call on to the next buyer, and how many buyers one
    # call may try (SPEC §4.4 failover)
    failover: frozenset[str] = frozenset(FAILOVER_KINDS)
    max_attempts: int = 3
    auction: Auction = Auction()  # how its RTB buyers, if any, are asked
    min_attestation: str | None = None  # STIR/SHAKEN: calls attested below it are refused

    @cached_property
    def deduplicating(self) -> tuple[BuyerRule, ...]:
        """Buyers with a duplicate-caller window: a ping reads its caller's marks for them."""
        return tuple(b.rule for b in self.buyers if b.rule.duplicate_window)

    @cached_property
    def bidders(self) -> tuple[BuyerInfo, ...]:
        """Its RTB buyers: a ping of the campaign asks them for bids (none: no auction)."""
        return tuple(b for b in self.buyers if b.bidder is not None)

    @cached_property
    def rules(self) -> tuple[BuyerRule, ...]:
        return tuple(b.rule for b in self.buyers)

    @cached_property
    def buyer_ids(self) -> tuple[str, ...]:
        return tuple(b.rule.id for b in self.buyers)

    @cached_property
    def capped(self) -> tuple[BuyerRule, ...]:
        """Buyers with a concurrency or daily cap: the only ones a ping reads counters for."""
        return tuple(
            b.rule
            for b in self.buyers
            if b.rule.concurrency is not None or b.rule.daily_cap is not None
        )

    @cached_property
    def _by_id(self) -> dict[str, BuyerInfo]:
        return {b.rule.id: b for b in self.buyers}

    def buyer(self, buyer_id: str) -> BuyerInfo | None:
        return self._by_id.get(buyer_id)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A postback key's settings (SPEC §3.4) as plain values: read on every ping, where an
    ORM instance's instrumented attributes cost more than the rule that reads them."""

    id: str  # the key's digest under the site key (storage/sitekey.py)
    publisher_id: str
    campaign_id: str
    allow_missing_caller_number: bool
    inbound_number: str | None
    ttl_seconds: int
    auto_confirm: bool
    response_root: str | None
    paused: bool
    recordings: bool = False  # may fetch its publisher's calls' recordings (issue 24)

    @classmethod
    def of(cls, row: PostbackKey) -> KeyInfo:
        return cls(row.id, row.publisher_id, row.campaign_id, row.allow_missing_caller_number,
                   row.inbound_number, row.ttl_seconds, row.auto_confirm, row.response_root,
                   row.paused, row.recordings)  # fmt: skip


@dataclass(frozen=True)
class Catalog:
    version: int
    sip_domain: str
    keys: Mapping[str, KeyInfo] = field(default_factory=dict)  # by id
    campaigns: Mapping[str, CampaignInfo] = field(default_factory=dict)
    trunks: Mapping[str, Trunk] = field(default_factory=dict)
    # (owner kind, owner id, event) of every enabled webhook (webhooks/subscriptions.py)
    subscribed: frozenset[tuple[str, str, str]] = frozenset()
    # the caller lists (their rules; their entries stay in the database: storage/caller_lists)
    lists: CallerLists = field(default_factory=CallerLists, compare=False)
    # the database's site key, asked for only when a key is looked up: a process that never
    # does (the SIP agent) runs without one on PostgreSQL
    site: Callable[[], sitekey.SiteKey] | None = field(default=None, compare=False, repr=False)
    # raw key -> key, for keys that exist: a ping hashes its key once per snapshot, not each time
    _known: dict[str, KeyInfo] = field(default_factory=dict, compare=False, repr=False)

    def key(self, raw_key: str) -> KeyInfo | None:
        found = self._known.get(raw_key)
        if found is None and self.site is not None:
            found = self.keys.get(self.site().digest(sitekey.KEY, raw_key))
            if found is not None:  # only real keys: random ones must not fill memory
                self._known[raw_key] = found
        return found

    @cached_property
    def attesting(self) -> bool:
        """Does some campaign refuse calls below a STIR/SHAKEN attestation? (If none does,
        an INVITE's attestation is only recorded, with its claim.)"""
        return any(c.min_attestation for c in self.campaigns.values())

    def wants_creation(self, publisher_id: str, buyer_id: str | None) -> bool:
        """Is a new reservation of this publisher (with this buyer, or None: no target) an
        event some enabled webhook subscribes to? A ping writes the row's ``webhook_pending``
        from this, so rows nobody wants never enter the outbox's partial index. A webhook
        made in another process counts once this snapshot has it (the recheck interval)."""
        if not self.subscribed:
            return False  # the common case: no webhooks at all
        if buyer_id is None:
            return ("publisher", publisher_id, "no-target") in self.subscribed
        wanted = self.subscribed
        return ("publisher", publisher_id, "reserved") in wanted or (
            ("buyer", buyer_id, "reserved") in wanted
        )


def read_version(conn: Connection) -> int:
    value = conn.execute(
        text("SELECT value FROM setting WHERE name = :n"), {"n": VERSION_SETTING}
    ).scalar()
    return int(value) if value is not None else 0


def bump_version(session: Session) -> None:
    """Mark the configuration changed, so every process reloads its snapshot."""
    current = session.get(Setting, VERSION_SETTING)
    if current is None:
        session.add(Setting(name=VERSION_SETTING, value="1"))
    else:
        session.execute(
            update(Setting)
            .where(Setting.name == VERSION_SETTING)  # type: ignore[arg-type]
            .values(value=str(int(current.value) + 1))
        )


def load_catalog(engine: Engine) -> Catalog:
    with Session(engine) as session:
        version = read_version(session.connection())
        domain_row = session.get(Setting, DOMAIN_SETTING)
        pools: dict[str, list[str]] = {}
        for did in session.exec(select(DidNumber).order_by(DidNumber.number)):
            pools.setdefault(did.campaign_id, []).append(did.number)
        buyers: dict[str, list[BuyerInfo]] = {}
        defaults = {c.id: c for c in session.exec(select(Campaign))}
        for b in session.exec(select(Buyer).order_by(Buyer.id)):
            campaign = defaults.get(b.campaign_id)
            window = b.duplicate_window if b.duplicate_window is not None else (
                campaign.duplicate_window if campaign is not None else None
            )  # fmt: skip
            after = b.duplicate_after or (campaign.duplicate_after if campaign else None)
            record = b.record if b.record is not None else bool(campaign and campaign.record)
            notice = b.record_announcement or (campaign.record_announcement if campaign else None)
            rule = BuyerRule(
                id=b.id,
                priority=b.priority,
                weight=b.weight,
                concurrency=b.concurrency,
                daily_cap=b.daily_cap,
                hours=parse_hours(b.hours) if b.hours else None,
                filters={k: frozenset(v.casefold() for v in vs) for k, vs in b.filters.items()},
                duplicate_window=window or 0,
                duplicate_after=after or "connected",
            )
            info = BuyerInfo(
                rule,
                b.destination,
                b.payout,
                b.seconds,
                b.trunk_id,
                b.srtp,
                tuple(b.media_networks or ()),
                b.ring_timeout,
                b.connect_timeout if b.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT,
                b.revenue,
                None
                if b.bid_url is None
                else Bidder(b.bid_url, b.bid_format, b.bid_headers, b.hide_caller),
                record,
                (notice or "") if record else "",
            )
            buyers.setdefault(b.campaign_id, []).append(info)
        campaigns = {
            c.id: CampaignInfo(
                c.id,
                tuple(buyers.get(c.id, ())),
                tuple(pools.get(c.id, ())),
                frozenset(FAILOVER_KINDS if c.failover is None else c.failover),
                c.max_attempts,
                Auction(c.bid_deadline_ms, c.publisher_share, c.min_bid),
                c.min_attestation,
            )
            for c in defaults.values()
        }
        keys = {k.id: KeyInfo.of(k) for k in session.exec(select(PostbackKey))}
        trunks = {t.id: t for t in session.exec(select(Trunk))}
        subscribed = frozenset(
            (w.owner_kind, w.owner_id, event)
            for w in session.exec(select(Webhook).where(col(Webhook.enabled)))
            for event in w.events or ()
        )
        rules = {r.id: ListRule(r.id, r.kind, r.campaign_id, r.buyer_id, r.auto_block_converted)
                 for r in session.exec(select(CallerList))}  # fmt: skip
        lists = CallerLists(
            rules,
            {c: [b.rule.id for b in infos] for c, infos in buyers.items()},
            prefix_lengths=_prefix_lengths(session) if rules else frozenset(),
        )
        session.expunge_all()
    return Catalog(
        version=version,
        sip_domain=domain_row.value if domain_row else DEFAULT_SIP_DOMAIN,
        keys=keys,
        campaigns=campaigns,
        trunks=trunks,
        subscribed=subscribed,
        lists=lists,
        site=partial(sitekey.for_engine, engine),
    )


def _prefix_lengths(session: Session) -> frozenset[int]:
    """The lengths of the prefix entries there are (``+1900*``: 5, its ``+1900``), read
    from their partial index: a caller is looked up by its number and its prefixes of these
    lengths only, not all fourteen."""
    found = session.execute(
        text(f"SELECT DISTINCT length(value) FROM callerlistentry WHERE {PREFIX_ROWS}")
    )
    return frozenset(int(n) - 1 for (n,) in found)


class CatalogCache:
    """Holds the current snapshot; checks the version at most every ``recheck`` seconds.

    Changes made by this process call :meth:`invalidate`, so they apply at once here and
    within ``recheck`` seconds in every other process sharing the database."""

    def __init__(self, engine: Engine, *, recheck: float = 1.0) -> None:
        self._engine = engine
        self._recheck = recheck
        self._lock = threading.Lock()
        self._catalog = load_catalog(engine)
        self._checked = time.monotonic()

    def get(self) -> Catalog:
        if time.monotonic() - self._checked >= self._recheck:
            self._refresh()
        return self._catalog

    def invalidate(self) -> None:
        with self._lock:
            self._catalog = load_catalog(self._engine)
            self._checked = time.monotonic()

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked < self._recheck:
                return
            with self._engine.connect() as conn:
                version = read_version(conn)
            if version != self._catalog.version:
                self._catalog = load_catalog(self._engine)
            self._checked = time.monotonic()
