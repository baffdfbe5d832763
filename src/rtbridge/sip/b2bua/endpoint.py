"""pjsua2 Endpoint setup: library init, transports, accounts, teardown.

Choices and why (pjproject docs ``pjsua2/general_concept.rst``; SPEC §8):

- ``threadCnt = 0`` and ``mainThreadOnly = True``: pjsip runs no worker threads of its own;
  the agent thread polls ``libHandleEvents`` and every pjsua2 callback runs there. Python
  callbacks from pjsip's threads would contend for the GIL and race the agent's state.
- Null audio device: a server has no sound card, and the conference bridge still needs a
  clock. ``clockRate = 8000`` matches G.711 and costs ~4x less CPU than the 16 kHz default.
- VAD off: a B2BUA relays audio; suppressing "silence" would drop the far end's comfort
  noise and make RTP timeouts look like hang-ups on some SBCs.
- NAT rewriting off: the agent is a server with a fixed address; rewriting Contact/Via from
  responses is for clients behind NAT.
- Log output goes to Python logging through a LogWriter kept alive until after
  ``libDestroy`` (pjsip logs while it tears down).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from rtbridge.sip.messages import split_host_port
from rtbridge.sip.router import OutboundAuth
from rtbridge.sip.settings import AgentConfig

_pjsip_log = logging.getLogger("rtbridge.pjsip")
# pjsip levels: 1 error, 2 warning, 3 info, 4+ debug.
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """Forwards pjsip log lines to the ``rtbridge.pjsip`` logger."""

    def write(self, entry: Any) -> None:
        # A logging failure must never unwind into C.
        with contextlib.suppress(Exception):
            _pjsip_log.log(_LEVELS.get(entry.level, logging.DEBUG), "%s", entry.msg.rstrip())


class _PjEndpoint(pj.Endpoint):  # type: ignore[misc]
    """pjsua2's Endpoint with the account-selection hook forwarded to the agent."""

    def __init__(self) -> None:
        super().__init__()
        self.select_account: Callable[[Any], None] | None = None

    def onSelectAccount(self, prm: Any) -> None:
        try:
            if self.select_account is not None:
                self.select_account(prm)
        except Exception:
            logging.getLogger("rtbridge.sip.endpoint").exception("onSelectAccount failed")


@dataclass(frozen=True)
class Transport:
    """One SIP listener as pjsip reports it."""

    tid: int
    kind: str  # "UDP" or "TCP"
    ipv6: bool
    host: str
    port: int


@dataclass
class Endpoint:
    """A started pjsua2 library with its transports; owned by the agent thread."""

    ep: Any
    log_writer: Any
    transports: list[Transport] = field(default_factory=list)
    port: int = 0  # the SIP port actually bound (useful when the config asked for 0)

    def ipv6_transport(self, kind: str) -> Transport | None:
        for transport in self.transports:
            if transport.ipv6 and transport.kind == kind:
                return transport
        return None

    def destroy(self) -> None:
        """Tear the library down explicitly (the GC must not decide when C state goes)."""
        try:
            self.ep.libDestroy()
        finally:
            self.ep = None


def start_endpoint(config: AgentConfig) -> Endpoint:
    """Create, configure and start pjsua2 on the calling thread; returns its handle."""
    ep = _PjEndpoint()
    ep.libCreate()
    writer = _LogWriter()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.uaConfig.mainThreadOnly = True
    epc.uaConfig.maxCalls = config.max_calls
    epc.uaConfig.userAgent = config.user_agent
    epc.logConfig.level = config.log_level
    # The writer replaces pjsip's console output, so consoleLevel decides what reaches it.
    epc.logConfig.consoleLevel = config.log_level
    epc.logConfig.writer = writer
    epc.logConfig.decor = 0
    epc.medConfig.clockRate = config.clock_rate
    epc.medConfig.sndClockRate = config.clock_rate
    epc.medConfig.channelCount = 1
    epc.medConfig.noVad = True
    epc.medConfig.ecTailLen = 0
    epc.medConfig.threadCnt = 1
    ep.libInit(epc)
    ep.audDevManager().setNullDev()
    handle = Endpoint(ep=ep, log_writer=writer)
    try:
        _select_codecs(ep, config.codecs)
        _create_transports(handle, config)
        ep.libStart()
    except Exception:
        handle.destroy()
        raise
    return handle


