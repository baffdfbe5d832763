"""One leg of a call: a pjsua2 ``Call`` whose callbacks go to its owner (the :class:`Bridge`
controlling it), and what the bridge does to a leg — answer it, hang it up, send it a digit,
read where its media goes. Agent thread only.

pjsua2 pitfall: a ``Call`` Python object must stay referenced until its DISCONNECTED
callback, and be dropped soon after (call ids are reused: a stale ``Call`` destroyed later
hangs up whichever call owns its id by then). The agent keeps every leg in a set and drops
it after DISCONNECTED; a bridge breaks its own leg references when it finishes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import pjsua2 as pj

from rtbridge.sip.messages import safe_header, split_host_port

log = logging.getLogger("rtbridge.sip.b2bua.leg")

# pjmedia/stream.h and pjsua.h constants SWIG does not export.
_DTMF_IS_END = 1 << 1  # PJMEDIA_STREAM_DTMF_IS_END
_UNKNOWN_DURATION = 0xFFFFFFFF  # PJSUA_UNKNOWN_DTMF_DURATION, (unsigned)-1
_RESPONSE_CODE = re.compile(r"Response msg (\d{3})/")


class LegOwner(Protocol):
    def on_leg_state(self, leg: Leg, info: Any) -> None: ...
    def on_leg_media(self, leg: Leg) -> None: ...
    def on_leg_dtmf(self, leg: Leg, digit: str, duration_ms: int) -> None: ...
    def on_leg_offer(self, leg: Leg, sdp: str) -> bool: ...


class Leg(pj.Call):  # type: ignore[misc]
    """A pjsua2 call that forwards its callbacks to its owner, never raising into C."""

    def __init__(
        self,
        owner: LegOwner | None,
        account: Any,
        call_id: int,
        on_disconnected: Callable[[Leg], None],
    ) -> None:
        super().__init__(account, call_id)
        self.owner = owner
        self.disconnected = False
        self.dialled = False  # makeCall was called (Agent.dial: once per buyer leg)
        self.dialog_msg = ""  # our 200 (UAS) or our ACK (UAC): its dialog, for dialogs.py
        self.peer_ip = ""  # where the far end's first message came from (UAC: the buyer)
        self.redirect_code = 0  # a 3xx the buyer answered (not followed)
        # UAC: the far end has answered the INVITE at all (100 Trying included), and when it
        # first answered provisionally: a buyer that says nothing is "unreachable" (failover)
        self.heard = False
        self.provisional_at: datetime | None = None
        self._on_disconnected = on_disconnected

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected = True
            elif info.state in _DIALOG_STATES and not self.dialog_msg:
                self.dialog_msg = _sent_message(prm.e)
            if self.dialled and not self.peer_ip:  # the buyer's address, for its media home
                self.peer_ip = _received_from(prm.e)
            if self.owner is not None:
                self.owner.on_leg_state(self, info)
            elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                # A call no bridge carries is never left up (SPEC §4.6).
                log.error("hanging up a connected call no bridge owns")
                hang_up(self)
            if self.disconnected:
                self.owner = None
                self._on_disconnected(self)
        except Exception:
            log.exception("onCallState failed")

    def onCallTsxState(self, prm: Any) -> None:
        """A transaction of the call moved: on a leg we dialled, the first response to our
        INVITE received (onCallState does not report a 100 Trying)."""
        if not self.dialled or self.heard:
            return
        try:
            event = prm.e
            if event.type != pj.PJSIP_EVENT_TSX_STATE:
                return
            change = event.body.tsxState
            tsx = change.tsx
            if change.type != pj.PJSIP_EVENT_RX_MSG or tsx.method != "INVITE":
                return
            self.heard = True
            if 100 <= tsx.statusCode < 200:
                self.provisional_at = datetime.now(UTC)
        except Exception:
            log.exception("onCallTsxState failed")

    # The screen (sip/screen.py) refuses REFER and INVITE-with-Replaces before pjsua sees
    # them, and the dial gate refuses any call the agent did not place; these say no again,
    # in case a request ever reaches pjsua's handlers some other way.
    def onCallTransferRequest(self, prm: Any) -> None:
        prm.statusCode = 603

    def onCallReplaceRequest(self, prm: Any) -> None:
        prm.statusCode = 603

    def onCallRedirected(self, prm: Any) -> int:
        """A 3xx from the buyer names a destination the catalog did not: never followed
        (the dial gate would refuse it too). Its code is kept for the call record."""
        try:
            self.redirect_code = _status_of(prm.e) or 300
        except Exception:
            self.redirect_code = 300
        return int(pj.PJSIP_REDIRECT_STOP)

    def onCallRxOffer(self, prm: Any) -> None:
        """A re-INVITE or UPDATE offer: 488 (the call stays as it was) unless its media
        stays where the party is (SPEC §4.6)."""
        try:
            if self.owner is None or not self.owner.on_leg_offer(self, prm.offer.wholeSdp):
                prm.statusCode = 488
        except Exception:
            log.exception("onCallRxOffer failed")
            prm.statusCode = 488

    def onCallMediaState(self, prm: Any) -> None:
        try:
            if self.owner is not None:
                self.owner.on_leg_media(self)
        except Exception:
            log.exception("onCallMediaState failed")

    def onDtmfEvent(self, prm: Any) -> None:
        """One DTMF event (RFC 4733 or SIP INFO), reported when it ends with its length:
        relaying the end keeps the digit's duration, which some IVRs read (a long '#')."""
        try:
            if prm.flags & _DTMF_IS_END and self.owner is not None:
                duration = prm.duration if prm.duration != _UNKNOWN_DURATION else 0
                self.owner.on_leg_dtmf(self, prm.digit, int(duration))
        except Exception:
            log.exception("onDtmfEvent failed")

    def onDtmfDigit(self, prm: Any) -> None:
        """pjsua2 also reports each digit's start here; the end event above relays it."""


