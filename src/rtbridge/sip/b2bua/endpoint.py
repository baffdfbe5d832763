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
import ctypes
import ipaddress
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from rtbridge.sip import screen
from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.messages import split_host_port
from rtbridge.sip.router import OutboundAuth, SrtpMode

log = logging.getLogger("rtbridge.sip")
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
    """pjsua2's Endpoint with its callbacks forwarded to the agent's hooks (None: not hooked
    in yet, during start-up and teardown)."""

    def __init__(self) -> None:
        super().__init__()
        self.select_account: Callable[[Any], None] | None = None
        self.screen_request: Callable[[Any], None] | None = None
        self.rejected_call: Callable[[Any], None] | None = None

    def onSelectAccount(self, prm: Any) -> None:
        _forward(self.select_account, prm, "onSelectAccount")

    def onRejectedIncomingCall(self, prm: Any) -> None:
        """An INVITE pjsua answered by itself (every call slot taken: 503, patch 0001)."""
        _forward(self.rejected_call, prm, "onRejectedIncomingCall")

    def onRequestScreen(self, prm: Any) -> None:
        """Every new request (pjproject/patches/0006). Before the agent hooks in (start-up)
        nothing but OPTIONS can usefully arrive; a request the screen fails on is dropped
        unless it completes or ends a call: closed is the safe side of a bug here."""
        failed = not _forward(self.screen_request, prm, "onRequestScreen")
        if failed and prm.method not in ("ACK", "BYE", "CANCEL", "PRACK"):
            prm.code = -1


def _forward(hook: Callable[[Any], None] | None, prm: Any, name: str) -> bool:
    """Run an agent hook from a pjsua2 callback; False when it raised (logged): an exception
    must never unwind into C."""
    try:
        if hook is not None:
            hook(prm)
        return True
    except Exception:
        logging.getLogger("rtbridge.sip.b2bua.endpoint").exception("%s failed", name)
        return False


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
    tls_port: int = 0  # the TLS port bound, 0 without TLS

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


def _quiet_until_log_writer() -> None:
    """pjlib logs to stdout at level 5 from libCreate until libInit installs our writer
    (plain text beside the JSON logs). pjsua2 has no call for that window, so set pjlib's
    level through its C symbol; libInit then sets the configured one."""
    import _pjsua2  # type: ignore[import-not-found]  # the SWIG extension, pjlib inside

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(_pjsua2.__file__).pj_log_set_level(0)


def start_endpoint(config: AgentConfig, call_slots: int) -> Endpoint:
    """Create, configure and start pjsua2 on the calling thread; returns its handle."""
    ep = _PjEndpoint()
    _quiet_until_log_writer()
    ep.libCreate()
    writer = _LogWriter()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.uaConfig.mainThreadOnly = True
    epc.uaConfig.maxCalls = call_slots
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
        _close_doors(ep)
        _select_codecs(ep, config.codecs)
        _create_transports(handle, config)
        ep.libStart()
    except Exception as exc:
        handle.destroy()
        # pjsua2's Endpoint is a process-wide singleton until its Python object is freed,
        # and the error's traceback holds frames whose locals hold it (pjsua2.py's own
        # wrappers: ``self``) for as long as someone keeps the error: a later Endpoint()
        # would then abort the process. The error's text stays; those locals go.
        _release_frames(exc)
        del ep
        raise
    return handle


def _close_doors(ep: Any) -> None:
    """What the agent serves and dials, and nothing else (SPEC §4.6; sip/screen.py).

    The dial gate: pjsua places a call only to the URI the agent permitted for the buyer
    leg it is dialling (Agent.dial), so a REFER, a redirect or any pjsua path the agent did
    not take cannot make it dial. The capability headers: Allow, Accept and Supported say
    what the screen lets through, not what pjsua's presence, pager and REFER modules could
    do. A pjsua2 without rtbridge's patch 0006 has neither: the agent must not face the
    internet on it, so it does not start."""
    if not hasattr(ep, "utilDialGate"):
        raise RuntimeError(
            "the linked pjsua2 lacks rtbridge's request screen and dial gate "
            "(pjproject/patches/0006): run scripts/install to build it"
        )
    ep.utilDialGate(True)
    ep.utilSetCapability(pj.PJSIP_H_ALLOW, pj.StringVector(screen.ALLOW))
    ep.utilSetCapability(pj.PJSIP_H_ACCEPT, pj.StringVector(screen.ACCEPT))
    ep.utilSetCapability(pj.PJSIP_H_SUPPORTED, pj.StringVector(screen.SUPPORTED))


def _release_frames(exc: BaseException | None) -> None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)  # frames still running are left alone
        exc = exc.__cause__ or exc.__context__


