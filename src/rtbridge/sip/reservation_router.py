"""The database-backed :class:`~rtbridge.sip.router.Router`: authenticate the sender, claim
the reservation named by the Request-URI (or matched by DID and caller id for a trunk),
say where to bridge, and record what happened. No pjsua2 here."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from rtbridge.domain.attestation import REFUSED as ATTESTATION
from rtbridge.domain.errors import InvalidInput
from rtbridge.domain.failover import Attempt
from rtbridge.domain.numbers import normalise_e164
from rtbridge.sip.attester import UNSIGNED, Attester, describe
from rtbridge.sip.auth.access import UNTRUSTED_PROXY_HEADER, AccessSnapshot, Policy
from rtbridge.sip.auth.allowlist import AllowRule, Credential, Directory, parse_cidr
from rtbridge.sip.auth.authenticator import (
    MISSING_CREDENTIALS,
    Accepted,
    Authenticator,
    Challenge,
)
from rtbridge.sip.auth.digest import ALGORITHMS
from rtbridge.sip.lease import LeaseKeeper
from rtbridge.sip.messages import split_name_addr, uri_user
from rtbridge.sip.recent_refusals import RecentRefusals
from rtbridge.sip.refusal_log import RefusalLog
from rtbridge.sip.router import (
    BridgeTo,
    CallEvent,
    Carried,
    Failover,
    IncomingInvite,
    OutboundAuth,
    Reject,
    SrtpMode,
)
from rtbridge.sip.stir import Attestation
from rtbridge.storage import attempts, calls, invite_checks, leases
from rtbridge.storage.catalog import BuyerInfo, Catalog, CatalogCache
from rtbridge.storage.counters import Tally
from rtbridge.storage.models import AllowlistEntry, Publisher, SipCredential
from rtbridge.storage.outage import is_outage
from rtbridge.storage.recordings import write_outcome
from rtbridge.storage.sql import Db, transaction
from rtbridge.timestamps import utcnow

log = logging.getLogger("rtbridge.sip")

_HEADER_NAME = re.compile(r"[^A-Za-z0-9_.\-]")  # RFC 3261 token chars we allow
_HEADER_VALUE = re.compile(r"[\x00-\x1f\x7f]")
_EVENT_BATCH = 500  # call events per transaction when a backlog is written


def load_access(engine: Engine, catalog: Catalog) -> AccessSnapshot:
    """Who may send calls as the database says now (the agent's snapshot, and the admin
    dry-run's: admin/check.py)."""
    rules: list[AllowRule] = []
    creds: list[Credential] = []
    media: dict[str, list[str]] = {}
    with Session(engine) as session:
        for entry in session.exec(select(AllowlistEntry)):
            expires = entry.expires_at.timestamp() if entry.expires_at else None
            rules.append(
                AllowRule(parse_cidr(entry.cidr), entry.publisher_id, entry.id or 0, expires)
            )
            media.setdefault(entry.publisher_id, []).append(entry.cidr)
        for c in session.exec(select(SipCredential)):
            creds.append(Credential(c.username, c.publisher_id, c.ha1_md5, c.ha1_sha256))
        policies: dict[str, Policy] = {}
        for p in session.exec(select(Publisher)):
            if p.require_tls or p.require_srtp:
                policies[p.id] = Policy(p.require_tls, p.require_srtp)
            media.setdefault(p.id, []).extend(p.media_networks or ())
    trunk_rules = [
        AllowRule(parse_cidr(cidr), trunk.id, f"trunk {trunk.id}")
        for trunk in catalog.trunks.values()
        for cidr in trunk.ips
    ]
    return AccessSnapshot(
        catalog.version, Directory(rules, creds), Directory(trunk_rules), policies,
        {publisher: tuple(cidrs) for publisher, cidrs in media.items()},
    )  # fmt: skip


def _header_name(tag: str) -> str:
    return "X-RTB-Tag-" + _HEADER_NAME.sub("-", tag)[:48]


def _header_value(value: object) -> str:
    return _HEADER_VALUE.sub(" ", str(value))[:256]


class ReservationRouter:
    """Implements ``Router`` over the database. Thread-safe: the agent calls it from a pool."""

    def __init__(
        self,
        engine: Engine,
        catalog: CatalogCache,
        *,
        secret: bytes,
        agent_id: str,
        ring_timeout: float = 30.0,
        algorithms: tuple[str, ...] = ALGORITHMS,
        clock: Callable[[], datetime] = utcnow,
        retry_after: int = 5,
        event_retry: float = 1.0,
        max_backlog: int = 100_000,
        refusal_log: RefusalLog | None = None,
        lease: LeaseKeeper | None = None,
        attester: Attester | None = None,
    ) -> None:
        """``lease``: the agent's lease (None: heartbeats without one, as in unit tests); it
        also takes silent peers over at each heartbeat. ``attester``: how INVITEs' callers are
        attested (STIR/SHAKEN); None: not at all, every call ``none``."""
        self.engine = engine
        self.catalog = catalog
        self.agent_id = agent_id
        self.lease = lease
        self.attester = attester
        self.ring_timeout = ring_timeout
        self.clock = clock
        self._secret = secret
        self._algorithms = algorithms
        self.retry_after = retry_after  # seconds, on a 503 while the database is unavailable
        self.event_retry = event_retry  # seconds between tries to write held call events
        self.max_backlog = max_backlog
        # which refusals by authentication get a log line of their own (_log_decision)
        self.refusal_log = refusal_log if refusal_log is not None else RefusalLog(log)
        self.recent_refusals = RecentRefusals()  # written with the heartbeats
        self._hangups: frozenset[str] = frozenset()  # asked by an admin, as last read
        self._lock = threading.Lock()
        self._events_lock = threading.Lock()  # one writer of call events at a time, in order
        self._backlog: deque[CallEvent] = deque()
        self._retrying: threading.Thread | None = None
        first = catalog.get()
        self._access = load_access(engine, first)
        self.authenticator = self._authenticator(first.sip_domain)

    def _authenticator(self, realm: str) -> Authenticator:
        return Authenticator(realm=realm, secret=self._secret, algorithms=self._algorithms)

    def access(self) -> AccessSnapshot:
        """The current snapshot; rebuilt when the configuration version moves, so an admin's
        change reaches this agent within the catalog's recheck interval. A new SIP domain is a
        new digest realm, hence a new authenticator (stored HA1s were re-hashed by apply)."""
        catalog = self.catalog.get()
        if catalog.version != self._access.version:
            with self._lock:
                if catalog.version != self._access.version:
                    self._access = load_access(self.engine, catalog)
                    if catalog.sip_domain != self.authenticator.realm:
                        self.authenticator = self._authenticator(catalog.sip_domain)
        return self._access

    # -- Router ---------------------------------------------------------------------------
    def route(self, invite: IncomingInvite) -> Reject | BridgeTo:
        """Decide, or ``503`` + ``Retry-After`` when the database is down or locked: the
        claim is one transaction, so a failed one leaves the reservation claimable by the
        publisher's retry (here or at another agent)."""
        who: dict[str, str] = {}  # publisher and the rule that matched, or username tried
        try:
            result = self._route(invite, who)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("database unavailable; INVITE refused with 503: %s", exc,
                        extra={"call_id": invite.call_id})  # fmt: skip
            return Reject(503, "Service Unavailable (database unavailable)",
                          (("Retry-After", str(self.retry_after)),))  # fmt: skip
        _log_decision(invite, result, who, self.refusal_log)
        if isinstance(result, Reject):
            self.recent_refusals.note(self.clock(), invite, result, who.get("username"))
        return result

    def _route(self, invite: IncomingInvite, who: dict[str, str]) -> Reject | BridgeTo:
        access = self.access()
        now = self.clock()
        source = f"{invite.source_ip}:{invite.source_port}/{invite.transport}"
        trunk = access.trunks.match_ip(invite.source_ip, time.time())
        if trunk is not None and not _is_uuid(invite.ruri_user):
            who["rule"] = f"trunk {trunk.publisher_id}"
            return self._route_pstn(invite, trunk.publisher_id, now, source)
        decision = self.authenticator.authenticate(
            method="INVITE", source_ip=invite.source_ip, authorization=invite.authorization,
            directory=access.directory,
        )  # fmt: skip
        if not isinstance(decision, Accepted):
            if decision.username is not None:
                who["username"] = decision.username[:64]
            cause = decision.cause
            if invite.untrusted_source is not None and cause == MISSING_CREDENTIALS:
                cause = UNTRUSTED_PROXY_HEADER
            if isinstance(decision, Challenge):
                return Reject(401, "Unauthorized", decision.headers, auth_failure=cause)
            return Reject(decision.code, decision.reason, decision.headers, auth_failure=cause)
        who.update(publisher=decision.publisher_id, rule=decision.rule)
        if not _is_uuid(invite.ruri_user):
            return Reject(404, "Not Found")
        policy = access.policies.get(decision.publisher_id)
        refusal = policy.refusal(invite.transport, invite.offer_srtp) if policy else None
        if refusal is not None:
            return Reject(refusal.code, refusal.reason, auth_failure=refusal.cause)
        uuid = invite.ruri_user.lower()
        caller = invite_caller(invite)
        checked = self._check(uuid, caller, now)
        if checked.why is not None:
            return _refused(checked.why)
        attested = self._attest(invite, caller, checked.called or _to_number(invite))
        who["attestation"] = describe(attested)
        if invite_checks.attested_below(self.engine, uuid=uuid, attestation=attested.level,
                                        why=attested.why, minimum=checked.minimum, now=now):  # fmt: skip
            return _refused(ATTESTATION, attested)
        result = calls.claim(
            self.engine, uuid=uuid, publisher_id=decision.publisher_id,
            now=now, agent=self.agent_id, source=source, epoch=self._epoch(),
            attestation=(attested.level, attested.why),
        )  # fmt: skip
        if isinstance(result, calls.NotClaimed):
            return replace(self._not_claimed(result), attestation=attested.level)
        media = access.media.get(decision.publisher_id, ())
        return self._bridge(result, invite, media, attested)

    def _check(self, uuid: str, caller: str | None, now: datetime) -> invite_checks.Checked:
        """The INVITE's caller rules before its claim (``storage/invite_checks.py``), when
        there is anything to check."""
        catalog = self.catalog.get()
        if not invite_checks.needed(catalog, caller):
            return invite_checks.PASSED
        return invite_checks.check_invite(self.engine, catalog, uuid=uuid, caller=caller, now=now)

    def _attest(
        self, invite: IncomingInvite, caller: str | None, called: str | None, *, trunk: bool = False
    ) -> Attestation:
        if self.attester is None:
            return UNSIGNED
        return self.attester.attest(invite, orig=caller, dest=called, trunk=trunk)

    def _route_pstn(
        self, invite: IncomingInvite, trunk_id: str, now: datetime, source: str
    ) -> Reject | BridgeTo:
        try:
            did = normalise_e164(invite.ruri_user, field="Request-URI")
            caller = normalise_e164(invite.from_user, field="From")
        except InvalidInput:
            return Reject(404, "Not Found")
        uuid = calls.find_pstn(self.engine, did=did, caller=caller, now=now)
        if uuid is None:
            return Reject(404, "Not Found (no live reservation for this DID and caller)")
        checked = self._check(uuid, None, now)  # its caller is the ping's: checked then
        attested = self._attest(invite, caller, did, trunk=True)
        if invite_checks.attested_below(self.engine, uuid=uuid, attestation=attested.level,
                                        why=attested.why, minimum=checked.minimum, now=now):  # fmt: skip
            return _refused(ATTESTATION, attested)
        result = calls.claim(self.engine, uuid=uuid, publisher_id=None, now=now, agent=self.agent_id,
                             source=f"{source} trunk {trunk_id}", via="pstn",
                             epoch=self._epoch(), attestation=(attested.level, attested.why))  # fmt: skip
        if isinstance(result, calls.NotClaimed):
            return replace(self._not_claimed(result), attestation=attested.level)
        trunk = self.catalog.get().trunks.get(trunk_id)
        return self._bridge(result, invite, tuple(trunk.ips) if trunk is not None else (), attested)

    def _epoch(self) -> int | None:
        return self.lease.epoch if self.lease is not None else None

    def _not_claimed(self, result: calls.NotClaimed) -> Reject:
        if result is calls.FENCED:  # the next heartbeat fences the agent; retry elsewhere
            return Reject(result.code, result.reason, (("Retry-After", str(self.retry_after)),))
        return Reject(result.code, result.reason)

    def _bridge(
        self, claimed: calls.Claimed, invite: IncomingInvite, publisher_media: tuple[str, ...],
        attested: Attestation = UNSIGNED,
    ) -> BridgeTo | Reject:  # fmt: skip
        """``publisher_media``: the CIDRs the caller's side may move its media to (its
        allowlist and media_networks, or the carrier trunk's CIDRs on the PSTN path). The
        INVITE's Identity headers go to the buyer as they came, once each (SPEC §4.9)."""
        catalog = self.catalog.get()
        found = next(
            (
                (c, b)
                for c in catalog.campaigns.values()
                for b in c.buyers
                if b.rule.id == claimed.buyer_id
            ),
            None,
        )
        if found is None:  # removed since the ping: end the claim cleanly
            return self._unroutable(claimed.uuid, 480, "Temporarily Unavailable", "buyer removed")
        campaign, buyer = found
        leg = self._buyer_leg(buyer, catalog, destination=claimed.destination)
        if leg is None:  # its trunk removed since the ping, like the buyer above
            return self._unroutable(
                claimed.uuid, 503, "Service Unavailable", "no trunk for the buyer's number"
            )
        headers = [("X-RTB-UUID", claimed.uuid)]
        headers += [(_header_name(k), _header_value(v)) for k, v in sorted(claimed.tags.items())]
        headers += [("Identity", value) for value in invite.identities if _relayable(value)]
        # Caller id = the reservation's caller number when the ping gave one (§4.4).
        caller_id = claimed.caller_number or invite.from_user or None
        plan = BridgeTo(claimed.uuid, "", caller_id, tuple(headers), self.ring_timeout,
                        publisher_media=publisher_media,
                        failover=campaign.failover, max_attempts=campaign.max_attempts,
                        attestation=attested.level)  # fmt: skip
        return replace(plan, **leg)

    def _buyer_leg(
        self, buyer: BuyerInfo, catalog: Catalog, *, destination: str | None = None
    ) -> dict[str, Any] | None:
        """What a plan says about dialling ``buyer`` (the ``BridgeTo`` fields of the buyer
        leg) at ``destination`` (a winning bid's) or its own, None when there is nowhere to
        dial: a number with no trunk to go out by, or an RTB buyer without its bid's."""
        target, auth, buyer_media = destination or buyer.destination, None, buyer.media_networks
        if target is None:
            return None
        if not target.startswith("sip"):
            trunk = catalog.trunks.get(buyer.trunk_id or "") or next(
                iter(catalog.trunks.values()), None
            )
            if trunk is None:
                return None
            target = trunk.uri.replace("{number}", target)
            buyer_media = (*buyer_media, *trunk.ips)
            if trunk.auth_username and trunk.auth_ha1_md5:
                auth = OutboundAuth(
                    trunk.auth_username, trunk.auth_ha1_md5, trunk.auth_realm or "*", hashed=True
                )
        return {
            "target_uri": target, "auth": auth, "srtp": _srtp(buyer.srtp),
            "buyer_media": buyer_media, "buyer_id": buyer.rule.id,
            "ring_timeout": buyer.ring_timeout or self.ring_timeout,
            "connect_timeout": buyer.connect_timeout, "record": buyer.record,
            "announcement": buyer.announcement,
        }  # fmt: skip

    def next_buyer(self, plan: BridgeTo, failed: Attempt, tried: Sequence[str]) -> Failover:
        """Failover (SPEC §4.4): ``storage.attempts.fail_over`` records the attempt and moves
        the reservation in one transaction; the plan for the next buyer keeps the call's
        headers and caller id. While the database is unavailable the call fails (its end
        brings the attempt to the record once the database is back)."""
        catalog = self.catalog.get()
        fields = {"uuid": plan.reservation_uuid, "failed": failed.buyer_id, "kind": failed.kind,
                  "code": failed.final_code}  # fmt: skip
        try:
            moved = attempts.fail_over(
                self.engine, catalog, uuid=plan.reservation_uuid, failed=failed, tried=tried,
                now=self.clock(),
            )  # fmt: skip
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("database unavailable; no failover", extra={**fields, "error": str(exc)})
            return Failover(recorded=False)
        if moved.buyer is None:
            log.info("buyer failed the call; no failover", extra={**fields, "why": moved.why})
            return Failover(recorded=True)
        leg = self._buyer_leg(moved.buyer, catalog)
        if leg is None:
            log.warning("next buyer has no trunk; no failover",
                        extra={**fields, "buyer": moved.buyer.rule.id})  # fmt: skip
            return Failover(recorded=True)
        log.info("buyer failed the call; dialling the next",
                 extra={**fields, "buyer": moved.buyer.rule.id, "target": leg["target_uri"]})  # fmt: skip
        return Failover(recorded=True, next=replace(plan, **leg))

    def _unroutable(self, uuid: str, code: int, phrase: str, why: str) -> Reject:
        """A claim that cannot reach a buyer any more ends at once, recorded with the code
        the publisher hears, so the buyer's unit is given back now (not by the orphan sweep)."""
        calls.ended(self.engine, uuid=uuid, answer_at=None, end_at=self.clock(),
                    publisher_code=code, buyer_code=None, hangup_by="agent", duration=0.0,
                    detail=why)  # fmt: skip
        return Reject(code, f"{phrase} ({why})")

    def on_event(self, event: CallEvent) -> None:
        self.on_events([event])

    def on_events(self, events: Sequence[CallEvent]) -> None:
        """Record call progress in order, a batch per transaction: the agent hands events
        over per poll, and one commit per batch instead of one per event is what lets SQLite
        keep up with hundreds of calls a second.

        While the database is down or locked the events wait here, in order, and a retry
        thread writes them once it is back — an end of call is a call record and a buyer's
        unit given back (SPEC §7: no call without a record). The writes are conditional on
        the call still being open (``storage.calls``), so one replayed after a commit whose
        answer was lost changes nothing. At most ``max_backlog`` wait; past that the oldest
        are dropped with an error (agent restart recovery then closes those calls)."""
        with self._events_lock:
            self._backlog.extend(events)
            self._flush_backlog()

    @property
    def backlog(self) -> int:
        """Events waiting for the database."""
        return len(self._backlog)

    def _flush_backlog(self) -> None:
        while self._backlog:
            batch = list(itertools.islice(self._backlog, _EVENT_BATCH))
            try:
                self._write_events(batch)
            except Exception as exc:
                if is_outage(exc):
                    self._hold_backlog(exc)
                    return
                # Not the database's state: one bad event must not lose the others' records.
                log.exception("recording %d call events failed; recording one by one", len(batch))
                for event in batch:
                    try:
                        self._write_events([event])
                    except Exception:
                        log.exception("call event lost for %s", event.reservation_uuid)
            for _ in batch:
                self._backlog.popleft()
        if self._retrying is not None:
            log.warning("database back: call events recorded")
            self._retrying = None

    def _hold_backlog(self, exc: Exception) -> None:
        dropped = 0
        while len(self._backlog) > self.max_backlog:
            lost = self._backlog.popleft()
            dropped += 1
            log.error("call event dropped (backlog full)", extra={"uuid": lost.reservation_uuid})
        if self._retrying is None:
            log.warning("database unavailable; %d call events held for retry: %s",
                        len(self._backlog), exc)  # fmt: skip
            self._retrying = threading.Thread(
                target=self._retry_backlog, name="rtbridge-events-retry", daemon=True
            )
            self._retrying.start()

    def _retry_backlog(self) -> None:
        while True:
            time.sleep(self.event_retry)
            with self._events_lock:
                self._flush_backlog()
                if not self._backlog:
                    return

    def _write_events(self, events: Sequence[CallEvent]) -> None:
        with transaction(self.engine, write=True) as db:
            tally = Tally(db)
            for event in events:
                self._record(db, tally, event)
            tally.flush()

    def heartbeat(self, at: datetime, carried: Carried) -> bool:
        """Write the heartbeat, then sweep for orphans and watch the peers' leases. All
        skipped while the database is unavailable (the outage is logged once by the call
        events; a crash during it is billed up to the last heartbeat that got through). Also
        the clock of the summarised refusals' log lines (a quiet source's summary is due
        once its interval is over). False: the lease was taken over, the agent is fenced."""
        self.refusal_log.flush()
        try:
            if self.lease is None:
                calls.heartbeat(self.engine, agent=self.agent_id, at=at)
            elif not self.lease.beat(at):
                log.error("fenced: this agent's lease was taken over while it was silent; "
                          "hanging up its calls without recording them, then rejoining",
                          extra={"agent": self.agent_id, "epoch": self.lease.epoch})  # fmt: skip
                return False
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.debug("heartbeat not written: database unavailable")
            return True
        self._sweep_orphans(carried)
        self._take_over_silent_peers()
        self._read_hangups()
        self._write_refusals()
        return True

    def hangups_asked(self) -> frozenset[str]:
        return self._hangups

    def _read_hangups(self) -> None:
        try:
            self._hangups = frozenset(calls.hangups_asked(self.engine, agent=self.agent_id))
        except Exception as exc:
            if not is_outage(exc):
                raise

    def _write_refusals(self) -> None:
        refusals = self.recent_refusals.take()
        if refusals is None:
            return
        try:
            leases.note_refusals(self.engine, name=self.agent_id, refusals=refusals)
        except Exception as exc:
            if is_outage(exc):
                self.recent_refusals.changed_again()  # written with a later heartbeat
                return
            # Never the heartbeat's failure: what a sender chose is made safe when noted
            # (recent_refusals._chosen), so this would be a bug of ours; said once a time.
            log.warning("refused INVITEs not written: %s", exc)

    def rejoin(self) -> None:
        """After a fence: take the lease again under a new epoch (``LeaseKeeper.rejoin``),
        dropping the call events held for the old one (its calls were closed by the peer)."""
        if self.lease is None:
            return
        with self._events_lock:
            self._backlog.clear()
        recovery = self.lease.rejoin()
        log.warning("rejoined after a fence", extra={
            "agent": self.agent_id, "epoch": self.lease.epoch,
            "calls_closed": recovery.closed})  # fmt: skip

    def _take_over_silent_peers(self) -> None:
        if self.lease is None:
            return
        try:
            self.lease.take_over_silent()  # logs each takeover, sends its calls' BYEs
        except Exception as exc:
            if not is_outage(exc):
                raise

    def _sweep_orphans(self, carried: Carried) -> None:
        """Close this agent's open calls that none of its bridges holds (``calls.
        close_orphans``): a claim whose commit the router never heard of, an end of call
        whose record was lost. Only with no call event waiting: a held "ended" closes its
        call properly once written, and the events lock is not free while the retry thread
        writes them (then the database is failing anyway; the next heartbeat tries)."""
        if not self._events_lock.acquire(blocking=False):
            return
        try:
            if self._backlog:
                return
            closed = calls.close_orphans(
                self.engine, agent=self.agent_id, now=self.clock(),
                settled_before=carried.settled_before, carried=carried.uuids,
            )  # fmt: skip
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.debug("orphan sweep skipped: database unavailable")
            return
        finally:
            self._events_lock.release()
        for orphan in closed:
            log.warning("closed a call no bridge of this agent carries",
                        extra={"uuid": orphan.uuid, "status": orphan.status, "hangup_by": "fault",
                               "why": orphan.why, "agent": self.agent_id})  # fmt: skip

    def _record(self, db: Db, tally: Tally, event: CallEvent) -> None:
        if event.kind == "answered" and event.answer_at is not None:
            calls.mark_answered(db, tally, uuid=event.reservation_uuid, at=event.answer_at,
                                dialogs=event.dialogs)  # fmt: skip
        elif event.kind == "ended":
            calls.mark_ended(
                db, tally, uuid=event.reservation_uuid, answer_at=event.answer_at,
                end_at=event.end_at or self.clock(), publisher_code=event.publisher_code,
                buyer_code=event.buyer_code, hangup_by=event.hangup_by, duration=event.duration,
                detail=event.buyer_reason, attempts=event.attempts,
            )  # fmt: skip
        if event.recording is not None:  # in the event's transaction: the call and its file
            write_outcome(db, event.reservation_uuid, event.recording,
                          event.end_at or self.clock())  # fmt: skip


def _log_decision(
    invite: IncomingInvite, result: Reject | BridgeTo, who: dict[str, str], refusals: RefusalLog
) -> None:
    """One line per routed INVITE: what it was answered, and why (SPEC §4.5) — the line an
    operator reads to answer "why was this call refused?". Except refusals by authentication,
    which anyone can cause at will: per source, the first of each code and cause in an
    interval gets its line, the others are counted in the source's summary line (SPEC §4.6,
    :mod:`rtbridge.sip.refusal_log`). Refusals of an authenticated publisher (404, 403,
    410) keep a line each: each is a question about one reservation."""
    if not log.isEnabledFor(logging.INFO):
        return  # the fields cost more than the call when nobody reads them
    fields: dict[str, object] = {
        "call_id": invite.call_id, "source": str(invite.source_ip), "transport": invite.transport,
        "ruri_user": invite.ruri_user[:64], **who,
    }  # fmt: skip
    if invite.via_proxy:
        fields["via_proxy"] = invite.via_proxy
    if invite.untrusted_source:
        fields["untrusted_source"] = invite.untrusted_source[:64]
    if isinstance(result, BridgeTo):
        log.info("INVITE claimed its reservation; dialling the buyer",
                 extra={**fields, "code": 100, "uuid": result.reservation_uuid,
                        "target": result.target_uri})  # fmt: skip
    else:
        if result.auth_failure:  # the label of rtbridge_sip_auth_failures_total it counts in
            fields["auth_failure"] = result.auth_failure
            if not refusals.note(invite.source_ip, result.code, result.auth_failure,
                                 who.get("username")):  # fmt: skip
                return  # in the source's summary line
        log.info("INVITE refused", extra={**fields, "code": result.code, "reason": result.reason})


def _refused(why: str, attested: Attestation | None = None) -> Reject:
    """403 naming an INVITE check's reason (SPEC §3.10, §4.9)."""
    level = attested.level if attested is not None else None
    return Reject(403, f"Forbidden ({why.replace('-', ' ')})", attestation=level, check=why)


def _to_number(invite: IncomingInvite) -> str | None:
    """The To header's number: what a signed call's ``dest`` is held to when its reservation
    has no inbound number (the SBC dialled the reservation's SIP address alone)."""
    return _number_in(invite.headers.get("to", ""), "To")


def _relayable(value: str) -> bool:
    """An Identity value fit to write into the buyer's INVITE unchanged: one line, bounded
    (a signed one is a few hundred bytes; the verifier judged its content already)."""
    return 0 < len(value) <= 8192 and _HEADER_VALUE.search(value) is None


def _srtp(mode: str) -> SrtpMode:
    return "required" if mode == "required" else "optional" if mode == "optional" else "off"


def invite_caller(invite: IncomingInvite) -> str | None:
    """Who calls, as E.164: the P-Asserted-Identity's number (RFC 3325: what the publisher's
    network asserts), else the From user's; None when neither is a number (anonymous)."""
    asserted = invite.headers.get("p-asserted-identity")
    if asserted and (number := _number_in(asserted.split(",", 1)[0], "caller")) is not None:
        return number
    try:
        return normalise_e164(invite.from_user, field="caller")
    except InvalidInput:
        return None


def _number_in(value: str, field: str) -> str | None:
    """The E.164 number a name-addr header value names (a ``sip:`` URI's user, or a ``tel:``
    URI), None when it names none."""
    _, uri = split_name_addr(value)
    user = uri[4:].split(";", 1)[0] if uri.lower().startswith("tel:") else uri_user(uri)
    try:
        return normalise_e164(user, field=field)
    except InvalidInput:
        return None


def _is_uuid(text: str) -> bool:
    try:
        return str(uuidlib.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False
