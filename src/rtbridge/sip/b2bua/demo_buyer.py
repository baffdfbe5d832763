"""``rtbridge demo-buyer``: a buyer that answers, so the demo's first call is bridged.

A demo tool, not a buyer to deploy: it answers every INVITE (180, then 200), sends each
call's audio straight back to where it came from, and ends a call when the other side sends
BYE. A caller therefore hears itself only if its audio crossed the agent to the buyer *and*
back: the easiest proof that the bridge carries audio both ways. The echo is the call's
``AudioMedia`` transmitting to itself through pjsua's conference bridge (decoded and
encoded again, so the caller may be offered any codec the agent speaks).

It runs in its own process because pjsua2 allows one Endpoint per process (``rtbridge
serve``'s agent owns its own), and it is set up like the agent (``endpoint.py``): no pjsip
threads, ``libHandleEvents`` polled on this thread, the null audio device.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import signal
import socket
import threading
from types import FrameType
from typing import Any

import pjsua2 as pj

from rtbridge.sip.agent_config import AgentConfig
from rtbridge.sip.b2bua.endpoint import Endpoint, account_config, start_endpoint
from rtbridge.sip.b2bua.library import linked_library

_POLL_MS = 10

log = logging.getLogger("rtbridge.demo_buyer")


class _EchoCall(pj.Call):  # type: ignore[misc]
    """One answered call: its audio goes back out, its RTP counts are kept for the log."""

    def __init__(self, buyer: DemoBuyer, account: Any, call_id: int) -> None:
        super().__init__(account, call_id)
        self._buyer = buyer
        self.rtp_in = 0
        self.rtp_out = 0

    def onCallMediaState(self, prm: Any) -> None:
        try:
            info = self.getInfo()  # held: its media vector dangles once it is freed (SWIG)
            for media in info.media:
                active = media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                if media.type == pj.PJMEDIA_TYPE_AUDIO and active:
                    audio = self.getAudioMedia(media.index)
                    audio.startTransmit(audio)  # the echo
        except Exception:  # never unwind into C
            log.exception("connecting the echo failed")

    def onStreamDestroyed(self, prm: Any) -> None:
        """Called while the stream still exists (pjsua2 calls it before the DISCONNECTED
        state, and on a re-INVITE that replaces the stream): the last chance to count."""
        try:
            stat = self.getStreamStat(prm.streamIdx)
        except pj.Error:
            return
        self.rtp_in += stat.rtcp.rxStat.pkt
        self.rtp_out += stat.rtcp.txStat.pkt

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self._buyer.ended(self, info)
        except Exception:  # never unwind into C
            log.exception("a call's state change failed")


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, buyer: DemoBuyer) -> None:
        super().__init__()
        self._buyer = buyer

    def onIncomingCall(self, prm: Any) -> None:
        try:
            self._buyer.answer(_EchoCall(self._buyer, self, prm.callId))
        except Exception:  # never unwind into C
            log.exception("answering a call failed")


class DemoBuyer:
    """The answering machine: :meth:`run` listens on ``host:port`` (IPv4, UDP and TCP)
    until :meth:`stop` (SIGINT or SIGTERM under :func:`run`)."""

    def __init__(self, host: str, port: int) -> None:
        self.config = AgentConfig(hosts=(host,), port=port, srtp="off")
        self._calls: list[_EchoCall] = []
        self._ended: list[_EchoCall] = []
        self._stop = threading.Event()
        self._endpoint: Endpoint | None = None
        self._account: _Account | None = None
        self.port = 0  # bound, once listening (the one asked for unless it was 0)

    def answer(self, call: _EchoCall) -> None:
        """180 then 200 at once: the agent relays the ringing, then bridges."""
        self._calls.append(call)
        for code in (180, 200):
            prm = pj.CallOpParam(True)
            prm.statusCode = code
            prm.opt.textCount = 0  # audio only
            call.answer(prm)

    def ended(self, call: _EchoCall, info: Any) -> None:
        """One log line per call; the call object is let go after the poll returns (a
        pjsua2 ``Call`` must not be destroyed inside its own callback)."""
        seconds = info.connectDuration.sec + info.connectDuration.msec / 1000
        log.info("call ended", extra={
            "call_id": info.callIdString, "from": info.remoteUri, "to": info.localUri,
            "code": info.lastStatusCode, "seconds": round(seconds, 3),
            "rtp_in": call.rtp_in, "rtp_out": call.rtp_out})  # fmt: skip
        if call in self._calls:
            self._calls.remove(call)
            self._ended.append(call)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Listen and answer until :meth:`stop`; then hang up what is left and let pjsua2 go."""
        _check_free(self.config.hosts[0], self.config.port)
        self._endpoint = start_endpoint(self.config, linked_library().call_slots)
        try:
            self.port = self._endpoint.port
            self._account = _Account(self)
            self._account.create(account_config(self.config), True)
            host = self.config.hosts[0]
            log.info("demo buyer listening: it answers every call and echoes its audio",
                     extra={"sip": f"{host}:{self.port}"})  # fmt: skip
            while not self._stop.is_set():
                self._endpoint.ep.libHandleEvents(_POLL_MS)
                self._ended.clear()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        """Calls go before the library (pjsua2's ``~Call`` after libDestroy aborts)."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        with contextlib.suppress(pj.Error):
            endpoint.ep.hangupAllCalls()
            for _ in range(20):  # let pjsip send the BYEs it just queued
                endpoint.ep.libHandleEvents(_POLL_MS)
        self._calls.clear()
        self._ended.clear()
        gc.collect()
        if self._account is not None:
            with contextlib.suppress(pj.Error):
                self._account.shutdown()
            self._account = None
        endpoint.destroy()


def _check_free(host: str, port: int) -> None:
    """Say plainly when the address is taken, most likely by a demo buyer already running
    (pjsip's own error is worded for the agent)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:  # as pjsip's listener: TIME_WAIT is no obstacle
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                hint = (
                    "is a demo buyer already running? Stop what holds the port, or pass "
                    "--sip HOST:PORT (and make it the buyer's destination)"
                    if exc.errno == errno.EADDRINUSE
                    else "pass --sip with an address of this host"
                )
                raise OSError(f"cannot answer on {host}:{port} ({exc.strerror}): {hint}") from None


def run(host: str, port: int) -> None:
    """The demo buyer in the foreground until SIGINT or SIGTERM."""
    buyer = DemoBuyer(host, port)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        buyer.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        buyer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("demo buyer stopped")