def _select_codecs(ep: Any, wanted: tuple[str, ...]) -> None:
    """Enable only ``wanted`` codecs, first = preferred.

    A B2BUA transcodes through the conference bridge; offering codecs nobody asked for
    would only invite costlier ones. Priority 0 disables a codec in pjmedia. A wanted codec
    the build lacks is logged, not fatal, as long as one is left.
    """
    available = [info.codecId for info in ep.codecEnum2()]
    for codec_id in available:
        ep.codecSetPriority(codec_id, 0)
    enabled = 0
    for rank, prefix in enumerate(wanted):
        matches = [c for c in available if c.lower().startswith(prefix.lower())]
        if not matches:
            log.warning("codec %s is not in this pjsua2 build (have %s)", prefix, available)
        for codec_id in matches:
            ep.codecSetPriority(codec_id, 255 - rank)
            _relay_settings(ep, codec_id)
            enabled += 1
    if not enabled:
        raise ValueError(f"codecs: none of {wanted} is available (have {available})")


def _relay_settings(ep: Any, codec_id: str) -> None:
    """A B2BUA relays: no packet-loss concealment, comfort noise or VAD of its own — the
    far ends do that for what they hear, and PLC's history copy was a visible part of the
    conference clock's time with hundreds of calls (gdb samples)."""
    with contextlib.suppress(pj.Error):
        param = ep.codecGetParam(codec_id)
        param.setting.plc = False
        param.setting.vad = False
        param.setting.cng = False
        ep.codecSetParam(codec_id, param)


def _create_transports(handle: Endpoint, config: AgentConfig) -> None:
    """UDP/TCP (and TLS) on every host. With port 0 the first transport picks a free port and
    the others take the same one, which another process may hold on TCP: then start over."""
    for attempt in range(5):
        try:
            _create_transports_once(handle, config)
            return
        except pj.Error as exc:
            in_use = "already in use" in str(exc.info()).lower()
            for transport in handle.transports:
                with contextlib.suppress(pj.Error):
                    handle.ep.transportClose(transport.tid)
            handle.transports.clear()
            if in_use and config.port == 0 and attempt < 4:
                continue
            if in_use:
                ports = f"SIP port {config.port}" + (
                    f" or TLS port {config.tls_port}" if config.tls else ""
                )
                raise OSError(
                    f"{ports} is already in use on {', '.join(config.hosts)}: stop the process "
                    "holding it, or listen elsewhere (--sip HOST:PORT, or port/tls_port in the SIP "
                    "config), or run without the SIP agent (--sip off)"
                ) from None
            raise


def _create_transports_once(handle: Endpoint, config: AgentConfig) -> None:
    port = config.port
    kinds: list[tuple[str, int, int]] = []  # (name, IPv4 kind, IPv6 kind)
    if config.udp:
        kinds.append(("UDP", pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_UDP6))
    if config.tcp:
        kinds.append(("TCP", pj.PJSIP_TRANSPORT_TCP, pj.PJSIP_TRANSPORT_TCP6))
    for host in config.hosts:
        v6 = ipaddress.ip_address(host).version == 6
        for name, v4_kind, v6_kind in kinds:
            tc = _transport_config(config, host, port)
            tid = handle.ep.transportCreate(v6_kind if v6 else v4_kind, tc)
            local_host, local_port = split_host_port(handle.ep.transportGetInfo(tid).localName)
            handle.transports.append(Transport(tid, name, v6, local_host, local_port))
            # Port 0 means "any": take what the first transport got for all the others,
            # so UDP and TCP (and v4/v6) share one SIP port as peers expect.
            port = port or local_port
    handle.port = port
    if config.tls:
        tls_port = config.tls_port
        for host in config.hosts:
            v6 = ipaddress.ip_address(host).version == 6
            tc = _transport_config(config, host, tls_port)
            tc.tlsConfig.certFile = config.tls_cert_file
            tc.tlsConfig.privKeyFile = config.tls_key_file
            if config.tls_ca_file:
                tc.tlsConfig.CaListFile = config.tls_ca_file
            tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD  # TLS 1.2 or newer
            tc.tlsConfig.verifyServer = config.tls_verify_server
            tc.tlsConfig.verifyClient = False  # publishers authenticate by IP or digest
            tid = handle.ep.transportCreate(
                pj.PJSIP_TRANSPORT_TLS6 if v6 else pj.PJSIP_TRANSPORT_TLS, tc
            )
            local_host, local_port = split_host_port(handle.ep.transportGetInfo(tid).localName)
            handle.transports.append(Transport(tid, "TLS", v6, local_host, local_port))
            tls_port = tls_port or local_port
        handle.tls_port = tls_port


