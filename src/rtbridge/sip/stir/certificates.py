"""Fetching the certificate chain a PASSporT's ``x5u`` names. The URL is a stranger's: the
INVITE's sender chooses where our SIP agent connects. So: https only, no redirects, the
whole fetch (name lookup, connect, TLS, every read) within one deadline, the body capped
at 64 KiB, and the host's addresses vetted before any connection — none may be inside
(``netclass``: loopback, private, link-local with the cloud metadata service, CGNAT,
multicast…) unless an admin trusted its network. The connection goes to the vetted address
itself, with TLS verifying the URL's host name (SNI and certificate): a second DNS answer,
different from the one vetted, is never asked for.

The request is a minimal HTTP/1.0 GET written here (a few lines) rather than http.client,
whose timeouts apply per socket operation: a server dribbling a byte a second would hold a
router thread indefinitely. HTTP/1.0 answers carry no chunked encoding."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence

from cryptography import x509

from rtbridge.netclass import Address, is_internal, is_trusted
from rtbridge.sip.stir.attestation import Failed

MAX_BODY = 64 * 1024
MAX_HEAD = 8 * 1024
MAX_CERTIFICATES = 8


class Fetcher:
    """Fetches x5u chains; thread-safe (it holds no state between fetches)."""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        https_ca_file: str | None = None,
        allowed_networks: Sequence[str] = (),
    ) -> None:
        for network in allowed_networks:
            ipaddress.ip_network(network, strict=False)  # a typo raises now, not per call
        self.timeout = timeout
        self.allowed_networks = tuple(allowed_networks)
        self._tls = ssl.create_default_context(cafile=https_ca_file)

    def fetch(self, url: str) -> list[x509.Certificate]:
        """The chain at ``url``, leaf first, or Failed saying why there is none."""
        deadline = time.monotonic() + self.timeout
        host, port, target = _split(url)
        addresses = self._vetted(host, deadline)
        try:
            answer = self._get(addresses, host, port, target, deadline)
        except TimeoutError:
            raise Failed(f"x5u unreachable: timed out after {self.timeout:.1f} s") from None
        except ConnectionRefusedError:
            raise Failed("x5u unreachable: connection refused") from None
        except ssl.SSLCertVerificationError as exc:
            raise Failed(
                f"x5u TLS failed: {exc.verify_message or 'certificate not trusted'}"
            ) from None
        except ssl.SSLError as exc:
            raise Failed(f"x5u TLS failed: {exc.reason or 'handshake failed'}") from None
        except OSError as exc:
            raise Failed(f"x5u unreachable: {exc.strerror or type(exc).__name__}") from None
        return certificates(_body(answer))

    def _vetted(self, host: str, deadline: float) -> list[Address]:
        """The host's addresses, when every one may be reached; else Failed. A host that
        answers with one outside address and one inside is refused: it is probing."""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = _resolve(host, deadline, self.timeout)
        if any(is_internal(a) and not is_trusted(a, self.allowed_networks) for a in addresses):
            raise Failed("x5u address not allowed")
        return addresses

    def _get(
        self, addresses: list[Address], host: str, port: int, target: str, deadline: float
    ) -> bytes:
        request = (
            f"GET {target} HTTP/1.0\r\nHost: {_host_header(host, port)}\r\n"
            "Accept: application/pem-certificate-chain, application/pkix-cert\r\n"
            "User-Agent: rtbridge-stir\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        last: OSError = OSError("no address")
        for address in addresses:
            try:
                raw = socket.create_connection((str(address), port), timeout=_left(deadline))
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise
                last = exc
                continue
            with (
                raw,
                self._tls.wrap_socket(
                    raw, server_hostname=host, do_handshake_on_connect=False
                ) as tls,
            ):
                tls.settimeout(_left(deadline))
                tls.do_handshake()
                tls.settimeout(_left(deadline))
                tls.sendall(request)
                return _read(tls, deadline)
        raise last


def certificates(body: bytes) -> list[x509.Certificate]:
    """A PEM chain (leaf first), or one DER certificate."""
    try:
        if b"-----BEGIN" in body:
            chain = x509.load_pem_x509_certificates(body)
        else:
            chain = [x509.load_der_x509_certificate(body)]
    except ValueError:
        raise Failed("x5u body is not a certificate chain") from None
    if len(chain) > MAX_CERTIFICATES:
        raise Failed(f"x5u chain longer than {MAX_CERTIFICATES} certificates")
    return chain


def _split(url: str) -> tuple[str, int, str]:
    """(host, port, request target) of an https URL without surprises in it."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise Failed("x5u malformed")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise Failed("x5u malformed") from None
    if parts.scheme.lower() != "https":
        raise Failed("x5u is not https")
    if not parts.hostname:
        raise Failed("x5u has no host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, target


def _resolve(host: str, deadline: float, timeout: float) -> list[Address]:
    """``host``'s addresses, looked up in a daemon thread: getaddrinfo has no timeout of
    its own, and a slow resolver must not stretch the deadline (the thread is left to
    finish on its own)."""
    found: list[list[Address]] = []

    def look_up() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        found.append([ipaddress.ip_address(info[4][0]) for info in infos])

    worker = threading.Thread(target=look_up, name="x5u-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise Failed(f"x5u unreachable: timed out after {timeout:.1f} s")
    if not found or not found[0]:
        raise Failed("x5u unreachable: host not found")
    return found[0]


def _read(tls: ssl.SSLSocket, deadline: float) -> bytes:
    """The answer, read until the server closes or the head's Content-Length is in; over
    the caps, Failed before reading more."""
    data = bytearray()
    while True:
        tls.settimeout(_left(deadline))
        chunk = tls.recv(16 * 1024)
        if not chunk:
            return bytes(data)
        data += chunk
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            if len(data) > MAX_HEAD:
                raise Failed("x5u answer head too long")
            continue
        length = _content_length(bytes(data[:head_end]))
        if len(data) - head_end - 4 > MAX_BODY or (length or 0) > MAX_BODY:
            raise Failed("x5u body over 64 KiB")
        if length is not None and len(data) - head_end - 4 >= length:
            return bytes(data)


def _body(answer: bytes) -> bytes:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        raise Failed("x5u answer malformed")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise Failed("x5u answer malformed")
    status = status_line[1].decode("ascii", "replace")[:3]
    if status.startswith("3"):
        raise Failed("x5u redirect refused")
    if status != "200":
        raise Failed(f"x5u answered {status}")
    length = _content_length(head)
    if length is not None:
        if length > MAX_BODY:
            raise Failed("x5u body over 64 KiB")
        body = body[:length]
    return body


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 12 else None
    return None


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 443 else f"{name}:{port}"