def _select_codecs(ep: Any, wanted: tuple[str, ...]) -> None:
    """Enable only ``wanted`` codecs, first = preferred.

    A B2BUA transcodes through the conference bridge; offering speex/iLBC/G.722 to buyers
    would only invite costlier codecs. Priority 0 disables a codec in pjmedia.
    """
    available = [info.codecId for info in ep.codecEnum2()]
    for codec_id in available:
        ep.codecSetPriority(codec_id, 0)
    enabled = 0
    for rank, prefix in enumerate(wanted):
        for codec_id in available:
            if codec_id.lower().startswith(prefix.lower()):
                ep.codecSetPriority(codec_id, 255 - rank)
                enabled += 1
    if not enabled:
        raise ValueError(f"codecs: none of {wanted} is available (have {available})")


def _create_transports(handle: Endpoint, config: AgentConfig) -> None:
    port = config.port
    kinds: list[tuple[str, int, int]] = []  # (name, IPv4 kind, IPv6 kind)
    if config.udp:
        kinds.append(("UDP", pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_UDP6))
    if config.tcp:
        kinds.append(("TCP", pj.PJSIP_TRANSPORT_TCP, pj.PJSIP_TRANSPORT_TCP6))
    for host in config.hosts:
        v6 = ipaddress.ip_address(host).version == 6
        for name, v4_kind, v6_kind in kinds:
            tc = pj.TransportConfig()
            tc.port = port
            # An unspecified address binds every interface; pjsip wants "" for that.
            tc.boundAddress = "" if ipaddress.ip_address(host).is_unspecified else host
            if config.public_address:
                tc.publicAddress = config.public_address
            tid = handle.ep.transportCreate(v6_kind if v6 else v4_kind, tc)
            local_host, local_port = split_host_port(handle.ep.transportGetInfo(tid).localName)
            handle.transports.append(Transport(tid, name, v6, local_host, local_port))
            # Port 0 means "any": take what the first transport got for all the others,
            # so UDP and TCP (and v4/v6) share one SIP port as peers expect.
            port = port or local_port
    handle.port = port


def account_config(
    config: AgentConfig, auth: OutboundAuth | None = None, ipv6: Transport | None = None
) -> Any:
    """AccountConfig for the agent's (non-registering) identity.

    ``auth``: credentials for buyers/trunks that challenge. ``ipv6``: bind the account to
    that IPv6 transport. The 2.15.1 wheel is built without PJ_HAS_IPV6: an account with
    ``ipv6Use`` enabled aborts the process (assertion in pjsua_acc_add), and an ordinary
    account's transport selector is IPv4-only, so it can neither build a Contact for nor
    send a response over an IPv6 transport. An account *bound* to the IPv6 transport with a
    forced Contact does both; the agent picks it for IPv6 requests (onSelectAccount) and
    IPv6 targets.
    """
    acfg = pj.AccountConfig()
    user = auth.username if auth else "rtbridge"
    acfg.idUri = f"sip:{user}@{config.domain}"
    if ipv6 is not None:
        acfg.sipConfig.transportId = ipv6.tid
        acfg.sipConfig.contactForced = (
            f"<sip:{user}@[{ipv6.host}]:{ipv6.port};transport={ipv6.kind.lower()}>"
        )
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    acfg.natConfig.sdpNatRewriteUse = 0
    acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.sipOutboundUse = 0  # no RFC 5626 ";ob" Contact: we are not a client
    acfg.mediaConfig.transportConfig.port = config.rtp_port_min
    acfg.mediaConfig.transportConfig.portRange = config.rtp_port_max - config.rtp_port_min
    if config.media_address:
        acfg.mediaConfig.transportConfig.boundAddress = config.media_address
    if config.public_address:
        acfg.mediaConfig.transportConfig.publicAddress = config.public_address
    # mediaConfig.ipv6Use / sipConfig.ipv6Use stay DISABLED: the 2.15.1 wheel is built without
    # PJ_HAS_IPV6 and pjsua_acc_add *asserts* (aborts the process) on anything else. IPv6
    # signalling still works through UDP6/TCP6 transports; media stays IPv4.
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
    if auth is not None:
        # dataType 1 = PJSIP_CRED_DATA_DIGEST: the data is HA1, valid for that realm only.
        cred = pj.AuthCredInfo(
            "digest", auth.realm, auth.username, 1 if auth.hashed else 0, auth.password
        )
        acfg.sipConfig.authCreds.append(cred)
    return acfg
