"""The SIP agent: one thread owns pjsua2; the router runs on worker threads.

Threads and why:

- **agent thread** — creates the Endpoint, polls ``libHandleEvents`` (which releases the
  GIL while it waits), runs every pjsua2 callback, every :class:`Bridge` method and the ring
  timers, and drains ``_inbox``: callables posted by other threads. Nothing else touches
  pjsua2, so there are no pjsua2 locks to reason about from Python.
- **route workers** (``router_workers``) — run ``Router.route``, which may wait on the
  database. The answer is posted back to the agent thread through ``_inbox``.
- **event thread** (one) — runs ``Router.on_event`` in emission order, so a recorder sees
  ``ringing`` → ``answered`` → ``ended`` for each call.

Admission (:mod:`rtbridge.sip.admission`): a new INVITE is answered ``503`` +
``Retry-After`` *before* the router runs — so no reservation is claimed and the publisher
can retry it elsewhere (SPEC §4.5) — when the agent is draining, when its source exceeds
the per-source INVITE rate, or when ``capacity.bridges`` bridges are alive (routing,
dialing or connected). The bridge count comes from the linked build
(:mod:`rtbridge.sip.capacity`); the build's own last resort when every call slot is taken
is a stateless ``503`` too (``pjproject/patches/0001-slots-full-503.patch``).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import heapq
import itertools
import logging
import math
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pjsua2 as pj

from rtbridge.sip.admission import Admission
from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.bridge import Bridge, Leg, LegOwner, error_text, respond
from rtbridge.sip.b2bua.endpoint import Endpoint, account_config, start_endpoint
from rtbridge.sip.b2bua.library import Library, linked_library
from rtbridge.sip.capacity import Capacity, ensure_open_files, plan
from rtbridge.sip.flood_log import FloodLog
from rtbridge.sip.messages import (
    ParsedRequest,
    offers_srtp,
    parse_request,
    split_host_port,
    split_name_addr,
    uri_user,
    via_transport,
)
from rtbridge.sip.proxy import Networks, Source, in_networks, networks, source_of
from rtbridge.sip.rate import SourceRate
from rtbridge.sip.router import (
    BridgeTo,
    CallEvent,
    Carried,
    IncomingInvite,
    OutboundAuth,
    Reject,
    Router,
    SrtpMode,
)
from rtbridge.sip.screen import RequestScreen, method_label
from rtbridge.sip.sdp import body_of
from rtbridge.sip.status import AgentStatus, SetupTimes

log = logging.getLogger("rtbridge.sip.b2bua.agent")
# stop(): how long hung-up calls get to exchange their BYEs before pjsua2 is destroyed.
_HANGUP_WAIT = 2.0


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
    )


class _Account(pj.Account):  # type: ignore[misc]
    """The agent's identity; every account (plain or with outbound credentials) is this."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self._agent = agent

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self._agent._on_incoming(self, prm)
        except Exception:
            log.exception("onIncomingCall failed")


