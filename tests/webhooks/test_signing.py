"""Secrets and signatures: fixed vectors (a change of scheme breaks every receiver), and the
verification snippet of docs/webhooks.md run as written."""

from __future__ import annotations

import re
import time
from pathlib import Path

from rtbridge.webhooks import signing

MASTER = "m" * 32
VECTOR_SECRET = "whsec_CRWYjM+H32KzTZCZeTqR7/IWYOLyIoVj8j8KH9S/E3g="
ROOT = Path(__file__).resolve().parents[2]


def test_secret_vector() -> None:
    secret = signing.derive_secret(MASTER, 7, "00112233445566778899aabbccddeeff")
    assert secret == VECTOR_SECRET
    assert signing.derive_secret(MASTER, 8, "00112233445566778899aabbccddeeff") != secret
    assert signing.derive_secret(MASTER, 7, "ff112233445566778899aabbccddeeff") != secret


def test_signature_vector() -> None:
    # Standard Webhooks' published example: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
    # msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330, {"test": 2432232314}
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_refuses_tampering_and_old_timestamps() -> None:
    secret = signing.derive_secret(MASTER, 1, "aa")
    now = int(time.time())
    head = signing.headers(secret, "msg_1", now, b"{}")
    assert signing.verify(secret, head, b"{}", now=now)
    assert not signing.verify(secret, head, b"{ }", now=now)
    assert not signing.verify(signing.derive_secret(MASTER, 1, "bb"), head, b"{}", now=now)
    assert not signing.verify(secret, {**head, "webhook-id": "msg_2"}, b"{}", now=now)
    assert not signing.verify(secret, head, b"{}", now=now + 301)
    assert not signing.verify(secret, {}, b"{}", now=now)
    # several signatures (a receiver during rotation): any one valid passes
    rotated = {**head, "webhook-signature": "v1,AAAA " + head["webhook-signature"]}
    assert signing.verify(secret, rotated, b"{}", now=now)


def test_master_key_is_required_and_long_enough() -> None:
    for bad in (None, "", "short"):
        try:
            signing.derive_secret(bad, 1, "aa")
        except signing.MissingKey as exc:
            assert "RTBRIDGE_WEBHOOK_KEY" in str(exc)
        else:
            raise AssertionError(bad)


def test_the_documented_verification_example_verifies_a_real_signature() -> None:
    doc = (ROOT / "docs" / "webhooks.md").read_text()
    section = doc[doc.index("\n## Signatures\n") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    secret = signing.derive_secret(MASTER, 3, "cc")
    body = b'{"id":"x","type":"call.answered"}'
    headers = signing.headers(secret, "0193-abc", int(time.time()), body)
    scope = {"secret": secret, "headers": headers, "body": body}
    exec(code.group(1), scope)  # noqa: S102  (our own documentation's snippet)
    assert scope["ok"] is True
    scope = {"secret": secret, "headers": headers, "body": body + b" "}
    exec(code.group(1), scope)  # noqa: S102
    assert scope["ok"] is False
