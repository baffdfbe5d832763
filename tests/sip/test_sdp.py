"""Where an SDP sends media (sip/sdp.py) and where a party's media may go (media_home.py)."""

from __future__ import annotations

from rtbridge.sip.media_home import MediaHome
from rtbridge.sip.sdp import body_of, media_hosts

OFFER = """v=0\r
o=- 1 2 IN IP4 203.0.113.7\r
s=-\r
c=IN IP4 203.0.113.7\r
t=0 0\r
m=audio 4000 RTP/AVP 0\r
a=rtcp:4001 IN IP4 192.0.2.99\r
m=audio 0 RTP/AVP 0\r
c=IN IP4 198.51.100.250\r
m=audio 5000 RTP/AVP 8\r
c=IN IP4 224.2.1.1/127\r
"""


def test_media_hosts_of_active_streams_with_rtcp() -> None:
    assert media_hosts(OFFER) == ["203.0.113.7", "192.0.2.99", "224.2.1.1"]


def test_hold_and_streams_without_address() -> None:
    assert media_hosts("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n") == []
    assert media_hosts("v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 ::\r\n") == []
    assert media_hosts("v=0\r\nm=audio 4000 RTP/AVP 0\r\n") == [""]  # nowhere known
    assert media_hosts("v=0\nc=IN IP4 host.example.net\nm=audio 4000 RTP/AVP 0\n") == [
        "host.example.net"
    ]
    assert media_hosts("") == []


def test_body_of() -> None:
    assert body_of("INVITE x SIP/2.0\r\nA: b\r\n\r\nv=0\r\n") == "v=0\r\n"
    assert body_of("INVITE x SIP/2.0\r\nA: b\r\n") == ""


def test_media_home() -> None:
    home = MediaHome(("203.0.113.7", "[2001:db8::7]:5060"), ("198.51.100.0/24",))
    assert home.allows("203.0.113.7") and home.allows("198.51.100.42")
    assert home.allows("2001:db8::7") and home.allows("::ffff:203.0.113.7")
    assert home.allows("0.0.0.0")  # hold sends nothing
    assert home.refused(["203.0.113.7", "192.0.2.1", "evil.example.net", ""]) == [
        "192.0.2.1", "evil.example.net", ""]  # fmt: skip
    home.add("192.0.2.1")
    home.add_networks(["not a network", "2001:db8:1::/48"])
    assert home.allows("192.0.2.1") and home.allows("2001:db8:1::9")
