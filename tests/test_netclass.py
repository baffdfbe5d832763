"""Which addresses are inside (netclass.py): shared by bid destinations and x5u fetches."""

from __future__ import annotations

import ipaddress

import pytest

from rtbridge.netclass import is_internal, is_trusted


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.1", "172.16.0.9", "192.168.1.10", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "::", "224.0.0.1", "ff02::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
     "240.0.0.1"],
)  # fmt: skip
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


def test_trusted_networks() -> None:
    assert is_trusted(ipaddress.ip_address("127.0.0.5"), ["127.0.0.0/8"])
    assert is_trusted(ipaddress.ip_address("10.1.2.3"), ["192.168.0.0/16", "10.1.0.1/16"])
    assert not is_trusted(ipaddress.ip_address("::1"), ["127.0.0.0/8"])
    assert not is_trusted(ipaddress.ip_address("10.1.2.3"), [])
