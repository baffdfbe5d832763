"""Tables. Times are aware UTC datetimes (SQLModel's ``UTCDateTime``: ``timestamptz`` on
PostgreSQL, UTC text on SQLite), rendered as ``...Z`` strings only at the HTTP edge.

Secrets are never stored: postback keys, admin tokens and console sessions by their digest
under the site key (``storage/sitekey.py``: HMAC-SHA256, the key outside the database), SIP
passwords as digest HA1 values (RFC 7616 needs ``H(user:realm:password)``, nothing more).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text, true
from sqlmodel import Field, SQLModel

from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.timestamps import utcnow

# Partial indexes hold only the rows the hot paths look for, so their size follows the live
# reservations, not the table (a ping costs the same with 10^2 or 10^6 rows behind it), and
# there are two, since every index is written by every ping. The queries repeat these exact
# terms: SQLite uses a partial index only when the query's WHERE contains its condition.
LIVE_ROWS = "status IN ('reserved', 'confirmed', 'claimed', 'connected')"
UNCLAIMED_ROWS = "status IN ('reserved', 'confirmed')"
# Rows whose webhook events the dispatcher has not turned into deliveries yet
# (rtbridge/webhooks/outbox.py): the index holds only those, a few at any time.
WEBHOOK_PENDING = "webhook_pending"
# Calls not ended yet (callrecord): a running agent's live calls, and the ones a crash left.
OPEN_CALLS = "end_at IS NULL"
# open calls an admin asked to hang up: what each agent looks for at its heartbeats
HANGUPS_ASKED = "hangup_requested_at IS NOT NULL AND end_at IS NULL"
# recordings whose file is kept: what the retention purge reads, oldest call first
RECORDINGS_KEPT = "recording_status = 'completed'"
# caller list entries that are prefixes ("+1900*"): the catalog reads which lengths exist
PREFIX_ROWS = "value LIKE '%*'"
_OPEN_CALL_KEYS = ("agent", "invite_at", "reservation_uuid", "end_at")


def _partial(name: str, *columns: str, where: str) -> Index:
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class Setting(SQLModel, table=True):
    """Deployment-wide values set by ``apply`` (e.g. ``sip.domain``) shared by all processes."""

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=1024)


class Publisher(SQLModel, table=True):
    """The party that sends calls; owns keys, allowlist entries and SIP credentials."""

    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    require_tls: bool = False  # INVITEs must arrive over TLS (else 403)
    require_srtp: bool = False  # the SDP offer must ask for SRTP (else 488)
    # CIDRs beside its allowlist where a re-INVITE/UPDATE may move its calls' media (SPEC §4.6)
    media_networks: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # "file" when `rtbridge apply` made it (a later apply may remove it), "admin" when the
    # admin API, CLI or console did: apply keeps those unless asked to --prune (issue 12).
    managed_by: str = Field(default="admin", max_length=8)


class AllowlistEntry(SQLModel, table=True):
    """A CIDR (v4 or v6) whose sources are accepted as the publisher without a challenge."""

    __table_args__ = (UniqueConstraint("publisher_id", "cidr"),)
    id: int | None = Field(default=None, primary_key=True)
    publisher_id: str = Field(foreign_key="publisher.id", index=True, max_length=64)
    cidr: str = Field(max_length=64)
    note: str | None = Field(default=None, max_length=256)
    expires_at: datetime | None = None
    # Accepted although it overlaps another publisher's entry (config/overlaps.py).
    allow_overlap: bool = False
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by


class SipCredential(SQLModel, table=True):
    """Digest credentials: the HA1 of ``username:realm:password`` per algorithm, never the
    password. The realm is the SIP domain at the time the password was set."""

    id: int | None = Field(default=None, primary_key=True)
    publisher_id: str = Field(foreign_key="publisher.id", index=True, max_length=64)
    username: str = Field(unique=True, max_length=128)
    realm: str = Field(max_length=256)
    ha1_md5: str = Field(max_length=32)
    ha1_sha256: str = Field(max_length=64)
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by


class Campaign(SQLModel, table=True):
    """A buyer-side offer: its buyers and its DID pool."""

    id: str = Field(primary_key=True, max_length=64)
    # Which failures of a buyer send the call on to the next one (SPEC §4.4 failover):
    # "no-answer", "busy", "rejected", "unreachable"; [] = off.
    failover: list[str] = Field(
        default_factory=lambda: list(FAILOVER_KINDS), sa_column=Column(JSON)
    )
    max_attempts: int = 3  # buyers tried for one call, the reservation's own included
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by
    # The auction, when some of its buyers bid in real time (bidding/; SPEC §3.5): how long
    # a ping waits for bids, the publisher's share of the winning bid, the least bid taken.
    bid_deadline_ms: int = 250
    publisher_share: float = 1.0
    min_bid: float = 0.01
    # Duplicate callers, the default of its buyers (storage/callers.py): a caller who reached
    # duplicate_after ("ping", "connected", "converted") with a buyer within duplicate_window
    # seconds is skipped by it; 0: off (buyers may set their own)
    duplicate_window: int = 0
    duplicate_after: str = Field(default="connected", max_length=16)
    # STIR/SHAKEN (sip/stir/): calls attested below it ("A" > "B" > "C") are refused 403;
    # None: every call, attested or not
    min_attestation: str | None = Field(default=None, max_length=1)
    # Record its answered calls (stereo: publisher left, buyer right; sip/recordings.py);
    # its buyers' default
    record: bool = False
    # Its recorded calls' notice, played to both parties from the answer before they are
    # bridged (an absolute path to a mono PCM16 WAV: sip/announcements.py); its buyers'
    # default; None: none
    record_announcement: str | None = Field(default=None, max_length=1024)


class DidNumber(SQLModel, table=True):
    """One inbound phone number of a campaign's pool."""

    number: str = Field(primary_key=True, max_length=16)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by


