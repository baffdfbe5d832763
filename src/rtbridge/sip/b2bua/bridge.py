"""One controller per accepted INVITE, owning both legs (sippy's ``CallController`` shape).

Everything here runs on the agent's pjsua2 thread: pjsua2 callbacks (``onCallState``,
``onCallMediaState``), the router's answer (posted back through the agent's queue) and the
ring timer. The controller never blocks; it reports progress through ``host.emit`` and the
agent hands the events to the router on another thread.

Lifecycle (SPEC §4.4)::

    routing ──Reject──────────────────────────────▶ ended (no event: nothing was claimed)
       │ BridgeTo
       ▼
    dialing ──buyer 18x──▶ relay 180/183 to the publisher
       │  ├─the buyer fails: a final failure (busy, rejected), its ring timeout (no-answer:
       │  │  CANCEL it), no answer at all within connect_timeout (unreachable: CANCEL it)
       │  │    ├─a kind the campaign fails over on, attempts left ─▶ Router.next_buyer
       │  │    │    (a worker thread) ─▶ dial the next buyer; the publisher keeps ringing
       │  │    └─otherwise ─▶ the best final answer of all attempts ─▶ ended
       │  └─publisher CANCEL ─▶ CANCEL buyer ─▶ ended(hangup_by="publisher")
       │ buyer 200
       ▼
    connected ──either BYE──▶ BYE the other ─▶ ended

A buyer leg given up on is detached at once (no owner): if its 200 still comes, the leg
ACKs and BYEs it by itself (leg.py), so no buyer is left up unbilled.

Each leg is a :class:`~rtbridge.sip.b2bua.leg.Leg` (its pjsua2 Call and what is done to it);
this controller breaks its own leg references when it finishes (see leg.py for why).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import pjsua2 as pj

from rtbridge.domain.failover import (
    ANSWERED,
    CANCELLED,
    NO_ANSWER,
    TIMED_OUT,
    UNREACHABLE,
    Attempt,
    AttemptKind,
    best_answer,
    failure_kind,
    publisher_code,
)
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip import dialogs
from rtbridge.sip.b2bua.announcer import Notice
from rtbridge.sip.b2bua.leg import (
    Leg,
    LegOwner,
    audio_media,
    audio_only,
    carried_audio,
    error_text,
    hang_up,
    remote_media_hosts,
    respond,
    rx_packets,
)
from rtbridge.sip.b2bua.recorder import CallRecording
from rtbridge.sip.media_home import MediaHome
from rtbridge.sip.messages import safe_header, split_host_port
from rtbridge.sip.router import (
    BridgeTo,
    CallEvent,
    EventKind,
    Failover,
    HangupBy,
    IncomingInvite,
    OutboundAuth,
    Reject,
    SrtpMode,
)
from rtbridge.sip.sdp import media_hosts

log = logging.getLogger("rtbridge.sip.b2bua.bridge")

Role = Literal["inbound", "outbound"]


class Timer(Protocol):
    def cancel(self) -> None: ...


class BridgeHost(Protocol):
    """What a controller needs from the agent (kept narrow so the agent stays the owner)."""

    domain: str

    def account_for(
        self, auth: OutboundAuth | None, target_uri: str = "", srtp: SrtpMode = "off"
    ) -> Any: ...
    def relay_dtmf(self, to: Leg, digit: str, duration_ms: int) -> None: ...
    def new_leg(self, owner: LegOwner | None, account: Any, call_id: int) -> Leg: ...
    def dial(self, bridge: Bridge, leg: Leg, prm: Any) -> None: ...
    def fail_over(
        self, bridge: Bridge, plan: BridgeTo, failed: Attempt, tried: tuple[str, ...]
    ) -> None: ...
    def emit(self, event: CallEvent, recording: Future[RecordingOutcome] | None = None) -> None: ...
    def start_recording(self, uuid: str, answered: datetime) -> CallRecording: ...
    def refuse_recording(self, uuid: str, answered: datetime, why: str) -> CallRecording: ...
    def start_notice(self, path: str) -> Notice | str: ...
    def media_refused(self, party: str) -> None: ...
    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer: ...
    def finished(self, bridge: Bridge) -> None: ...


_PHRASES = {408: "Request Timeout", 480: "Temporarily Unavailable"}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Dialled:
    """The attempt in progress: the buyer dialled, and when."""

    buyer_id: str
    destination: str
    started_at: datetime


class Bridge:
    """Controller of one inbound INVITE and, once routed, its buyer leg."""

    def __init__(
        self, host: BridgeHost, inbound: Leg, invite: IncomingInvite, offer: str = ""
    ) -> None:
        """``offer``: the SDP of the publisher's INVITE (where its media is at set-up)."""
        self.host = host
        self.invite = invite
        self.inbound: Leg | None = inbound
        self.outbound: Leg | None = None
        self.plan: BridgeTo | None = None
        self.phase: Literal["routing", "dialing", "connected", "ended"] = "routing"
        self.invite_at = _now()
        self.answer_at: datetime | None = None
        self.publisher_code: int | None = None
        self.buyer_code: int | None = None
        self.buyer_reason = ""
        self.hangup_by: HangupBy | None = None
        self.silent = False  # the agent was fenced: this call is no longer its to record
        self._inbound_done = False
        self._outbound_done = False
        self._relayed = 0
        self._ringing_sent = False
        self._timer: Timer | None = None  # the ring timeout
        self._connect_timer: Timer | None = None  # connect_timeout: any answer, or unreachable
        self._finished = False
        # Failover: every attempt that ended, how many of them the call's record has
        # (Router.next_buyer wrote them), the one in progress, the buyers dialled so far,
        # and whether the router is choosing the next buyer now.
        self.attempts: list[Attempt] = []
        self._recorded = 0
        self._dialled: _Dialled | None = None
        self._tried: list[str] = []
        self._awaiting_next = False
        # RTP inactivity per leg: (packets received, monotonic time that count was first seen)
        self._rx: dict[Role, tuple[int, float]] = {}
        # Where each party's media may go (SPEC §4.6): the publisher's from its INVITE on;
        # the buyer's once it answers (its signalling address, its answer's media).
        self._homes: dict[Role, MediaHome] = {
            "inbound": MediaHome((invite.source_ip, *media_hosts(offer))),
            "outbound": MediaHome(),
        }
        self._media_seen: set[Role] = set()
        self.recording: CallRecording | None = None  # from the answer, when the plan records
        # The recording notice playing from the answer (announcer.py); the legs' audio is
        # joined when it has played, or at once when there is none.
        self.notice: Notice | None = None
        self._notice_timer: Timer | None = None
        inbound.owner = self

    # -- router answer -------------------------------------------------------------------

    def on_route_result(self, result: Reject | BridgeTo | BaseException) -> None:
        if isinstance(result, BaseException):
            log.error("router failed for %s", self.invite.call_id, exc_info=result)
            result = Reject(500, "Server Internal Error")
        if isinstance(result, Reject):
            self.publisher_code = result.code
            if self.inbound is not None:
                respond(self.inbound, result.code, result.reason, result.headers)
            self.phase = "ended"
            self._maybe_finish()
            return
        self.plan = result
        self._homes["inbound"].add_networks(result.publisher_media)
        if self._inbound_done:  # the publisher gave up (CANCEL) while we were routing
            self.hangup_by = self.hangup_by or "publisher"
            self.publisher_code = self.publisher_code or 487
            self.phase = "ended"
            self._maybe_finish()
            return
        self.phase = "dialing"
        self._dial(result)

    def _dial(self, plan: BridgeTo) -> None:
        """Start an attempt: dial ``plan``'s buyer, with its ring and connect timers."""
        self.plan = plan
        self.buyer_code = None
        self.buyer_reason = ""
        self._tried.append(plan.buyer_id)
        self._dialled = _Dialled(plan.buyer_id, plan.target_uri, _now())
        self._homes["outbound"] = MediaHome()  # where this buyer's media may go
        self._homes["outbound"].add_networks(plan.buyer_media)
        self._homes["outbound"].add(_uri_host(plan.target_uri))
        prm = pj.CallOpParam(True)
        audio_only(prm)
        if plan.caller_id:
            # SipTxOption.localUri sets the From of a new call (pjsua_msg_data.local_uri);
            # msg_data headers cannot replace From.
            prm.txOption.localUri = f"<sip:{_sip_user(plan.caller_id)}@{self.host.domain}>"
        for name, value in plan.headers:
            safe = safe_header(name, value)
            if safe is None:
                log.warning("dropping outbound header with invalid name %r", name)
                continue
            hdr = pj.SipHeader()
            hdr.hName, hdr.hValue = safe
            prm.txOption.headers.append(hdr)
        leg: Leg | None = None
        try:
            account = self.host.account_for(plan.auth, plan.target_uri, plan.srtp)
            leg = self.host.new_leg(self, account, pj.PJSUA_INVALID_ID)
            self.outbound = leg
            self.host.dial(self, leg, prm)
        except (pj.Error, ValueError) as exc:
            log.error("cannot dial %s: %s", plan.target_uri, error_text(exc))
            if leg is not None:
                leg.disconnected = True
            self._attempt_failed(UNREACHABLE, 500, "Cannot Reach Buyer")
            return
        self._timer = self.host.call_later(plan.ring_timeout, self._on_ring_timeout)
        if 0 < plan.connect_timeout < plan.ring_timeout:
            self._connect_timer = self.host.call_later(
                plan.connect_timeout, self._on_connect_timeout
            )

    def on_failover_result(self, result: Failover | BaseException) -> None:
        """The router's answer to :meth:`_attempt_failed`'s question (agent thread)."""
        self._awaiting_next = False
        if isinstance(result, BaseException):
            log.error("failover failed for %s", self.invite.call_id, exc_info=result)
            result = Failover(recorded=False)
        if result.recorded:
            self._recorded = len(self.attempts)
        if self._inbound_done or self.inbound is None:
            # The publisher gave up (or the agent stopped) meanwhile: the end of call closes
            # the reservation, whichever buyer it now belongs to.
            self._maybe_finish()
            return
        if result.next is None:
            self._fail_call()
            return
        self._dial(result.next)

    # -- pjsua2 callbacks ------------------------------------------------------------------

    def on_leg_state(self, leg: Leg, info: Any) -> None:
        if leg is self.inbound:
            self._on_inbound_state(info)
        elif leg is self.outbound:
            self._on_outbound_state(info)

    def on_leg_media(self, leg: Leg) -> None:
        index = carried_audio(leg)  # read once: getInfo() builds a whole CallInfo
        if index is not None and self._media_moved(leg, index):
            return
        self._connect_audio((leg, index))

    def on_leg_offer(self, leg: Leg, sdp: str) -> bool:
        """A re-INVITE/UPDATE offer of ``leg``'s party: may its media go where it says?"""
        role: Role = "inbound" if leg is self.inbound else "outbound"
        refused = self._homes[role].refused(media_hosts(sdp))
        if refused:
            self._refuse_media(role, refused)
        return not refused

    def _media_moved(self, leg: Leg, index: int) -> bool:
        """Where a leg's media goes while the call is set up joins the party's home: the
        buyer's early media and its 200's answer (both before we call the call connected),
        the publisher's first media (its answer in the ACK when its INVITE had no offer).
        After that, media that moved out of the home ends the call. Offers are checked
        before they are accepted (on_leg_offer); this catches an *answer* that moves media
        — a re-INVITE without SDP gets our offer, and the answer in the ACK cannot be
        refused."""
        role: Role = "inbound" if leg is self.inbound else "outbound"
        hosts = remote_media_hosts(leg, index)
        if not hosts:
            return False
        home = self._homes[role]
        if self.phase != "connected" or role not in self._media_seen:
            self._media_seen.add(role)
            home.add(*hosts, leg.peer_ip)
            return False
        refused = home.refused(hosts)
        if not refused:
            return False
        self._refuse_media(role, refused)
        self.hangup_by = self.hangup_by or "agent"
        hang_up(self.inbound)
        hang_up(self.outbound)
        return True

    def _refuse_media(self, role: Role, hosts: list[str]) -> None:
        party = "publisher" if role == "inbound" else "buyer"
        self.host.media_refused(party)
        log.warning("media move refused: not where the %s is", party,
                    extra={"call_id": self.invite.call_id, "to": hosts[:4]})  # fmt: skip

    def on_leg_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> None:
        """Relay a digit to the other leg once both are connected (SPEC §4.4)."""
        if self.phase != "connected":
            return
        other = self.outbound if leg is self.inbound else self.inbound
        if other is not None:
            self.host.relay_dtmf(other, digit, duration_ms)

    def _on_inbound_state(self, info: Any) -> None:
        if info.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        self._inbound_done = True
        if self.phase in ("dialing", "connected"):
            self.hangup_by = self.hangup_by or "publisher"
            if self.publisher_code is None:
                self.publisher_code = info.lastStatusCode or 487
            hang_up(self.outbound)
        self._maybe_finish()

    def _on_outbound_state(self, info: Any) -> None:
        state = info.state
        if state == pj.PJSIP_INV_STATE_EARLY and self.phase == "dialing":
            code = info.lastStatusCode
            if not self._ringing_sent:
                self._ringing_sent = True
                self._emit("ringing")
            if code in (180, 183) and code != self._relayed and self.inbound is not None:
                # 183 carries our SDP answer, so early media from the buyer flows; a plain
                # 180 from the buyer is relayed as 180 (pjsua adds SDP only when it must).
                self._relayed = code
                respond(self.inbound, code)
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and self.phase == "dialing":
            self._cancel_timers()
            self.phase = "connected"
            self.answer_at = _now()
            self.buyer_code = 200
            self.publisher_code = 200
            if self.inbound is None or self._inbound_done:
                hang_up(self.outbound)
                return
            plan = self.plan if self.plan is not None and self.plan.record else None
            # the notice before the 200, whose media callback would join the legs; the
            # recorders after it, off the call's set-up
            unplayable = self._start_notice(plan) if plan is not None else None
            respond(self.inbound, 200)
            if plan is not None:
                self._start_recording(plan, self.answer_at, unplayable)
            self._emit_answered()
            self._connect_audio()
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._outbound_done = True
            self._cancel_timers()
            leg = self.outbound
            redirected = leg.redirect_code if leg is not None else 0
            if self.buyer_code is None and redirected:
                self.buyer_code = redirected
                self.buyer_reason = "redirect not followed"
            if self.buyer_code is None:
                self.buyer_code = info.lastStatusCode
                self.buyer_reason = info.lastReason
            if self.phase == "dialing" and self.hangup_by is None:
                # The buyer ended its attempt (we did not): busy or rejected when it said
                # so; when it never answered at all (a transport error), unreachable.
                heard = leg is not None and leg.heard
                kind = failure_kind(self.buyer_code or 0) if heard else UNREACHABLE
                self._attempt_failed(kind, self.buyer_code, self.buyer_reason)
                return
            if self.phase == "connected":
                self.hangup_by = self.hangup_by or "buyer"
                hang_up(self.inbound)
            self._maybe_finish()

    def _on_ring_timeout(self) -> None:
        self._timer = None
        if self.phase == "dialing" and self.outbound is not None:
            self._give_up(NO_ANSWER, "rang past its ring timeout")

    def _on_connect_timeout(self) -> None:
        self._connect_timer = None
        leg = self.outbound
        if self.phase == "dialing" and leg is not None and not leg.heard:
            self._give_up(UNREACHABLE, "no answer within its connect timeout")

    def _give_up(self, kind: AttemptKind, why: str) -> None:
        """Stop waiting for the buyer: count the attempt failed and CANCEL it (pjsip sends
        the CANCEL once the buyer has answered provisionally)."""
        self._attempt_failed(kind, TIMED_OUT, why, cancel=True)

    # -- failover ---------------------------------------------------------------------------

    def _attempt_failed(
        self, kind: AttemptKind, code: int | None, reason: str, *, cancel: bool = False
    ) -> None:
        """The buyer dialled failed the call: detach its leg (``cancel``: and hang it up),
        then the next buyer when the campaign fails over on ``kind`` and attempts are
        left, else the call fails."""
        self._cancel_timers()
        failed = self._end_attempt(kind, code, reason)
        leg, self.outbound = self.outbound, None
        self._outbound_done = True
        if leg is not None:
            # Detached before the hangup, which may run the leg's DISCONNECTED callback
            # inside it; a late 200 is ACKed and BYEd by the leg itself (leg.py).
            leg.owner = None
            if cancel:
                hang_up(leg)
        plan = self.plan
        if (
            plan is not None
            and not self._inbound_done
            and kind in plan.failover
            and len(self._tried) < plan.max_attempts
        ):
            self._awaiting_next = True
            self.host.fail_over(self, plan, failed, tuple(self._tried))
            return
        self._fail_call()

    def _fail_call(self) -> None:
        """Every attempt failed: the publisher gets the best final answer among them."""
        last = self.attempts[-1] if self.attempts else None
        if last is not None:  # the call record's buyer code: the last buyer's
            self.buyer_code, self.buyer_reason = last.final_code, last.reason
        timed_out = last is not None and last.kind in (NO_ANSWER, UNREACHABLE)
        self.hangup_by = self.hangup_by or ("timeout" if timed_out else "buyer")
        code = best_answer(self.attempts)
        source = next((a for a in reversed(self.attempts) if publisher_code(a) == code), None)
        reason = _PHRASES.get(code, "")
        if source is not None and source.final_code == code and source.reason:
            reason = source.reason
        self.publisher_code = code
        if self.inbound is not None:
            respond(self.inbound, code, reason)
        self._maybe_finish()

    def _end_attempt(self, kind: AttemptKind, code: int | None, reason: str) -> Attempt:
        """Close the attempt in progress as ``kind``."""
        dialled = self._dialled or _Dialled("", "", _now())
        self._dialled = None
        leg = self.outbound
        attempt = Attempt(
            buyer_id=dialled.buyer_id, destination=dialled.destination,
            started_at=dialled.started_at, ended_at=_now(), kind=kind, final_code=code,
            reason=reason or "", provisional_at=leg.provisional_at if leg is not None else None,
        )  # fmt: skip
        self.attempts.append(attempt)
        return attempt

    # -- dead peers ------------------------------------------------------------------------

    def check_media(self, now: float, timeout: float) -> None:
        """End a connected call one of whose legs has sent RTP and then nothing for
        ``timeout`` seconds: its far end vanished without a BYE (SPEC §4.4). A leg not
        (yet) sending, or on hold, is not timed — silence there is legitimate."""
        if self.phase != "connected":
            return
        legs: tuple[tuple[Role, Leg | None], ...] = (
            ("inbound", self.inbound),
            ("outbound", self.outbound),
        )
        for role, leg in legs:
            if leg is None:
                continue
            packets = rx_packets(leg)
            if packets is None:  # no active stream: on hold, or gone
                self._rx.pop(role, None)
                continue
            seen, since = self._rx.get(role, (-1, now))
            if packets != seen:
                self._rx[role] = (packets, now)
            elif packets > 0 and now - since >= timeout:
                log.warning("no RTP from the %s for %.0f s: ending the call",
                            "publisher" if role == "inbound" else "buyer", now - since,
                            extra={"call_id": self.invite.call_id})  # fmt: skip
                self.hangup_by = self.hangup_by or "media-timeout"
                hang_up(self.inbound)
                hang_up(self.outbound)
                return

    # -- shutdown --------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Agent stopping: end both legs (503 to a publisher not yet answered)."""
        self.end_by("agent")

    def end_by(self, who: HangupBy) -> None:
        """End both legs for ``who`` (the agent stopping, an admin); 503 to a publisher not
        yet answered. Once: a second ask while the legs hang up changes nothing."""
        if who == "admin" and self.hangup_by == "admin":
            return
        self.hangup_by = self.hangup_by or who
        if self.phase in ("routing", "dialing") and self.inbound is not None:
            if self.publisher_code is None:
                self.publisher_code = 503
            respond(self.inbound, 503, "Service Unavailable", (("Retry-After", "5"),))
        hang_up(self.inbound)
        hang_up(self.outbound)

    def detach(self) -> None:
        """Agent teardown: forget both legs so their Call objects can be freed now; a
        recording's parts stay for the repair at the next start."""
        self._cancel_timers()
        if self.recording is not None:
            self.recording.abandon()
            self.recording = None
        for leg in (self.inbound, self.outbound):
            if leg is not None:
                leg.owner = None
        self.inbound = None
        self.outbound = None

    def abandoned_event(self, plan: BridgeTo) -> CallEvent:
        """The "ended" record of a reservation the router claimed after the agent stopped."""
        return CallEvent(
            reservation_uuid=plan.reservation_uuid,
            kind="ended",
            call_id=self.invite.call_id,
            invite_at=self.invite_at,
            end_at=_now(),
            publisher_code=self.publisher_code or 503,
            hangup_by="agent",
        )

    def _start_notice(self, plan: BridgeTo) -> str | None:
        """The plan's notice, playing once both legs have audio (:meth:`_connect_audio`);
        why it cannot be played, when it cannot."""
        if not plan.announcement:
            return None
        notice = self.host.start_notice(plan.announcement)
        if isinstance(notice, str):
            return notice
        self.notice = notice
        return None

    def _start_recording(self, plan: BridgeTo, answered: datetime, unplayable: str | None) -> None:
        """Record from the answer; nothing when the plan's notice cannot be played
        (``unplayable`` says why): a recording nobody was told about is not made."""
        uuid = plan.reservation_uuid
        if unplayable is not None:
            why = f"the recording notice cannot be played: {unplayable}"
            self.recording = self.host.refuse_recording(uuid, answered, why)
        else:
            self.recording = self.host.start_recording(uuid, answered)

    def _notice_played(self) -> None:
        """Agent thread, the notice's length after it started: join the parties' audio."""
        self._notice_timer = None
        self.notice = None  # the player's last reference
        if self.phase == "connected":
            self._connect_audio()

    def duration(self) -> float:
        """Seconds from the buyer's answer to now (or to the end), 0 if never answered."""
        if self.answer_at is None:
            return 0.0
        return round((_now() - self.answer_at).total_seconds(), 3)

    # -- internals -------------------------------------------------------------------------

    def _connect_audio(self, known: tuple[Leg, int | None] | None = None) -> None:
        """Bridge both legs' audio once both have it; ``known``: a leg whose audio index
        the caller has just read."""
        if self.inbound is None or self.outbound is None:
            return
        a, b = (
            audio_media(leg, known[1] if known and known[0] is leg else carried_audio(leg))
            for leg in (self.inbound, self.outbound)
        )
        if a is None or b is None:
            return
        if self.recording is not None:
            self.recording.connect(a, b)
        if self.notice is not None:  # both parties hear it, and the recording keeps it
            sinks = (a, b, *(self.recording.sinks() if self.recording is not None else ()))
            if self._notice_timer is None:  # early media may have joined them already
                with contextlib.suppress(pj.Error):  # pjsua2: "not connected" is an error
                    a.stopTransmit(b)
                    b.stopTransmit(a)
            try:
                self.notice.play_to(*sinks)
            except pj.Error as exc:
                log.error("cannot play the recording notice: %s", exc.info())
            if self._notice_timer is None:
                self._notice_timer = self.host.call_later(self.notice.seconds,
                                                          self._notice_played)  # fmt: skip
            return
        try:
            a.startTransmit(b)
            b.startTransmit(a)
        except pj.Error as exc:
            log.error("cannot bridge audio: %s", exc.info())

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._connect_timer, self._notice_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._connect_timer = self._notice_timer = None
        self.notice = None

    def _maybe_finish(self) -> None:
        # Re-entrancy: pjsua2 may run the other leg's DISCONNECTED callback *inside* our
        # hangup() call, so this can be reached twice for one end of call.
        if self._finished or self.phase == "routing" or not self._inbound_done:
            return
        if self._awaiting_next:  # its answer finishes the call (on_failover_result)
            return
        if self.outbound is not None and not self._outbound_done:
            return
        self._finished = True
        self.phase = "ended"
        if self._dialled is not None:  # the last attempt: answered, or the publisher gave up
            kind: AttemptKind = ANSWERED if self.answer_at is not None else CANCELLED
            self._end_attempt(kind, self.buyer_code, self.buyer_reason)
        # Its files are closed now, with the legs gone; the join runs on a worker thread and
        # the outcome follows the "ended" record as a "recorded" event (delivery.py).
        joined = self.recording.finish() if self.recording is not None else None
        self.recording = None
        if self.plan is not None:  # a claimed reservation always gets its "ended" record
            self._emit("ended", joined=joined)
        self._cancel_timers()
        # Break leg <-> controller references so call ids can be reused safely.
        for leg in (self.inbound, self.outbound):
            if leg is not None:
                leg.owner = None
        self.inbound = None
        self.outbound = None
        self.host.finished(self)

    def _emit_answered(self) -> None:
        """Both legs' dialogs go with it: the 200 just sent to the publisher and the ACK
        sent to the buyer fixed them (crash recovery BYEs them)."""
        legs: dict[str, dict[str, object]] = {}
        if self.inbound is not None:
            found = dialogs.publisher_leg(self.inbound.dialog_msg, self.invite.headers)
            if found is not None:
                legs["publisher"] = found.to_json()
        if self.outbound is not None:
            found = dialogs.buyer_leg(self.outbound.dialog_msg)
            if found is not None:
                legs["buyer"] = found.to_json()
        started = self.recording.started if self.recording is not None else None
        self._emit("answered", legs, started)

    def _emit(
        self, kind: EventKind, legs: dict[str, dict[str, object]] | None = None,
        recording: RecordingOutcome | None = None, *,
        joined: Future[RecordingOutcome] | None = None,
    ) -> None:  # fmt: skip
        """``recording``: the recording's state now; ``joined``: its outcome, to come."""
        if self.plan is None or self.silent:
            return
        end_at = _now() if kind == "ended" else None
        duration = 0.0
        if end_at is not None and self.answer_at is not None:
            duration = (end_at - self.answer_at).total_seconds()
        self.host.emit(
            CallEvent(
                reservation_uuid=self.plan.reservation_uuid,
                kind=kind,
                call_id=self.invite.call_id,
                invite_at=self.invite_at,
                answer_at=self.answer_at,
                end_at=end_at,
                publisher_code=self.publisher_code,
                buyer_code=self.buyer_code,
                buyer_reason=self.buyer_reason,
                hangup_by=self.hangup_by if kind == "ended" else None,
                duration=duration,
                dialogs=legs,
                attempts=tuple(self.attempts[self._recorded :]) if kind == "ended" else (),
                recording=recording,
            ),
            joined,
        )


def _uri_host(uri: str) -> str:
    """The host of a SIP URI (``sip:user@198.51.100.7:5060;transport=tcp`` → the address),
    "" when there is none."""
    rest = uri.partition(":")[2].rpartition("@")[2]
    hostport = rest.split(";", 1)[0].split("?", 1)[0]
    return split_host_port(hostport)[0] if hostport else ""


def _sip_user(caller_id: str) -> str:
    """Keep only characters valid unescaped in a SIP URI user part (RFC 3261 §25.1)."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/")
    return "".join(ch for ch in caller_id if ch in allowed) or "anonymous"
