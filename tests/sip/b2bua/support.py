"""The agent under test with a scripted router, and SIPp peers around it.

The router here is a test double on purpose: the agent's contract *is* the Router
interface (route -> Reject | BridgeTo, on_event), and the DB-backed router is tested on
its own. Everything SIP is real: pjsua2 on loopback sockets, SIPp on the other end, RTP too.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rtbridge.domain.failover import Attempt
from rtbridge.sip.b2bua.agent import Agent
from rtbridge.sip.router import (
    BridgeTo,
    CallEvent,
    Carried,
    Failover,
    IncomingInvite,
    Reject,
    SrtpMode,
)
from tests.sip.sipp import Sipp, hostport

UUID = "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30"
CALLER = "+12025550102"


@dataclass
class ScriptedRouter:
    """Answers every INVITE with ``decide(invite)``; records invites and events."""

    decide: Callable[[IncomingInvite], Reject | BridgeTo] = lambda _: Reject(404, "Not Found")
    gate: threading.Event | None = None  # when set: route() blocks until the gate opens
    invites: list[IncomingInvite] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)
    heartbeats: list[datetime] = field(default_factory=list)
    carried: list[Carried] = field(default_factory=list)  # what each heartbeat said was held
    lease_taken: bool = False  # heartbeats answer "fenced" while set; rejoin() clears it
    rejoins: int = 0
    hangups: set[str] = field(default_factory=set)  # reservations "an admin" asked to hang up
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def route(self, invite: IncomingInvite) -> Reject | BridgeTo:
        with self._cond:
            self.invites.append(invite)
            self._cond.notify_all()
        if self.gate is not None:
            self.gate.wait(15)
        return self.decide(invite)

    def next_buyer(self, plan: BridgeTo, failed: Attempt, tried: Sequence[str]) -> Failover:
        """No failover here (plans from ``bridge_to`` list no failure kinds); the database
        router's is tested in test_failover.py."""
        return Failover(recorded=False)

    def on_events(self, events: Sequence[CallEvent]) -> None:
        for event in events:
            self.on_event(event)

    def on_event(self, event: CallEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def heartbeat(self, at: datetime, carried: Carried) -> bool:
        """False while ``lease_taken`` (a test fences the agent by setting it)."""
        with self._cond:
            self.heartbeats.append(at)
            self.carried.append(carried)
            self._cond.notify_all()
            return not self.lease_taken

    def hangups_asked(self) -> frozenset[str]:
        """The reservations a test asks the agent to hang up (as an admin would)."""
        with self._cond:
            return frozenset(self.hangups)

    def rejoin(self) -> None:
        with self._cond:
            self.rejoins += 1
            self.lease_taken = False
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out; invites={self.invites} events={self.events}")

    def ended(self, timeout: float = 10.0) -> CallEvent:
        return self.first("ended", timeout)

    def recorded(self, timeout: float = 10.0) -> CallEvent:
        """The recording's outcome, which follows the call's "ended" event."""
        return self.first("recorded", timeout)

    def first(self, kind: str, timeout: float = 10.0) -> CallEvent:
        self.wait_for(lambda: any(e.kind == kind for e in self.events), timeout)
        return next(e for e in self.events if e.kind == kind)


def bridge_to(
    target: str, *, ring_timeout: float = 10.0, srtp: SrtpMode = "off"
) -> Callable[[IncomingInvite], BridgeTo]:
    def decide(invite: IncomingInvite) -> BridgeTo:
        return BridgeTo(
            reservation_uuid=invite.ruri_user,
            target_uri=target,
            caller_id=invite.from_user,
            headers=(
                ("X-RTB-UUID", invite.ruri_user),
                ("X-RTB-Tag-caller_zip", "10001"),
                ("X-RTB-Tag-evil", "x\r\nInjected: yes"),  # a publisher-supplied tag value
            ),
            ring_timeout=ring_timeout,
            srtp=srtp,
        )

    return decide


AgentFactory = Callable[..., tuple[Agent, ScriptedRouter]]
_spawned: list[Sipp] = []  # every SIPp a test starts; conftest kills them after it


def start_uac(tmp_path: Path, agent: Agent, scenario: str, **kw: object) -> Sipp:
    """A publisher SIPp on ``host`` calling the agent (on ``to``, default: the same family's
    loopback the agent listens on)."""
    host = str(kw.pop("host", "127.0.0.1"))
    to = str(kw.pop("to", "::1" if ":" in host else "127.0.0.1"))
    service = str(kw.pop("service", UUID))
    uac = Sipp(
        scenario, tmp_path, host=host, remote=hostport(to, agent.port), service=service, **kw
    )  # type: ignore[arg-type]
    _spawned.append(uac)
    return uac


def start_uas(tmp_path: Path, scenario: str, **kw: object) -> Sipp:
    uas = Sipp(scenario, tmp_path, **kw)  # type: ignore[arg-type]
    _spawned.append(uas)
    uas.wait_listening()
    return uas


def assert_ok(*results: object) -> None:
    for result in results:
        assert result.returncode == 0, result.log  # type: ignore[attr-defined]


def options(agent_port: int) -> str:
    """One OPTIONS probe, as a dispatcher sends it; the agent's first response line."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        port = sock.getsockname()[1]
        sock.sendto(
            (
                f"OPTIONS sip:127.0.0.1:{agent_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.monotonic_ns()}\r\n"
                f"From: <sip:probe@127.0.0.1:{port}>;tag=p\r\nTo: <sip:127.0.0.1:{agent_port}>\r\n"
                f"Call-ID: probe-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", agent_port),
        )
        return sock.recv(4096).decode(errors="replace")