class Buyer(SQLModel, table=True):
    """Where calls go: a SIP URI or an E.164 number (sent through a trunk); or, for a buyer
    that bids in real time (``bid_url``), wherever its winning bid says."""

    id: str = Field(primary_key=True, max_length=64)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    destination: str | None = Field(default=None, max_length=512)  # None: an RTB buyer's
    payout: float | None = None  # paid to the publisher per converted call; None: RTB
    revenue: float | None = None  # paid by the buyer per converted call; None: its payout
    seconds: int
    concurrency: int | None = None
    daily_cap: int | None = None
    priority: int = 1
    weight: int = 1
    hours: str | None = Field(default=None, max_length=512)
    filters: dict[str, list[str]] = Field(default_factory=dict, sa_column=Column(JSON))
    trunk_id: str | None = Field(default=None, max_length=64)
    srtp: str = Field(default="off", max_length=8)  # SDES-SRTP on the leg to this buyer
    # CIDRs beside its destination where a re-INVITE/UPDATE may move its media (SPEC §4.6)
    media_networks: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    ring_timeout: float | None = None  # seconds it may ring; None: the agent's ring_timeout
    connect_timeout: float | None = None  # seconds to a first answer (else unreachable); None: 2
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by
    # Real-time bidding (bidding/): where its bids are asked, in which format, with which
    # headers (sealed under the site key: storage/sealed.py), and whether the caller's
    # number is withheld from it.
    bid_url: str | None = Field(default=None, max_length=512)
    bid_format: str = Field(default="rtbridge", max_length=16)
    bid_headers: str | None = Field(default=None, max_length=4096)  # sealed JSON object
    hide_caller: bool = False
    # Duplicate callers (as Campaign's); None: the campaign's
    duplicate_window: int | None = None
    duplicate_after: str | None = Field(default=None, max_length=16)
    record: bool | None = None  # record its calls; None: the campaign's
    record_announcement: str | None = Field(default=None, max_length=1024)  # None: the campaign's


class Trunk(SQLModel, table=True):
    """A carrier: trusted by IP for PSTN arrivals, and the URI template for numbers out.

    Outbound digest credentials are kept as HA1 for the carrier's realm (pjsua2 accepts
    pre-hashed digest credentials), so the password is not stored either."""

    id: str = Field(primary_key=True, max_length=64)
    ips: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    uri: str = Field(max_length=512)
    auth_username: str | None = Field(default=None, max_length=128)
    auth_realm: str | None = Field(default=None, max_length=256)
    auth_ha1_md5: str | None = Field(default=None, max_length=32)
    # Accepted although its networks overlap a publisher's allowlist (config/overlaps.py).
    allow_overlap: bool = False
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by


