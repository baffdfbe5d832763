"""Per-source throttle of failed authentications (SPEC §4.2: "repeated failures from one
source are throttled").

After ``max_failures`` failures within ``window`` seconds a source is refused for ``cooldown``
seconds without any digest being computed, which caps online password guessing at
``max_failures`` per ``window + cooldown`` per source.

IPv6 sources are keyed by their /64: one subscriber or host usually owns a whole /64
(RFC 6177), so keying by the full address would let one attacker rotate through 2**64 keys.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from rtbridge.sip.auth.allowlist import parse_address


def source_key(source: str) -> str:
    """The throttle key for a source address as the SIP stack reports it.

    IPv4 (also IPv4-mapped IPv6) → the address; IPv6 → its /64; unparseable → the text itself,
    truncated, so garbage is still throttled rather than exempt.
    """
    address = parse_address(source)
    if address is None:
        return "?" + source[:64]
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Source:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = float("-inf")


class FailureThrottle:
    """Counts failures per key in a sliding window; blocks a key that reaches the limit.

    Memory is bounded by ``max_sources``: keys are kept in least-recently-failed order and the
    oldest is forgotten when a new one arrives. An attacker able to fail from more than
    ``max_sources`` distinct sources (IPv4 addresses or IPv6 /64s) inside one cooldown can
    thereby lift a block early; at the default that takes 65 536 sources, and a network
    firewall is the right tool against that.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        cooldown: float = 60.0,
        max_sources: int = 65_536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_failures < 1 or window <= 0 or cooldown < 0 or max_sources < 1:
            raise ValueError("throttle limits must be positive")
        self._max_failures = max_failures
        self._window = window
        self._cooldown = cooldown
        self._max_sources = max_sources
        self._clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sources)

    def blocked(self, key: str) -> bool:
        """Whether ``key`` is in its cooldown now. Cheap: one dictionary lookup."""
        with self._lock:
            source = self._sources.get(key)
            return source is not None and self._clock() < source.blocked_until

    def record_failure(self, key: str) -> bool:
        """Count one failure for ``key``; return whether ``key`` is blocked as a result."""
        now = self._clock()
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                source = self._sources[key] = _Source()
                while len(self._sources) > self._max_sources:
                    self._sources.popitem(last=False)
            else:
                self._sources.move_to_end(key)
            if now < source.blocked_until:
                return True
            horizon = now - self._window
            source.failures = [t for t in source.failures if t > horizon]
            source.failures.append(now)
            if len(source.failures) >= self._max_failures:
                source.failures.clear()
                source.blocked_until = now + self._cooldown
                return True
            return False

    def record_success(self, key: str) -> None:
        """Forget ``key``'s failures: a source that authenticated is not guessing."""
        with self._lock:
            source = self._sources.get(key)
            if source is not None and not self._clock() < source.blocked_until:
                del self._sources[key]