class _Timer:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Agent:
    """pjsua2 B2BUA driven by a :class:`Router`.

    ``start()`` runs the agent thread in the background and returns once it listens;
    ``drain()`` stops taking calls and waits for live ones to end; ``stop()`` hangs up every
    call, waits briefly for the BYEs and destroys pjsua2. ``run()`` does it all in the
    foreground: SIGTERM drains (up to ``drain_timeout``), SIGINT stops at once.
    """

    def __init__(
        self, config: AgentConfig, router: Router, *, library: Library | None = None
    ) -> None:
        """Sizes the agent from the linked build; raises CapacityError (a ValueError saying
        which limit and how to change it) when the configuration asks for more."""
        self.config = config
        self.domain = config.domain
        self.library = library or linked_library()
        self.capacity: Capacity = plan(
            config,
            build_slots=self.library.call_slots,
            ioqueue_handles=self.library.ioqueue_handles,
        )
        self._admission = Admission(
            bridges=self.capacity.bridges,
            max_routing=config.max_routing or config.router_workers * 32,
            rate=config.invite_rate,
            burst=config.invite_burst,
            exempt=config.rate_limit_exempt,
        )
        self._router = router
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._legs: set[Leg] = set()
        self._bridges: set[Bridge] = set()
        # Keyed by (credentials, bound IPv6 transport kind or None, SRTP mode): see
        # endpoint.account_config. Answering uses (None, None | kind, config.srtp).
        self._accounts: dict[tuple[OutboundAuth | None, str | None, SrtpMode], _Account] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._endpoint: Endpoint | None = None
        self._stop_requested = threading.Event()
        self._draining = threading.Event()  # no new calls; live ones run on (drain())
        self._drain_deadline: float | None = None  # foreground run(): SIGTERM's grace ends
        self._options_code: int | None = None  # the library's is process-wide: set it at start
        self._proxies: Networks = networks(config.trusted_proxies)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._route_pool: ThreadPoolExecutor | None = None
        self._event_pool: ThreadPoolExecutor | None = None
        self._pending_events: list[CallEvent] = []
        self._port = 0
        self._tls_port = 0
        self._invites = 0
        self._routing = 0  # INVITEs waiting for the router (agent thread only)
        self._answers: collections.Counter[int] = collections.Counter()  # final codes sent
        self._auth_failures: collections.Counter[str] = collections.Counter()  # by reason
        self._setup = SetupTimes()
        self._refusal_log = FloodLog(log, "INVITEs refused with 503 before routing")
        self._screen = RequestScreen(
            SourceRate(rate=config.request_rate, burst=config.request_burst,
                       exempt=config.rate_limit_exempt),
            retry_after=config.retry_after,
        )  # fmt: skip
        self._screened: collections.Counter[tuple[str, str]] = collections.Counter()
        self._screen_log = FloodLog(log, "SIP requests refused by the screen")
        self.stray_calls = 0  # pjsua calls no leg owned, hung up (_end_strays)
        self._media_refused: collections.Counter[str] = collections.Counter()  # by party
        self.dtmf_relayed = 0
        self._next_heartbeat = 0.0
        self._next_media_check = 0.0
        self._media_round: deque[Bridge] = deque()

    # -- public surface --------------------------------------------------------------------

    @property
    def port(self) -> int:
        """SIP port bound (the configured one, or the one picked for port 0)."""
        return self._port

    @property
    def tls_port(self) -> int:
        """TLS port bound; 0 when TLS is off."""
        return self._tls_port

    @property
    def active_bridges(self) -> int:
        """Bridges alive now (routing, dialing or connected)."""
        return len(self._bridges)

    def status(self) -> AgentStatus:
        """A snapshot for /health and /metrics; safe from any thread."""
        phases = {"routing": 0, "dialing": 0, "connected": 0}
        for bridge in tuple(self._bridges):  # a C-level copy: atomic under the GIL
            if bridge.phase in phases:
                phases[bridge.phase] += 1
        return AgentStatus(
            port=self._port,
            draining=self._draining.is_set() or self._stop_requested.is_set(),
            library=self.library.describe(),
            call_slots=self.capacity.call_slots,
            bridge_capacity=self.capacity.bridges,
            bridges=phases,
            refused={reason: n for reason, n in self._admission.refused.items()},
            invites=self._invites,
            dtmf_relayed=self.dtmf_relayed,
            answers=dict(self._answers),
            auth_failures=dict(self._auth_failures),
            setup=self._setup,
            screened=dict(self._screened),
            stray_calls=self.stray_calls,
            media_refused=dict(self._media_refused),
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start the agent thread; returns once it listens, raises if it could not start."""
        if self._thread is not None:
            raise RuntimeError("agent already started")
        ensure_open_files(self.capacity.open_files)
        self._thread = threading.Thread(target=self._main, name="rtbridge-sip", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("SIP agent did not start")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(
                f"SIP agent failed to start: {error_text(self._startup_error)}"
            ) from self._startup_error

    def stop(self, timeout: float | None = None) -> None:
        """Hang up all calls, destroy pjsua2, deliver pending events; idempotent."""
        self._stop_requested.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else _HANGUP_WAIT + 10)
            self._thread = None

    def drain(self, timeout: float | None = None) -> int:
        """Stop taking calls (503 to INVITEs and OPTIONS) and wait up to ``timeout``
        (default ``drain_timeout``) for live calls to end on their own; returns how many
        are still up. ``stop()`` then hangs those up."""
        self._draining.set()
        deadline = time.monotonic() + (self.config.drain_timeout if timeout is None else timeout)
        while self.active_bridges and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.active_bridges

    def run(self) -> None:
        """Run in the foreground until ``stop()``, SIGINT (stop now) or SIGTERM (drain for
        up to ``drain_timeout``, then stop)."""
        ensure_open_files(self.capacity.open_files)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: self._stop_requested.set())
            signal.signal(signal.SIGTERM, lambda *_: self._begin_drain())
        self._main()
        if self._startup_error is not None:
            raise RuntimeError(
                f"SIP agent failed to start: {error_text(self._startup_error)}"
            ) from self._startup_error

    def _begin_drain(self) -> None:
        if self._draining.is_set():  # a second SIGTERM: stop now
            self._stop_requested.set()
            return
        self._draining.set()
        self._drain_deadline = time.monotonic() + self.config.drain_timeout
        log.info("draining: no new calls", extra={"bridges": self.active_bridges,
                                                  "drain_timeout": self.config.drain_timeout})  # fmt: skip

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- BridgeHost (agent thread only) ----------------------------------------------------

    def account_for(
        self, auth: OutboundAuth | None, target_uri: str = "", srtp: SrtpMode = "off"
    ) -> Any:
        """The account to dial ``target_uri`` with: one per credential set and SRTP mode,
        and per IPv6 transport for IPv6 targets (see endpoint.account_config)."""
        ipv6_kind = _ipv6_transport_kind(target_uri)
        key = (auth, ipv6_kind, srtp)
        account = self._accounts.get(key)
        if account is None:
            assert self._endpoint is not None
            transport = None
            if ipv6_kind is not None:
                transport = self._endpoint.ipv6_transport(ipv6_kind)
                if transport is None:
                    raise ValueError(f"no IPv6 {ipv6_kind} listener to reach {target_uri}")
            account = _Account(self)
            acfg = account_config(self.config, auth=auth, bound=transport, srtp=srtp,
                                  ipv6_media=self.library.ipv6)  # fmt: skip
            account.create(acfg, not self._accounts)
            self._accounts[key] = account
        return account

    def relay_dtmf(self, to: Leg, digit: str, duration_ms: int) -> None:
        """Send one digit to ``to`` as RFC 4733 telephone-event, SIP INFO when the far end
        negotiated no telephone-event."""
        if to.disconnected:
            return
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
                return
        self.dtmf_relayed += 1

    def dial(self, bridge: Bridge, leg: Leg, prm: Any) -> None:
        """The one place a call leaves the agent (SPEC §4.6): the buyer leg of a live bridge
        the router sent to ``bridge.plan`` — its destination, nothing else, once. pjsua's
        dial gate (endpoint._close_doors) lets only this permitted URI through, so no REFER,
        redirect or other pjsua path can place a call. Raises ValueError otherwise."""
        plan = bridge.plan
        if plan is None or bridge not in self._bridges or bridge.phase != "dialing":
            raise ValueError("a call leaves only for the buyer of a live bridge")
        if bridge.outbound is not leg or leg.dialled:
            raise ValueError("a bridge dials its buyer once")
        assert self._endpoint is not None
        leg.dialled = True
        self._endpoint.ep.utilPermitDial(plan.target_uri)
        leg.makeCall(plan.target_uri, prm)

    def media_refused(self, party: str) -> None:
        self._media_refused[party] += 1

    def new_leg(self, owner: LegOwner | None, account: Any, call_id: int) -> Leg:
        leg = Leg(owner, account, call_id, self._leg_disconnected)
        self._legs.add(leg)
        return leg

    def emit(self, event: CallEvent) -> None:
        # Collected per poll and handed over as one job (_flush_events): each hand-over
        # wakes the event thread, a futex round trip that costs more than the event.
        self._pending_events.append(event)

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(fn)
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), timer))
        return timer

    def finished(self, bridge: Bridge) -> None:
        """A bridge is over: count its answer to the publisher and log the call once."""
        self._bridges.discard(bridge)
        code = bridge.publisher_code
        if code is not None:
            self._answers[code] += 1
        if bridge.answer_at is not None:
            self._setup.observe((bridge.answer_at - bridge.invite_at).total_seconds())
        # a claimed reservation (the router logged the claim); the fields are built only when
        # the line is wanted: this runs on the pjsua2 thread for every call
        if bridge.plan is not None and log.isEnabledFor(logging.INFO):
            log.info("call ended", extra={
                "uuid": bridge.plan.reservation_uuid, "call_id": bridge.invite.call_id,
                "code": code, "buyer_code": bridge.buyer_code, "hangup_by": bridge.hangup_by,
                "duration": bridge.duration()})  # fmt: skip

    # -- agent thread ----------------------------------------------------------------------

    def _main(self) -> None:
        self._route_pool = ThreadPoolExecutor(
            self.config.router_workers, thread_name_prefix="rtbridge-route"
        )
        self._event_pool = ThreadPoolExecutor(1, thread_name_prefix="rtbridge-events")
        try:
            self._endpoint = start_endpoint(self.config, self.capacity.call_slots)
            self._port = self._endpoint.port
            self._tls_port = self._endpoint.tls_port
            # The default account (the first created) answers IPv4 INVITEs; accounts bound
            # to the IPv6 transports answer IPv6 ones (_select_account).
            self.account_for(None, srtp=self._inbound_srtp)
            for transport in self._endpoint.transports:
                if transport.ipv6:
                    self.account_for(None, _bound_uri(transport), srtp=self._inbound_srtp)
            self._endpoint.ep.select_account = self._select_account
            self._endpoint.ep.screen_request = self._screen_request
            self._endpoint.ep.rejected_call = self._rejected_call
            self._update_options_status()  # before the first probe can arrive
        except BaseException as exc:
            self._startup_error = exc
            self._teardown()
            self._ready.set()
            return
        log.info(
            "SIP agent listening",
            extra={"port": self._port, "tls_port": self._tls_port or None,
                   "pjsua2": self.library.describe(), "call_slots": self.capacity.call_slots,
                   "bridges": self.capacity.bridges, "rtp_pairs": self.capacity.rtp_pairs},
        )  # fmt: skip
        self._ready.set()
        try:
            while not self._stop_requested.is_set():
                self._poll()
                if self._drain_deadline is not None and (
                    not self._bridges or time.monotonic() >= self._drain_deadline
                ):
                    self._stop_requested.set()
            self._drain()
        finally:
            self._teardown()

    def _poll(self) -> None:
        assert self._endpoint is not None
        wait = self.config.poll_ms
        if self._timers:
            wait = max(0, min(wait, int((self._timers[0][0] - time.monotonic()) * 1000)))
        self._endpoint.ep.libHandleEvents(wait)
        self._run_inbox()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                try:
                    timer.fn()
                except Exception:
                    log.exception("timer failed")
        self._flush_events()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_interval
            self._heartbeat()
            self._end_strays()
            self._refusal_log.tick(now)
            self._screen_log.tick(now)
        if self.config.rtp_timeout and now >= self._next_media_check:
            self._check_media(now)
        self._update_options_status()

    def _heartbeat(self) -> None:
        """From the pjsua2 thread, so a heartbeat means calls were being carried; written
        on the event thread, after the events before it."""
        if self._event_pool is not None:
            at = datetime.now(UTC)
            self._event_pool.submit(self._deliver_heartbeat, at, self._carried(at))

    def _carried(self, at: datetime) -> Carried:
        """The reservations this agent's bridges hold now, for the router's orphan sweep.

        A bridge knows its uuid once the router's answer reached this thread; until then
        (routing) its claim may already be committed. The sweep must never close such a
        call, so the snapshot describes only claims made before the oldest routing
        bridge's INVITE: the router claims after the bridge exists, on the same wall clock.
        The grace (two heartbeats) covers a clock stepped back meanwhile. A bridge that
        ended is gone from ``_bridges`` only after its "ended" event was queued, and that
        event reaches the event thread before this heartbeat does."""
        uuids: set[str] = set()
        oldest = at
        for bridge in self._bridges:
            if bridge.plan is not None:
                uuids.add(bridge.plan.reservation_uuid)
            elif bridge.phase == "routing" and bridge.invite_at < oldest:
                oldest = bridge.invite_at
        grace = timedelta(seconds=2 * self.config.heartbeat_interval)
        return Carried(frozenset(uuids), oldest - grace)

    def _check_media(self, now: float) -> None:
        """RTP inactivity (Bridge.check_media), a slice of the bridges per tick so that each
        is looked at every ``rtp_timeout / 4`` s at most — not all of them at once: reading
        a leg's stream statistics costs a few microseconds per leg."""
        period = self.config.rtp_timeout / 4
        tick = min(1.0, period)
        self._next_media_check = now + tick
        if not self._media_round:
            self._media_round.extend(self._bridges)
        for _ in range(min(len(self._media_round), math.ceil(len(self._bridges) * tick / period))):
            bridge = self._media_round.popleft()
            if bridge in self._bridges:
                bridge.check_media(now, self.config.rtp_timeout)

    def _update_options_status(self) -> None:
        """What OPTIONS probes hear (pjproject/patches/0004): 503 while no call would be
        admitted, so a dispatcher stops sending here; 200 again once there is room."""
        stopping = self._draining.is_set() or self._stop_requested.is_set()
        code = 503 if stopping or len(self._bridges) >= self.capacity.bridges else 200
        if code != self._options_code and self._endpoint is not None:  # None: never set
            self._options_code = code
            setter = getattr(self._endpoint.ep, "utilSetOptionsStatus", None)
            if setter is not None:  # a pjsua2 without rtbridge's patches always says 200
                setter(code, self.config.retry_after)

    def _flush_events(self) -> None:
        if self._pending_events and self._event_pool is not None:
            batch, self._pending_events = self._pending_events, []
            self._event_pool.submit(self._deliver_all, batch)

    @property
    def _inbound_srtp(self) -> SrtpMode:
        return "optional" if self.config.srtp == "optional" else "off"

    def _select_account(self, prm: Any) -> None:
        """IPv6 requests must be handled by the account bound to their IPv6 transport."""
        host, _ = split_host_port(prm.rdata.srcAddress)
        if ":" not in host:
            return
        transport = via_transport(parse_request(prm.rdata.wholeMsg).first("via"))
        account = self._accounts.get((None, transport, self._inbound_srtp))
        if account is not None:
            prm.accountIndex = account.getId()

    def _screen_request(self, prm: Any) -> None:
        """Every new request, before pjsip's dialogs and pjsua's handlers (sip/screen.py).
        The sender is the packet's source, or the one a trusted proxy names: its message is
        read only then, the common case costs a string split."""
        rdata = prm.rdata
        src = rdata.srcAddress
        ip, _ = split_host_port(src)
        if self._proxies and in_networks(ip, self._proxies):
            msg = parse_request(rdata.wholeMsg)
            ip = source_of(msg, src, self._proxies, self.config.source_header).ip
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
            self._screened[(verdict.why, method_label(method))] += 1
            self._screen_log.note(f"{verdict.why} {method_label(method)}", ip)

    def _rejected_call(self, prm: Any) -> None:
        """pjsua answered an INVITE before the agent saw it: with every call slot taken, 503
        (counted as capacity, like the agent's own 503s), or a request it could not take."""
        code = int(prm.statusCode)
        self._answers[code] += 1
        if code == 503:
            self._admission.refused["capacity"] += 1
            self._refusal_log.note("capacity", split_host_port(prm.rdata.srcAddress)[0])

    def _end_strays(self) -> None:
        """Hang up every pjsua call no leg of this agent owns (SPEC §4.6: no call that is
        not a leg of a bridge). The dial gate and the screen leave pjsua no way to make
        one; this is the net under them, run with each heartbeat."""
        assert self._endpoint is not None
        owned = {leg.getId() for leg in self._legs if not leg.disconnected}
        for call_id in self._endpoint.ep.utilCallIds():
            if call_id not in owned:
                self.stray_calls += 1
                log.error("hanging up a call no bridge owns", extra={"pjsua_call_id": call_id})
                with contextlib.suppress(pj.Error):
                    self._endpoint.ep.utilHangupCall(call_id, 503)

    def _drain(self) -> None:
        """Hang up everything and keep polling until the calls are gone or time runs out."""
        for bridge in list(self._bridges):
            bridge.shut_down()
        for leg in list(self._legs):
            if leg.owner is None:
                respond(leg, 503, "Service Unavailable", self._retry_after)
        deadline = time.monotonic() + _HANGUP_WAIT
        while (self._bridges or self._legs) and time.monotonic() < deadline:
            self._poll()
        if self._bridges or self._legs:
            log.warning("stop: %d bridges still alive after drain", len(self._bridges))

    def _teardown(self) -> None:
        """Release pjsua2 in the order it needs.

        Every ``Call`` Python object must be gone *before* libDestroy: pjsua2's ``~Call``
        touches pjsua state, and after libDestroy that is an assertion failure (abort).
        So: close the door to late router answers, run what is queued, let pjsip send the
        last BYEs, detach every leg from its controller, drop all references, collect,
        then shut the accounts and destroy the library.
        """
        with self._lock:
            self._closed = True
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None and endpoint.ep is not None:
            try:
                self._run_inbox()
                endpoint.ep.hangupAllCalls()
                for _ in range(20):  # let pjsip send the BYEs/CANCELs it just queued
                    endpoint.ep.libHandleEvents(10)
                self._run_inbox()
            except pj.Error:
                pass
        for bridge in self._bridges:
            bridge.detach()
        self._bridges.clear()
        for leg in self._legs:
            leg.owner = None
        self._legs.clear()
        self._timers.clear()
        while True:  # drop queued jobs (and the legs their closures hold)
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        gc.collect()
        for account in self._accounts.values():
            with contextlib.suppress(pj.Error):
                account.shutdown()
        self._accounts.clear()
        if endpoint is not None and endpoint.ep is not None:
            if endpoint.ep is not None:
                endpoint.ep.select_account = None
                endpoint.ep.screen_request = None
                endpoint.ep.rejected_call = None
            endpoint.destroy()
        if self._route_pool is not None:
            self._route_pool.shutdown(wait=False, cancel_futures=True)
        if self._event_pool is not None:
            # Events are the call records: deliver what is queued before returning.
            self._flush_events()
            self._event_pool.shutdown(wait=True)
        self._event_pool = None

    def _run_inbox(self) -> None:
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                job()
            except Exception:
                log.exception("agent job failed")

    @property
    def _retry_after(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", str(self.config.retry_after)),)

    def _on_incoming(self, account: _Account, prm: Any) -> None:
        leg = self.new_leg(None, account, prm.callId)
        self._invites += 1
        try:
            whole = prm.rdata.wholeMsg
            msg = parse_request(whole)
            source = source_of(msg, prm.rdata.srcAddress, self._proxies, self.config.source_header)
        except Exception:
            log.exception("unreadable INVITE")
            self._answers[400] += 1
            respond(leg, 400, "Bad Request")
            return
        refusal = self._admission.check(
            source.ip,
            active=len(self._bridges),
            draining=self._draining.is_set() or self._stop_requested.is_set(),
            routing=self._routing,
            # every leg holds a slot (this INVITE's included); each INVITE being routed
            # will take one more for its buyer
            free_slots=self.capacity.call_slots - len(self._legs) - self._routing,
        )
        if refusal is not None:
            # Before route(): a 503 here leaves the reservation unclaimed for a retry.
            self._answers[refusal.code] += 1
            self._refusal_log.note(refusal.reason, source.ip)
            respond(leg, refusal.code, refusal.phrase, self._retry_after)
            return
        invite = read_invite(prm.callId, msg, whole, source)
        bridge = Bridge(self, leg, invite, body_of(whole))
        self._bridges.add(bridge)
        assert self._route_pool is not None
        self._routing += 1
        future = self._route_pool.submit(self._router.route, invite)
        future.add_done_callback(lambda f: self._route_done(bridge, f))

    def _route_done(self, bridge: Bridge, future: Future[Reject | BridgeTo]) -> None:
        """Worker thread: hand the router's answer to the agent thread.

        If the agent has already stopped, nobody can answer the INVITE any more, but a
        claimed reservation must still get its "ended" record (SPEC §7: no call without a
        record), so it is written from here.
        """
        with self._lock:
            if not self._closed:
                self._inbox.put(lambda: self._route_answered(bridge, future))
                return
        if future.exception() is None:
            result = future.result()
            if isinstance(result, BridgeTo):
                self._deliver(bridge.abandoned_event(result))

    def _route_answered(self, bridge: Bridge, future: Future[Reject | BridgeTo]) -> None:
        self._routing -= 1
        if future.exception() is None:
            result = future.result()
            if isinstance(result, Reject) and result.auth_failure:
                self._auth_failures[result.auth_failure] += 1  # this thread only: no lock
        _deliver_route(bridge, future)

    def _leg_disconnected(self, leg: Leg) -> None:
        # Drop the last reference only after the callback returned (see bridge.py).
        self._inbox.put(lambda: self._legs.discard(leg))

    def _deliver_all(self, events: list[CallEvent]) -> None:
        try:
            self._router.on_events(events)
        except Exception:  # one bad event must not lose the others' records
            log.exception("router.on_events failed; recording one by one")
            for event in events:
                self._deliver(event)

    def _deliver_heartbeat(self, at: datetime, carried: Carried) -> None:
        try:
            self._router.heartbeat(at, carried)
        except Exception:
            log.exception("router.heartbeat failed")

    def _deliver(self, event: CallEvent) -> None:
        try:
            self._router.on_event(event)
        except Exception:
            log.exception("router.on_event failed for %s", event.reservation_uuid)


def _ipv6_transport_kind(uri: str) -> str | None:
    """Transport ("UDP"/"TCP"/"TLS") when ``uri``'s host is an IPv6 literal, else None."""
    _, _, rest = uri.partition("@")
    if not rest.startswith("["):
        rest = uri.partition(":")[2]
        if not rest.startswith("["):
            return None
    lowered = uri.lower()
    if ";transport=tls" in lowered or lowered.startswith("sips:"):
        return "TLS"
    return "TCP" if ";transport=tcp" in lowered else "UDP"


def _bound_uri(transport: Any) -> str:
    """A URI that selects ``transport``'s account in ``account_for``."""
    return f"sip:x@[{transport.host}]:{transport.port};transport={transport.kind.lower()}"


def _deliver_route(bridge: Bridge, future: Future[Reject | BridgeTo]) -> None:
    exc = future.exception()
    bridge.on_route_result(exc if exc is not None else future.result())