class PostbackKey(SQLModel, table=True):
    """A publisher's token for one campaign, stored as its digest; ``hint`` is for display."""

    id: str = Field(primary_key=True, max_length=64)  # the key's digest (storage/sitekey.py)
    hint: str = Field(max_length=16)
    publisher_id: str = Field(foreign_key="publisher.id", index=True, max_length=64)
    campaign_id: str = Field(foreign_key="campaign.id", index=True, max_length=64)
    allow_missing_caller_number: bool = False
    inbound_number: str | None = Field(default=None, max_length=16)
    ttl_seconds: int = 60
    auto_confirm: bool = False
    response_root: str | None = Field(default=None, max_length=16)
    paused: bool = False
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by
    # GET /rtbs/<uuid>/recording works for this key's publisher's calls (issue 24)
    recordings: bool = False


class Reservation(SQLModel, table=True):
    """The answer to one ping, ``no-target`` ones included (they are the RTB log)."""

    __table_args__ = (
        # a caller's live reservations: the ping shield, the DIDs the caller holds, a PSTN
        # arrival matched by (DID, caller id); and all live ones for /metrics
        _partial("ix_reservation_live_caller", "caller_number", where=LIVE_ROWS),
        # a buyer's unclaimed reservations by TTL: the expiry sweeper (buyer by buyer) and a
        # full buyer's relief (storage/expiry.py)
        _partial("ix_reservation_unclaimed_buyer", "buyer_id", "expires_at", where=UNCLAIMED_ROWS),
        # new reservations whose creation no webhook dispatcher has seen yet
        _partial("ix_reservation_webhook_pending", "uuid", where=WEBHOOK_PENDING),
    )
    uuid: str = Field(primary_key=True, max_length=36)
    key_id: str = Field(max_length=64)  # no index: nothing looks reservations up by key
    publisher_id: str = Field(max_length=64)
    campaign_id: str = Field(max_length=64)
    buyer_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=64)
    caller_number: str | None = Field(default=None, max_length=16)
    inbound_number: str | None = Field(default=None, max_length=512)
    source_publisher_id: str | None = Field(default=None, max_length=128)
    source_id: str | None = Field(default=None, max_length=128)
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # what the ping's selection said of each buyer of the campaign, by buyer id
    # (domain/selection.py: chosen, not-drawn, lower-priority, or why it was not eligible)
    verdicts: dict[str, str] | None = Field(default=None, sa_column=Column(JSON))
    payout: float | None = None  # offered to the publisher (the buyer's payout then)
    # An RTB buyer's winning bid: where the call goes, and the bidder's id for it
    destination: str | None = Field(default=None, max_length=512)
    bid_id: str | None = Field(default=None, max_length=128)
    # asked of the buyer (its revenue then, or that of the buyer a failover moved it to);
    # None on rows from before revenue existed: read as the payout (domain/money.py)
    revenue: float | None = None
    seconds: int | None = None
    # what its INVITE's STIR/SHAKEN said (sip/stir/): "A", "B", "C", "none" (no Identity
    # header), "failed" (with why); None until an INVITE came
    attestation: str | None = Field(default=None, max_length=8)
    attestation_why: str | None = Field(default=None, max_length=128)
    created_at: datetime
    expires_at: datetime | None = None
    updated_at: datetime
    # The ping writes it: true only when an enabled webhook wants the creation (the
    # catalog's subscriptions), so without webhooks no row enters the partial index. The
    # webhook dispatcher clears it when it has turned the creation into deliveries
    # (webhooks/outbox.py). The server default stays true: a writer that leaves it out
    # errs on the side of an event the dispatcher then drops, not of one lost.
    webhook_pending: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class BuyerLive(SQLModel, table=True):
    """Units a buyer holds: its reservations stored as reserved, confirmed, claimed or
    connected. Moved in the transaction that writes such a status (``storage/counters.py``),
    so a concurrency cap is read here instead of counted."""

    buyer_id: str = Field(primary_key=True, max_length=64)  # no foreign key: outlives the buyer
    units: int


