"""A bare SIP user agent over UDP for the security tests: it sends exactly the requests a
hostile publisher, buyer or stranger would (REFER, SUBSCRIBE, a re-INVITE moving media …),
which SIPp scenarios and pjsua2 peers cannot be made to send mid-call, and reads what comes
back.

One :class:`SipPeer` is one UDP socket with a receiving thread. Requests it receives are
answered by its role's rules (a buyer answers INVITEs 180 + 200 with SDP, everybody answers
BYE and CANCEL 200); responses wait in a queue for :meth:`SipPeer.request`. Each peer has an
RTP socket that sends a PCMU tone of its own (20 ms frames) to where the far end's SDP says,
and keeps the PCMU that arrives (``ear``, tests/support/tone.py): a peer that hears the other
one's tone got audio that crossed the agent. :class:`Trap` is a socket listening where an attacker points the agent: the
tests assert it hears nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.support.tone import Ear, frames

_COMPACT = {"i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
            "c": "content-type", "k": "supported", "r": "refer-to"}  # fmt: skip
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)


@dataclass
class Message:
    """A SIP message as received."""

    first_line: str
    headers: list[tuple[str, str]]
    body: str
    source: tuple[str, int]
    size: int = 0  # bytes on the wire

    @property
    def status(self) -> int | None:
        parts = self.first_line.split(" ", 2)
        return int(parts[1]) if self.first_line.startswith("SIP/2.0 ") else None

    @property
    def reason(self) -> str:
        return self.first_line.split(" ", 2)[2] if self.status is not None else ""

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        found = self.all(name)
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if _COMPACT.get(k.lower(), k.lower()) == name]

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "0 ?").partition(" ")
        return int(number), method.strip()


def parse(data: bytes, source: tuple[str, int]) -> Message:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Message(lines[0], headers, body, source, len(data))


def tag_of(value: str | None) -> str:
    found = _TAG.search(value or "")
    return found.group(1) if found else ""


def sdp(host: str, port: int, *, rtcp: tuple[str, int] | None = None, version: int = 1,
        direction: str = "sendrecv") -> str:  # fmt: skip
    """A PCMU + telephone-event offer/answer whose media is at ``host:port`` (``0.0.0.0``:
    the old way to hold; ``direction="sendonly"``: the current one)."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=peer 1 {version} IN {family} {host}",
        "s=-",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        f"a={direction}",
    ]
    if rtcp is not None:
        lines.append(f"a=rtcp:{rtcp[1]} IN {'IP6' if ':' in rtcp[0] else 'IP4'} {rtcp[0]}")
    return "\r\n".join(lines) + "\r\n"


def sdp_media(body: str) -> tuple[str, int] | None:
    """(host, port) of the first audio stream of an SDP."""
    host, port = "", 0
    for line in body.splitlines():
        if line.startswith("c=") and not port:
            host = line.split()[-1]
        elif line.startswith("m=audio"):
            port = int(line.split()[1])
        elif line.startswith("c=") and port:
            host = line.split()[-1]
    return (host, port) if host and port else None


@dataclass
class Dialog:
    """One dialog as this peer sees it (the peer's tag is ``local_tag``)."""

    call_id: str
    local_uri: str
    local_tag: str
    remote_uri: str
    remote_tag: str
    peer: tuple[str, int]  # where in-dialog requests go (the agent)
    cseq: int = 1
    remote_media: tuple[str, int] | None = None


