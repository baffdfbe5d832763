"""Where an SDP would have the agent send media: the hosts of its active streams.

Read for one rule (SPEC §4.6): a re-INVITE or UPDATE may move a party's media only to where
that party is (:mod:`rtbridge.sip.media_home`). pjsip has parsed and validated the SDP before
the agent sees it; this reads the few lines that say where RTP and RTCP go, tolerantly.
"""

from __future__ import annotations

# Hosts that mean "send nothing": RFC 3264 §8.4 hold (c=0.0.0.0) and its IPv6 form.
HOLD = frozenset(("0.0.0.0", "::", "0"))


def body_of(message: str) -> str:
    """The body of a SIP message (after the blank line), "" when there is none."""
    for sep in ("\r\n\r\n", "\n\n"):
        _, found, body = message.partition(sep)
        if found:
            return body
    return ""


def media_hosts(sdp: str) -> list[str]:
    """The hosts RTP and RTCP of each active stream (port not 0) would be sent to, in order,
    hold addresses left out: the media-level ``c=`` or else the session's, and the address
    of an ``a=rtcp:`` attribute (RFC 3605) that names one. A stream without any ``c=`` yields
    "" (refused by the rule: nowhere known)."""
    session = ""
    hosts: list[str] = []
    stream: list[str] | None = None  # [c= host, a=rtcp host...] of the current m= line
    active = False

    def close() -> None:
        if stream is not None and active:
            hosts.extend(h for h in (stream[0] or session, *stream[1:]) if h not in HOLD)

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            close()
            parts = line[2:].split()
            active = len(parts) > 1 and parts[1].split("/")[0] != "0"
            stream = [""]
        elif line.startswith("c="):
            host = _connection_host(line[2:])
            if stream is None:
                session = host
            else:
                stream[0] = host
        elif line.startswith("a=rtcp:") and stream is not None:
            parts = line[7:].split()
            if len(parts) >= 4:  # port nettype addrtype address
                stream.append(_strip_ttl(parts[3]))
    close()
    return hosts


def _connection_host(value: str) -> str:
    """``IN IP4 192.0.2.1/127`` → ``192.0.2.1`` (RFC 4566 §5.7; the TTL/count go)."""
    parts = value.split()
    return _strip_ttl(parts[2]) if len(parts) >= 3 else ""


def _strip_ttl(address: str) -> str:
    return address.split("/", 1)[0]
