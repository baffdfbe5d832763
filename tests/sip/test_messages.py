"""The INVITE reading and header sanitising used by the SIP agent (pure, no pjsua2)."""

from __future__ import annotations

import pytest

from rtbridge.sip.messages import (
    parse_request,
    safe_header,
    split_host_port,
    split_name_addr,
    uri_user,
    via_transport,
)

INVITE = (
    "INVITE sip:0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30@sip.rtb.example.com;transport=udp SIP/2.0\r\n"
    "v: SIP/2.0/TCP 203.0.113.5:5060;branch=z9hG4bK1\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"
    'f: "Pub \\"One\\"" <sip:+12025550102@203.0.113.5>;tag=a\r\n'
    "To: <sip:0c4d6f2a@sip.rtb.example.com>\r\n"
    "i: abc@203.0.113.5\r\n"
    'Authorization: Digest username="pub1",\r\n'
    ' realm="sip.rtb.example.com"\r\n'
    'Authorization: Digest username="other"\r\n'
    "X-Custom: 1\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\r\n"
)


def test_parse_request_expands_compact_forms_and_unfolds() -> None:
    msg = parse_request(INVITE)
    assert msg.method == "INVITE"
    assert msg.request_uri.startswith("sip:0c4d6f2a-")
    assert msg.first("call-id") == "abc@203.0.113.5"
    assert msg.headers["via"][0].startswith("SIP/2.0/TCP")
    assert msg.first("authorization") == ('Digest username="pub1", realm="sip.rtb.example.com"')
    assert len(msg.headers["authorization"]) == 2
    assert "v=0" not in str(msg.headers)  # the body is not headers


@pytest.mark.parametrize(
    ("text", "method", "headers"),
    [("", "", {}), ("\x00\xff", "\x00\xff", {}), ("INVITE", "INVITE", {}),
     ("garbage\r\n\r\n", "garbage", {}), (":\r\n:", ":", {"": [""]})],
)  # fmt: skip
def test_garbage_parses_to_a_request_with_nothing_in_it(
    text: str, method: str, headers: dict[str, list[str]]
) -> None:
    """Never an exception: the first word as the method, no URI, nothing the agent reads."""
    msg = parse_request(text)
    assert (msg.method, msg.request_uri, msg.headers) == (method, "", headers)
    assert msg.first("call-id") is None and msg.first("from") is None


def test_name_addr_and_user() -> None:
    display, uri = split_name_addr(parse_request(INVITE).first("from") or "")
    assert display == 'Pub "One"'
    assert uri_user(uri) == "+12025550102"
    assert split_name_addr("sip:a@b;tag=1") == ("", "sip:a@b")
    assert uri_user("sip:%2B1202@h") == "+1202"
    assert uri_user("sip:user:pw@h") == "user"
    assert uri_user("sip:h.example.com") == ""
    assert uri_user("garbage") == ""


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:5060", ("127.0.0.1", 5060)),
        ("[::1]:5070", ("::1", 5070)),
        ("::1:5070", ("::1", 5070)),  # how pjsua2 prints TransportInfo.localName
        ("2001:db8::5:5060", ("2001:db8::5", 5060)),
        ("10.0.0.1", ("10.0.0.1", 0)),
        ("10.0.0.1:\u00b2", ("10.0.0.1", 0)),  # '²'.isdigit() is true, int('²') raises
        ("10.0.0.1:\u0663", ("10.0.0.1", 0)),  # an Arabic-Indic 3 is not a port either
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


def test_via_transport() -> None:
    assert via_transport("SIP/2.0/TCP h;branch=x, SIP/2.0/UDP g") == "TCP"
    assert via_transport("sip / 2.0 / tls h") == "TLS"
    assert via_transport(None) == "UDP"
    assert via_transport("nonsense") == "UDP"


def test_safe_header_blocks_injection() -> None:
    assert safe_header("X-RTB-Tag-zip", "100\r\nInjected: 1") == (
        "X-RTB-Tag-zip",
        "100Injected: 1",
    )
    assert safe_header("X-RTB-Tag-a b", "v") is None
    assert safe_header("X-RTB-Tag-x:y", "v") is None
    assert safe_header("", "v") is None
