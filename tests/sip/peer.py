"""A second pjsua2 user agent for tests, in its own process (pjsua2 allows one Endpoint per
process, and the agent under test owns this one's).

SIPp 3.6 has no TLS, SRTP or G.729, so the calls that need them are placed and answered by
this peer. Each side plays a tone of its own frequency into the call and records what it
hears; the test then looks for the *other* side's tone in the recording (tests/support/
tone.py's wav_power), which is there only if audio crossed the agent in that direction. Run
as a script; prints one JSON object.

    python tests/sip/peer.py uas --port P [--tls CERT KEY] [--srtp required] [--codec G729]
    python tests/sip/peer.py uac --to URI [--tls CERT KEY] [--srtp required] [--dtmf 123]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import pjsua2 as pj

_SRTP = {"off": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
         "required": pj.PJMEDIA_SRTP_MANDATORY}  # fmt: skip
_PROTO = {pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP", pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP"}


class PeerCall(pj.Call):  # type: ignore[misc]
    def __init__(self, peer: Peer, account: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.peer = peer
        self.connected = threading.Event()
        self.done = threading.Event()
        self.digits: list[str] = []
        self.status = 0
        self.media: dict[str, Any] = {}

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        self.status = info.lastStatusCode
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.connected.set()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.done.set()

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                audio = self.getAudioMedia(media.index)
                self.peer.tone.startTransmit(audio)
                audio.startTransmit(self.peer.recorder)
                stream = self.getStreamInfo(media.index)
                self.media = {"codec": stream.codecName, "proto": _PROTO.get(stream.proto, "?")}

    def onDtmfDigit(self, prm: Any) -> None:
        self.digits.append(prm.digit)


class PeerAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.peer = peer

    def onIncomingCall(self, prm: Any) -> None:
        call = PeerCall(self.peer, self, prm.callId)
        self.peer.calls.append(call)
        answer = pj.CallOpParam(True)
        answer.statusCode = 200
        answer.opt.textCount = 0
        call.answer(answer)


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[PeerCall] = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        for info in self.ep.codecEnum2():
            wanted = info.codecId.lower().startswith(args.codec.lower())
            self.ep.codecSetPriority(info.codecId, 255 if wanted else 0)
        tc = pj.TransportConfig()
        tc.boundAddress = "127.0.0.1"
        tc.port = args.port
        kind = pj.PJSIP_TRANSPORT_UDP
        if args.tls:
            kind = pj.PJSIP_TRANSPORT_TLS
            tc.tlsConfig.certFile, tc.tlsConfig.privKeyFile = args.tls
            tc.tlsConfig.CaListFile = args.tls[0]  # self-signed: its own CA
            tc.tlsConfig.verifyServer = True
            tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        self.transport = self.ep.transportCreate(kind, tc)
        self.ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = "sip:peer@127.0.0.1"
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.srtpUse = _SRTP[args.srtp]
        acfg.mediaConfig.srtpSecureSignaling = 0
        acfg.natConfig.sipOutboundUse = 0
        self.account = PeerAccount(self)
        self.account.create(acfg, True)
        self.tone = pj.ToneGenerator()
        self.tone.createToneGenerator(8000, 1)
        desc = pj.ToneDesc()
        desc.freq1 = desc.freq2 = int(args.freq)
        desc.on_msec, desc.off_msec, desc.volume = 1000, 0, 0
        tones = pj.ToneDescVector()
        tones.append(desc)
        self.tone.play(tones, True)
        self.recorder = pj.AudioMediaRecorder()
        self.recorder.createRecorder(args.record)

    def poll(self, seconds: float, until: threading.Event | None = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until is not None and until.is_set()):
            self.ep.libHandleEvents(10)

    def run(self) -> dict[str, Any]:
        args = self.args
        if args.role == "uas":
            print(json.dumps({"listening": self.ep.transportGetInfo(self.transport).localName}),
                  flush=True)  # fmt: skip
            self.poll(args.timeout, until=None if not args.once else self._first_call_done())
            call = self.calls[0] if self.calls else None
        else:
            call = PeerCall(self, self.account)
            self.calls.append(call)
            prm = pj.CallOpParam(True)
            prm.opt.textCount = 0
            call.makeCall(args.to, prm)
            self.poll(10, until=call.connected)
            if call.connected.is_set():
                self.poll(0.5)
                if args.dtmf:
                    dtmf = pj.CallSendDtmfParam()
                    dtmf.digits, dtmf.method = args.dtmf, pj.PJSUA_DTMF_METHOD_RFC2833
                    call.sendDtmf(dtmf)
                self.poll(args.hold)
                call.hangup(pj.CallOpParam())
            self.poll(3, until=call.done)
        result = {
            "status": call.status if call else 0,
            "media": call.media if call else {},
            "digits": "".join(call.digits) if call else "",
        }
        self.calls.clear()
        del call
        # pjsua2 closes a recorder's file, and writes its WAV header's sizes, on the media
        # clock's next tick after the object goes: destroying the library at once could
        # leave a header that says 0 frames (seen once as a silent recording under load)
        self.recorder = None
        self.poll(0.2)
        self.ep.libDestroy()
        return result

    def _first_call_done(self) -> threading.Event:
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if self.calls and self.calls[0].done.is_set():
                    done.set()
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
        return done


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["uac", "uas"])
    parser.add_argument("--to", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--srtp", choices=list(_SRTP), default="off")
    parser.add_argument("--codec", default="PCMU")
    parser.add_argument("--freq", type=float, default=440)
    parser.add_argument("--record", required=True)
    parser.add_argument("--dtmf", default="")
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--once", action="store_true", help="uas: exit after the first call")
    args = parser.parse_args()
    result = Peer(args).run()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
