"""Fetching an x5u chain (sip/stir/certificates.py): a stranger's URL, so https only, no
redirect, a bounded time and body, and no address inside unless trusted."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from rtbridge.sip.stir.attestation import Failed
from rtbridge.sip.stir.certificates import Fetcher
from tests.support.net import free_port
from tests.support.stir import Sti


def fetcher(world: Sti, **overrides: Any) -> Fetcher:
    options: dict[str, Any] = {
        "https_ca_file": world.server.ca_file,
        "allowed_networks": ["127.0.0.0/8"],
    }
    return Fetcher(**(options | overrides))


def why(fetch: Callable[[], object]) -> str:
    with pytest.raises(Failed) as caught:
        fetch()
    return caught.value.why


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a connection is opened to (the calls still go through)."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return opened


def test_a_pem_chain_is_read_leaf_first(world: Sti) -> None:
    chain = fetcher(world).fetch(world.x5u)
    assert [c.subject for c in chain] == [
        world.leaf.cert.subject,
        world.ca.intermediate.cert.subject,
    ]


def test_a_der_certificate_is_read(world: Sti) -> None:
    url = world.server.serve("/leaf.der", world.leaf.cert.public_bytes(serialization.Encoding.DER))
    assert fetcher(world).fetch(url) == [world.leaf.cert]


@pytest.mark.parametrize(
    "url",
    ["https://169.254.169.254/latest/meta-data", "https://10.0.0.1/c.pem", "https://[::1]:8443/c.pem",
     "https://[::ffff:127.0.0.1]/c.pem", "https://192.168.0.1/c.pem", "https://100.64.0.1/c.pem",
     "https://0.0.0.0/c.pem", "https://[fd00::1]/c.pem"],
)  # fmt: skip
def test_an_inside_address_is_refused_without_a_connection(
    world: Sti, connections: list[tuple[str, int]], url: str
) -> None:
    assert why(lambda: fetcher(world).fetch(url)) == "x5u address not allowed"
    assert connections == []


def test_loopback_is_refused_unless_allowed(world: Sti, connections: list[tuple[str, int]]) -> None:
    assert (
        why(lambda: fetcher(world, allowed_networks=()).fetch(world.x5u))
        == "x5u address not allowed"
    )
    assert connections == [] and world.server.fetches == {}
    assert fetcher(world).fetch(world.x5u)
    assert connections == [("127.0.0.1", world.server.port)]


def test_a_name_resolving_inside_is_refused(
    world: Sti, connections: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve(monkeypatch, {"x5u.test": ["93.184.216.34", "10.0.0.1"]})
    assert why(lambda: fetcher(world).fetch("https://x5u.test/c.pem")) == "x5u address not allowed"
    assert connections == []


def test_the_vetted_address_is_dialled_and_tls_checks_the_name(
    world: Sti, connections: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is resolved once; the connection goes to that address; the server's
    certificate must name the URL's host (x5u.test is in it, other.test is not)."""
    looked_up = resolve(monkeypatch, {"x5u.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    assert fetcher(world).fetch(world.server.url("/sti/chain.pem", host="x5u.test"))
    assert looked_up == ["x5u.test"] and connections == [("127.0.0.1", world.server.port)]
    assert why(
        lambda: fetcher(world).fetch(world.server.url("/sti/chain.pem", host="other.test"))
    ).startswith("x5u TLS failed")


def test_an_unknown_host_fails(world: Sti, monkeypatch: pytest.MonkeyPatch) -> None:
    resolve(monkeypatch, {})
    assert (
        why(lambda: fetcher(world).fetch("https://nowhere.test/c.pem"))
        == "x5u unreachable: host not found"
    )


def test_tls_is_verified(world: Sti) -> None:
    """Without the test CA, the x5u server's certificate is not trusted (the system store)."""
    assert why(lambda: fetcher(world, https_ca_file=None).fetch(world.x5u)).startswith(
        "x5u TLS failed"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http://127.0.0.1/c.pem", "x5u is not https"), ("ftp://127.0.0.1/c.pem", "x5u is not https"),
     ("https:///c.pem", "x5u has no host"), ("https://127.0.0.1:99999/c.pem", "x5u malformed"),
     ("https://127.0.0.1/c.pem\r\nHost: evil", "x5u malformed"), ("https://127.0.0.1/a b", "x5u malformed")],
)  # fmt: skip
def test_malformed_and_plain_http_urls_are_refused(
    world: Sti, connections: list[tuple[str, int]], url: str, reason: str
) -> None:
    assert why(lambda: fetcher(world).fetch(url)) == reason
    assert connections == []


def test_a_closed_port_fails_fast(world: Sti) -> None:
    url = f"https://127.0.0.1:{free_port()}/c.pem"
    assert why(lambda: fetcher(world).fetch(url)) == "x5u unreachable: connection refused"


def test_a_hanging_server_is_bounded_by_the_timeout(world: Sti) -> None:
    url = world.server.serve("/hang", hang=True)
    started = time.monotonic()
    assert (
        why(lambda: fetcher(world, timeout=0.5).fetch(url))
        == "x5u unreachable: timed out after 0.5 s"
    )
    assert time.monotonic() - started < 0.5 + 0.5


def test_a_dribbling_server_is_bounded_by_the_whole_fetch(world: Sti) -> None:
    """A byte every 0.1 s, each read well within any per-read timeout: the deadline is the
    whole fetch's."""
    url = world.server.serve("/slow.pem", world.ca.chain_pem(world.leaf), dribble=True)
    started = time.monotonic()
    assert (
        why(lambda: fetcher(world, timeout=0.6).fetch(url))
        == "x5u unreachable: timed out after 0.6 s"
    )
    assert time.monotonic() - started < 0.6 + 0.5


def test_a_body_over_64_kib_is_refused(world: Sti) -> None:
    url = world.server.serve("/big.pem", b"A" * 200_000)
    assert why(lambda: fetcher(world).fetch(url)) == "x5u body over 64 KiB"


def test_a_redirect_is_not_followed(world: Sti) -> None:
    url = world.server.serve("/moved", status=302, headers={"Location": world.x5u})
    assert why(lambda: fetcher(world).fetch(url)) == "x5u redirect refused"
    assert world.server.fetches["/sti/chain.pem"] == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "x5u body is not a certificate chain"), (b"<html>hello</html>", "x5u body is not a certificate chain"),
     (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "x5u body is not a certificate chain")],
)  # fmt: skip
def test_a_body_that_is_not_a_chain_fails(world: Sti, body: bytes, reason: str) -> None:
    assert why(lambda: fetcher(world).fetch(world.server.serve("/junk", body))) == reason


def test_an_error_status_fails(world: Sti) -> None:
    assert why(lambda: fetcher(world).fetch(world.server.url("/absent"))) == "x5u answered 404"


def resolve(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo from ``names`` (an address literal as it is); the names looked up,
    in order."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return real(host, port, *args, **kwargs)
        looked_up.append(host)
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in names[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up
