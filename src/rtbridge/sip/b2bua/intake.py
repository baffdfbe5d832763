"""What arrives at the agent: every request screened, every new INVITE admitted, then routed.

- **Screen** (:mod:`rtbridge.sip.screen`): every new request, before pjsip's dialogs and
  pjsua's handlers see it — the methods a B2BUA for RTB answers, and the per-source request
  rate.
- **Admission** (:mod:`rtbridge.sip.admission`): a new INVITE is answered ``503`` +
  ``Retry-After`` *before* the router runs — so no reservation is claimed and the publisher
  can retry it elsewhere (SPEC §4.5) — when the agent is draining, when its source exceeds
  the per-source INVITE rate, when ``capacity.bridges`` bridges are alive (routing, dialing
  or connected), or when the router's backlog is full. The build's own last resort when every
  call slot is taken is a stateless ``503`` too (``pjproject/patches/0001``), counted here.
- **Routing**: an admitted INVITE becomes a :class:`Bridge` and its
  :class:`~rtbridge.sip.router.IncomingInvite` goes to ``Router.route`` on a worker thread
  (``router_workers``; it may wait on the database); the answer comes back to the agent
  thread through the agent's inbox.

The sender is the packet's source, or the publisher a trusted proxy names
(:mod:`rtbridge.sip.proxy`): read once per request, from the raw message only when the
packet comes from a trusted proxy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rtbridge.domain.failover import Attempt
from rtbridge.sip.admission import Admission
from rtbridge.sip.auth.allowlist import parse_address
from rtbridge.sip.b2bua.accounts import SipAccount
from rtbridge.sip.b2bua.bridge import Bridge, BridgeHost
from rtbridge.sip.b2bua.delivery import Delivery
from rtbridge.sip.b2bua.leg import respond
from rtbridge.sip.b2bua.state import AgentState
from rtbridge.sip.flood_log import FloodLog
from rtbridge.sip.messages import (
    ParsedRequest,
    offers_srtp,
    parse_request,
    split_host_port,
    split_name_addr,
    uri_user,
)
from rtbridge.sip.proxy import Source, in_networks, networks, source_of
from rtbridge.sip.rate import SourceRate
from rtbridge.sip.refused_invites import RefusedInvites, transaction_key
from rtbridge.sip.router import BridgeTo, Failover, IncomingInvite, Reject, Router
from rtbridge.sip.screen import RequestScreen, method_label
from rtbridge.sip.sdp import body_of

log = logging.getLogger("rtbridge.sip.b2bua.intake")

# Posts a job to the agent thread; False when the agent has stopped (nobody will run it).
Post = Callable[[Callable[[], None]], bool]


def read_invite(
    call_id_hint: int, msg: ParsedRequest, whole_msg: str, source: Source
) -> IncomingInvite:
    """Translate pjsua2's raw INVITE and its sender into an IncomingInvite."""
    display, from_uri = split_name_addr(msg.first("from") or "")
    headers = {
        name: ", ".join(values) for name, values in msg.headers.items() if name != "authorization"
    }
    return IncomingInvite(
        call_id=msg.first("call-id") or f"pjsua-{call_id_hint}",
        source_ip=source.ip,
        source_port=source.port,
        transport=source.transport,
        request_uri=msg.request_uri,
        ruri_user=uri_user(msg.request_uri),
        from_user=uri_user(from_uri),
        from_display=display,
        authorization=msg.first("authorization"),
        headers=headers,
        offer_srtp=offers_srtp(whole_msg),
        via_proxy=source.via_proxy,
        untrusted_source=source.untrusted,
        identities=tuple(msg.headers.get("identity", ())),
    )


