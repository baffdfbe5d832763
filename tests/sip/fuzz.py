"""A seeded SIP mutation fuzzer: valid requests, broken in the ways SBCs, scanners and bad
networks break them.

:func:`messages` yields datagrams built from valid INVITE (with SDP and, sometimes, digest
credentials), OPTIONS, BYE, CANCEL, ACK and REGISTER requests, each put through one to three
mutations: a header dropped, duplicated, emptied or made 64 kB long; Content-Length huge,
negative or wrong; bytes that are not UTF-8, NULs and control characters; SDP without ``c=``,
with garbage ``m=`` lines or impossible ports; unknown, misspelt or lower-case methods; a
mangled Request-URI; truncation anywhere. The same seed gives the same datagrams, so a crash
found once is found again."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

METHODS = ("INVITE", "OPTIONS", "BYE", "CANCEL", "ACK", "REGISTER")
MAX_DATAGRAM = 65_000  # what one UDP datagram over loopback carries


@dataclass(frozen=True)
class Target:
    host: str  # the agent
    port: int
    local_host: str  # the fuzzer's socket
    local_port: int
    domain: str = "sip.rtb.example.com"
    uuid: str = "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30"


_SDP = (
    "v=0\r\n"
    "o=pub 53655765 2353687637 IN IP4 {lh}\r\n"
    "s=-\r\n"
    "c=IN IP4 {lh}\r\n"
    "t=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
)

_AUTHORIZATION = (
    'Digest username="pub1", realm="{domain}", nonce="{nonce}", uri="sip:{uuid}@{domain}", '
    'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"'
)


def valid(method: str, t: Target, rng: random.Random, n: int) -> tuple[list[str], str, str]:
    """(request line + headers, body, request line) of a valid request of ``method``."""
    user = t.uuid if rng.random() < 0.7 else f"{rng.getrandbits(128):032x}"
    ruri = f"sip:{user}@{t.host}:{t.port}"
    if method == "REGISTER":
        ruri = f"sip:{t.domain}"
    cseq_method = "INVITE" if method in ("ACK", "CANCEL") else method
    headers = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {t.local_host}:{t.local_port};branch=z9hG4bK-fz{n}-{rng.getrandbits(32):x};rport",
        f'From: "Fuzz {n}" <sip:+1202555{n % 10000:04d}@{t.local_host}>;tag=f{n}',
        f"To: <sip:{user}@{t.domain}>" + (";tag=t1" if method == "BYE" else ""),
        f"Call-ID: fuzz-{n}-{rng.getrandbits(48):x}@{t.local_host}",
        f"CSeq: {rng.randint(1, 5)} {cseq_method}",
        f"Contact: <sip:fuzz@{t.local_host}:{t.local_port}>",
        "Max-Forwards: 70",
        "User-Agent: rtbridge-fuzz",
    ]
    body = ""
    if method == "INVITE":
        if rng.random() < 0.4:
            nonce = "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((8, 40, 64))))
            response = "".join(rng.choice("0123456789abcdef") for _ in range(32))
            headers.append("Authorization: " + _AUTHORIZATION.format(
                domain=t.domain, nonce=nonce, uuid=user, response=response))  # fmt: skip
        if rng.random() < 0.2:
            headers.append("X-RTB-Source: 203.0.113.7:5060;transport=tls")
        body = _SDP.format(lh=t.local_host, rtp=rng.randrange(20000, 30000, 2))
        headers.append("Content-Type: application/sdp")
    if method == "REGISTER":
        headers.append("Expires: 3600")
    return headers, body, headers[0]


# -- mutations: each takes (headers, body, rng) and returns new (headers, body) ------------------
Mutation = Callable[[list[str], str, random.Random], tuple[list[str], str]]


def _drop(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    if len(h) > 1:
        h = h[:]
        del h[rng.randrange(1, len(h))]
    return h, b


def _duplicate(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    i = rng.randrange(1, len(h)) if len(h) > 1 else 0
    return h[: i + 1] + [h[i]] * rng.choice((1, 2, 50)) + h[i + 1 :], b


def _overlong(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    if len(h) < 2:
        return h, b
    h = h[:]
    i = rng.randrange(1, len(h))
    name = h[i].split(":", 1)[0]
    size = rng.choice((1024, 8192, 64 * 1024))
    h[i] = f"{name}: " + rng.choice(("A", "%", ";", "<", "\\", '"')) * size
    return h, b


def _content_length(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    value = rng.choice(("99999999999999999999", "-1", "abc", "4294967296", "0", "1",
                        str(len(b) + 17), " 12 12", ""))  # fmt: skip
    return [x for x in h if not x.lower().startswith("content-length")] + [
        f"Content-Length: {value}"
    ], b


def _bad_sdp(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    lines = b.split("\r\n") if b else _SDP.format(lh="127.0.0.1", rtp=20000).split("\r\n")
    choice = rng.randrange(9)
    if choice == 0:
        lines = [x for x in lines if not x.startswith("c=")]
    elif choice == 1:
        lines = [x if not x.startswith("m=") else "m=" + "\x00garbage\xff" * rng.randint(1, 50)
                 for x in lines]  # fmt: skip
    elif choice == 2:
        port = rng.choice(("0", "-5", "99999", "65536", "abc", "1/2", "4294967297"))
        lines = [x if not x.startswith("m=") else f"m=audio {port} RTP/AVP 0" for x in lines]
    elif choice == 3:
        lines = [x if not x.startswith("m=") else "m=audio 20000 RTP/AVP 255 127 96 300 -1"
                 for x in lines]  # fmt: skip
    elif choice == 4:
        lines = [x if not x.startswith("c=") else "c=IN IP4 999.1.1.1" for x in lines]
    elif choice == 5:
        lines = [x if not x.startswith("c=") else "c=IN IP6 ::ffff::zz" for x in lines]
    elif choice == 6:
        lines = ["v=9", *lines[1:]]
    elif choice == 7:
        lines = lines + ["m=video 20002 RTP/AVP 96"] * rng.randint(1, 40)
    else:
        lines = [*lines, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "x" * rng.randint(0, 200)]
    if not any(x.lower().startswith("content-type") for x in h):
        h = [*h, "Content-Type: application/sdp"]
    return h, "\r\n".join(lines)


def _method(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    parts = h[0].split(" ")
    parts[0] = rng.choice(("FOO", "INVITEX", "invite", "BYE BYE", "SIP/2.0", "", "PRACK", "UPDATE",
                           "INFO", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH", "Ñ",
                           "X" * 300))  # fmt: skip
    return [" ".join(parts), *h[1:]], b


def _request_uri(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    parts = h[0].split(" ")
    if len(parts) >= 2:
        parts[1] = rng.choice((
            "sip:@", "sip:", "tel:+12025550102", "http://x", "<sip:a@b>", "sip:a@b@c", "sip:%zz@h",
            "sip:" + "u" * 5000 + "@h", "sip:user;param=1@h", "sips:[::1", "sip:a@[::1]:99999",
            "sip:%00%ff@127.0.0.1", "*",
        ))  # fmt: skip
    if rng.random() < 0.3:
        parts[-1] = rng.choice(("SIP/3.0", "SIP/2", "HTTP/1.1", ""))
    return [" ".join(parts), *h[1:]], b


def _header_values(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    """A header that parses as a header but says nonsense."""
    extra = rng.choice((
        "CSeq: 99999999999999 INVITE", "CSeq: 1 BYE", "CSeq: abc", "Max-Forwards: 0",
        "Max-Forwards: -1", "Via: SIP/2.0/XYZ", "Via: garbage", "Via: SIP/2.0/UDP ;branch=",
        "From: <>", "From: ;tag=", 'From: "unterminated <sip:a@b>', "To: <sip:>", "Call-ID: ",
        "Expires: -5", "Content-Type: application/sdp;charset=\x00", "Authorization: Digest",
        "Authorization: Digest username=, realm=\"", "Authorization: Basic Zm9vOmJhcg==",
        'Authorization: Digest username="pub1", nc=zzzzzzzz, qop=auth, response="x"',
        "Route: <sip:127.0.0.1;lr>", "Record-Route: <sip:[::1];lr>", "Session-Expires: 0",
        "Supported: timer, 100rel", "Require: 100rel, nonsense", "Proxy-Require: foo",
        "X-RTB-Source: not-an-address", "X-RTB-Source: [2001:db8::7]:5060;transport=",
        "i: compact-call-id", "v: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKc", "l: 3",
        "Contact: *", "Contact: <sip:a@b>;expires=abc", "Accept: */*\tfolded",
    ))  # fmt: skip
    h = h[:]
    h.insert(rng.randrange(1, len(h) + 1), extra)
    return h, b


def _fold(h: list[str], b: str, rng: random.Random) -> tuple[list[str], str]:
    if len(h) < 2:
        return h, b
    h = h[:]
    i = rng.randrange(1, len(h))
    name, _, value = h[i].partition(":")
    h[i] = f"{name}:\r\n {value}\r\n\t{value}"
    return h, b


MUTATIONS: tuple[Mutation, ...] = (_drop, _duplicate, _overlong, _content_length, _bad_sdp,
                                   _method, _request_uri, _header_values, _fold)  # fmt: skip


def _bytes(data: bytes, rng: random.Random) -> bytes:
    """Byte-level damage: not UTF-8, NULs, control characters, truncation, bare LFs."""
    choice = rng.randrange(6)
    if not data:
        return data
    if choice == 0:  # truncated anywhere
        return data[: rng.randrange(len(data))]
    if choice == 1:  # invalid UTF-8 sequences
        at = rng.randrange(len(data))
        return (
            data[:at] + rng.choice((b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88")) + data[at:]
        )
    if choice == 2:  # random bytes overwritten
        out = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if choice == 3:  # NULs
        at = rng.randrange(len(data))
        return data[:at] + b"\x00" * rng.randint(1, 8) + data[at:]
    if choice == 4:  # line endings only LF, or only CR
        return data.replace(b"\r\n", rng.choice((b"\n", b"\r")))
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 1500)))  # pure noise


def messages(target: Target, count: int, seed: int = 11) -> Iterator[bytes]:
    """``count`` datagrams, deterministic for a seed."""
    rng = random.Random(seed)
    for n in range(count):
        method = rng.choice(METHODS)
        headers, body, _ = valid(method, target, rng, n)
        for mutation in rng.sample(MUTATIONS, rng.randint(1, 3)):
            headers, body = mutation(headers, body, rng)
        if not any(x.lower().startswith(("content-length", "l:")) for x in headers):
            headers = [*headers, f"Content-Length: {len(body.encode('utf-8', 'surrogateescape'))}"]
        data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")
        if rng.random() < 0.25:
            data = _bytes(data, rng)
        yield data[:MAX_DATAGRAM]