class BuyerDay(SQLModel, table=True):
    """Units a buyer used on one UTC day: its reservations created that day and stored as
    reserved, confirmed, claimed, connected, completed or failed (what a daily cap counts)."""

    buyer_id: str = Field(primary_key=True, max_length=64)
    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD, UTC
    units: int


class RollupFigures(SQLModel):
    """The measures a rollup row holds, hourly or daily (storage/rollups.py)."""

    pings: int = 0
    reserved: int = 0
    no_target: int = 0
    calls: int = 0
    answered: int = 0
    converted: int = 0
    talk_seconds: float = 0.0  # of answered calls
    payout: float = 0.0  # earned by publishers
    revenue: float = 0.0  # earned from buyers


class Rollup(RollupFigures, table=True):
    """The business per hour x publisher x campaign x buyer (x no-target reason), moved in
    the transaction of each event (storage/rollups.py): what ``/admin/stats`` and the
    console's dashboard read, never the reservations themselves."""

    hour: str = Field(primary_key=True, max_length=13)  # "YYYY-MM-DD HH" UTC, of the ping
    publisher_id: str = Field(primary_key=True, max_length=64)
    campaign_id: str = Field(primary_key=True, max_length=64)
    buyer_id: str = Field(primary_key=True, max_length=64)  # "" for no-target pings
    reason: str = Field(primary_key=True, max_length=64)  # no-target's reason, else ""


class RollupDay(RollupFigures, table=True):
    """The same figures per UTC day, moved with ``rollup``'s by the same statements' trip:
    what ``/admin/stats`` reads for whole days (a month is 30 rows a key, not 720)."""

    day: str = Field(primary_key=True, max_length=10)  # "YYYY-MM-DD" UTC, of the ping
    publisher_id: str = Field(primary_key=True, max_length=64)
    campaign_id: str = Field(primary_key=True, max_length=64)
    buyer_id: str = Field(primary_key=True, max_length=64)
    reason: str = Field(primary_key=True, max_length=64)


class CallerSeen(SQLModel, table=True):
    """When a caller last reached a buyer: pinged, connected, converted (storage/callers.py)."""

    caller_number: str = Field(primary_key=True, max_length=16)
    buyer_id: str = Field(primary_key=True, max_length=64)
    pinged_at: datetime | None = None
    connected_at: datetime | None = None
    converted_at: datetime | None = None


class CallerList(SQLModel, table=True):
    """A block or allow list of callers (SPEC §3.10; domain/caller_lists.py), global or of a
    campaign or a buyer (at most one of the two ids; no foreign key: a list outlives the
    campaign or buyer it names, and then applies to nobody)."""

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8)  # "block" or "allow"
    campaign_id: str | None = Field(default=None, max_length=64)
    buyer_id: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=256)
    # a block list's: the caller of each conversion in its scope is added for these seconds
    auto_block_converted: int | None = None
    managed_by: str = Field(default="admin", max_length=8)  # as Publisher.managed_by


class CallerListEntry(SQLModel, table=True):
    """One value of a list: a number, a prefix (``+1900*``) or ``anonymous``. ``source``:
    "file" (apply manages it), "admin" (API, CSV, CLI, console) or "auto" (a conversion's);
    apply removes only its own. A caller is looked up by value (``ix_callerlistentry_value``)."""

    __table_args__ = (
        Index("ix_callerlistentry_value", "value"),
        _partial("ix_callerlistentry_prefix", "value", where=PREFIX_ROWS),
    )

    list_id: str = Field(primary_key=True, foreign_key="callerlist.id", max_length=64)
    value: str = Field(primary_key=True, max_length=16)
    expires_at: datetime | None = None  # never matches from then on
    note: str | None = Field(default=None, max_length=256)
    source: str = Field(default="admin", max_length=8)
    created_at: datetime = Field(default_factory=utcnow)


class Bid(SQLModel, table=True):
    """One RTB buyer's answer to one ping's auction (bidding/): kept ``bid_retention_days``
    and pruned oldest first (storage/bids.py)."""

    id: int | None = Field(default=None, primary_key=True)
    reservation_uuid: str = Field(index=True, max_length=36)  # the ping's reservation
    buyer_id: str = Field(max_length=64)
    at: datetime = Field(index=True)  # when it was asked
    outcome: str = Field(max_length=16)  # won, lost, no-bid, timeout, error, invalid
    reason: str | None = Field(default=None, max_length=256)
    amount: float | None = None  # the bid, when there was one
    latency_ms: float | None = None  # until its answer (None: no answer)
    bid_id: str | None = Field(default=None, max_length=128)
    destination: str | None = Field(default=None, max_length=512)