class Intake:
    """Agent thread only, but for :meth:`_route_done` (a route worker)."""

    def __init__(
        self, state: AgentState, *, router: Router, host: BridgeHost, delivery: Delivery,
        post: Post,
    ) -> None:  # fmt: skip
        config = state.config
        self._state = state
        self._router = router
        self._host = host
        self._delivery = delivery
        self._post = post
        self._proxies = networks(config.trusted_proxies)
        self.admission = Admission(
            bridges=state.capacity.bridges,
            max_routing=config.max_routing or config.router_workers * 32,
            rate=config.invite_rate,
            burst=config.invite_burst,
            exempt=config.rate_limit_exempt,
        )
        self._screen = RequestScreen(
            SourceRate(rate=config.request_rate, burst=config.request_burst,
                       exempt=config.rate_limit_exempt),
            retry_after=config.retry_after,
        )  # fmt: skip
        self._refusals = FloodLog(log, "INVITEs refused with 503 before routing")
        self._screened = FloodLog(log, "SIP requests refused by the screen")
        self._pool: ThreadPoolExecutor | None = None
        self._refused_invites = RefusedInvites()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(
            self._state.config.router_workers, thread_name_prefix="rtbridge-route"
        )

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def tick(self, now: float) -> None:
        """Write the flood logs' lines for an interval that has passed."""
        self._refusals.tick(now)
        self._screened.tick(now)

    # -- every request ----------------------------------------------------------------------

    def screen(self, prm: Any) -> None:
        """pjsua2's request screen hook (pjproject/patches/0006)."""
        rdata = prm.rdata
        src = rdata.srcAddress
        ip = parse_address(src)
        if ip is None:  # pjsip reports socket addresses: not seen
            prm.code = -1
            return
        if self._refused_invites and prm.method == "INVITE" and not prm.inDialog:
            key = transaction_key(rdata.wholeMsg)
            if key is not None and self._refused_invites.refused(key, time.monotonic()):
                # a retransmission of an INVITE pjsua refused with no transaction: the same
                # answer again, never a call (sip/refused_invites.py)
                prm.code, prm.reason = 503, "Service Unavailable"
                prm.retryAfter = self._state.config.retry_after
                self._state.counters.screened[("retransmission", "INVITE")] += 1
                return
        if self._proxies and in_networks(ip, self._proxies):
            ip = source_of(parse_request(rdata.wholeMsg), src, self._proxies,
                           self._state.config.source_header).ip  # fmt: skip
        method = prm.method
        verdict = self._screen.screen(
            method, source_ip=ip, in_dialog=prm.inDialog, dialog_found=prm.dialogFound,
            replaces=prm.hasReplaces, content_type=prm.contentType,
        )  # fmt: skip
        if not verdict.code:
            return
        prm.code = verdict.code
        prm.reason = verdict.reason
        prm.retryAfter = verdict.retry_after
        prm.addCaps = verdict.caps
        if verdict.why:
            self._state.counters.screened[(verdict.why, method_label(method))] += 1
            self._screened.note(f"{verdict.why} {method_label(method)}", str(ip))

    def rejected(self, prm: Any) -> None:
        """pjsua answered an INVITE before the agent saw it: with every call slot taken, 503
        (counted as capacity, like the agent's own 503s), or a request it could not take."""
        code = int(prm.statusCode)
        self._state.counters.answers[code] += 1
        if code == 503:
            self.admission.refused["capacity"] += 1
            self._refusals.note("capacity", split_host_port(prm.rdata.srcAddress)[0])
            key = transaction_key(prm.rdata.wholeMsg)
            if key is not None:  # its retransmissions get this 503 again (screen)
                self._refused_invites.remember(key, time.monotonic())

    # -- new INVITEs ------------------------------------------------------------------------

    def incoming(self, account: SipAccount, prm: Any) -> None:
        """pjsua2's onIncomingCall: a leg for the INVITE at once (pjsua2 needs its Call
        object), then admission, then routing."""
        state, counters = self._state, self._state.counters
        leg = self._host.new_leg(None, account, prm.callId)
        counters.invites += 1
        try:
            whole = prm.rdata.wholeMsg
            msg = parse_request(whole)
            source = source_of(msg, prm.rdata.srcAddress, self._proxies,
                               state.config.source_header)  # fmt: skip
        except Exception:
            log.exception("unreadable INVITE")
            counters.answers[400] += 1
            respond(leg, 400, "Bad Request")
            return
        refusal = self.admission.check(
            source.ip,
            active=len(state.bridges),
            draining=state.stopping,
            routing=counters.routing,
            # every leg holds a slot (this INVITE's included); each INVITE being routed
            # will take one more for its buyer
            free_slots=state.capacity.call_slots - len(state.legs) - counters.routing,
        )
        if refusal is not None:
            # Before route(): a 503 here leaves the reservation unclaimed for a retry.
            counters.answers[refusal.code] += 1
            self._refusals.note(refusal.reason, str(source.ip))
            respond(leg, refusal.code, refusal.phrase, state.retry_after)
            return
        invite = read_invite(prm.callId, msg, whole, source)
        bridge = Bridge(self._host, leg, invite, body_of(whole))
        state.bridges.add(bridge)
        assert self._pool is not None
        counters.routing += 1
        future = self._pool.submit(self._router.route, invite)
        future.add_done_callback(lambda f: self._route_done(bridge, f))

    def _route_done(self, bridge: Bridge, future: Future[Reject | BridgeTo]) -> None:
        """Route worker: hand the router's answer to the agent thread.

        If the agent has already stopped, nobody can answer the INVITE any more, but a
        claimed reservation must still get its "ended" record (SPEC §7: no call without a
        record), so it is written from here."""
        if self._post(lambda: self._route_answered(bridge, future)):
            return
        if future.exception() is None:
            result = future.result()
            if isinstance(result, BridgeTo):
                self._delivery.deliver(bridge.abandoned_event(result))

    def _route_answered(self, bridge: Bridge, future: Future[Reject | BridgeTo]) -> None:
        self._state.counters.routing -= 1
        exc = future.exception()
        if exc is None:
            result = future.result()
            if isinstance(result, Reject) and result.auth_failure:
                self._state.counters.auth_failures[result.auth_failure] += 1
            if isinstance(result, Reject) and result.check:
                self._state.counters.checks_refused[result.check] += 1
            if result.attestation is not None:
                self._state.counters.attestations[result.attestation] += 1
        bridge.on_route_result(exc if exc is not None else future.result())

    # -- failover ---------------------------------------------------------------------------

    def fail_over(
        self, bridge: Bridge, plan: BridgeTo, failed: Attempt, tried: tuple[str, ...]
    ) -> None:
        """A buyer failed ``bridge``'s call: ``Router.next_buyer`` on a route worker (it
        writes to the database), its answer back to the agent thread."""
        self._state.counters.failovers[failed.kind] += 1
        assert self._pool is not None
        future = self._pool.submit(self._router.next_buyer, plan, failed, tried)
        future.add_done_callback(lambda f: self._failover_done(bridge, f))

    def _failover_done(self, bridge: Bridge, future: Future[Failover]) -> None:
        """Route worker. If the agent has stopped, the call's end is written from here, as
        for a claim (the reservation may now be the next buyer's: its end gives that
        buyer's unit back)."""
        exc = future.exception()
        if self._post(lambda: bridge.on_failover_result(exc or future.result())):
            return
        if bridge.plan is not None:
            self._delivery.deliver(bridge.abandoned_event(bridge.plan))