def respond(
    leg: Leg, code: int, reason: str = "", headers: tuple[tuple[str, str], ...] = ()
) -> None:
    """Send a response to an inbound leg not yet finally answered; a no-op when it is gone.

    Always ``answer`` (pjsua_call_answer2 takes any 1xx-6xx): ``hangup`` with a code also
    rejects, but called from inside onIncomingCall it drops ``txOption.headers`` (a 503
    lost its Retry-After that way).
    """
    if leg.disconnected:
        return
    prm = pj.CallOpParam(True) if code == 200 else pj.CallOpParam()
    if code == 200:
        audio_only(prm)
    prm.statusCode = code
    if reason:
        prm.reason = reason
    for name, value in headers:
        safe = safe_header(name, value)
        if safe is None:
            log.warning("dropping response header with invalid name %r", name)
            continue
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = safe
        prm.txOption.headers.append(hdr)
    try:
        leg.answer(prm)
    except pj.Error as exc:
        log.warning("could not send %d: %s", code, exc.info())


def audio_only(prm: Any) -> None:
    """One audio stream, nothing else: pjsua offers (and accepts) an RFC 4103 text stream
    by default, which the bridge would not carry."""
    prm.opt.audioCount = 1
    prm.opt.videoCount = 0
    prm.opt.textCount = 0


def send_dtmf(to: Leg, digit: str, duration_ms: int) -> bool:
    """Send one digit to ``to`` as RFC 4733 telephone-event, SIP INFO when the far end
    negotiated no telephone-event; False when it could not be sent (or the leg is gone)."""
    if to.disconnected:
        return False
    prm = pj.CallSendDtmfParam()
    prm.digits = digit
    prm.duration = min(max(duration_ms, 40), 2000) if duration_ms > 0 else 160
    prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
    try:
        to.sendDtmf(prm)
    except pj.Error:
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
        try:
            to.sendDtmf(prm)
        except pj.Error as exc:
            log.warning("could not relay DTMF %r: %s", digit, exc.info())
            return False
    return True


def hang_up(leg: Leg | None) -> None:
    """BYE (confirmed) or CANCEL (early) a leg; a no-op when it is gone."""
    if leg is None or leg.disconnected:
        return
    try:
        leg.hangup(pj.CallOpParam())
    except pj.Error as exc:
        log.debug("hangup: %s", exc.info())


