"""Guessing secrets over HTTP, bounded per source address: admin tokens (the admin API's
bearer token and the console's sign-in form take the same tokens, so they share one count)
and postback keys (the publisher API).

The counting is the SIP agent's (:class:`rtbridge.sip.auth.throttle.FailureThrottle`, keyed
by :func:`~rtbridge.sip.auth.throttle.source_key`: an IPv4 address or an IPv6 /64). After
``auth_failures`` failures within ``auth_window`` seconds, every request of that kind from the
source is answered 429 with ``Retry-After`` for ``auth_cooldown`` seconds, a right token or
key included: answering a right guess during the cooldown would tell the guesser it was
right, and the limit would cap nothing. Failures are never forgiven by a success: a publisher
holding one right key must not be able to reset its count while guessing others.

The source is the client address uvicorn reports: behind a reverse proxy that is the proxy's
``X-Forwarded-For`` when the proxy's address is trusted (uvicorn's ``FORWARDED_ALLOW_IPS``,
default ``127.0.0.1,::1``), else the proxy itself, whose every client then shares one count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

from rtbridge.domain.errors import TooManyFailures
from rtbridge.settings import Settings
from rtbridge.sip.auth.throttle import FailureThrottle, source_key

# Sources remembered per kind (least recently failed forgotten first): about 1 KB each.
MAX_SOURCES = 16_384


class Lockout:
    """One kind of secret's failures per source. A request that authenticates pays
    :meth:`check` only: a dictionary lookup for its source's key, and one for its state."""

    def __init__(
        self,
        *,
        failures: int,
        window: float,
        cooldown: float,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = (
            FailureThrottle(max_failures=failures, window=window, cooldown=cooldown,
                            max_sources=max_sources, clock=clock)
            if failures else None
        )  # fmt: skip
        self._cooldown = cooldown
        self._keys: dict[str, str] = {}  # client host → source_key, parsed once per host
        self._max_keys = max_sources

    def __len__(self) -> int:
        """Sources remembered now: at most ``max_sources`` (and as many parsed addresses)."""
        return len(self._throttle) if self._throttle is not None else 0

    def _key(self, scope: Scope) -> str:
        client = scope.get("client")
        host = client[0] if client else ""
        key = self._keys.get(host)
        if key is None:
            if len(self._keys) >= self._max_keys:
                self._keys.clear()
            key = self._keys[host] = source_key(host)
        return key

    def check(self, scope: Scope) -> None:
        """Raise :class:`TooManyFailures` (429) while the request's source is locked out."""
        if self._throttle is not None and self._throttle.blocked(self._key(scope)):
            raise TooManyFailures(math.ceil(self._cooldown))

    def failed(self, scope: Scope) -> None:
        """Count one failed authentication for the request's source."""
        if self._throttle is not None:
            self._throttle.record_failure(self._key(scope))


@dataclass(frozen=True)
class Lockouts:
    admin: Lockout  # admin tokens: the admin API and the console's sign-in
    keys: Lockout  # postback keys: the publisher API

    @classmethod
    def from_settings(cls, settings: Settings) -> Lockouts:
        def one() -> Lockout:
            return Lockout(failures=settings.auth_failures, window=settings.auth_window,
                           cooldown=settings.auth_cooldown)  # fmt: skip

        return cls(admin=one(), keys=one())
