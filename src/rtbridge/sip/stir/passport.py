"""The SHAKEN PASSporT (RFC 8225, RFC 8588, ATIS-1000074) inside an Identity header: read
with PyJWT before anything is fetched — its header and claims checked for shape, freshness
and the call's numbers, so a stale or misaddressed token costs no certificate fetch — then
its ES256 signature checked with the key of the certificate its ``x5u`` names."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from rtbridge.domain.attestation import LEVELS
from rtbridge.sip.stir.attestation import Failed

MAX_URL = 2048
_NOT_DIGIT = re.compile(r"[^0-9]")
# header.payload.signature, each base64url without padding (RFC 7515 §7.1)
_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ES256 = ECAlgorithm(ECAlgorithm.SHA256)


@dataclass(frozen=True)
class Passport:
    """A SHAKEN PASSporT's fields, checked for shape but not yet for its signature."""

    x5u: str
    attest: str
    orig: str  # orig.tn as sent
    dest: tuple[str, ...]  # dest.tn as sent
    iat: float
    origid: str


def read(jws: str) -> Passport:
    """The PASSporT of ``jws``, or Failed naming the first field that is wrong. Its two JSON
    parts are read here (base64url and JSON: PyJWT's unverified decode checks each character
    in Python, at ~0.1 ms a part); the signature is PyJWT's (:func:`check_signature`)."""
    header, claims = _part(jws, 0), _part(jws, 1)
    if header.get("alg") != "ES256":
        raise Failed("PASSporT alg is not ES256")
    if header.get("typ") != "passport":
        raise Failed("PASSporT typ is not passport")
    if header.get("ppt") != "shaken":
        raise Failed("PASSporT ppt is not shaken")
    return Passport(
        x5u=_x5u(header.get("x5u")),
        attest=_attest(claims.get("attest")),
        orig=_tn(claims.get("orig"), "orig"),
        dest=_tns(claims.get("dest")),
        iat=_iat(claims.get("iat")),
        origid=_origid(claims.get("origid")),
    )


def check_fresh(passport: Passport, now: float, max_age: float) -> None:
    """``iat`` within ``max_age`` seconds of ``now``, before or after (clocks drift both
    ways; a token from the future is as replayable as an old one)."""
    age = now - passport.iat
    if age > max_age:
        raise Failed(f"iat {age:.0f} s old")
    if -age > max_age:
        raise Failed(f"iat {-age:.0f} s in the future")


def check_numbers(passport: Passport, orig: str | None, dest: str | None) -> None:
    """The token's orig and dest are the call's caller and called numbers: E.164 digits
    compared exactly, every non-digit (``+``, dashes, spaces) left out."""
    if orig is None:
        raise Failed("no caller number")
    if dest is None:
        raise Failed("no called number")
    if not digits(orig) or digits(passport.orig) != digits(orig):
        raise Failed("orig does not match")
    if not digits(dest) or digits(dest) not in {digits(tn) for tn in passport.dest}:
        raise Failed("dest does not match")


def check_signature(jws: str, key: ec.EllipticCurvePublicKey) -> None:
    """The JWS signature over its first two parts, with PyJWT's ES256 (the raw r||s of RFC
    7518 §3.4 read into cryptography's ECDSA verification)."""
    signed, _, signature = jws.rpartition(".")
    if not _match_segments(jws):
        raise Failed("PASSporT not decodable")
    if not _ES256.verify(signed.encode("ascii"), key, _unb64(signature)):
        raise Failed("bad signature")


def _match_segments(jws: str) -> bool:
    return _JWS.fullmatch(jws) is not None


def _part(jws: str, n: int) -> dict[str, Any]:
    """The ``n``-th part of a compact JWS as a JSON object, or Failed."""
    if not _match_segments(jws):
        raise Failed("PASSporT not decodable")
    try:
        found = json.loads(_unb64(jws.split(".")[n]))
    except (ValueError, RecursionError):
        raise Failed("PASSporT not decodable") from None
    if not isinstance(found, dict):
        raise Failed("PASSporT not decodable")
    return found


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def digits(number: str) -> str:
    return _NOT_DIGIT.sub("", number)


def _x5u(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Failed("PASSporT has no x5u")
    if len(value) > MAX_URL:
        raise Failed("x5u too long")
    if urllib.parse.urlsplit(value).scheme.lower() != "https":
        raise Failed("x5u is not https")
    return value


def _attest(value: object) -> str:
    if value not in LEVELS:
        raise Failed("attest is not A, B or C")
    return str(value)


def _tn(value: object, name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("tn"), str):
        raise Failed(f"{name} has no tn")
    return str(value["tn"])


def _tns(value: object) -> tuple[str, ...]:
    tns = value.get("tn") if isinstance(value, dict) else None
    if not isinstance(tns, list) or not tns or not all(isinstance(tn, str) for tn in tns):
        raise Failed("dest has no tn list")
    return tuple(tns)


def _iat(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Failed("iat is not a number")
    if not -1e11 < value < 1e11:  # NaN and infinities too (json reads them); no float() overflow
        raise Failed("iat out of range")
    return float(value)


def _origid(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise Failed("PASSporT has no origid")
    return value
