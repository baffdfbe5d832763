"""Secrets the service must send again, sealed under the site key (AES-256-GCM): an RTB
buyer's ``bid_headers`` (an ``Authorization`` header, say). A digest cannot be sent back, so
these are encrypted instead; a copy of the database without the site key holds ciphertext.

A sealed value is ``v1:`` and the URL-safe base64 of a random 96-bit nonce and the
ciphertext with its tag; the column it is sealed for is the associated data, so a value
moved to another column does not open."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rtbridge.storage.sitekey import SiteKey

_PREFIX = "v1:"
_NONCE = 12


class SealError(ValueError):
    """Not a value sealed under this site key for this purpose."""


def seal(site: SiteKey, value: str, *, purpose: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(site.sealing).encrypt(nonce, value.encode(), purpose.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(site: SiteKey, value: str, *, purpose: str) -> str:
    if not value.startswith(_PREFIX):
        raise SealError(f"{purpose}: not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(value[len(_PREFIX) :])
        opened = AESGCM(site.sealing).decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealError(f"{purpose}: sealed under another site key, or damaged") from exc
    return opened.decode()


BID_HEADERS = "buyer.bid_headers"  # the purpose of an RTB buyer's sealed headers


def seal_json(site: SiteKey, value: Any, *, purpose: str, current: str | None = None) -> str | None:
    """``value`` sealed as JSON, None when empty; ``current`` itself when it already holds
    the same value (a nonce is random: sealing again would look like a change every time)."""
    if not value:
        return None
    if current is not None:
        with contextlib.suppress(SealError, ValueError):
            if json.loads(unseal(site, current, purpose=purpose)) == value:
                return current
    return seal(site, json.dumps(value, sort_keys=True), purpose=purpose)


def unseal_json(site: SiteKey, value: str, *, purpose: str) -> Any:
    return json.loads(unseal(site, value, purpose=purpose))
