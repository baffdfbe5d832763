"""The app's instruments: what request handlers and the lifespan count while they work —
counters of reservation outcomes, the ping latency histogram — and the registry they live
in. ``/metrics`` reads them at scrape time (:mod:`rtbridge.http.metrics`), adding what the
other workers of ``serve --workers N`` counted (:mod:`rtbridge.http.workers`): each
instrument can be written down as plain JSON (:meth:`Metrics.snapshot`) and summed."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily

# Upper bounds (seconds) of the ping latency histogram: a ping is 1-100 ms (group commit,
# SQLite on the loop or PostgreSQL round trips); the last two catch a locked database.
PING_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 1.0)


class PingSeconds:
    """``rtbridge_ping_seconds{status}``: ``POST /rtbs.json`` handler time by outcome.

    Kept as plain lists (a count per bucket, the last for +Inf) written on the event loop
    only: an ``observe`` is a bisect and two additions, no lock, and the lists add up
    across workers."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, status: str, seconds: float) -> None:
        counts = self.counts.get(status)
        if counts is None:
            counts = self.counts[status] = [0] * (len(PING_BUCKETS) + 1)
            self.sums[status] = 0.0
        counts[bisect_left(PING_BUCKETS, seconds)] += 1  # bucket i: seconds <= bound i
        self.sums[status] += seconds

    def snapshot(self) -> dict[str, Any]:
        return {s: {"counts": list(c), "sum": self.sums[s]} for s, c in self.counts.items()}

    def add(self, snapshot: Mapping[str, Any]) -> None:
        for status, values in snapshot.items():
            counts = self.counts.setdefault(status, [0] * (len(PING_BUCKETS) + 1))
            for i, n in enumerate(values["counts"][: len(counts)]):
                counts[i] += int(n)
            self.sums[status] = self.sums.get(status, 0.0) + float(values["sum"])

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "rtbridge_ping_seconds",
            "POST /rtbs.json handler time by outcome status (reserved, no-target, error).",
            labels=["status"],
        )
        bounds = [str(b) for b in PING_BUCKETS] + ["+Inf"]  # as prometheus_client writes them
        for status in sorted(self.counts):
            total, buckets = 0, []
            for bound, n in zip(bounds, self.counts[status], strict=True):
                total += n
                buckets.append((bound, total))
            family.add_metric([status], buckets, self.sums[status])
        return family


@dataclass
class Metrics:
    """In-process counters rendered in the Prometheus text format by ``/metrics``
    (``http.metrics``: read at scrape time), and this app's own registry."""

    # (status, ping shield hit, reason: why no-target, "" otherwise)
    reservations: Counter[tuple[str, bool, str]] = field(default_factory=Counter)
    expired: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ping_seconds: PingSeconds = field(default_factory=PingSeconds)

    def count_reservation(self, status: str, shielded: bool, reason: str | None = None) -> None:
        self.reservations[(status, shielded, reason or "")] += 1

    def snapshot(self) -> dict[str, Any]:
        """What this process counted, as JSON (``http.workers.WorkerShare``)."""
        return {
            "reservations": [[s, sh, r, n] for (s, sh, r), n in self.reservations.items()],
            "expired": self.expired,
            "ping_seconds": self.ping_seconds.snapshot(),
        }

    def add(self, snapshot: Mapping[str, Any]) -> None:
        """Add a :meth:`snapshot` (another worker's, or this slot's before a restart)."""
        for status, shielded, reason, n in snapshot.get("reservations", ()):
            self.reservations[(str(status), bool(shielded), str(reason))] += int(n)
        self.expired += int(snapshot.get("expired", 0))
        self.ping_seconds.add(snapshot.get("ping_seconds", {}))

    @classmethod
    def total(cls, parts: Iterable[Metrics | Mapping[str, Any]]) -> Metrics:
        """The sum of metrics and snapshots, in a new :class:`Metrics`."""
        summed = cls()
        for part in parts:
            summed.add(part.snapshot() if isinstance(part, Metrics) else part)
        return summed