class ReservationEvent(SQLModel, table=True):
    """Status history: one row per transition, with what caused it. Written in the
    transaction of the transition, so it is also the webhooks' outbox (webhooks/outbox.py)."""

    __table_args__ = (_partial("ix_reservationevent_webhook_pending", "id", where=WEBHOOK_PENDING),)
    id: int | None = Field(default=None, primary_key=True)
    reservation_uuid: str = Field(foreign_key="reservation.uuid", index=True, max_length=36)
    status: str = Field(max_length=16)
    at: datetime
    detail: str | None = Field(default=None, max_length=256)
    webhook_pending: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class CallRecord(SQLModel, table=True):
    """What happened to the call that claimed a reservation (SPEC §3.7, §4.4)."""

    __table_args__ = (
        # an agent's open calls by INVITE time, uuid included: crash recovery, and the
        # running agent's orphan sweep every heartbeat, read them without a table row
        # (end_at, always NULL here, makes it covering: SQLite 3.40 wants every column)
        _partial("ix_callrecord_open", *_OPEN_CALL_KEYS, where=OPEN_CALLS),
        # calls an admin asked to hang up, not ended yet, by agent (a heartbeat reads them)
        _partial("ix_callrecord_hangup", "agent", "reservation_uuid", where=HANGUPS_ASKED),
        # completed recordings by their call's end: the retention purge's batches
        _partial("ix_callrecord_recording_kept", "end_at", where=RECORDINGS_KEPT),
    )

    id: int | None = Field(default=None, primary_key=True)
    reservation_uuid: str = Field(foreign_key="reservation.uuid", unique=True, max_length=36)
    agent: str | None = Field(default=None, max_length=128)
    source: str | None = Field(default=None, max_length=128)
    via: str = Field(default="sip", max_length=8)  # "sip" (R-URI uuid) or "pstn" (DID+caller)
    invite_at: datetime
    answer_at: datetime | None = None
    end_at: datetime | None = None
    publisher_code: int | None = None
    buyer_code: int | None = None
    hangup_by: str | None = Field(default=None, max_length=16)
    duration: float | None = None
    converted: bool | None = None
    hangup_requested_at: datetime | None = None  # an admin asked its agent to hang it up
    payout: float | None = None  # earned by the publisher: the reservation's, if converted
    revenue: float | None = None  # earned from the buyer, likewise; None as Reservation's
    # {"publisher": {...}, "buyer": {...}}: each answered leg's dialog (sip/dialogs.py), so a
    # restarted agent can BYE the legs a crashed process left up
    dialogs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # The call's recording (SPEC §4.8, sip/recordings.py), NULL when it was not recorded:
    # "recording" (in progress, or its agent died: repaired at its next start), "completed",
    # "failed" (recording_error says why; the call itself went on), "purged" (retention);
    # the path is relative to the agent's recordings directory (<yyyy>/<mm>/<uuid>.wav)
    recording_status: str | None = Field(default=None, max_length=16)
    recording_path: str | None = Field(default=None, max_length=512)
    recording_error: str | None = Field(default=None, max_length=512)
    recording_bytes: int | None = None
    recording_seconds: float | None = None
    recording_sha256: str | None = Field(default=None, max_length=64)


class CallAttempt(SQLModel, table=True):
    """One buyer dialled for a call (SPEC §4.4 failover): the reservation's buyer first,
    then each buyer the call failed over to. ``kind`` is how it ended: "answered", a
    failure kind (``domain/failover.py``), or "cancelled" (the publisher gave up, or the agent
    stopped) while it rang."""

    __table_args__ = (UniqueConstraint("reservation_uuid", "n"),)
    id: int | None = Field(default=None, primary_key=True)
    reservation_uuid: str = Field(foreign_key="reservation.uuid", index=True, max_length=36)
    n: int  # 1 for the reservation's own buyer, then 2, 3, ...
    buyer_id: str = Field(max_length=64)
    destination: str = Field(max_length=512)
    started_at: datetime  # INVITE sent
    provisional_at: datetime | None = None  # its first provisional answer (100-199)
    final_code: int | None = None  # its final answer; 408 when we stopped it ringing
    reason: str | None = Field(default=None, max_length=256)
    kind: str | None = Field(default=None, max_length=16)
    ended_at: datetime | None = None


