"""The SIP agent: one thread owns pjsua2; the router runs on worker threads.

Threads and why:

- **agent thread** — creates the Endpoint, polls ``libHandleEvents`` (which releases the
  GIL while it waits), runs every pjsua2 callback, every :class:`Bridge` method and the ring
  timers, and drains the inbox: callables posted by other threads. Nothing else touches
  pjsua2, so there are no pjsua2 locks to reason about from Python.
- **route workers** (``router_workers``) — run ``Router.route``, which may wait on the
  database (:mod:`~rtbridge.sip.b2bua.intake`). The answer is posted back to the agent
  thread through the inbox.
- **event thread** (one) — delivers call events and heartbeats to the router in the order
  they happened (:mod:`~rtbridge.sip.b2bua.delivery`).

The agent's parts, each a module of this package: what arrives (``intake``: the request
screen, admission, routing), the pjsua2 accounts (``accounts``), what it sends the router
(``delivery``), what it checks between events (``supervision``), one controller per call
(``bridge``), the library's setup (``endpoint``). This module holds the lifecycle — start,
drain, stop, the poll loop and its timers — and the one place a call leaves (:meth:`dial`).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import pjsua2 as pj

from rtbridge.domain.failover import Attempt
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.accounts import Accounts
from rtbridge.sip.b2bua.announcer import Announcer, Notice
from rtbridge.sip.b2bua.bridge import Bridge
from rtbridge.sip.b2bua.delivery import Delivery
from rtbridge.sip.b2bua.endpoint import start_endpoint
from rtbridge.sip.b2bua.intake import Intake
from rtbridge.sip.b2bua.leg import Leg, LegOwner, error_text, respond, send_dtmf
from rtbridge.sip.b2bua.library import Library, linked_library
from rtbridge.sip.b2bua.recorder import CallRecording, Recordings
from rtbridge.sip.b2bua.state import AgentState
from rtbridge.sip.b2bua.supervision import Supervision
from rtbridge.sip.capacity import Capacity, ensure_open_files, plan
from rtbridge.sip.lease import LeaseKeeper
from rtbridge.sip.recordings import directory_for
from rtbridge.sip.router import BridgeTo, CallEvent, OutboundAuth, Router, SrtpMode
from rtbridge.sip.status import AgentStatus

log = logging.getLogger("rtbridge.sip.b2bua.agent")
# stop(): how long hung-up calls get to exchange their BYEs before pjsua2 is destroyed.
_HANGUP_WAIT = 2.0


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
        self, config: AgentConfig, router: Router, *, library: Library | None = None,
        lease: LeaseKeeper | None = None, recordings: Path | None = None,
    ) -> None:  # fmt: skip
        """Sizes the agent from the linked build; raises CapacityError (a ValueError saying
        which limit and how to change it) when the configuration asks for more. ``lease``:
        the agent's lease, held already (``startup.py``), released when the agent stops.
        ``recordings``: where recorded calls go (``startup.py`` decides it from the database
        URL); default: the ``recordings_directory`` option, else ./recordings."""
        self.lease = lease
        self.config = config
        self.domain = config.domain
        self.library = library or linked_library()
        self.capacity: Capacity = plan(
            config,
            build_slots=self.library.call_slots,
            ioqueue_handles=self.library.ioqueue_handles,
        )
        self._state = AgentState(config, self.capacity)
        self._announcer = Announcer()
        self.recordings = Recordings(recordings or directory_for(config.recordings_directory, ""))
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _closed: route workers post while it changes
        self._closed = False
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._delivery = Delivery(router, self._state.fenced, self._state.stop_requested,
                                  self.recordings.settled)  # fmt: skip
        self._intake = Intake(self._state, router=router, host=self, delivery=self._delivery,
                              post=self._post)  # fmt: skip
        self._accounts = Accounts(config, self.library, self._intake.incoming)
        self._supervision = Supervision(self._state, self._delivery, self._intake.tick,
                                        self._fence)  # fmt: skip
        self._drain_deadline: float | None = None  # foreground run(): SIGTERM's grace ends
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._tls_port = 0

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
        return len(self._state.bridges)

    @property
    def running(self) -> bool:
        """The agent thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def legs_alive(self) -> int:
        """pjsua2 calls the agent holds a Call object for (legs not yet disconnected)."""
        return len(self._state.legs)

    def pjsua_calls(self) -> tuple[int, ...]:
        """The ids of every call pjsua holds, whoever owns it (a snapshot; for checks)."""
        endpoint = self._state.endpoint
        return tuple(endpoint.ep.utilCallIds()) if endpoint is not None else ()

    def status(self) -> AgentStatus:
        """A snapshot for /health and /metrics; safe from any thread."""
        state, counters = self._state, self._state.counters
        phases = {"routing": 0, "dialing": 0, "connected": 0}
        for bridge in tuple(state.bridges):  # a C-level copy: atomic under the GIL
            if bridge.phase in phases:
                phases[bridge.phase] += 1
        return AgentStatus(
            port=self._port,
            draining=state.stopping,
            library=self.library.describe(),
            call_slots=self.capacity.call_slots,
            bridge_capacity=self.capacity.bridges,
            bridges=phases,
            legs=len(state.legs),
            refused={reason: n for reason, n in self._intake.admission.refused.items()},
            invites=counters.invites,
            dtmf_relayed=counters.dtmf_relayed,
            answers=dict(counters.answers),
            auth_failures=dict(counters.auth_failures),
            setup=counters.setup,
            screened=dict(counters.screened),
            stray_calls=counters.stray_calls,
            media_refused=dict(counters.media_refused),
            failovers=dict(counters.failovers),
            attestations=dict(counters.attestations),
            checks_refused=dict(counters.checks_refused),
            recordings=self.recordings.in_progress,
            recording_bytes=self.recordings.bytes_written,
            recording_failures=self.recordings.failures,
            recording_error=self.recordings.last_error,
            recordings_directory=str(self.recordings.directory),
            recordings_writable=self.recordings.writable,
            fenced=state.fenced.is_set(),
            **self._lease_status(),
        )

    def _lease_status(self) -> dict[str, Any]:
        """The lease's part of the status; the defaults (no id, epoch 0) without one."""
        lease = self.lease
        if lease is None:
            return {}
        return {"agent_id": lease.name, "epoch": lease.epoch, "fences": lease.fences,
                "takeovers": lease.peers.takeovers, "takeover_calls": lease.peers.calls_closed}  # fmt: skip

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
        self._state.stop_requested.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else _HANGUP_WAIT + 10)
            self._thread = None

    def drain(self, timeout: float | None = None) -> int:
        """Stop taking calls (503 to INVITEs and OPTIONS) and wait up to ``timeout``
        (default ``drain_timeout``) for live calls to end on their own; returns how many
        are still up. ``stop()`` then hangs those up."""
        self._state.draining.set()
        deadline = time.monotonic() + (self.config.drain_timeout if timeout is None else timeout)
        while self.active_bridges and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.active_bridges

    def run(self) -> None:
        """Run in the foreground until ``stop()``, SIGINT (stop now) or SIGTERM (drain for
        up to ``drain_timeout``, then stop)."""
        ensure_open_files(self.capacity.open_files)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: self._state.stop_requested.set())
            signal.signal(signal.SIGTERM, lambda *_: self._begin_drain())
        self._main()
        if self._startup_error is not None:
            raise RuntimeError(
                f"SIP agent failed to start: {error_text(self._startup_error)}"
            ) from self._startup_error

    def _begin_drain(self) -> None:
        if self._state.draining.is_set():  # a second SIGTERM: stop now
            self._state.stop_requested.set()
            return
        self._state.draining.set()
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
        """The account to dial ``target_uri`` with (see :mod:`accounts`)."""
        assert self._state.endpoint is not None
        return self._accounts.for_target(self._state.endpoint, auth, target_uri, srtp)

    def relay_dtmf(self, to: Leg, digit: str, duration_ms: int) -> None:
        if send_dtmf(to, digit, duration_ms):
            self._state.counters.dtmf_relayed += 1

    def dial(self, bridge: Bridge, leg: Leg, prm: Any) -> None:
        """The one place a call leaves the agent (SPEC §4.6): the buyer leg of a live bridge
        the router sent to ``bridge.plan`` — its destination, nothing else, once. pjsua's
        dial gate (endpoint._close_doors) lets only this permitted URI through, so no REFER,
        redirect or other pjsua path can place a call. Raises ValueError otherwise."""
        plan = bridge.plan
        if plan is None or bridge not in self._state.bridges or bridge.phase != "dialing":
            raise ValueError("a call leaves only for the buyer of a live bridge")
        if bridge.outbound is not leg or leg.dialled:
            raise ValueError("a bridge dials its buyer once")
        assert self._state.endpoint is not None
        leg.dialled = True
        self._state.endpoint.ep.utilPermitDial(plan.target_uri)
        leg.makeCall(plan.target_uri, prm)

    def fail_over(
        self, bridge: Bridge, plan: BridgeTo, failed: Attempt, tried: tuple[str, ...]
    ) -> None:
        """Ask the router for the next buyer, off this thread (see :mod:`intake`)."""
        self._intake.fail_over(bridge, plan, failed, tried)

    def media_refused(self, party: str) -> None:
        self._state.counters.media_refused[party] += 1

    def new_leg(self, owner: LegOwner | None, account: Any, call_id: int) -> Leg:
        leg = Leg(owner, account, call_id, self._leg_disconnected)
        self._state.legs.add(leg)
        return leg

    def emit(self, event: CallEvent, recording: Future[RecordingOutcome] | None = None) -> None:
        self._delivery.emit(event, recording)

    def start_recording(self, uuid: str, answered: datetime) -> CallRecording:
        return self.recordings.start(uuid, answered)

    def refuse_recording(self, uuid: str, answered: datetime, why: str) -> CallRecording:
        return self.recordings.refuse(uuid, answered, why)

    def start_notice(self, path: str) -> Notice | str:
        return self._announcer.start(path)

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(fn)
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), timer))
        return timer

    def finished(self, bridge: Bridge) -> None:
        """A bridge is over: count its answer to the publisher and log the call once."""
        counters = self._state.counters
        self._state.bridges.discard(bridge)
        code = bridge.publisher_code
        if code is not None:
            counters.answers[code] += 1
        if bridge.answer_at is not None:
            counters.setup.observe((bridge.answer_at - bridge.invite_at).total_seconds())
        # a claimed reservation (the router logged the claim); the fields are built only when
        # the line is wanted: this runs on the pjsua2 thread for every call
        if bridge.plan is not None and log.isEnabledFor(logging.INFO):
            log.info("call ended", extra={
                "uuid": bridge.plan.reservation_uuid, "call_id": bridge.invite.call_id,
                "code": code, "buyer_code": bridge.buyer_code, "hangup_by": bridge.hangup_by,
                "duration": bridge.duration()})  # fmt: skip

    # -- agent thread ----------------------------------------------------------------------

    def _main(self) -> None:
        state = self._state
        self._intake.start()
        self._delivery.start()
        try:
            endpoint = state.endpoint = start_endpoint(self.config, self.capacity.call_slots)
            self._port = endpoint.port
            self._tls_port = endpoint.tls_port
            self._accounts.open(endpoint)
            endpoint.ep.select_account = self._accounts.select
            endpoint.ep.screen_request = self._intake.screen
            endpoint.ep.rejected_call = self._intake.rejected
            self._supervision.update_options_status()  # before the first probe can arrive
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
            while not state.stop_requested.is_set():
                self._poll()
                if self._drain_deadline is not None and (
                    not state.bridges or time.monotonic() >= self._drain_deadline
                ):
                    state.stop_requested.set()
            self._drain()
        finally:
            self._teardown()

    def _poll(self) -> None:
        endpoint = self._state.endpoint
        assert endpoint is not None
        wait = self.config.poll_ms
        if self._timers:
            wait = max(0, min(wait, int((self._timers[0][0] - time.monotonic()) * 1000)))
        endpoint.ep.libHandleEvents(wait)
        self._run_inbox()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                try:
                    timer.fn()
                except Exception:
                    log.exception("timer failed")
        self._delivery.flush()
        self._supervision.tick(now)

    def _fence(self) -> None:
        """The lease was taken over: every call is a peer's now (closed, its legs sent BYE).
        Hang all of them up with no event, so nothing is written twice (supervision.py)."""
        log.error("fenced: hanging up %d calls without recording them", len(self._state.bridges))
        for bridge in self._state.bridges:
            bridge.silent = True
        self._hang_up_all()

    def _hang_up_all(self) -> None:
        state = self._state
        for bridge in list(state.bridges):
            bridge.shut_down()
        for leg in list(state.legs):
            if leg.owner is None:
                respond(leg, 503, "Service Unavailable", state.retry_after)

    def _drain(self) -> None:
        """Hang up everything and keep polling until the calls are gone or time runs out."""
        state = self._state
        self._hang_up_all()
        deadline = time.monotonic() + _HANGUP_WAIT
        while (state.bridges or state.legs) and time.monotonic() < deadline:
            self._poll()
        if state.bridges or state.legs:
            log.warning("stop: %d bridges still alive after drain", len(state.bridges))

    def _teardown(self) -> None:
        """Release pjsua2 in the order it needs.

        Every ``Call`` Python object must be gone *before* libDestroy: pjsua2's ``~Call``
        touches pjsua state, and after libDestroy that is an assertion failure (abort).
        So: close the door to late router answers, run what is queued, let pjsip send the
        last BYEs, detach every leg from its controller, drop all references, collect,
        then shut the accounts and destroy the library.
        """
        state = self._state
        with self._lock:
            self._closed = True
        endpoint, state.endpoint = state.endpoint, None
        if endpoint is not None and endpoint.ep is not None:
            try:
                self._run_inbox()
                endpoint.ep.hangupAllCalls()
                for _ in range(20):  # let pjsip send the BYEs/CANCELs it just queued
                    endpoint.ep.libHandleEvents(10)
                self._run_inbox()
            except pj.Error:
                pass
        for bridge in state.bridges:
            bridge.detach()
        state.bridges.clear()
        for leg in state.legs:
            leg.owner = None
        state.legs.clear()
        self._timers.clear()
        while True:  # drop queued jobs (and the legs their closures hold)
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        gc.collect()
        self._accounts.shutdown()
        if endpoint is not None and endpoint.ep is not None:
            endpoint.ep.select_account = None
            endpoint.ep.screen_request = None
            endpoint.ep.rejected_call = None
            endpoint.destroy()
        self._intake.stop()
        self._delivery.stop()  # events are the call records: what is queued is delivered
        self.recordings.stop()
        self._release_lease()

    def _release_lease(self) -> None:
        """Stopped with every call recorded: free the lease (a restart elsewhere under the
        same id need not wait for it to go silent). Unless fenced: it is not ours."""
        if self.lease is None or self._state.fenced.is_set():
            return
        try:
            self.lease.release()
        except Exception as exc:  # the database is gone: peers will take it over
            log.warning("lease not released: %s", error_text(exc))

    def _post(self, job: Callable[[], None]) -> bool:
        """Any thread: run ``job`` on the agent thread; False when the agent has stopped."""
        with self._lock:
            if self._closed:
                return False
            self._inbox.put(job)
            return True

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

    def _leg_disconnected(self, leg: Leg) -> None:
        self._state.ended[leg.getId()] = time.monotonic()  # pjsua may hold it while its BYE goes
        # Drop the last reference only after the callback returned (see bridge.py).
        self._inbox.put(lambda: self._state.legs.discard(leg))
