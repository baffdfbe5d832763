"""Where a bid may send a call (bidding/destinations.py): nowhere inside the site."""

from __future__ import annotations

import pytest

from rtbridge.bidding.destinations import refusal

DOMAIN = "sip.rtb.example.com"


@pytest.mark.parametrize(
    "destination",
    [
        "sip:x@127.0.0.1", "sip:x@127.0.0.1:5060;transport=tcp", "sips:x@[::1]:5061",
        "sip:10.0.0.1", "sip:x@192.168.1.10", "sip:x@172.16.0.9", "sip:x@169.254.169.254",
        "sip:x@100.64.0.1", "sip:x@0.0.0.0", "sip:x@224.0.0.1", "sip:x@[fe80::1]",
        "sip:x@[fd00::1]", "sip:x@[::ffff:10.0.0.1]", f"sip:x@{DOMAIN}", "sip:x@SIP.RTB.EXAMPLE.COM",
    ],
)  # fmt: skip
def test_internal_destinations_are_refused(destination: str) -> None:
    assert refusal(destination, (), DOMAIN) is not None


@pytest.mark.parametrize(
    "destination",
    ["sip:x@93.184.216.34", "sip:x@8.8.8.8:5080", "sips:x@[2001:4860::8888]", "sip:q@buyer.example.net",
     "+18005551234", "sip:x@[2606:4700::1111];transport=tls"],
)  # fmt: skip
def test_public_destinations_and_numbers_pass(destination: str) -> None:
    assert refusal(destination, (), DOMAIN) is None


def test_the_buyers_media_networks_are_trusted() -> None:
    assert refusal("sip:x@10.1.2.3", ("10.1.0.0/16",), DOMAIN) is None
    assert refusal("sip:x@10.2.2.3", ("10.1.0.0/16",), DOMAIN) is not None
    assert refusal("sip:x@[::1]", ("::1/128",), DOMAIN) is None
