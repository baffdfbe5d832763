"""Stateless signed nonces and a bounded nonce-count replay tracker.

A nonce is ``<issued>.<random>.<mac>``: ``issued`` the Unix time in whole seconds, ``random``
96 bits from :mod:`secrets`, ``mac`` the first 128 bits of HMAC-SHA256 over both and the
requester's source under a key derived from the shared secret and the realm. RFC 7616 §3.3
suggests exactly this shape (``time-stamp H(time-stamp ":" ETag ":" secret-data)``, with the
client's IP address as a possible input): the server keeps no table of issued nonces, so any
agent process holding the same secret accepts a nonce another one issued — the retried INVITE
may reach a different worker behind a SIP load balancer (SPEC §6).

The source (SPEC §4.6: "nonces are bound to the source address") is the throttle's key of the
address the request came from (:func:`~rtbridge.sip.auth.throttle.source_key`: IPv4 address,
IPv6 /64; behind a trusted proxy the publisher's address the proxy names, which every agent
sees alike). A nonce presented from another source fails its MAC like a forged one, so a
captured ``Authorization`` cannot be replayed from elsewhere — not even at another worker,
whose :class:`NonceCounter` never saw it — and nonces fetched at one address are worthless
to the other addresses of a guessing botnet.

All characters are ``[0-9A-Za-z._-]``, safe inside a quoted-string.

Replay protection (RFC 7616 §3.4 ``nc``) needs state: :class:`NonceCounter` remembers the
highest nonce-count accepted per nonce until the nonce expires. That state is per process, so
a replay sent to a *different* worker inside the TTL is not caught here; the atomic
reservation claim (SPEC §4.3) is what stops a replayed INVITE from using a call twice.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Below this a secret could be brute-forced offline from one observed nonce.
MIN_SECRET_BYTES: Final = 16
_MAC_BYTES: Final = 16  # 128-bit tag: forging one costs 2**128 tries online
_RANDOM_BYTES: Final = 12
_NONCE_RE: Final = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})")
_KEY_LABEL: Final = b"rtbridge sip digest nonce v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class NonceState(enum.Enum):
    """What a nonce presented by a client is worth."""

    FRESH = "fresh"  # ours, within its lifetime
    STALE = "stale"  # ours, expired: challenge again with stale=true (RFC 7616 §3.3)
    INVALID = "invalid"  # not ours for this source (bad MAC, garbage, from the far future)


@dataclass(frozen=True, slots=True)
class NonceCheck:
    """Result of :meth:`NonceSigner.check`; ``expires_at`` is 0.0 for an invalid nonce."""

    state: NonceState
    expires_at: float


class NonceSigner:
    """Issues and checks nonces for one realm.

    ``max_skew`` tolerates clocks of cooperating hosts running a little apart: a nonce stamped
    up to that many seconds in the future is still accepted (NTP keeps hosts well inside it).
    """

    def __init__(
        self,
        secret: bytes,
        *,
        realm: str,
        ttl: float = 300.0,
        max_skew: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"nonce secret must be at least {MIN_SECRET_BYTES} bytes")
        if ttl <= 0:
            raise ValueError("nonce ttl must be positive")
        # Derive a purpose-bound key so the configured secret is never used raw, and bind the
        # realm so a nonce issued for one SIP domain is worthless for another.
        self._key = hmac.new(secret, _KEY_LABEL + b"\0" + realm.encode(), hashlib.sha256).digest()
        self.ttl = ttl
        self._max_skew = max_skew
        self._clock = clock

    def _mac(self, body: str, source: str) -> str:
        # NUL cannot occur in the body, so (body, source) pairs map to distinct inputs.
        signed = body.encode("ascii") + b"\0" + source.encode("utf-8", "surrogatepass")
        return _b64(hmac.new(self._key, signed, hashlib.sha256).digest()[:_MAC_BYTES])

    def issue(self, *, source: str) -> str:
        """A fresh nonce stamped with the current time, valid from ``source`` only."""
        body = f"{int(self._clock())}.{_b64(secrets.token_bytes(_RANDOM_BYTES))}"
        return f"{body}.{self._mac(body, source)}"

    def check(self, nonce: str, *, source: str) -> NonceCheck:
        """Authenticity for ``source`` first (constant-time MAC comparison), then age. A nonce
        issued to another source is :attr:`NonceState.INVALID`, as a forged one."""
        match = _NONCE_RE.fullmatch(nonce)
        if match is None:
            return NonceCheck(NonceState.INVALID, 0.0)
        issued_text, random_text, mac = match.groups()
        if not hmac.compare_digest(self._mac(f"{issued_text}.{random_text}", source), mac):
            return NonceCheck(NonceState.INVALID, 0.0)
        issued = float(issued_text)
        now = self._clock()
        if issued - now > self._max_skew:
            return NonceCheck(NonceState.INVALID, 0.0)
        expires_at = issued + self.ttl
        state = NonceState.FRESH if now < expires_at else NonceState.STALE
        return NonceCheck(state, expires_at)


class NonceCounter:
    """Highest accepted nonce-count per nonce; a count not above it is a replay.

    RFC 7616 §3.4 / RFC 2617 §3.2.2: ``nc`` lets the server detect replays. Entries are kept
    until their nonce expires (a stale nonce is refused anyway, so its count no longer matters),
    and at most ``max_entries`` at once. When full, the entry closest to expiry is dropped and
    its expiry becomes a watermark: an unknown nonce expiring at or before the watermark is
    treated as already seen. The tracker therefore never accepts a replay because it forgot a
    nonce — under a flood it merely makes some honest clients take one more 401 round trip.

    Only record a count after the digest verified: otherwise anyone could burn a legitimate
    client's counts without knowing its password.
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._last: dict[str, tuple[int, float]] = {}
        self._expiry: list[tuple[float, str]] = []  # heap, one item per key of _last
        self._watermark = float("-inf")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._last)

    def accept(self, nonce: str, nc: int, *, expires_at: float, now: float) -> bool:
        """Record ``nc`` for ``nonce`` if it is higher than any seen; return whether it was."""
        if nc < 1:  # counts start at 00000001 (RFC 7616 §3.4)
            return False
        with self._lock:
            self._purge(now)
            seen = self._last.get(nonce)
            if seen is not None:
                if nc <= seen[0]:
                    return False
                self._last[nonce] = (nc, seen[1])
                return True
            if expires_at <= self._watermark or expires_at <= now:
                return False
            self._last[nonce] = (nc, expires_at)
            heapq.heappush(self._expiry, (expires_at, nonce))
            if len(self._last) > self._max_entries:
                dropped_expiry, dropped = heapq.heappop(self._expiry)
                del self._last[dropped]
                self._watermark = max(self._watermark, dropped_expiry)
            return True

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, nonce = heapq.heappop(self._expiry)
            del self._last[nonce]
