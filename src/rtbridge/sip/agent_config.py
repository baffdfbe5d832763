"""Settings of the SIP agent: one typed object, built from TOML or a mapping, passed in.

Every key is documented once, as a field of :class:`AgentConfig` (type, default, meaning;
:data:`SUPPORTED_OPTIONS` lists them), and mirrored in ``sip_config/agent.toml``. Unknown
keys and unsafe values are refused at load time rather than discovered by pjsua2 later,
where they would surface as an opaque ``pj.Error`` on the agent thread. Limits that depend
on the linked pjsua2 build (call slots, sockets) are checked against it by
:mod:`rtbridge.sip.capacity` at start.

Where the file comes from (:func:`config_path`): ``--sip-config``, else
``RTBRIDGE_SIP_CONFIG``, else none — the defaults below. Nothing is read implicitly from
the current directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_ENV = "RTBRIDGE_SIP_CONFIG"
SRTP_MODES = ("off", "optional", "required")


class AgentConfig(BaseModel):
    """How the SIP agent listens and how much it may carry: each field's description is its
    documentation (:data:`SUPPORTED_OPTIONS`, ``sip_config/agent.toml``)."""

    # Strict: a TOML "5060" for a port is refused, not coerced; lists may stay lists.
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )

    agent_id: str = ""
    """this agent's name in the site: its lease, its calls' records, logs, /health; unique per
    site; empty = hostname:port"""
    domain: str = "sip.rtb.example.com"
    """SIP domain: realm of challenges, host of the agent's own URIs"""
    hosts: tuple[str, ...] = Field(default=("0.0.0.0",), strict=False)
    """IP literals to listen on (IPv4 and/or IPv6); UDP+TCP on each"""
    port: int = 5060
    """SIP port for every host and transport; 0 = pick a free one (tests)"""
    udp: bool = True
    """listen on UDP"""
    tcp: bool = True
    """listen on TCP"""
    tls: bool = False
    """listen on TLS too (needs tls_cert_file and tls_key_file)"""
    tls_port: int = 5061
    """TLS port on every host; 0 = pick a free one (tests)"""
    tls_cert_file: str = ""
    """PEM certificate (chain) the TLS listener presents"""
    tls_key_file: str = ""
    """PEM private key of tls_cert_file"""
    tls_ca_file: str = ""
    """PEM CA bundle to verify TLS peers (buyers); '' = system default"""
    tls_verify_server: bool = True
    """refuse a buyer's TLS certificate that does not verify"""
    public_address: str = ""
    """address written in Contact/Via/SDP when behind NAT; '' = none"""
    media_address: str = ""
    """IPv4 address RTP binds to and SDP advertises; '' = any"""
    media_address6: str = ""
    """IPv6 address RTP binds to for IPv6 calls; '' = any"""
    codecs: tuple[str, ...] = Field(
        default=("PCMU/8000", "PCMA/8000", "G722/16000", "G729/8000"), strict=False
    )
    """codec ids offered/accepted, in order, e.g. 'PCMU/8000'; others off"""
    srtp: str = "optional"
    """publisher SRTP (SDES) offers: 'optional' = accept RTP or SRTP, 'off'"""
    rtp_port_min: int = 10000
    """first RTP port; each call leg takes 2 (RTP+RTCP)"""
    rtp_port_max: int = 20000
    """last RTP port (exclusive)"""
    max_calls: int = 0
    """pjsua call slots; 0 = all the linked build has (PJSUA_MAX_CALLS)"""
    max_bridges: int = 0
    """bridged calls admitted at once; 0 = what the call slots allow"""
    ring_timeout: float = 30.0
    """seconds a buyer may ring before it is given up on (408, or the next buyer); a buyer's
    own ring_timeout overrides it"""
    session_expires: int = 1800
    """RFC 4028 session interval offered on both legs; a leg whose refresh fails is ended"""
    min_se: int = 90
    """RFC 4028 Min-SE: the shortest session interval accepted (>= 90)"""
    rtp_timeout: float = 60.0
    """seconds a connected leg that has sent RTP may go silent before the call is ended; 0 = off"""
    heartbeat_interval: float = 2.0
    """seconds between the agent's heartbeats in the database: crash recovery ends calls there,
    and each heartbeat sweeps open calls no bridge carries (closed after 2 heartbeats)"""
    takeover_after: float = 0.0
    """seconds of heartbeat silence after which a live peer takes this agent's lease over and
    closes its calls; 0 = 3 heartbeats"""
    digest_algorithms: tuple[str, ...] = Field(default=("MD5", "SHA-256"), strict=False)
    """WWW-Authenticate algorithms offered, preferred first (MD5, SHA-256)"""
    retry_after: int = 5
    """Retry-After seconds on every 503 (capacity, rate limit, draining)"""
    invite_rate: float = 500.0
    """new INVITEs per second admitted from one source; 0 = no limit"""
    invite_burst: int = 1000
    """INVITEs one source may send at once above invite_rate"""
    request_rate: float = 2000.0
    """SIP requests of any method per second from one source (INVITEs, ACKs, BYEs... all
    count); above it out-of-dialog requests are dropped unanswered and in-dialog ones answered
    503, except ACK/BYE/CANCEL/PRACK; 0 = no limit"""
    request_burst: int = 4000
    """requests one source may send at once above request_rate"""
    rate_limit_exempt: tuple[str, ...] = Field(default=(), strict=False)
    """CIDRs the INVITE and request rate limits do not apply to"""
    trusted_proxies: tuple[str, ...] = Field(default=(), strict=False)
    """CIDRs of SIP proxies (Kamailio) whose source_header names the real sender"""
    source_header: str = "X-RTB-Source"
    """header a trusted proxy puts the sender's address in"""
    stir_ca_file: str = ""
    """PEM bundle of the STI-CA roots a PASSporT's certificate must chain to; '' = none, so
    every signed call is attested 'failed' (no roots)"""
    stir_https_ca_file: str = ""
    """PEM CA bundle to verify the HTTPS servers certificates (x5u) are fetched from; '' =
    system default"""
    stir_fetch_timeout: float = 2.0
    """seconds a certificate (x5u) fetch may take in all; a failure is remembered 60 s"""
    stir_fetch_networks: tuple[str, ...] = Field(default=(), strict=False)
    """CIDRs of private addresses certificates may be fetched from (none by default: an x5u at
    a loopback, private or link-local address is refused)"""
    stir_verstat_sources: tuple[str, ...] = Field(default=(), strict=False)
    """CIDRs (besides trunks) whose verstat parameter (RFC 8588 verification by an upstream
    SBC) is believed when the INVITE carries no Identity header"""
    router_workers: int = 4
    """threads that run Router.route (database work)"""
    max_routing: int = 0
    """INVITEs waiting for the router at once, beyond which 503; 0 = 32 per router worker"""
    clock_rate: int = 8000
    """conference bridge clock in Hz; 8000 suits G.711 and costs least"""
    poll_ms: int = 1
    """longest wait of one libHandleEvents call on the agent thread"""
    drain_timeout: float = 60.0
    """on SIGTERM: seconds live calls may run on (no new ones) before they are hung up"""
    memory_trim: bool = True
    """give the heap back to the OS (glibc malloc_trim) once the load has stayed below half
    its peak for 40 s, at most every 40 s, off the agent thread"""
    log_level: int = 1
    """pjsip log level (0-6) forwarded to the 'rtbridge.pjsip' logger"""
    user_agent: str = "rtbridge"
    """User-Agent / Server header value"""
    recordings_directory: str = ""
    """where recorded calls go (created 0700); '' = 'recordings' beside the SQLite database
    file, or in the working directory with PostgreSQL; the configuration file's [recordings]
    directory overrides it, and --recordings-dir both"""

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> AgentConfig:
        """Refused at load time rather than discovered by pjsua2 as an opaque pj.Error."""
        if not self.hosts:
            raise ValueError("hosts: at least one address to listen on")
        for host in self.hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"hosts: {host!r} is not an IP address") from None
        _check_address("media_address", self.media_address, ipaddress.IPv4Address)
        _check_address("media_address6", self.media_address6, ipaddress.IPv6Address)
        for name in ("rate_limit_exempt", "trusted_proxies", "stir_fetch_networks",
                     "stir_verstat_sources"):  # fmt: skip
            for cidr in getattr(self, name):
                try:
                    ipaddress.ip_network(cidr, strict=True)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}", self.source_header):
            raise ValueError("source_header: a header name (letters, digits, '-')")
        if not 0 <= self.drain_timeout <= 86400:
            raise ValueError("drain_timeout: seconds, 0..86400")
        if not self.codecs:
            raise ValueError("codecs: at least one codec")
        for name, port in (("port", self.port), ("tls_port", self.tls_port)):
            if not 0 <= port <= 65535:
                raise ValueError(f"{name}: 0..65535")
        if not (self.udp or self.tcp or self.tls):
            raise ValueError("udp/tcp/tls: enable at least one transport")
        if self.tls and not (self.tls_cert_file and self.tls_key_file):
            raise ValueError("tls: set tls_cert_file and tls_key_file (PEM) to listen on TLS")
        if self.srtp not in ("off", "optional"):
            raise ValueError('srtp: "optional" or "off" (buyers and publishers set "required")')
        if not 1024 <= self.rtp_port_min < self.rtp_port_max <= 65536:
            raise ValueError("rtp_port_min/rtp_port_max: 1024 <= min < max <= 65536")
        if self.max_calls < 0 or self.max_calls == 1:
            raise ValueError("max_calls: 0 (the build's) or >= 2 (a bridge needs two call slots)")
        if self.max_bridges < 0 or (self.max_calls and self.max_bridges * 2 > self.max_calls):
            raise ValueError("max_bridges: 0..max_calls // 2 (each bridge holds two legs)")
        if self.max_routing < 0:
            raise ValueError("max_routing: 0 (32 per router worker) or more")
        if self.retry_after < 1 or self.router_workers < 1 or self.poll_ms < 1:
            raise ValueError("retry_after, router_workers and poll_ms must be >= 1")
        if self.invite_rate < 0 or (self.invite_rate and self.invite_burst < 1):
            raise ValueError("invite_rate: >= 0 (0 = off); invite_burst: >= 1")
        if self.request_rate < 0 or (self.request_rate and self.request_burst < 1):
            raise ValueError("request_rate: >= 0 (0 = off); request_burst: >= 1")
        if self.clock_rate not in (8000, 16000, 32000, 44100, 48000):
            raise ValueError("clock_rate: one of 8000, 16000, 32000, 44100, 48000")
        if not 0 < self.ring_timeout <= 600:
            raise ValueError("ring_timeout: seconds, 0 < t <= 600")
        if not 90 <= self.min_se <= self.session_expires <= 86400:
            raise ValueError(
                "session_expires/min_se: seconds, 90 <= min_se <= session_expires <= 86400"
            )
        if not (self.rtp_timeout == 0 or 1 <= self.rtp_timeout <= 3600):
            raise ValueError("rtp_timeout: 0 (off) or seconds, 1..3600")
        if not 0.2 <= self.heartbeat_interval <= 60:
            raise ValueError("heartbeat_interval: seconds, 0.2..60")
        if self.takeover_after and not (2 * self.heartbeat_interval <= self.takeover_after <= 3600):
            raise ValueError("takeover_after: 0 (3 heartbeats) or seconds, 2 heartbeats..3600")
        if self.agent_id and not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9._:@\-\[\]]{0,127}", self.agent_id
        ):
            raise ValueError(
                "agent_id: up to 128 letters, digits and . _ : @ - [ ] (no spaces), "
                "starting with a letter or digit"
            )
        if not self.digest_algorithms or not set(self.digest_algorithms) <= {"MD5", "SHA-256"}:
            raise ValueError('digest_algorithms: a non-empty list of "MD5" and/or "SHA-256"')
        if not 0.1 <= self.stir_fetch_timeout <= 10:
            raise ValueError("stir_fetch_timeout: seconds, 0.1..10")
        if not 0 <= self.log_level <= 6:
            raise ValueError("log_level: 0..6")
        return self

    @property
    def lease_timeout(self) -> float:
        """``takeover_after`` in seconds, its default applied."""
        return self.takeover_after or 3 * self.heartbeat_interval

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AgentConfig:
        """Build from a TOML table; refuses unknown keys so a typo is not silently ignored."""
        unknown = sorted(set(data) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown SIP agent option(s): {', '.join(unknown)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError("; ".join(_problems(exc))) from None


def _problems(exc: ValidationError) -> list[str]:
    """The checks' own words (``hosts: ...``), or ``name: pydantic's`` for a wrong type."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        if error["type"] == "value_error":
            out.append(str(error.get("ctx", {}).get("error", error["msg"])))
        else:
            out.append(f"{'.'.join(map(str, error['loc']))}: {error['msg']}")
    return out


_TYPE_NAMES = {str: "str", int: "int", bool: "bool", float: "float"}

# name -> (type, meaning): what sip_config/agent.toml documents for each option.
SUPPORTED_OPTIONS: dict[str, tuple[str, str]] = {
    name: (_TYPE_NAMES.get(info.annotation, "list[str]"), info.description or "")  # type: ignore[arg-type]
    for name, info in AgentConfig.model_fields.items()
}


def _check_address(name: str, value: str, kind: type) -> None:
    if value:
        try:
            kind(value)
        except ValueError:
            family = "IPv4" if kind is ipaddress.IPv4Address else "IPv6"
            raise ValueError(f"{name}: an {family} address, got {value!r}") from None


def load_agent_config(path: Path) -> AgentConfig:
    """Read ``[agent]`` from a TOML file such as ``sip_config/agent.toml``."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"SIP agent options: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    try:
        return AgentConfig.from_mapping(data.get("agent", {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def config_path(flag: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The options file: ``--sip-config``, else ``$RTBRIDGE_SIP_CONFIG``, else None."""
    env = os.environ if env is None else env
    chosen = flag or env.get(CONFIG_ENV) or None
    return Path(chosen) if chosen else None