# States whose event carries the message that fixes a leg's dialog (pjsip's sip_inv.c): a
# UAS enters CONNECTING when its 2xx leaves (inside Call.answer), a UAC CONFIRMED when its
# ACK does.
_DIALOG_STATES = (pj.PJSIP_INV_STATE_CONNECTING, pj.PJSIP_INV_STATE_CONFIRMED)


def _sent_message(event: Any) -> str:
    """The message we sent behind a pjsua2 call-state event, "" when it is not one."""
    if event.type == pj.PJSIP_EVENT_TX_MSG:
        return str(event.body.txMsg.tdata.wholeMsg)
    if event.type == pj.PJSIP_EVENT_TSX_STATE and event.body.tsxState.type == pj.PJSIP_EVENT_TX_MSG:
        return str(event.body.tsxState.src.tdata.wholeMsg)
    return ""


def _received(event: Any) -> Any | None:
    """The message received behind a pjsua2 event (SipRxData), None when it is not one."""
    if event.type == pj.PJSIP_EVENT_RX_MSG:
        return event.body.rxMsg.rdata
    tsx = event.body.tsxState
    if event.type == pj.PJSIP_EVENT_TSX_STATE and tsx.type == pj.PJSIP_EVENT_RX_MSG:
        return tsx.src.rdata
    return None


def _received_from(event: Any) -> str:
    """Where the message behind a call-state event came from (on the leg we dialled: the
    buyer), "" when the event is not a received message."""
    rdata = _received(event)
    return split_host_port(str(rdata.srcAddress))[0] if rdata is not None else ""


def _status_of(event: Any) -> int:
    """The status code of the response behind an event (pjsip's "Response msg 302/INVITE…"
    description of it), 0 when there is none."""
    rdata = _received(event)
    found = _RESPONSE_CODE.search(str(rdata.info)) if rdata is not None else None
    return int(found.group(1)) if found else 0


def audio_index(leg: Leg, statuses: tuple[int, ...]) -> int | None:
    """Index of the leg's first audio stream whose status is one of ``statuses``, or None.
    The CallInfo stays referenced while its media are read: SWIG's ``info.media`` points
    into it, and reading it through a temporary is a use-after-free."""
    if leg.disconnected:
        return None
    info = leg.getInfo()
    for media in info.media:
        if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in statuses:
            return int(media.index)
    return None


CARRIES_AUDIO = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)


def carried_audio(leg: Leg) -> int | None:
    """Index of the leg's first active (or remotely held) audio stream, or None."""
    try:
        return audio_index(leg, CARRIES_AUDIO)
    except pj.Error:
        return None


def audio_media(leg: Leg, index: int | None) -> Any | None:
    """The leg's audio stream ``index`` as an AudioMedia, or None."""
    try:
        return None if index is None else leg.getAudioMedia(index)
    except pj.Error:
        return None


def remote_media_hosts(leg: Leg, index: int) -> list[str]:
    """Where the leg's audio stream ``index`` is sent (RTP and RTCP hosts)."""
    try:
        info = leg.getStreamInfo(index)  # referenced while its parts are read (SWIG)
        return [
            split_host_port(str(a))[0] for a in (info.remoteRtpAddress, info.remoteRtcpAddress) if a
        ]
    except pj.Error:
        return []


def rx_packets(leg: Leg) -> int | None:
    """RTP packets received on the leg's active audio stream, None without one (on hold)."""
    try:
        index = audio_index(leg, (pj.PJSUA_CALL_MEDIA_ACTIVE,))
        if index is None:
            return None
        stat = leg.getStreamStat(index)  # referenced while its parts are read (SWIG)
        return int(stat.rtcp.rxStat.pkt)
    except pj.Error:
        return None


def error_text(exc: BaseException) -> str:
    """What went wrong, in words: pjsua2's errors carry their text in ``info()``."""
    info = getattr(exc, "info", None)
    return str(info()) if callable(info) else str(exc) or type(exc).__name__
