"""STIR/SHAKEN for tests (sip/stir/): a test STI-CA (root, intermediate, leaves with a
TNAuthList), a PASSporT signer writing RFC 8224 Identity header values, and an HTTPS x5u
server on loopback with its own TLS CA. All keys are made here with ``cryptography``: no
openssl, no network."""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from rtbridge.sip.stir import Verifier

TN_AUTH_LIST = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26")  # RFC 8226
ORIG = "+13125550100"
DEST = "+18339510260"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def tn_auth_list(spc: str) -> bytes:
    """The DER of a TNAuthList holding one service provider code (RFC 8226 §9, explicit
    tags): SEQUENCE { [0] { IA5String spc } }."""
    ia5 = b"\x16" + bytes([len(spc)]) + spc.encode("ascii")
    entry = b"\xa0" + bytes([len(ia5)]) + ia5
    return b"\x30" + bytes([len(entry)]) + entry


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def issue(
    name: str,
    *,
    issuer: Issued | None = None,
    ca: bool,
    key: PrivateKey | None = None,
    days: tuple[float, float] = (-1, 30),
    extensions: Sequence[x509.ExtensionType] = (),
    san: Sequence[x509.GeneralName] = (),
) -> Issued:
    """A certificate for ``name``, issued by ``issuer`` (None: self-signed), valid from
    now + days[0] to now + days[1]."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        usage = dict.fromkeys(
            ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "encipher_only", "decipher_only", "digital_signature"), False,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.KeyUsage(key_cert_sign=True, crl_sign=True, **usage), critical=True
        )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())  # type: ignore[arg-type]
        builder = builder.add_extension(aki, critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    signer = issuer.key if issuer else key
    digest = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer, digest), key)


class StiCa:
    """A test STI-CA: a root and an intermediate; :meth:`leaf` issues STI certificates."""

    def __init__(self, name: str = "Test STI-CA") -> None:
        self.root = issue(f"{name} Root", ca=True, days=(-10, 3650))
        self.intermediate = issue(
            f"{name} Intermediate", issuer=self.root, ca=True, days=(-10, 365)
        )

    def leaf(
        self,
        *,
        key: PrivateKey | None = None,
        days: tuple[float, float] = (-1, 30),
        spc: str = "1234",
        tn_auth: bool = True,
    ) -> Issued:
        """An STI certificate (an SPC in its TNAuthList, no SAN), EC P-256 unless ``key``."""
        extensions = (
            [x509.UnrecognizedExtension(TN_AUTH_LIST, tn_auth_list(spc))] if tn_auth else []
        )
        return issue(
            f"SHAKEN {spc}", issuer=self.intermediate, ca=False, key=key, days=days,
            extensions=extensions,
        )  # fmt: skip

    def chain_pem(self, leaf: Issued) -> bytes:
        """What an x5u URL serves: the leaf, then the intermediate."""
        return leaf.pem + self.intermediate.pem

    def write_roots(self, path: Path) -> str:
        path.write_bytes(self.root.pem)
        return str(path)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Signer:
    """Signs SHAKEN PASSporTs with ``key`` for the certificate at ``x5u``."""

    key: PrivateKey
    x5u: str

    def sign(
        self,
        attest: str = "A",
        orig: str = ORIG,
        dest: str | Sequence[str] = DEST,
        iat: float | None = None,
        origid: str | None = None,
        *,
        age: float = 0,
        tamper: bool = False,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        params: str | None = None,
    ) -> str:
        """An Identity header value ``<jws>;info=<x5u>;alg=ES256;ppt=shaken``, signed here
        (JWS ES256 by hand with ``cryptography``, not with the verifier's PyJWT, and so
        with any header a hostile signer might write). ``age``
        seconds are taken off ``iat`` (now by default); ``tamper`` flips a bit of the
        signature; ``header``/``claims`` override (a None value drops the field); ``params``
        replaces everything after the JWS."""
        head: dict[str, Any] = {"alg": "ES256", "typ": "passport", "ppt": "shaken", "x5u": self.x5u}
        body: dict[str, Any] = {
            "attest": attest,
            "orig": {"tn": orig.lstrip("+")},
            "dest": {"tn": [dest.lstrip("+")] if isinstance(dest, str) else list(dest)},
            "iat": round((_now().timestamp() if iat is None else iat) - age),
            "origid": origid or str(uuid.uuid4()),
        }
        head.update(header or {})
        body.update(claims or {})
        head = {k: v for k, v in head.items() if v is not None}
        body = {k: v for k, v in body.items() if v is not None}
        encoded = _b64(json.dumps(head).encode()) + "." + _b64(json.dumps(body).encode())
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(encoded.encode(), ec.ECDSA(hashes.SHA256())))
            token = encoded + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        else:  # no ES256 with this key: a token the verifier must refuse anyway
            token = encoded + "." + _b64(b"\x00" * 64)
        if tamper:
            encoded, _, signature = token.rpartition(".")
            raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
            raw[10] ^= 0x01
            token = encoded + "." + _b64(bytes(raw))
        tail = f";info=<{self.x5u}>;alg=ES256;ppt=shaken" if params is None else params
        return token + tail


# -- the x5u server ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # hold the request open until the server stops
    dribble: bool = False  # send the body a byte every 0.1 s
    delay: float = 0.0  # seconds before answering


class X5uServer:
    """HTTPS on 127.0.0.1 in a thread: serves :meth:`serve`'s answers by path, counts the
    requests for each path in ``fetches``, holds a ``hang`` path's request open until the
    server stops and sends a ``dribble`` path's body a byte at a time. Its TLS certificate
    names 127.0.0.1, localhost and x5u.test, issued by a CA whose PEM is at ``ca_file``
    (the verifier's ``https_ca_file``)."""

    def __init__(self, folder: Path) -> None:
        tls_ca = issue("x5u test TLS CA", ca=True)
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName("x5u.test"),
        ]
        tls = issue("127.0.0.1", issuer=tls_ca, ca=False, san=names)
        self.ca_file = str(folder / "x5u-tls-ca.pem")
        Path(self.ca_file).write_bytes(tls_ca.pem)
        cert_file, key_file = folder / "x5u-tls.pem", folder / "x5u-tls.key"
        cert_file.write_bytes(tls.pem)
        key_file.write_bytes(
            tls.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.answers: dict[str, Answer] = {}
        self.fetches: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def serve(self, path: str, body: bytes = b"", **kwargs: Any) -> str:
        """Answer ``path`` with ``body`` (or as ``Answer``'s fields say); its URL."""
        self.answers[path] = Answer(body=body, **kwargs)
        return self.url(path)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.fetches[self.path] += 1
                answer = server.answers.get(self.path, Answer(status=404))
                if answer.hang or server._stop.wait(answer.delay):
                    server._stop.wait(30)
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    if not answer.dribble:
                        self.wfile.write(answer.body)
                    for byte in answer.body if answer.dribble else b"":
                        if server._stop.wait(0.1):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> X5uServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def x5u_server(folder: Path) -> Iterator[X5uServer]:
    with X5uServer(folder) as server:
        yield server


# -- all of it together -----------------------------------------------------------------------


@dataclass
class Sti:
    """A test STI-CA whose roots are in ``roots_file``, an x5u server serving a valid chain
    at ``x5u``, and a signer for that chain's leaf: ``verifier()`` trusts all three."""

    ca: StiCa
    server: X5uServer
    roots_file: str
    leaf: Issued
    x5u: str
    signer: Signer

    def verifier(self, **overrides: Any) -> Verifier:
        options: dict[str, Any] = {
            "roots_file": self.roots_file, "https_ca_file": self.server.ca_file,
            "allowed_networks": ["127.0.0.0/8"],
        }  # fmt: skip
        return Verifier(**(options | overrides))

    def publish(self, path: str, leaf: Issued, ca: StiCa | None = None) -> Signer:
        """Serve ``leaf``'s chain (issued by ``ca``, this one's by default) at ``path``; a
        signer with ``leaf``'s key naming it."""
        url = self.server.serve(path, (ca or self.ca).chain_pem(leaf))
        return Signer(leaf.key, url)


@contextlib.contextmanager
def sti(folder: Path) -> Iterator[Sti]:
    ca = StiCa()
    with x5u_server(folder) as server:
        leaf = ca.leaf()
        x5u = server.serve("/sti/chain.pem", ca.chain_pem(leaf))
        roots_file = ca.write_roots(folder / "sti-roots.pem")
        yield Sti(ca, server, roots_file, leaf, x5u, Signer(leaf.key, x5u))
