"""Who may send calls: IP allowlist rules and digest credentials, as one immutable snapshot.

The SIP agent holds a reference to the current :class:`Directory` and swaps it for a new one
when the configuration changes (SPEC §5: "changes reach the running agent within seconds").
Rebinding a reference is atomic in CPython, so lookups never see a half-built table.

Lookups are longest-prefix-match over hash tables, one per prefix length present: at most 33
(IPv4) or 129 (IPv6) dictionary probes whatever the number of rules, and in practice a handful.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from rtbridge.sip.auth import digest

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_V4_MAPPED = IPv6Network("::ffff:0:0/96")


def parse_address(value: str | IPAddress) -> IPAddress | None:
    """The IP address in ``value``, or ``None`` if there is none; an address given as an
    ``ipaddress`` object (parsed once where the request arrived) comes back as it is, an
    IPv4-mapped one as its IPv4 address.

    Text is parsed through a cache: the same few sources ask again and again (an SDP's
    hosts, an admin's dry runs), ``ipaddress`` parsing costs a few microseconds, and the
    results are immutable.

    Accepts what SIP stacks report as a source: ``1.2.3.4``, ``1.2.3.4:5060``, ``::1``,
    ``[2001:db8::1]:5060`` (pjsip's ``srcAddress``), ``fe80::1%eth0``. An IPv4-mapped IPv6
    address (``::ffff:1.2.3.4``, what a dual-stack socket reports for IPv4 peers) is returned as
    the IPv4 address, so IPv4 rules apply to it.
    """
    if isinstance(value, IPv6Address):
        return value.ipv4_mapped or value
    if isinstance(value, IPv4Address):
        return value
    return _parse_text(value)


@functools.lru_cache(maxsize=16_384)
def _parse_text(text: str) -> IPAddress | None:
    text = text.strip()
    if len(text) > 64:  # longest real form: bracketed scoped IPv6 with port
        return None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
            return None
        text = text[1:close]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_cidr(text: str) -> IPNetwork:
    """An allowlist entry as written by an admin: ``203.0.113.0/24``, ``2001:db8::/32``, or a
    bare address (a /32 or /128).

    Host bits set (``203.0.113.5/24``) is an error rather than silently widened: the admin
    meant either the host or the network, and guessing wrong opens the door to a /24. An
    IPv4-mapped IPv6 network becomes the IPv4 network it denotes. Raises ``ValueError`` with a
    message fit for the admin.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IP network: {text!r} ({exc})") from None
    return _unmap(network)


def _unmap(network: IPNetwork) -> IPNetwork:
    if isinstance(network, IPv6Network) and network.subnet_of(_V4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return IPv4Network((mapped, network.prefixlen - 96))
    return network


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One allowlist entry: calls from ``network`` are ``publisher_id``'s (SPEC §4.2, §5).

    ``expires_at`` is Unix time; the rule stops matching at that instant. ``None`` = forever.
    """

    network: IPNetwork
    publisher_id: str
    rule_id: int | str
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.network, IPv4Network | IPv6Network):
            raise TypeError("AllowRule.network must be an IPv4Network or IPv6Network")
        object.__setattr__(self, "network", _unmap(self.network))

    def active(self, now: float) -> bool:
        """False once expired."""
        return self.expires_at is None or now < self.expires_at

    def describe(self) -> str:
        """How logs and the admin dry-run name the rule that let a call in."""
        return f"ip {self.network} (rule {self.rule_id})"


@dataclass(frozen=True, slots=True)
class Credential:
    """A publisher's digest login. Only the two HA1 values are kept, never the password
    (SPEC §5); both are bound to the realm (RFC 7616 §3.4.2)."""

    username: str
    publisher_id: str
    ha1_md5: str
    ha1_sha256: str

    @classmethod
    def from_password(
        cls, *, username: str, publisher_id: str, password: str, realm: str
    ) -> Credential:
        """Hash a password as set by an admin; the password itself is not retained."""
        return cls(
            username=username,
            publisher_id=publisher_id,
            ha1_md5=digest.ha1(username, realm, password, digest.MD5),
            ha1_sha256=digest.ha1(username, realm, password, digest.SHA256),
        )

    def ha1(self, algorithm: str) -> str:
        """The stored HA1 for ``algorithm`` (``MD5`` or ``SHA-256``)."""
        if algorithm == digest.MD5:
            return self.ha1_md5
        if algorithm == digest.SHA256:
            return self.ha1_sha256
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")


# (prefix length, mask, masked network address → rules in the order given)
_Bucket = tuple[int, int, dict[int, tuple[AllowRule, ...]]]


def _buckets(rules: Iterable[AllowRule], max_prefix: int) -> tuple[_Bucket, ...]:
    by_length: dict[int, dict[int, list[AllowRule]]] = {}
    for rule in rules:
        key = int(rule.network.network_address)
        by_length.setdefault(rule.network.prefixlen, {}).setdefault(key, []).append(rule)
    all_ones = (1 << max_prefix) - 1
    return tuple(
        (
            length,
            all_ones ^ (all_ones >> length),
            {key: tuple(found) for key, found in table.items()},
        )
        for length, table in sorted(by_length.items(), reverse=True)
    )


class Directory:
    """An immutable snapshot of allowlist rules and credentials.

    Two rules for the very same network are kept in the order given and the first active one
    wins; giving one network to two publishers is a configuration error that the apply/admin
    validation should refuse before building a directory. Usernames must be unique — the
    username alone decides the publisher — so duplicates raise ``ValueError``.
    """

    __slots__ = ("_credentials", "_rules", "_v4", "_v6")

    def __init__(
        self, rules: Iterable[AllowRule] = (), credentials: Iterable[Credential] = ()
    ) -> None:
        self._rules = tuple(rules)
        self._v4 = _buckets((r for r in self._rules if r.network.version == 4), 32)
        self._v6 = _buckets((r for r in self._rules if r.network.version == 6), 128)
        table: dict[str, Credential] = {}
        for credential in credentials:
            if credential.username in table:
                raise ValueError(f"duplicate SIP username {credential.username!r}")
            table[credential.username] = credential
        self._credentials = table

    @property
    def rules(self) -> tuple[AllowRule, ...]:
        """The rules this snapshot was built from, in the order given."""
        return self._rules

    @property
    def credentials(self) -> tuple[Credential, ...]:
        """The credentials this snapshot was built from, in the order given."""
        return tuple(self._credentials.values())

    def match_ip(self, ip: str | IPAddress, now: float) -> AllowRule | None:
        """The active rule with the longest prefix containing ``ip``, or ``None``.

        ``ip`` is anything :func:`parse_address` understands (a port is ignored). Expired rules
        never match; a shorter active prefix behind an expired longer one still does.
        """
        address = parse_address(ip) if isinstance(ip, str) else ip
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is None:
            return None
        buckets = self._v4 if address.version == 4 else self._v6
        value = int(address)
        for _, mask, table in buckets:
            for rule in table.get(value & mask, ()):
                if rule.active(now):
                    return rule
        return None

    def credential(self, username: str) -> Credential | None:
        """The credential for ``username`` (exact, case-sensitive as RFC 7616 §3.4 has it)."""
        return self._credentials.get(username)