def _transport_config(config: AgentConfig, host: str, port: int) -> Any:
    tc = pj.TransportConfig()
    tc.port = port
    # An unspecified address binds every interface; pjsip wants "" for that.
    tc.boundAddress = "" if ipaddress.ip_address(host).is_unspecified else host
    if config.public_address:
        tc.publicAddress = config.public_address
    return tc


_SRTP_USE = {
    "off": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "required": pj.PJMEDIA_SRTP_MANDATORY,
}


def account_config(
    config: AgentConfig,
    *,
    auth: OutboundAuth | None = None,
    bound: Transport | None = None,
    srtp: SrtpMode = "off",
    ipv6_media: bool = True,
) -> Any:
    """AccountConfig for one of the agent's (non-registering) identities.

    ``auth``: credentials for buyers/trunks that challenge. ``bound``: an IPv6 transport the
    account is bound to, with a forced Contact on it — the account the agent answers IPv6
    requests with (onSelectAccount) and dials IPv6 targets from; its media is IPv6 too.
    ``srtp``: SDES-SRTP for the calls of this account — "optional" answers an SRTP offer
    with SRTP and a plain one plainly, and offers RTP/AVP with crypto attributes;
    "required" offers and accepts RTP/SAVP only (488 otherwise). Keys travel in the SDP,
    so they are secret only when the signalling is TLS; that is the publisher's or buyer's
    choice (``srtpSecureSignaling = 0``), not something the agent can enforce for them.
    ``ipv6_media``: the build has PJ_HAS_IPV6 (the PyPI wheel does not, and pjsua_acc_add
    asserts on ipv6Use there).
    """
    acfg = pj.AccountConfig()
    user = auth.username if auth else "rtbridge"
    acfg.idUri = f"sip:{user}@{config.domain}"
    if bound is not None:
        acfg.sipConfig.transportId = bound.tid
        acfg.sipConfig.contactForced = (
            f"<sip:{user}@[{bound.host}]:{bound.port};transport={bound.kind.lower()}>"
        )
    acfg.natConfig.contactRewriteUse = 0
    acfg.natConfig.viaRewriteUse = 0
    acfg.natConfig.sdpNatRewriteUse = 0
    acfg.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
    acfg.natConfig.sipOutboundUse = 0  # no RFC 5626 ";ob" Contact: we are not a client
    media = acfg.mediaConfig
    media.transportConfig.port = config.rtp_port_min
    # pjsua's cursor gives RTP ports min, min + 2, ... up to min + portRange, each with its
    # RTCP port next to it: the last pair must end below rtp_port_max (exclusive).
    media.transportConfig.portRange = config.rtp_port_max - config.rtp_port_min - 2
    bound_media = config.media_address6 if bound is not None else config.media_address
    if bound_media:
        media.transportConfig.boundAddress = bound_media
    if config.public_address:
        media.transportConfig.publicAddress = config.public_address
    # Media family: IPv6 on the accounts bound to IPv6 transports, IPv4 on the others. Never
    # a "preference": for an offer of its own (the buyer leg) pjsua then asks pj_gethostip()
    # for an IPv6 address, which resolves the host name through DNS — seconds per call on
    # a host whose name has no AAAA record, with the pjsua2 thread blocked (measured: 408s
    # at 100 calls/s). An offer received is answered in the family of its c= line whatever
    # is set here, unless IPv6 is disabled.
    if bound is not None and ipv6_media:
        media.ipv6Use = pj.PJSUA_IPV6_ENABLED_USE_IPV6_ONLY
        acfg.sipConfig.ipv6Use = pj.PJSUA_IPV6_ENABLED_PREFER_IPV6
    else:
        media.ipv6Use = pj.PJSUA_IPV6_DISABLED
    media.srtpUse = _SRTP_USE[srtp]
    media.srtpSecureSignaling = 0
    if srtp != "off":
        media.srtpOpt.keyings = pj.IntVector([pj.PJMEDIA_SRTP_KEYING_SDES])
    # RFC 4028 on both legs: our INVITE to the buyer offers Session-Expires, our 200 to a
    # publisher that supports timers answers with one; a refresh that fails ends the leg
    # (and so the bridge). Peers without timer support are covered by rtp_timeout.
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_OPTIONAL
    acfg.callConfig.timerSessExpiresSec = config.session_expires
    acfg.callConfig.timerMinSESec = config.min_se
    if auth is not None:
        # dataType 1 = PJSIP_CRED_DATA_DIGEST: the data is HA1, valid for that realm only.
        cred = pj.AuthCredInfo(
            "digest", auth.realm, auth.username, 1 if auth.hashed else 0, auth.password
        )
        acfg.sipConfig.authCreds.append(cred)
    return acfg
