"""IP allowlist matching and the credential directory."""

from __future__ import annotations

import ipaddress
import random
import time
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest

from rtbridge.sip.auth.allowlist import (
    AllowRule,
    Credential,
    Directory,
    parse_address,
    parse_cidr,
)
from rtbridge.sip.auth.digest import ha1

NOW = 1_700_000_000.0


def rule(cidr: str, publisher: str, rule_id: int, expires_at: float | None = None) -> AllowRule:
    return AllowRule(parse_cidr(cidr), publisher, rule_id, expires_at)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", IPv4Address("203.0.113.7")),
        (" 203.0.113.7:5060 ", IPv4Address("203.0.113.7")),
        ("2001:db8::1", IPv6Address("2001:db8::1")),
        ("[2001:db8::1]:5060", IPv6Address("2001:db8::1")),
        ("[2001:db8::1]", IPv6Address("2001:db8::1")),
        ("::ffff:203.0.113.7", IPv4Address("203.0.113.7")),
        ("[::ffff:cb00:7107]:5060", IPv4Address("203.0.113.7")),
        ("fe80::1%eth0", IPv6Address("fe80::1%eth0")),
        ("", None),
        ("localhost", None),
        ("999.1.1.1", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("1.2.3.4:5060:1", None),
        ("x" * 1000, None),
    ],
)
def test_parse_address(text: str, expected: IPv4Address | IPv6Address | None) -> None:
    assert parse_address(text) == expected


def test_parse_cidr() -> None:
    assert parse_cidr("203.0.113.0/24") == IPv4Network("203.0.113.0/24")
    assert parse_cidr("2001:db8::/32") == IPv6Network("2001:db8::/32")
    assert parse_cidr("198.51.100.10") == IPv4Network("198.51.100.10/32")
    assert parse_cidr("::ffff:203.0.113.0/120") == IPv4Network("203.0.113.0/24")
    with pytest.raises(ValueError, match="not an IP network"):
        parse_cidr("203.0.113.5/24")  # host bits set: refuse rather than widen
    with pytest.raises(ValueError, match="not an IP network"):
        parse_cidr("example.com")


def test_rule_normalises_mapped_network_and_rejects_strings() -> None:
    mapped = AllowRule(IPv6Network("::ffff:203.0.113.0/120"), "p", 1)
    assert mapped.network == IPv4Network("203.0.113.0/24")
    with pytest.raises(TypeError):
        AllowRule("203.0.113.0/24", "p", 1)  # type: ignore[arg-type]


def test_ipv4_and_ipv6_match() -> None:
    directory = Directory([rule("203.0.113.0/24", "pub-1", 1), rule("2001:db8::/32", "pub-1", 2)])
    assert directory.match_ip("203.0.113.200", NOW) == directory.rules[0]
    assert directory.match_ip("2001:db8:ffff::5", NOW) == directory.rules[1]
    assert directory.match_ip("[2001:db8::5]:5061", NOW) == directory.rules[1]
    assert directory.match_ip("203.0.114.1", NOW) is None
    assert directory.match_ip("2001:db9::1", NOW) is None
    assert directory.match_ip("not an ip", NOW) is None
    assert directory.match_ip(IPv4Address("203.0.113.1"), NOW) == directory.rules[0]
    assert directory.rules[0].describe() == "ip 203.0.113.0/24 (rule 1)"


def test_ipv4_mapped_source_uses_ipv4_rules() -> None:
    directory = Directory([rule("203.0.113.0/24", "pub-1", 1), rule("::/0", "v6-any", 2)])
    assert directory.match_ip("::ffff:203.0.113.9", NOW) == directory.rules[0]
    assert directory.match_ip(IPv6Address("::ffff:203.0.113.9"), NOW) == directory.rules[0]
    assert directory.match_ip("::ffff:198.51.100.1", NOW) is None  # not the v6 /0
    assert directory.match_ip("2001:db8::1", NOW) == directory.rules[1]


def _publisher(directory: Directory, ip: str) -> str | None:
    found = directory.match_ip(ip, NOW)
    return None if found is None else found.publisher_id


def test_longest_prefix_wins_whatever_the_order() -> None:
    rules = [
        rule("0.0.0.0/0", "everyone", 1),
        rule("203.0.113.0/24", "pub-wide", 2),
        rule("203.0.113.128/25", "pub-narrow", 3),
        rule("203.0.113.200/32", "pub-host", 4),
    ]
    for ordering in (rules, rules[::-1]):
        directory = Directory(ordering)
        assert _publisher(directory, "203.0.113.200") == "pub-host"
        assert _publisher(directory, "203.0.113.201") == "pub-narrow"
        assert _publisher(directory, "203.0.113.1") == "pub-wide"
        assert _publisher(directory, "8.8.8.8") == "everyone"