class Trap:
    """UDP sockets listening where an attacker points the agent (a REFER's target, a
    re-INVITE's new media address): everything that arrives is kept."""

    def __init__(self, host: str = "127.0.0.9", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_DGRAM)  # fmt: skip
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host, self.port = self.sock.getsockname()[:2]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._empty = threading.Event()  # set whenever a read found nothing waiting
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def drained(self, timeout: float = 5.0) -> list[bytes]:
        """``received`` once everything sent here before this call has been read: the
        receiving thread found the socket empty after it. A test first makes the agent
        prove that the moment it watches has passed (it answered what came after, audio
        flowed on), then asserts on this."""
        self._empty.clear()
        assert self._empty.wait(timeout), "the trap's socket never went quiet"
        return self.received

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                self._empty.set()
                continue
            except OSError:
                continue
            self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class SipPeer:
    """A UDP SIP user agent on ``host`` (its own port), with an RTP socket beside it.

    ``answer``: what a new INVITE gets (a buyer: 200 after 180; None: never answered, for a
    publisher), with ``answer_headers`` when it is a refusal (a challenge). ``tone``: the
    frequency it sends; with ``early_media`` a buyer sends it from a 183 with SDP, for the
    ``ring`` seconds before its 200. Requests received are kept in ``requests`` in arrival
    order."""

    def __init__(self, host: str = "127.0.0.1", *, answer: int | None = 200,
                 answer_headers: tuple[str, ...] = (), ring: float = 0.0,
                 tone: int = 440, caller: str = "+12025550102",
                 early_media: bool = False) -> None:  # fmt: skip
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # floods' answers
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.rtp = socket.socket(family, socket.SOCK_DGRAM)
        self.rtp.bind((host, 0))
        self.rtp.settimeout(0.05)
        self.rtp_port = self.rtp.getsockname()[1]
        self.answer = answer
        self.caller = caller  # the user of its INVITEs' From
        self.ring = ring
        self.early_media = early_media
        self.contact = f"sip:peer@{_hostport((host, self.port))}"  # in its answers (a 3xx's target)
        self.requests: list[Message] = []
        self.dialogs: list[Dialog] = []  # INVITEs this peer answered 200
        self.rtp_received = 0
        self.rtp_sent = 0
        self.ear = Ear()  # the PCMU audio received
        self.tone = tone
        self.answer_headers = tuple(h for h in answer_headers if h)
        self.rtp_to: tuple[str, int] | None = None  # where this peer sends its RTP
        self._responses: queue.Queue[Message] = queue.Queue()
        self._held: list[Message] = []  # responses _final passed over
        self._branches = itertools.count(1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sip_loop, daemon=True),
                         threading.Thread(target=self._rtp_loop, daemon=True)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    # -- as a client -------------------------------------------------------------------

    def invite(
        self, to: tuple[str, int], user: str, *, headers: Iterable[str] = (),
        domain: str = "sip.rtb.example.com", timeout: float = 15.0, offer: bool = True,
        retry: Dialog | None = None,
    ) -> tuple[Dialog, Message]:  # fmt: skip
        """INVITE ``user@domain`` at the agent; waits for the final answer and ACKs it.
        ``offer=False``: a delayed offer — no SDP in the INVITE, the answer in the ACK.
        ``retry``: the INVITE a challenge answered, sent again (same Call-ID, next CSeq)
        with the ``headers`` given now (an ``Authorization``)."""
        if retry is None:
            dialog = Dialog(
                call_id=f"{uuid.uuid4()}@{self.host}", local_uri=f"sip:{self.caller}@{self.host}",
                local_tag=uuid.uuid4().hex[:10], remote_uri=f"sip:{user}@{domain}",
                remote_tag="", peer=to,
            )  # fmt: skip
        else:
            dialog, dialog.remote_tag = retry, ""
            dialog.cseq += 1
        body = sdp(self.host, self.rtp_port) if offer else ""
        branch = self._branch()
        ruri = f"sip:{user}@{_hostport(to)}"
        self._send(self._request("INVITE", ruri, dialog, branch, headers, body), to)
        final = self._final(dialog.call_id, "INVITE", dialog.cseq, timeout)
        dialog.remote_tag = tag_of(final.header("to"))
        if final.status is not None and final.status >= 300:
            self._send(self._request("ACK", ruri, dialog, branch, (), ""), to)  # same branch
        else:
            dialog.remote_media = sdp_media(final.body)
            self.rtp_to = dialog.remote_media
            answer = "" if offer else sdp(self.host, self.rtp_port)
            self._send(self._request("ACK", ruri, dialog, self._branch(), (), answer), to)
        return dialog, final

    def request(
        self, dialog: Dialog, method: str, *, headers: Iterable[str] = (), body: str = "",
        timeout: float = 5.0, ruri: str | None = None,
    ) -> Message | None:  # fmt: skip
        """A request in ``dialog`` (a new CSeq; an ACK takes its INVITE's); its final answer,
        None if none came."""
        if method != "ACK":
            dialog.cseq += 1
        target = ruri or dialog.remote_uri
        self._send(self._request(method, target, dialog, self._branch(), headers, body),
                   dialog.peer)  # fmt: skip
        if method == "ACK":
            return None
        try:
            return self._final(dialog.call_id, method, dialog.cseq, timeout)
        except TimeoutError:
            return None

    def fire(self, dialog: Dialog, method: str, *, headers: Iterable[str] = (),
             body: str = "") -> None:  # fmt: skip
        """Send a request in ``dialog`` without waiting for its answer (floods); the answers
        wait in :meth:`responses`."""
        dialog.cseq += 1
        self._send(self._request(method, dialog.remote_uri, dialog, self._branch(), headers, body),
                   dialog.peer)  # fmt: skip

    def responses(self, timeout: float) -> list[Message]:
        """Every response that arrives within ``timeout`` seconds."""
        out, self._held = self._held, []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self._responses.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.sock.close()
        self.rtp.close()

    # -- internals ---------------------------------------------------------------------

    def _branch(self) -> str:
        return f"z9hG4bK-raw{next(self._branches)}-{uuid.uuid4().hex[:8]}"

    def _request(
        self, method: str, ruri: str, dialog: Dialog, branch: str, headers: Iterable[str],
        body: str,
    ) -> str:  # fmt: skip
        cseq = dialog.cseq
        to = f"<{dialog.remote_uri}>" + (f";tag={dialog.remote_tag}" if dialog.remote_tag else "")
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {_hostport((self.host, self.port))};branch={branch};rport",
            f"From: <{dialog.local_uri}>;tag={dialog.local_tag}",
            f"To: {to}",
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:peer@{_hostport((self.host, self.port))}>",
            "Max-Forwards: 70",
            *headers,
        ]
        if body and not any(h.lower().startswith("content-type:") for h in lines):
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def _final(self, call_id: str, method: str, cseq: int, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self._responses.get(timeout=left)
            except queue.Empty:
                break
            if msg.call_id == call_id and msg.cseq == (cseq, method) and (msg.status or 0) >= 200:
                return msg
            self._held.append(msg)  # another request's: kept for responses()
        raise TimeoutError(f"no final answer to {method} {cseq}")

    def _send(self, text: str, to: tuple[str, int]) -> None:
        self.sock.sendto(text.encode(), to)

    def _sip_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            msg = parse(data, source[:2])
            if msg.status is not None:
                self._responses.put(msg)
                continue
            self.requests.append(msg)
            with contextlib.suppress(OSError):
                self._on_request(msg)

    def _on_request(self, msg: Message) -> None:
        method = msg.method
        if method == "ACK":
            return
        if method == "INVITE" and not tag_of(msg.header("to")):
            if self.answer is None:
                return
            tag = uuid.uuid4().hex[:10]
            self._reply(msg, 100, "Trying", tag=None)
            if self.early_media:
                self._reply(msg, 183, "Session Progress", tag=tag,
                            body=sdp(self.host, self.rtp_port))  # fmt: skip
                self.rtp_to = sdp_media(msg.body)
            else:
                self._reply(msg, 180, "Ringing", tag=tag)
            if self.ring:
                time.sleep(self.ring)
            if self.answer != 200:
                self._reply(msg, self.answer, "Refused", tag=tag, headers=self.answer_headers)
                return
            self._reply(msg, 200, "OK", tag=tag, body=sdp(self.host, self.rtp_port))
            dialog = Dialog(
                call_id=msg.call_id, local_uri=_uri(msg.header("to")), local_tag=tag,
                remote_uri=_uri(msg.header("from")), remote_tag=tag_of(msg.header("from")),
                peer=_contact_target(msg) or msg.source, remote_media=sdp_media(msg.body),
            )  # fmt: skip
            self.dialogs.append(dialog)
            self.rtp_to = dialog.remote_media
            return
        if method == "INVITE" or method == "UPDATE":  # the agent's refresh: same media
            self._reply(msg, 200, "OK", body=sdp(self.host, self.rtp_port) if msg.body else "")
            return
        self._reply(msg, 200, "OK")

    def _reply(self, msg: Message, code: int, reason: str, *, tag: str | None = "",
               body: str = "", headers: tuple[str, ...] = ()) -> None:  # fmt: skip
        to = msg.header("to") or ""
        if tag and not tag_of(to):
            to += f";tag={tag}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in msg.all("via")]
        lines += [f"From: {msg.header('from')}", f"To: {to}", f"Call-ID: {msg.call_id}",
                  f"CSeq: {msg.header('cseq')}",
                  f"Contact: <{self.contact}>", *headers]  # fmt: skip
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self._send("\r\n".join(lines) + "\r\n\r\n" + body, msg.source)

    def _rtp_loop(self) -> None:
        seq, stamp, next_send = 0, 0, time.monotonic()
        ssrc = int(uuid.uuid4().hex[:8], 16)
        tone = iter(frames(self.tone))
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                packet = self.rtp.recv(2048)
                self.rtp_received += 1
                if len(packet) > 12 and packet[1] & 0x7F == 0:  # PCMU
                    self.ear.hear(packet[12:])
            now = time.monotonic()
            if self.rtp_to is not None and now >= next_send:
                header = bytes([0x80, 0]) + seq.to_bytes(2, "big") + stamp.to_bytes(4, "big")
                with contextlib.suppress(OSError):
                    self.rtp.sendto(header + ssrc.to_bytes(4, "big") + next(tone), self.rtp_to)
                    self.rtp_sent += 1
                seq, stamp = (seq + 1) & 0xFFFF, (stamp + 160) & 0xFFFFFFFF
                next_send = now + 0.02


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _uri(value: str | None) -> str:
    value = value or ""
    return value.partition("<")[2].partition(">")[0] if "<" in value else value.split(";")[0]


def _contact_target(msg: Message) -> tuple[str, int] | None:
    contact = _uri(msg.header("contact"))
    hostport = contact.partition("@")[2].split(";")[0]
    host, _, port = hostport.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@dataclass
class Exchange:
    """What one probe sent and got back (for messages in assertions)."""

    sent: str
    answers: list[Message] = field(default_factory=list)
