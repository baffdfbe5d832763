"""The SIP ``Identity`` header (RFC 8224 §4): ``<jws>;info=<https://…>;alg=ES256;ppt=shaken``
in its full form (the PASSporT's payload inside the JWS; the compact form, ``header..sig``,
leaves it out for the verifier to rebuild from the SIP message, which SHAKEN does not use).

A call may carry several Identity headers (a header field may also join several values with
commas); the SHAKEN one is chosen: ``ppt=shaken`` in its parameters or, without that
parameter, ``"ppt": "shaken"`` in its PASSporT's header. Parameters may come in any order,
with spaces around ``;`` and ``=``. Sizes are bounded before any parsing: a value over
8 KiB, or more than 8 values, is refused as a whole."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rtbridge.sip.stir.attestation import Failed

MAX_VALUE = 8 * 1024
MAX_VALUES = 8

_JWS = re.compile(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_PARAM = re.compile(
    r"\s*;\s*([A-Za-z0-9._!%*+`'~-]+)\s*(?:=\s*(<[^<>]*>|\"[^\"]*\"|[^;\s<>\"]+))?\s*"
)


@dataclass(frozen=True)
class Identity:
    """One Identity header value, read: its JWS, the credential URL of its ``info``
    parameter (without the angle brackets) and all its parameters (names lowercased)."""

    jws: str
    info: str
    params: dict[str, str]

    def ppt(self) -> str | None:
        """The PASSporT type: the ``ppt`` parameter, else the PASSporT header's ``ppt``."""
        if "ppt" in self.params:
            return self.params["ppt"].strip('"').lower()
        value = _unverified_header(self.jws).get("ppt")
        return value.lower() if isinstance(value, str) else None


def parse(value: str) -> Identity:
    """One Identity header value, or Failed saying what is wrong with it."""
    if len(value) > MAX_VALUE:
        raise Failed("Identity header too long")
    jws, semicolon, rest = value.strip().partition(";")
    jws, text = jws.strip(), semicolon + rest
    if not _JWS.fullmatch(jws):
        raise Failed("Identity is not a JWS")
    header, payload, signature = jws.split(".")
    if payload == "":
        raise Failed("compact form not supported")
    if header == "" or signature == "":
        raise Failed("Identity is not a JWS")
    params: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None:
            raise Failed("Identity parameters malformed")
        params.setdefault(match.group(1).lower(), match.group(2) or "")
        position = match.end()
    alg = params.get("alg")
    if alg is not None and alg.strip('"') != "ES256":
        raise Failed(f"Identity alg {_short(alg)} is not ES256")
    return Identity(jws, _info(params.get("info")), params)


def _info(value: str | None) -> str:
    if value is None:
        raise Failed("Identity has no info parameter")
    if not (value.startswith("<") and value.endswith(">")):
        raise Failed("Identity info is not in angle brackets")
    return value[1:-1].strip()


def choose(values: Sequence[str]) -> Identity:
    """The SHAKEN Identity among a call's header values (each possibly comma-joined)."""
    if sum(len(v) for v in values) > MAX_VALUE * MAX_VALUES:
        raise Failed("Identity headers too long")
    pieces = [piece for value in values for piece in _split(value)]
    if len(pieces) > MAX_VALUES:
        raise Failed(f"more than {MAX_VALUES} Identity headers")
    first_problem: Failed | None = None
    for piece in pieces:
        try:
            identity = parse(piece)
            if identity.ppt() == "shaken":
                return identity
        except Failed as problem:
            first_problem = first_problem or problem
    raise first_problem or Failed("no SHAKEN Identity header")


def _split(value: str) -> list[str]:
    """The values a header field joined with commas (a comma inside ``<…>`` is a URL's)."""
    if len(value) > MAX_VALUE:
        raise Failed("Identity header too long")
    if "," not in value:  # one value per header field: the usual case, no scan
        return [value] if value.strip() else []
    pieces, start, inside = [], 0, False
    for i, char in enumerate(value):
        if char in "<>":
            inside = char == "<"
        elif char == "," and not inside:
            pieces.append(value[start:i])
            start = i + 1
    pieces.append(value[start:])
    return [piece for piece in pieces if piece.strip()]


def _unverified_header(jws: str) -> dict[str, object]:
    """The JWS's protected header as JSON, unverified: only to read its ``ppt``."""
    encoded = jws.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise Failed("PASSporT header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise Failed("PASSporT header is not a JSON object")
    return header


def _short(text: str, limit: int = 40) -> str:
    """A stranger's text for a reason: printable ASCII, at most ``limit`` characters."""
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit] + "…"