class SipAgent(SQLModel, table=True):
    """A SIP agent's lease and heartbeat (``storage/leases.py``): when its pjsua2 thread was
    last seen working. Whoever closes a dead agent's open calls — its restart or a live peer
    taking the lease over — ends them at ``seen_at`` (SPEC §7: nothing billable lost)."""

    name: str = Field(primary_key=True, max_length=128)  # the agent_id
    started_at: datetime
    seen_at: datetime
    epoch: int = 0  # bumped by each start and each takeover: an older holder is fenced
    holder: str | None = Field(default=None, max_length=256)  # the process; NULL: released
    beats: int = 0  # heartbeats under this epoch (a peer waits for them to stand still)
    takeover_after: float = 6.0  # seconds of silence after which a peer takes the lease
    taken_by: str | None = Field(default=None, max_length=128)
    taken_at: datetime | None = None
    taken_calls: int | None = None  # open calls the takeover closed
    # its last refused INVITEs, newest first (sip/recent_refusals.py), written with heartbeats
    refusals: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class AdminToken(SQLModel, table=True):
    """A bearer token of the admin API, stored as its digest; ``name`` is who it is in the audit
    trail. Revoked tokens stay (with ``revoked_at``) so old audit rows keep their meaning."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=64)
    token_hash: str = Field(unique=True, max_length=64)
    hint: str = Field(max_length=16)
    created_at: datetime
    revoked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One configuration change: who (token name, ``cli:<user>``, ``apply``), when, what, and
    the resource before and after, with secrets replaced by ``"***"`` before they get here."""

    __table_args__ = (Index("ix_auditentry_at", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    actor: str = Field(index=True, max_length=128)
    action: str = Field(max_length=32)
    resource: str = Field(index=True, max_length=256)
    old: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    new: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class ConsoleSession(SQLModel, table=True):
    """A signed-in operator console: the cookie holds 256 random bits, the row only their
    digest under the site key (a database reader cannot sign in with it). It acts as its admin token's name and
    dies with the token's revocation, on sign-out, after ``idle`` without use or at
    ``expires_at``."""

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(unique=True, max_length=64)
    token_id: int = Field(foreign_key="admintoken.id", index=True)
    actor: str = Field(max_length=64)  # the token's name: the audit trail's actor
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # absolute end, whatever the activity


class Webhook(SQLModel, table=True):
    """A subscription: a publisher's or a buyer's reservation events POSTed to ``url``.

    The signing secret is not stored: it is derived from the master key in the settings and
    ``salt`` (``webhooks/signing.py``), so a copy of the database cannot sign or forge."""

    id: int | None = Field(default=None, primary_key=True)
    owner_kind: str = Field(max_length=16)  # "publisher" | "buyer"
    owner_id: str = Field(max_length=64)
    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    enabled: bool = True
    salt: str = Field(max_length=64)  # random; a new one rotates the secret
    created_at: datetime


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: the body is fixed when the event is dispatched, so
    every attempt sends the same bytes under the same ``webhook-id`` (the ``id``)."""

    __table_args__ = (
        # what the sender claims: pending deliveries by due time
        _partial("ix_webhookdelivery_due", "next_at", where="status = 'pending'"),
        Index("ix_webhookdelivery_webhook", "webhook_id", "created_at"),
        # a reservation's deliveries: its story (storage/story.py)
        Index("ix_webhookdelivery_reservation", "reservation_uuid"),
    )
    id: str = Field(primary_key=True, max_length=36)  # uuid7: the webhook-id header
    webhook_id: int
    event_type: str = Field(max_length=32)
    reservation_uuid: str = Field(max_length=36)
    body: str
    status: str = Field(max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    last_code: int | None = None
    last_error: str | None = Field(default=None, max_length=256)
