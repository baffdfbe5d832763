"""Refusals of a flood logged as counts, not one line each: a flood of requests must not
become a flood of log lines.

The agent refuses INVITEs before routing (``503``) and screens requests it does not serve
(``405``, ``481``, dropped over the rate …). Each kind is summarised here: one WARNING line per
reason and interval (10 s) with the count and the busiest sources.
"""

from __future__ import annotations

import collections
import logging
import time


class FloodLog:
    """Counts refusals by (reason, source) and logs them as one line per reason per ``every``
    seconds; the agent thread is the only caller, so no lock."""

    def __init__(self, logger: logging.Logger, message: str, every: float = 10.0) -> None:
        self._log = logger
        self._message = message
        self._every = every
        self._since = time.monotonic()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def note(self, reason: str, source: str) -> None:
        self._counts[(reason, source)] += 1
        now = time.monotonic()
        if now - self._since >= self._every:
            self.flush(now)

    def tick(self, now: float) -> None:
        """Log what an interval that has passed counted, even with no refusal since."""
        if self._counts and now - self._since >= self._every:
            self.flush(now)

    def flush(self, now: float) -> None:
        by_reason: dict[str, collections.Counter[str]] = {}
        for (reason, source), n in self._counts.items():
            by_reason.setdefault(reason, collections.Counter())[source] += n
        for reason, sources in sorted(by_reason.items()):
            self._log.warning(self._message, extra={
                "reason": reason, "count": sum(sources.values()),
                "seconds": round(now - self._since, 1),
                "top_sources": dict(sources.most_common(5))})  # fmt: skip
        self._counts.clear()
        self._since = now
