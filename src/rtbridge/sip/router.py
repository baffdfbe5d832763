"""The decision interface between the SIP agent and the reservation rules.

The agent (pjsua2) only translates SIP into these plain objects and back; everything that
needs the database — who sent the INVITE, which reservation it claims, which buyer to dial —
sits behind :class:`Router`. That keeps pjsua2 out of the rules and lets the SIP layer be
tested with a small in-test router (the DB-backed one plugs in later).

Threading contract: ``route`` and ``on_event`` may block (database round trips). The agent
never calls them on the pjsua2 thread; it runs them on worker threads and hands the answer
back to the pjsua2 thread through a queue. Events of one agent are delivered in order on
one thread, so a router sees ``ringing`` → ``answered`` → ``ended`` for a call in that order.

No pjsua2 import here, ever.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from rtbridge.domain.failover import Attempt
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.auth.allowlist import IPAddress

EventKind = Literal["ringing", "answered", "ended", "recorded"]
# "timeout": the buyer rang past ring_timeout; "media-timeout": a connected leg stopped
# sending RTP (its far end vanished); "fault": the agent died during the call (recovery),
# or the running agent found the call open in the database but carried by none of its
# bridges (the orphan sweep).
HangupBy = Literal["publisher", "buyer", "agent", "timeout", "media-timeout", "fault", "admin"]
SrtpMode = Literal["off", "optional", "required"]


@dataclass(frozen=True)
class IncomingInvite:
    """What the router may know about a new INVITE (SPEC §4.2-4.3)."""

    call_id: str
    # the packet's source, or the sender a trusted proxy names (never a claim), parsed once
    source_ip: IPAddress
    source_port: int
    transport: str  # "UDP", "TCP" or "TLS" of the sender's hop
    request_uri: str
    ruri_user: str  # the reservation uuid on the SIP path (the R-URI host is not trusted)
    from_user: str  # the caller id the publisher sent
    from_display: str
    authorization: str | None  # raw value of the (first) Authorization header, if any
    headers: Mapping[str, str] = field(default_factory=dict)  # other headers, lower-cased names
    offer_srtp: bool = False  # the SDP offer asks for SRTP (RTP/SAVP or a=crypto)
    via_proxy: str | None = None  # the trusted proxy's address when one relayed the INVITE
    # the source header's value when a sender that is not a trusted proxy sent one (ignored)
    untrusted_source: str | None = None
    identities: tuple[str, ...] = ()  # raw Identity header values (RFC 8224), arrival order


@dataclass(frozen=True)
class Reject:
    """Answer the INVITE with a final non-2xx response, e.g. 401 + WWW-Authenticate.

    ``auth_failure`` names why authentication refused it (``authenticator.CAUSES``, or
    ``auth.access.POLICY_CAUSES``); the agent counts it (rtbridge_sip_auth_failures_total)."""

    code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    auth_failure: str | None = None
    attestation: str | None = None  # STIR/SHAKEN level, when the INVITE got that far
    check: str | None = (
        None  # the INVITE check that refused it: blocked-caller, duplicate-caller, attestation
    )


@dataclass(frozen=True)
class OutboundAuth:
    """Digest credentials the agent answers a buyer's or trunk's 401/407 with.

    ``hashed``: ``password`` holds the MD5 HA1 for ``realm`` instead of the password, which
    is how trunk credentials are stored (pjsip's PJSIP_CRED_DATA_DIGEST)."""

    username: str
    password: str
    realm: str = "*"  # "*" = any realm the far end names
    hashed: bool = False


@dataclass(frozen=True)
class BridgeTo:
    """Accept the INVITE by dialling the buyer and bridging the two legs (SPEC §4.4).

    Returning this means the reservation is claimed: from then on the agent reports the
    call's fate through ``on_event`` exactly once with ``kind="ended"``, even when the
    publisher hung up before the buyer was dialled.
    """

    reservation_uuid: str
    target_uri: str
    caller_id: str | None  # user part of the outbound From; None → the agent's own identity
    headers: tuple[tuple[str, str], ...]  # e.g. ("X-RTB-UUID", uuid), ("X-RTB-Tag-zip", "10001")
    ring_timeout: float  # seconds from dialling to the buyer's answer; then 408 to the publisher
    auth: OutboundAuth | None = None
    srtp: SrtpMode = "off"  # SDES-SRTP on the buyer leg (TLS comes from the target URI)
    # Where each party's media may move in a re-INVITE/UPDATE besides its signalling
    # address and its set-up media (sip/media_home.py): CIDRs of the publisher (allowlist,
    # media_networks; a trunk's CIDRs on the PSTN path) and of the buyer (media_networks,
    # its trunk's CIDRs).
    publisher_media: tuple[str, ...] = ()
    buyer_media: tuple[str, ...] = ()
    # Failover (SPEC §4.4): the buyer this plan dials, the seconds it has to send any answer
    # (else "unreachable"; 0: no such timer — the database router always sets the buyer's),
    # the failure kinds that move the call on to the next buyer (``domain/failover.py``;
    # empty: none) and how many buyers the call may try in all.
    buyer_id: str = ""
    connect_timeout: float = 0.0
    failover: frozenset[str] = frozenset()
    max_attempts: int = 1
    attestation: str | None = None  # the INVITE's STIR/SHAKEN level (sip/attester.py)
    # Record the call from the buyer's answer to its end, stereo (SPEC §4.8): the buyer's own
    # record, else its campaign's (sip/recordings.py)
    record: bool = False
    # A recorded call's notice, played to both parties from the answer before their audio
    # is bridged (an absolute WAV path; "": none): the buyer's own, else its campaign's
    # (sip/announcements.py)
    announcement: str = ""


@dataclass(frozen=True)
class Failover:
    """The router's answer when a buyer failed a call: ``next`` is the plan for the next
    buyer (the reservation is now that buyer's), None when the call must fail.
    ``recorded``: the failed attempt is in the call's record (else the end of call brings it)."""

    recorded: bool
    next: BridgeTo | None = None


@dataclass(frozen=True)
class CallEvent:
    """Progress of a bridged call, as the storage layer records it (SPEC §3.7, §4.4).

    ``publisher_code`` is the final status sent to the publisher (200 once answered);
    ``buyer_code`` the final status of the (last) buyer leg (200, 486, … 487 when the
    publisher cancelled it, 408 when we stopped waiting for its answer, ``None`` when no
    buyer was dialled). ``duration`` counts seconds from the buyer's answer to the end, 0
    for calls never answered. ``attempts``: the buyers dialled whose attempt is not in the
    call's record yet, in order ("ended" only; ``Router.next_buyer`` recorded the others).
    """

    reservation_uuid: str
    kind: EventKind
    call_id: str
    invite_at: datetime
    answer_at: datetime | None = None
    end_at: datetime | None = None
    publisher_code: int | None = None
    buyer_code: int | None = None
    buyer_reason: str = ""
    hangup_by: HangupBy | None = None
    duration: float = 0.0
    # "answered" only: each leg's dialog (sip/dialogs.Dialog.to_json) under "publisher" and
    # "buyer", stored so the legs can be ended after a crash
    dialogs: Mapping[str, Mapping[str, object]] | None = None
    attempts: tuple[Attempt, ...] = ()
    # The call's recording when its plan records: "answered" says it started ("recording")
    # or could not ("failed"); "recorded", after "ended", brings the outcome (the stereo
    # file, or why not) once the parts are joined — the call's end is not kept waiting
    recording: RecordingOutcome | None = None


@dataclass(frozen=True)
class Carried:
    """What the agent's pjsua2 thread holds at a heartbeat, for the orphan sweep: every
    reservation it claimed with an INVITE from before ``settled_before`` and still carries
    is in ``uuids``. Later claims may still be on their way from the router (routing) and
    are not described; ``settled_before`` is the oldest routing INVITE's time, or the
    heartbeat's, less a grace for wall-clock steps."""

    uuids: frozenset[str]
    settled_before: datetime


class Router(Protocol):
    """Decides what to do with INVITEs and records what happened to bridged calls."""

    def route(self, invite: IncomingInvite) -> Reject | BridgeTo:
        """Authenticate, find and claim the reservation; may block."""
        ...

    def next_buyer(self, plan: BridgeTo, failed: Attempt, tried: Sequence[str]) -> Failover:
        """``plan``'s buyer failed the call (``failed``, a kind ``plan.failover`` lists):
        record the attempt, and give the reservation to the next eligible buyer paying at
        least its quoted payout, if any; ``tried``: the buyers dialled so far. May block."""
        ...

    def on_event(self, event: CallEvent) -> None:
        """Record call progress; may block; exceptions are logged and swallowed."""
        ...

    def on_events(self, events: Sequence[CallEvent]) -> None:
        """Record several events in order (the agent hands them over per poll); a router may
        write them in one transaction. If it raises, the agent retries them one by one."""
        ...

    def heartbeat(self, at: datetime, carried: Carried) -> bool:
        """The agent's pjsua2 thread was working at ``at`` (every ``heartbeat_interval``
        seconds, on the event thread after the events before it): a crash recovery ends
        the calls that were up at the last heartbeat. ``carried`` is what it held then: a
        router may close its own open calls missing from it (the orphan sweep). False: the
        agent's lease was taken over (storage/leases.py) — it is fenced: it hangs up every
        call without recording it, then calls :meth:`rejoin`."""
        ...

    def hangups_asked(self) -> Collection[str]:
        """The reservations of calls this agent carries that an admin asked to hang up,
        as the last heartbeat found them (``admin/calls.py``)."""
        ...

    def rejoin(self) -> None:
        """After a fence, on the event thread: hold the lease again. Raises while the
        database is unavailable (the agent tries again) and ``LeaseRefused`` when another
        live agent now holds the id (the agent stops)."""
        ...
