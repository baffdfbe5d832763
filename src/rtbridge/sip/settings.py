"""Settings of the SIP agent: one typed object, built from TOML or a mapping, passed in.

Every key is documented once, in :data:`SUPPORTED_OPTIONS` (type, default, meaning), and
mirrored in ``sip_config/agent.toml``. Unknown keys and unsafe values are refused at load
time rather than discovered by pjsua2 later, where they would surface as an opaque
``pj.Error`` on the agent thread.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# The pjsua2-python 2.15.1 wheels are built with pjproject's default PJSUA_MAX_CALLS = 4;
# asking for more is silently capped (SPEC §8, re-measured by tests/sip/test_agent.py).
WHEEL_CALL_SLOTS = 4

SUPPORTED_OPTIONS: dict[str, tuple[str, str]] = {
    "domain": ("str", "SIP domain: realm of challenges, host of the agent's own URIs"),
    "hosts": ("list[str]", "IP literals to listen on (IPv4 and/or IPv6); UDP+TCP on each"),
    "port": ("int", "SIP port for every host and transport; 0 = pick a free one (tests)"),
    "udp": ("bool", "listen on UDP"),
    "tcp": ("bool", "listen on TCP"),
    "public_address": ("str", "address written in Contact/Via/SDP when behind NAT; '' = none"),
    "media_address": ("str", "IPv4 address RTP binds to and SDP advertises; '' = default route"),
    "codecs": ("list[str]", "codec ids offered/accepted, in order, e.g. 'PCMU/8000'; others off"),
    "rtp_port_min": ("int", "first RTP port; each call leg takes 2 (RTP+RTCP)"),
    "rtp_port_max": ("int", "last RTP port (exclusive)"),
    "max_calls": ("int", "pjsua call slots asked for (the 2.15.1 wheel caps at 4)"),
    "max_bridges": (
        "int",
        "bridged calls at once; 0 = (max_calls - 2) // 2, keeping 2 slots to refuse with 503",
    ),
    "ring_timeout": ("float", "seconds the buyer may ring before the call fails with 408"),
    "digest_algorithms": (
        "list[str]",
        "WWW-Authenticate algorithms offered, preferred first (MD5, SHA-256)",
    ),
    "retry_after": ("int", "Retry-After seconds on the 503 sent when at capacity"),
    "router_workers": ("int", "threads that run Router.route (database work)"),
    "clock_rate": ("int", "conference bridge clock in Hz; 8000 suits G.711 and costs least"),
    "poll_ms": ("int", "longest wait of one libHandleEvents call on the agent thread"),
    "drain_timeout": ("float", "seconds stop() waits for hung-up calls to finish"),
    "log_level": ("int", "pjsip log level (0-6) forwarded to the 'rtbridge.pjsip' logger"),
    "user_agent": ("str", "User-Agent / Server header value"),
}


@dataclass(frozen=True)
class AgentConfig:
    """How the SIP agent listens and how much it may carry. See SUPPORTED_OPTIONS."""

    domain: str = "sip.rtb.example.com"
    hosts: tuple[str, ...] = ("0.0.0.0",)
    port: int = 5060
    udp: bool = True
    tcp: bool = True
    public_address: str = ""
    media_address: str = ""
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    max_calls: int = WHEEL_CALL_SLOTS
    max_bridges: int = 0
    ring_timeout: float = 30.0
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    retry_after: int = 5
    router_workers: int = 4
    clock_rate: int = 8000
    poll_ms: int = 1
    drain_timeout: float = 2.0
    log_level: int = 1
    user_agent: str = "rtbridge"

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("hosts: at least one address to listen on")
        for host in self.hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"hosts: {host!r} is not an IP address") from None
        if self.media_address:
            try:
                ipaddress.IPv4Address(self.media_address)
            except ValueError:
                # The wheel has no IPv6 media (built without PJ_HAS_IPV6).
                raise ValueError("media_address: an IPv4 address") from None
        if not self.codecs:
            raise ValueError("codecs: at least one codec")
        if not 0 <= self.port <= 65535:
            raise ValueError("port: 0..65535")
        if not (self.udp or self.tcp):
            raise ValueError("udp/tcp: enable at least one transport")
        if not 1024 <= self.rtp_port_min < self.rtp_port_max <= 65536:
            raise ValueError("rtp_port_min/rtp_port_max: 1024 <= min < max <= 65536")
        if self.max_calls < 2:
            raise ValueError("max_calls: a bridge needs 2 call slots")
        if self.max_bridges < 0 or self.max_bridges * 2 > self.max_calls:
            raise ValueError("max_bridges: 0..max_calls // 2 (each bridge holds two legs)")
        if self.retry_after < 1 or self.router_workers < 1 or self.poll_ms < 1:
            raise ValueError("retry_after, router_workers and poll_ms must be >= 1")
        if self.clock_rate not in (8000, 16000, 32000, 44100, 48000):
            raise ValueError("clock_rate: one of 8000, 16000, 32000, 44100, 48000")
        if not 0 < self.ring_timeout <= 600:
            raise ValueError("ring_timeout: seconds, 0 < t <= 600")
        if not self.digest_algorithms or not set(self.digest_algorithms) <= {"MD5", "SHA-256"}:
            raise ValueError('digest_algorithms: a non-empty list of "MD5" and/or "SHA-256"')
        if not 0 <= self.log_level <= 6:
            raise ValueError("log_level: 0..6")

    @property
    def bridge_capacity(self) -> int:
        """Bridged calls admitted at once (two pjsua call slots each)."""
        # pjsua refuses an INVITE with a stateless 486 when every call slot is taken, before
        # any Python runs; keeping two slots free lets the agent answer 503 + Retry-After
        # (SPEC §4.5) instead. With the 2.15.1 wheel (4 slots) that is 1 bridged call.
        return self.max_bridges or max(1, (self.max_calls - 2) // 2)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AgentConfig:
        """Build from a TOML table; refuses unknown keys so a typo is not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SIP agent option(s): {', '.join(unknown)}")
        values = dict(data)
        for key in ("hosts", "codecs", "digest_algorithms"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def load_agent_config(path: Path) -> AgentConfig:
    """Read ``[agent]`` from a TOML file such as ``sip_config/agent.toml``."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return AgentConfig.from_mapping(data.get("agent", {}))
