"""The sender behind a trusted proxy: believed from the proxy only (issue 9, SPEC §4.2)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from rtbridge.sip.messages import parse_request, parse_source
from rtbridge.sip.proxy import Source, networks, source_of


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("203.0.113.7", ("203.0.113.7", 0, None)),
        ("203.0.113.7:5060", ("203.0.113.7", 5060, None)),
        ("203.0.113.7:5061;transport=tls", ("203.0.113.7", 5061, "TLS")),
        ("[2001:db8::7]:5060", ("2001:db8::7", 5060, None)),
        ("2001:db8::7", ("2001:db8::7", 0, None)),
        (" 198.51.100.1 ; transport=TCP", ("198.51.100.1", 0, "TCP")),
        ("example.com:5060", None),
        ("", None),
        (None, None),
        ("1.2.3.4.5", None),
    ],
)
def test_parse_source(value: str | None, parsed: tuple[str, int, str | None] | None) -> None:
    assert parse_source(value) == parsed


def _invite(extra: str = "") -> str:
    return (
        "INVITE sip:u@agent SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx\r\n"
        f"{extra}Call-ID: c\r\nContent-Length: 0\r\n\r\n"
    )


PROXIES = networks(["10.0.0.0/29", "fd00::/64"])


def test_header_believed_from_a_trusted_proxy_only() -> None:
    spoof = parse_request(_invite("X-RTB-Source: 203.0.113.7:5070;transport=tls\r\n"))
    assert source_of(spoof, "10.0.0.2:5060", PROXIES, "X-RTB-Source") == Source(
        ip_address("203.0.113.7"), 5070, "TLS", via_proxy="10.0.0.2"
    )
    # From anywhere else the header is a claim: the packet's source stands, and the claim is
    # kept for the decision log (auth failure "untrusted-proxy-header").
    claim = "203.0.113.7:5070;transport=tls"
    assert source_of(spoof, "198.51.100.9:5060", PROXIES, "X-RTB-Source") == Source(
        ip_address("198.51.100.9"), 5060, "UDP", untrusted=claim
    )
    assert source_of(spoof, "10.0.0.2:5060", (), "X-RTB-Source") == Source(
        ip_address("10.0.0.2"), 5060, "UDP", untrusted=claim
    )


def test_trusted_proxy_without_a_usable_header_is_the_sender() -> None:
    for extra in ("", "X-RTB-Source: not-an-address\r\n"):
        msg = parse_request(_invite(extra))
        assert source_of(msg, "10.0.0.3:5060", PROXIES, "X-RTB-Source") == Source(
            ip_address("10.0.0.3"), 5060, "UDP"
        )


def test_another_header_name_and_ipv6_proxy() -> None:
    msg = parse_request(_invite("X-Real-Source: [2001:db8::5]:5060\r\n"))
    found = source_of(msg, "[fd00::1]:5060", PROXIES, "X-Real-Source")
    assert (found.ip, found.via_proxy) == (ip_address("2001:db8::5"), "fd00::1")


def test_the_source_is_parsed_once_and_an_unreadable_one_refused() -> None:
    """Every later reader (admission, rate, trunk match, authenticator) takes the object."""
    msg = parse_request(_invite())
    assert source_of(msg, "[::ffff:192.0.2.1]:5060", (), "X-RTB-Source").ip == ip_address(
        "192.0.2.1"
    )
    with pytest.raises(ValueError, match="not an IP address"):
        source_of(msg, "garbage:5060", (), "X-RTB-Source")
