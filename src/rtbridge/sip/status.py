"""A snapshot of a running SIP agent, for ``/health``, ``/metrics`` and logs.

Plain data so the HTTP side reads it without importing pjsua2; the agent builds one on
request from counters only its own thread writes (reads are safe under the GIL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentStatus:
    port: int  # SIP port bound (UDP/TCP)
    draining: bool  # stopping: new INVITEs get 503
    library: dict[str, Any]  # the linked pjsua2 (b2bua.library.Library.describe())
    call_slots: int  # pjsua call slots in use by this agent's configuration
    bridge_capacity: int  # bridged calls admitted at once
    bridges: dict[str, int] = field(default_factory=dict)  # alive now, by phase
    refused: dict[str, int] = field(default_factory=dict)  # 503s before routing, by reason
    invites: int = 0  # new INVITEs seen since start
    dtmf_relayed: int = 0  # DTMF digits relayed between legs since start

    @property
    def bridges_alive(self) -> int:
        return sum(self.bridges.values())

    def describe(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "draining": self.draining,
            "pjsua2": self.library,
            "call_slots": self.call_slots,
            "bridge_capacity": self.bridge_capacity,
            "bridges": self.bridges_alive,
            "bridges_by_phase": dict(self.bridges),
            "refused": dict(self.refused),
            "invites": self.invites,
            "dtmf_relayed": self.dtmf_relayed,
        }
