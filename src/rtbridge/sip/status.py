"""A snapshot of a running SIP agent, for ``/health``, ``/metrics`` and logs.

Plain data so the HTTP side reads it without importing pjsua2; the agent builds one on
request from counters only its own thread writes (reads are safe under the GIL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Upper bounds (seconds) of the set-up time histogram: INVITE received to 200 sent, which
# includes the buyer's ringing, so it reaches well past a second.
SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SetupTimes:
    """A cumulative histogram, Prometheus-style; written by the agent thread only."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(SETUP_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.sum += seconds
        for i, bound in enumerate(SETUP_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count of observations <= le), +Inf last."""
        out, running = [], 0
        for bound, n in zip((*map(str, SETUP_BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(frozen=True)
class AgentStatus:
    port: int  # SIP port bound (UDP/TCP)
    draining: bool  # stopping, or fenced: new INVITEs get 503
    library: dict[str, Any]  # the linked pjsua2 (b2bua.library.Library.describe())
    call_slots: int  # pjsua call slots in use by this agent's configuration
    bridge_capacity: int  # bridged calls admitted at once
    bridges: dict[str, int] = field(default_factory=dict)  # alive now, by phase
    refused: dict[str, int] = field(default_factory=dict)  # 503s before routing, by reason
    invites: int = 0  # new INVITEs seen since start
    dtmf_relayed: int = 0  # DTMF digits relayed between legs since start
    answers: dict[int, int] = field(default_factory=dict)  # final codes sent to publishers
    setup: SetupTimes | None = None  # INVITE received -> 200 sent, answered calls
    auth_failures: dict[str, int] = field(default_factory=dict)  # refused by auth, by reason
    # requests the screen refused (sip/screen.py), by (why, method label)
    screened: dict[tuple[str, str], int] = field(default_factory=dict)
    stray_calls: int = 0  # pjsua calls no bridge owned, hung up
    media_refused: dict[str, int] = field(default_factory=dict)  # media moves refused, by party
    # buyer failures that asked for the next buyer, by kind
    failovers: dict[str, int] = field(default_factory=dict)
    attestations: dict[str, int] = field(default_factory=dict)  # routed INVITEs, by level
    checks_refused: dict[str, int] = field(default_factory=dict)  # 403s of INVITE checks
    # Call recordings (sip/b2bua/recorder.py): in progress now, stereo bytes written and
    # failures since start, the latest failure's words, where they go and whether the agent
    # could write there when it last looked (None: not yet)
    recordings: int = 0
    recording_bytes: int = 0
    recording_failures: int = 0
    recording_error: str = ""
    recordings_directory: str = ""
    recordings_writable: bool | None = None
    # pjsua calls the agent holds a Call object for: both legs of each bridge, and buyer legs
    # given up on (failover) until their CANCEL or BYE is through
    legs: int = 0
    agent_id: str = ""  # the agent's name in the site (its lease, its calls' records)
    epoch: int = 0  # its lease's epoch (storage/leases.py); 0 without one
    fenced: bool = False  # its lease was taken over: hanging up, then rejoining
    fences: int = 0  # times it was fenced since start
    takeovers: int = 0  # silent peers' leases it took over, and the calls that closed
    takeover_calls: int = 0

    @property
    def bridges_alive(self) -> int:
        return sum(self.bridges.values())

    def describe(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "epoch": self.epoch,
            "fenced": self.fenced,
            "takeovers": self.takeovers,
            "port": self.port,
            "draining": self.draining,
            "pjsua2": self.library,
            "call_slots": self.call_slots,
            "bridge_capacity": self.bridge_capacity,
            "bridges": self.bridges_alive,
            "bridges_by_phase": dict(self.bridges),
            "legs": self.legs,
            "refused": dict(self.refused),
            "invites": self.invites,
            "answers": {str(code): n for code, n in sorted(self.answers.items())},
            "auth_failures": dict(sorted(self.auth_failures.items())),
            "screened": _by_first(self.screened),
            "media_refused": dict(sorted(self.media_refused.items())),
            "failovers": dict(sorted(self.failovers.items())),
            "attestations": dict(sorted(self.attestations.items())),
            "checks_refused": dict(sorted(self.checks_refused.items())),
            "stray_calls": self.stray_calls,
            "dtmf_relayed": self.dtmf_relayed,
            "recordings": {
                "in_progress": self.recordings, "bytes": self.recording_bytes,
                "failures": self.recording_failures, "last_error": self.recording_error or None,
                "directory": self.recordings_directory, "writable": self.recordings_writable,
            },
        }  # fmt: skip


def _by_first(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    """Counts keyed by (why, method) summed by why, for /health."""
    out: dict[str, int] = {}
    for (why, _), n in counts.items():
        out[why] = out.get(why, 0) + n
    return dict(sorted(out.items()))
