"""Refusals by authentication in the decision log, summarised per source (SPEC §4.6: "guessing
is summarised in logs, not one line per attempt").

One line per refused INVITE made the log an amplifier: a password scanner's 12,000 guesses
wrote 12,000 lines. Now, per source (:func:`~rtbridge.sip.auth.throttle.source_key`: IPv4
address, IPv6 /64) and per interval (10 s), the *first* refusal of each (code, cause) is still
logged in full — Call-ID, username tried, reason phrase: what an operator needs to answer "why
was this call refused?" — and the rest are counted. When the interval is over, one
``INVITE refusals summarised`` line gives the source's counts by code and cause and the
usernames it tried (the first few, each with its count; attempts naming any other as one
number). A source with nothing beyond its full lines gets no summary line.

Summaries are written by the next refusal after the interval (from any source) or by
:meth:`RefusalLog.flush`, which the router calls on every heartbeat, so a burst's summary
appears within seconds of its interval's end even when the source went quiet. Memory is
bounded: at most ``max_sources`` open intervals (the oldest is summarised early when a new
source needs room) and ``max_usernames`` usernames each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rtbridge.sip.auth.allowlist import IPAddress
from rtbridge.sip.auth.throttle import source_key

_USERNAME_CHARS = 64  # a username in a log line: the sender chose it


@dataclass(slots=True)
class _Interval:
    started: float
    causes: Counter[tuple[int, str]] = field(default_factory=Counter)
    logged: set[tuple[int, str]] = field(default_factory=set)  # (code, cause) logged in full
    usernames: Counter[str] = field(default_factory=Counter)
    other_usernames: int = 0  # refusals naming a username beyond max_usernames


class RefusalLog:
    """Decides which refusals get a full log line, and writes the per-source summaries.

    Thread-safe: the router's worker threads call :meth:`note` concurrently; lines are
    written outside the lock.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 10.0,
        max_sources: int = 10_000,
        max_usernames: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every <= 0 or max_sources < 1 or max_usernames < 0:
            raise ValueError("refusal log limits must be positive")
        self._log = logger
        self._every = every
        self._max_sources = max_sources
        self._max_usernames = max_usernames
        self._clock = clock
        self._open: OrderedDict[str, _Interval] = OrderedDict()  # in order of start
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def note(
        self, source: str | IPAddress, code: int, cause: str, username: str | None = None
    ) -> bool:
        """Count one refusal of ``source`` (an address as the router has it); return whether
        it is the first of its (code, cause) from that source this interval — the caller
        logs it in full — or is left to the summary."""
        now = self._clock()
        key = source_key(source)
        with self._lock:
            over = self._take_over(now)
            interval = self._open.get(key)
            if interval is None:
                interval = self._open[key] = _Interval(now)
                while len(self._open) > self._max_sources:
                    over.append(self._open.popitem(last=False))
            kind = (code, cause)
            interval.causes[kind] += 1
            if username is not None:
                name = username[:_USERNAME_CHARS]
                if name in interval.usernames or len(interval.usernames) < self._max_usernames:
                    interval.usernames[name] += 1
                else:
                    interval.other_usernames += 1
            first = kind not in interval.logged
            interval.logged.add(kind)
        self._write(over, now)
        return first

    def flush(self) -> None:
        """Write the summaries of intervals that are over."""
        now = self._clock()
        with self._lock:
            over = self._take_over(now)
        self._write(over, now)

    def _take_over(self, now: float) -> list[tuple[str, _Interval]]:
        over: list[tuple[str, _Interval]] = []
        while self._open:
            interval = next(iter(self._open.values()))
            if now - interval.started < self._every:
                break
            over.append(self._open.popitem(last=False))
        return over

    def _write(self, over: list[tuple[str, _Interval]], now: float) -> None:
        for key, interval in over:
            refused = sum(interval.causes.values())
            if refused == len(interval.logged):
                continue  # every refusal has its own line already
            fields: dict[str, object] = {
                "source": key,
                "seconds": round(min(now - interval.started, self._every), 1),
                "refused": refused,
                "logged": len(interval.logged),
                "causes": {f"{code} {cause}": n
                           for (code, cause), n in interval.causes.most_common()},
                "usernames": dict(interval.usernames.most_common()),
            }  # fmt: skip
            if interval.other_usernames:
                fields["other_usernames"] = interval.other_usernames
            self._log.info("INVITE refusals summarised", extra=fields)
