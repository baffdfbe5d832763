"""SIP digest authentication: header syntax and the response arithmetic.

Pure functions, no state: the nonce lives in :mod:`rtbridge.sip.auth.nonce`, the policy (who is
challenged, refused or accepted) in :mod:`rtbridge.sip.auth.authenticator`.

References
- RFC 2617 §3.2.2 (``request-digest`` with and without ``qop``), RFC 7616 §3.4.1-3.4.3
  (the same arithmetic with SHA-256), RFC 8760 §2 (SHA-256 / SHA-512-256 for SIP, replacing
  RFC 3261 §22.4's MD5-only wording).
- RFC 3261 §25.1 / RFC 7616 §3.3-3.4 for the ``auth-param`` grammar parsed here.

Only ``qop="auth"`` and the non-session algorithms ``MD5`` and ``SHA-256`` are supported:
``auth-int`` needs the message body (pjsua2 hands us the whole message, but no SBC we target
uses it) and the ``-sess`` variants need server-side cnonce state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final, Literal

Algorithm = Literal["MD5", "SHA-256"]

MD5: Final[Algorithm] = "MD5"
SHA256: Final[Algorithm] = "SHA-256"
#: RFC 8760 §2.4: a server offering several algorithms lists the preferred one first.
ALGORITHMS: Final[tuple[Algorithm, ...]] = (SHA256, MD5)

_HASHLIB_NAME: Final[dict[str, str]] = {MD5: "md5", SHA256: "sha256"}
_HEX_LENGTH: Final[dict[str, int]] = {MD5: 32, SHA256: 64}

#: Upper bound on a whole ``Authorization`` value. Real ones are 300-600 bytes; the bound keeps
#: a hostile header from costing more than a few microseconds to reject.
MAX_HEADER_LENGTH: Final = 4096

_TOKEN_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]+")
_NC_RE: Final = re.compile(r"[0-9a-fA-F]{8}")
# Printable ASCII plus tab; anything else (CR, LF, NUL, other controls, non-ASCII) is refused.
# RFC 3261 allows UTF-8 in quoted-strings, but usernames and nonces here are ASCII by
# construction, and refusing the rest keeps reason phrases and logs free of surprises.
_ALLOWED_RE: Final = re.compile(r"[\t\x20-\x7e]*")


class DigestSyntaxError(ValueError):
    """The ``Authorization`` header is not a usable Digest credential (→ 400 Bad Request).

    The message is a short fixed phrase, never the offending input, so it is safe to put in a
    SIP reason phrase or a log line.
    """


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of one ``Authorization: Digest`` header (RFC 7616 §3.4).

    ``algorithm`` is canonical (``"MD5"`` / ``"SHA-256"``) when recognised, otherwise the
    client's token upper-cased; :func:`is_supported` tells which. ``qop``, ``nc`` and
    ``cnonce`` are all present or all ``None`` (the RFC 2069 form).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nonce_count(self) -> int | None:
        """``nc`` as an integer (RFC 7616 §3.4: 8 hex digits), or ``None`` without qop."""
        return None if self.nc is None else int(self.nc, 16)


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty RFC 3261 §25.1 token (a SIP method name is one)."""
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


def is_supported(algorithm: str) -> bool:
    """True for the algorithms this module can verify."""
    return algorithm in _HASHLIB_NAME