def test_expired_rules_never_match_and_shorter_prefix_takes_over() -> None:
    directory = Directory(
        [
            rule("203.0.113.0/24", "pub-wide", 1),
            rule("203.0.113.7/32", "pub-host", 2, expires_at=NOW),
            rule("198.51.100.0/24", "pub-gone", 3, expires_at=NOW - 1),
            rule("2001:db8::/48", "pub-v6", 4, expires_at=NOW + 60),
        ]
    )
    found = directory.match_ip("203.0.113.7", NOW - 0.001)
    assert found is not None and found.publisher_id == "pub-host"
    found = directory.match_ip("203.0.113.7", NOW)  # expiry instant is exclusive
    assert found is not None and found.publisher_id == "pub-wide"
    assert directory.match_ip("198.51.100.1", NOW) is None
    assert directory.match_ip("2001:db8::1", NOW + 59) is not None
    assert directory.match_ip("2001:db8::1", NOW + 60) is None


def test_same_network_twice_first_active_wins() -> None:
    directory = Directory(
        [
            rule("203.0.113.0/24", "old", 1, expires_at=NOW - 1),
            rule("203.0.113.0/24", "new", 2),
            rule("203.0.113.0/24", "later", 3),
        ]
    )
    found = directory.match_ip("203.0.113.1", NOW)
    assert found is not None and found.rule_id == 2


def _naive(rules: list[AllowRule], address: str, now: float) -> AllowRule | None:
    ip = ipaddress.ip_address(address)
    candidates = [
        r for r in rules if r.network.version == ip.version and ip in r.network and r.active(now)
    ]
    if not candidates:
        return None
    best = max(r.network.prefixlen for r in candidates)
    return next(r for r in candidates if r.network.prefixlen == best)


def test_matches_a_naive_linear_scan_on_random_rules() -> None:
    rng = random.Random(7)
    rules: list[AllowRule] = []
    for i in range(1500):
        if rng.random() < 0.5:
            length = rng.choice([8, 16, 20, 24, 28, 32])
            net: IPv4Network | IPv6Network = IPv4Network(
                (rng.getrandbits(32), length), strict=False
            )
        else:
            length = rng.choice([16, 32, 48, 56, 64, 128])
            net = IPv6Network((rng.getrandbits(128) & ~((1 << 96) - 1), length), strict=False)
        expires = rng.choice([None, NOW - 1, NOW + 1])
        rules.append(AllowRule(net, f"pub-{i % 50}", i, expires))
    directory = Directory(rules)
    probes = [str(r.network[rng.randrange(r.network.num_addresses)]) for r in rules[:500]]
    probes += [str(IPv4Address(rng.getrandbits(32))) for _ in range(200)]
    for probe in probes:
        assert directory.match_ip(probe, NOW) == _naive(rules, probe, NOW), probe


def test_lookup_is_fast_with_thousands_of_rules() -> None:
    rng = random.Random(11)
    rules = [
        AllowRule(
            IPv4Network((rng.getrandbits(32), rng.choice([24, 28, 32])), strict=False), "p", i
        )
        for i in range(5000)
    ] + [
        AllowRule(
            IPv6Network((rng.getrandbits(128), rng.choice([32, 48, 64])), strict=False), "p", i
        )
        for i in range(5000)
    ]
    directory = Directory(rules)
    probes = ["192.0.2.1", "2001:db8::1", "::ffff:10.1.2.3"] * 1000
    start = time.perf_counter()
    for probe in probes:
        directory.match_ip(probe, NOW)
    per_lookup = (time.perf_counter() - start) / len(probes)
    assert per_lookup < 200e-6  # measured ≈10 µs; generous for slow CI machines


def test_credentials() -> None:
    credential = Credential.from_password(
        username="pub1", publisher_id="pub-1", password="s3cret-Pass-123", realm="sip.example.com"
    )
    assert credential.ha1_md5 == ha1("pub1", "sip.example.com", "s3cret-Pass-123", "MD5")
    assert credential.ha1("SHA-256") == credential.ha1_sha256
    assert len(credential.ha1_sha256) == 64
    assert "s3cret" not in repr(credential)
    with pytest.raises(ValueError):
        credential.ha1("MD5-sess")
    directory = Directory(credentials=[credential])
    assert directory.credential("pub1") is credential
    assert directory.credential("PUB1") is None
    assert directory.credential("nobody") is None
    assert directory.credentials == (credential,)
    with pytest.raises(ValueError, match="duplicate SIP username"):
        Directory(credentials=[credential, credential])


def test_empty_directory() -> None:
    directory = Directory()
    assert directory.match_ip("203.0.113.1", NOW) is None
    assert directory.credential("pub1") is None
