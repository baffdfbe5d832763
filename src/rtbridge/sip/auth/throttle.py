"""Throttles of failed digest logins (SPEC §4.2, §4.6: "repeated failures are throttled per
source and per username").

:class:`LoginThrottle` is the one the authenticator uses; it combines three
:class:`FailureThrottle` tables, each a sliding window of failures per key that blocks the key
for a cooldown once it reaches its limit:

- **login** (source, username): the small limit (5 in 60 s). It caps online guessing of one
  password from one source, and a success clears it — only it: the source that just proved
  it knows *this* username's password is not guessing *this* password.
- **source**, across all usernames: a larger limit (20 in 60 s) that successes never clear.
  Clearing it on success is what let one source guess ``pub1``'s password at full speed by
  logging in as ``pub2`` between every four guesses.
- **username**, across all sources: a larger limit (20 in 60 s) against guessing one password
  from many sources. It does not apply to a source that authenticated as that username in the
  last ``known_for`` seconds (OWASP's "known device"): otherwise anyone could lock a
  publisher out by failing as it from a handful of addresses. A publisher calling from an
  address it never authenticated from (or after an agent restart: the state is in memory)
  does wait out such a lockout.

Only wrong answers count: a refusal because a limit is already reached costs no hashing and
counts nowhere, so a misconfigured client stuck on one username never grows into a block of
its whole source. Unknown usernames count exactly like known ones — a difference would tell
which usernames exist.

IPv6 sources are keyed by their /64: one subscriber or host usually owns a whole /64
(RFC 6177), so keying by the full address would let one attacker rotate through 2**64 keys.
"""

from __future__ import annotations

import enum
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from rtbridge.sip.auth.allowlist import IPAddress, parse_address

#: Usernames are kept (as throttle keys) only this long: they come from the sender.
MAX_USERNAME: Final = 128


@functools.lru_cache(maxsize=16_384)
def source_key(source: str | IPAddress) -> str:
    """The throttle key for a source address as the SIP stack reports it (cached, like
    :func:`parse_address`: every request of the agent's busiest sources asks for it).

    IPv4 (also IPv4-mapped IPv6) → the address; IPv6 → its /64; unparseable → the text itself,
    truncated, so garbage is still throttled rather than exempt.
    """
    address = parse_address(source)
    if address is None:
        return "?" + str(source)[:64]
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Failures:
    times: list[float] = field(default_factory=list)
    blocked_until: float = float("-inf")


class FailureThrottle:
    """Counts failures per key in a sliding window; blocks a key that reaches the limit.

    Memory is bounded by ``max_sources``: keys are kept in least-recently-failed order and the
    oldest is forgotten when a new one arrives. An attacker able to fail under more than
    ``max_sources`` distinct keys inside one cooldown can thereby lift a block early; at the
    default that takes 65 536 of them, and a network firewall is the right tool against that.
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
        self._keys: OrderedDict[Hashable, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def blocked(self, key: Hashable) -> bool:
        """Whether ``key`` is in its cooldown now. Cheap: one dictionary lookup."""
        with self._lock:
            entry = self._keys.get(key)
            return entry is not None and self._clock() < entry.blocked_until

    def record_failure(self, key: Hashable) -> bool:
        """Count one failure for ``key``; return whether ``key`` is blocked as a result."""
        now = self._clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _Failures()
                while len(self._keys) > self._max_sources:
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(key)
            if now < entry.blocked_until:
                return True
            horizon = now - self._window
            entry.times = [t for t in entry.times if t > horizon]
            entry.times.append(now)
            if len(entry.times) >= self._max_failures:
                entry.times.clear()
                entry.blocked_until = now + self._cooldown
                return True
            return False

    def record_success(self, key: Hashable) -> None:
        """Forget ``key``'s failures, unless it is blocked (a block runs its cooldown)."""
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None and not self._clock() < entry.blocked_until:
                del self._keys[key]


class Limit(enum.Enum):
    """Which of :class:`LoginThrottle`'s limits refuses a login."""

    LOGIN = "login"  # this username from this source
    SOURCE = "source"  # this source, whatever the username
    USERNAME = "username"  # this username from a source not known for it


class LoginThrottle:
    """Failed digest logins limited per (source, username), per source and per username; see
    the module docstring for why these three and how they interact.

    ``source`` is a :func:`source_key`. Every table — and the record of known (source,
    username) pairs — holds at most ``max_entries`` keys, least recently used forgotten
    first: about 80 MB with all four full at the default (measured with tracemalloc), which
    takes thousands of failing sources. The known pairs are written by successes only, so
    failing cannot push a publisher's known address out of it. Forgetting a (source,
    username) key early frees little: the source's own table still holds it to its limit.
    Thread-safe: each table locks itself.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        source_max_failures: int = 20,
        username_max_failures: int = 20,
        window: float = 60.0,
        cooldown: float = 60.0,
        known_for: float = 7 * 86_400.0,
        max_entries: int = 65_536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if known_for < 0:
            raise ValueError("known_for must not be negative")

        def table(limit: int) -> FailureThrottle:
            return FailureThrottle(max_failures=limit, window=window, cooldown=cooldown,
                                   max_sources=max_entries, clock=clock)  # fmt: skip

        self._logins = table(max_failures)
        self._sources = table(source_max_failures)
        self._usernames = table(username_max_failures)
        self._known_for = known_for
        self._max_entries = max_entries
        self._clock = clock
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()  # → known until
        self._lock = threading.Lock()

    def source_blocked(self, source: str) -> bool:
        """Whether ``source`` is refused whatever it sends: checked before any parsing."""
        return self._sources.blocked(source)

    def blocked(self, source: str, username: str) -> Limit | None:
        """The limit that refuses ``username`` from ``source`` now, if any; before hashing."""
        username = username[:MAX_USERNAME]
        if self._sources.blocked(source):
            return Limit.SOURCE
        if self._logins.blocked((source, username)):
            return Limit.LOGIN
        if self._usernames.blocked(username) and not self.known(source, username):
            return Limit.USERNAME
        return None

    def record_failure(self, source: str, username: str) -> Limit | None:
        """Count one wrong answer in all three tables; the limit it now hits, if any (the
        widest, when it reaches several at once)."""
        username = username[:MAX_USERNAME]
        login = self._logins.record_failure((source, username))
        from_source = self._sources.record_failure(source)
        as_username = self._usernames.record_failure(username)
        if from_source:
            return Limit.SOURCE
        if login:
            return Limit.LOGIN
        if as_username and not self.known(source, username):
            return Limit.USERNAME
        return None

    def record_success(self, source: str, username: str) -> None:
        """Clear this login's failures and remember ``source`` as known for ``username``.
        Neither the source's count nor the username's is touched (see the module docstring)."""
        username = username[:MAX_USERNAME]
        self._logins.record_success((source, username))
        until = self._clock() + self._known_for
        with self._lock:
            self._known[(source, username)] = until
            self._known.move_to_end((source, username))
            while len(self._known) > self._max_entries:
                self._known.popitem(last=False)

    def known(self, source: str, username: str) -> bool:
        """Whether ``source`` authenticated as ``username`` within ``known_for``."""
        with self._lock:
            until = self._known.get((source, username[:MAX_USERNAME]))
            return until is not None and self._clock() < until