def _hash(algorithm: str, data: str) -> str:
    name = _HASHLIB_NAME.get(algorithm)
    if name is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    # surrogatepass: a lone surrogate (possible in a JSON-supplied password) must hash, not
    # raise — SPEC §7, no 500 on bad input.
    return hashlib.new(name, data.encode("utf-8", "surrogatepass")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """``H(username ":" realm ":" password)`` — what we store instead of the password.

    RFC 7616 §3.4.2. The value is bound to the realm: changing the SIP domain invalidates every
    stored HA1, so credentials must then be set again.
    """
    return _hash(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    *,
    ha1_hex: str,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The ``response`` value a client computes (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1).

    With ``qop="auth"``: ``H(HA1:nonce:nc:cnonce:qop:HA2)``; without qop (RFC 2069):
    ``H(HA1:nonce:HA2)``. ``HA2 = H(method:uri)`` (RFC 7616 §3.4.3, qop=auth).
    """
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1_hex}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def verify_response(credentials: DigestCredentials, *, ha1_hex: str, method: str) -> bool:
    """Whether ``credentials.response`` is right for ``ha1_hex`` and ``method``.

    Compared with :func:`same_digest`, in constant time.
    """
    if not is_supported(credentials.algorithm):
        return False
    expected = compute_response(
        ha1_hex=ha1_hex,
        algorithm=credentials.algorithm,
        method=method,
        uri=credentials.uri,
        nonce=credentials.nonce,
        qop=credentials.qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
    )
    return same_digest(expected, credentials.response)


def same_digest(a: str, b: str) -> bool:
    """Constant-time equality of two hex digests (case-insensitive, as hex is).

    :func:`hmac.compare_digest` takes as long for a guess right in its first characters as for
    one wrong everywhere, so response times leak nothing about the expected value.
    """
    return hmac.compare_digest(a.lower().encode("ascii"), b.lower().encode("ascii"))


def quote(value: str) -> str:
    """A quoted-string (RFC 3261 §25.1): backslash-escape ``"`` and ``\\``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_challenge(
    *, realm: str, nonce: str, algorithm: str, stale: bool = False, opaque: str | None = None
) -> str:
    """A ``WWW-Authenticate`` value (RFC 7616 §3.3, RFC 8760 §2.4).

    ``algorithm`` is a bare token and ``qop`` a quoted list, as in the RFC examples; RFC 3261
    §22.4 item 8 obliges a SIP server to always send ``qop``. ``stale=true`` tells the client
    its credentials were right but the nonce is not, so it may retry without asking anyone.
    """
    if not is_supported(algorithm):
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    parts = [f"realm={quote(realm)}", f"nonce={quote(nonce)}"]
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    parts.append(f"algorithm={algorithm}")
    parts.append('qop="auth"')
    if stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


def parse_params(header: str) -> tuple[str, dict[str, str]]:
    """Split a credentials/challenge value into its scheme and ``auth-param`` dictionary.

    Grammar (RFC 3261 §25.1, RFC 7235 §2.1): ``scheme 1*SP param *("," param)`` with
    ``param = token BWS "=" BWS (token / quoted-string)``. Parameter names are case-insensitive
    and returned lower-cased; a repeated parameter is an error (which one would count?). Empty
    list elements (``a=1,,b=2``) are tolerated as RFC 7230 §7 asks. Unquoted values are read
    up to the next comma or blank, which also accepts the odd client that forgets the quotes
    around ``uri``.

    Raises :class:`DigestSyntaxError`; never anything else, whatever the input.
    """
    if len(header) > MAX_HEADER_LENGTH:
        raise DigestSyntaxError("Authorization header too long")
    if _ALLOWED_RE.fullmatch(header) is None:
        raise DigestSyntaxError("Authorization header has control or non-ASCII characters")
    text = header.strip(" \t")
    end = len(text)
    i = 0
    while i < end and text[i] in _TOKEN_CHARS:
        i += 1
    scheme = text[:i]
    if not scheme:
        raise DigestSyntaxError("Authorization header has no scheme")
    if i < end and text[i] not in " \t":
        raise DigestSyntaxError("Authorization scheme is not a token")
    params: dict[str, str] = {}
    expect_param = True  # at the start, or right after a comma
    while True:
        while i < end and text[i] in " \t":
            i += 1
        if i >= end:
            break
        if text[i] == ",":
            expect_param = True
            i += 1
            continue
        if not expect_param:
            raise DigestSyntaxError("Authorization parameters must be separated by commas")
        start = i
        while i < end and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise DigestSyntaxError("Authorization parameter name is not a token")
        while i < end and text[i] in " \t":
            i += 1
        if i >= end or text[i] != "=":
            raise DigestSyntaxError("Authorization parameter without a value")
        i += 1
        while i < end and text[i] in " \t":
            i += 1
        if i < end and text[i] == '"':
            value, i = _read_quoted(text, i)
        else:
            start = i
            while i < end and text[i] not in ' \t,"':
                i += 1
            value = text[start:i]
            if not value:
                raise DigestSyntaxError("Authorization parameter with an empty value")
        if name in params:
            raise DigestSyntaxError("Authorization parameter repeated")
        params[name] = value
        expect_param = False
    return scheme, params


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[i] == '"'``; return (value, index after it)."""
    out: list[str] = []
    i += 1
    end = len(text)
    while i < end:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= end:
                break
            out.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise DigestSyntaxError("Authorization has an unterminated quoted-string")


def parse_authorization(header: str) -> DigestCredentials:
    """Parse one ``Authorization: Digest ...`` value (the part after the colon).

    Checks syntax only — required parameters present, ``nc``/``response`` shaped right — not
    whether anything is correct. Raises :class:`DigestSyntaxError` (→ 400) and nothing else.

    - ``algorithm`` absent means MD5 (RFC 7616 §3.3).
    - ``qop`` may be quoted or not (clients differ; RFC 7616 §3.4 says unquoted). With qop,
      ``nc`` (8 hex digits) and ``cnonce`` are required (RFC 7616 §3.4); ``qop`` values other
      than ``auth`` are left for the caller to refuse.
    - ``uri`` must be present but is not compared with the Request-URI: SBCs and proxies rewrite
      the Request-URI after the client signed it, and the response already covers the ``uri``
      the client chose (RFC 3261 §22.4 leaves the check to the server).
    - ``userhash`` and ``username*`` (RFC 7616 §3.4.4, §3.4.5) are not offered by our
      challenges, so a client sending them is refused.
    """
    scheme, params = parse_params(header)
    if scheme.lower() != "digest":
        raise DigestSyntaxError("Authorization scheme is not Digest")
    if "username*" in params or params.get("userhash", "false").lower() != "false":
        raise DigestSyntaxError("userhash and username* are not supported")
    missing = [n for n in ("username", "realm", "nonce", "uri", "response") if not params.get(n)]
    if missing:
        raise DigestSyntaxError("Authorization lacks " + ", ".join(missing))
    algorithm = params.get("algorithm", MD5)
    for canonical in _HASHLIB_NAME:
        if algorithm.upper() == canonical:
            algorithm = canonical
            break
    else:
        algorithm = algorithm.upper()
    response = params["response"]
    if _HEX_RE.fullmatch(response) is None:
        raise DigestSyntaxError("Digest response is not hexadecimal")
    expected_length = _HEX_LENGTH.get(algorithm)
    if expected_length is not None and len(response) != expected_length:
        raise DigestSyntaxError("Digest response has the wrong length for its algorithm")
    qop = params.get("qop")
    nc = params.get("nc")
    cnonce = params.get("cnonce")
    if qop is None:
        if nc is not None or cnonce is not None:
            raise DigestSyntaxError("nc and cnonce need qop")
    else:
        if nc is None or cnonce is None or not cnonce:
            raise DigestSyntaxError("qop needs nc and cnonce")
        if _NC_RE.fullmatch(nc) is None:
            raise DigestSyntaxError("nc must be 8 hexadecimal digits")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=response.lower(),
        algorithm=algorithm,
        qop=qop,
        nc=None if nc is None else nc.lower(),
        cnonce=cnonce,
        opaque=params.get("opaque"),
    )


def build_authorization(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str = MD5,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    qop: str | None = "auth",
) -> str:
    """The ``Authorization`` value a client would send — for tests and client-side tools.

    The server never needs this; it is here so tests exercise the real arithmetic rather than
    a copy of it.
    """
    nc_hex = f"{nc:08x}"
    response = compute_response(
        ha1_hex=ha1(username, realm, password, algorithm),
        algorithm=algorithm,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc_hex if qop else None,
        cnonce=cnonce if qop else None,
    )
    parts = [
        f"username={quote(username)}",
        f"realm={quote(realm)}",
        f"nonce={quote(nonce)}",
        f"uri={quote(uri)}",
        f"response={quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_hex}", f"cnonce={quote(cnonce)}"]
    return "Digest " + ", ".join(parts)
