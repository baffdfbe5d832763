"""Signing secrets and signatures, in the Standard Webhooks form (standardwebhooks.com):
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` with the base64 key after ``whsec_``, so off-the-shelf verifiers work.

A webhook's secret is derived, never stored: HMAC-SHA256 of the webhook's id and a random
per-webhook salt under the deployment's master key. The database alone cannot sign (a stolen
backup cannot forge events), and rotating is writing a new salt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

PREFIX = "whsec_"
MIN_MASTER_KEY = 32
# How far a receiver should accept a timestamp from its clock (replay window).
TOLERANCE = 300


class MissingKey(ValueError):
    """No usable master key: webhooks cannot be created or signed."""


def check_master_key(master: str | None) -> bytes:
    """The master key as bytes, or a clear refusal (it must be set and long enough)."""
    if not master:
        raise MissingKey(
            "webhooks need a master key: set RTBRIDGE_SITE_KEY (or RTBRIDGE_WEBHOOK_KEY, which "
            f"wins for webhooks) to at least {MIN_MASTER_KEY} random characters (e.g. "
            "`openssl rand -base64 32`)"
        )
    if len(master) < MIN_MASTER_KEY:
        raise MissingKey(
            f"RTBRIDGE_WEBHOOK_KEY / RTBRIDGE_SITE_KEY: at least {MIN_MASTER_KEY} characters"
        )
    return master.encode()


def new_salt() -> str:
    return secrets.token_hex(16)


def derive_secret(master: str | None, webhook_id: int, salt: str) -> str:
    """``whsec_`` + base64 of HMAC-SHA256(master, "webhook:<id>:<salt>")."""
    key = check_master_key(master)
    mac = hmac.new(key, f"webhook:{webhook_id}:{salt}".encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(mac).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str, head: Mapping[str, str], body: bytes, *, now: int, tolerance: int = TOLERANCE
) -> bool:
    """What a receiver does (docs/webhooks.md shows it in five lines): recompute and compare in
    constant time, against every ``v1,`` signature listed, inside the replay window."""
    try:
        msg_id, stamp = head["webhook-id"], int(head["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > tolerance:
        return False
    expected = sign(secret, msg_id, stamp, body)
    return any(
        hmac.compare_digest(expected, given) for given in head.get("webhook-signature", "").split()
    )
