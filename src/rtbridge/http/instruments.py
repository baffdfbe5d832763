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
# ... of a buyer's bid answers: a bidder has a deadline of 10 ms to 5 s (bid_deadline_ms)
BID_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 5.0)


class Histogram:
    """A histogram by one label, kept as plain lists (a count per bucket, the last for
    +Inf) written on the event loop only: an ``observe`` is a bisect and two additions, no
    lock, and the lists add up across workers."""

    def __init__(self, name: str, documentation: str, label: str,
                 buckets: tuple[float, ...]) -> None:  # fmt: skip
        self.name, self.documentation, self.label = name, documentation, label
        self.buckets = buckets
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, status: str, seconds: float) -> None:
        counts = self.counts.get(status)
        if counts is None:
            counts = self.counts[status] = [0] * (len(self.buckets) + 1)
            self.sums[status] = 0.0
        counts[bisect_left(self.buckets, seconds)] += 1  # bucket i: seconds <= bound i
        self.sums[status] += seconds

    def snapshot(self) -> dict[str, Any]:
        return {s: {"counts": list(c), "sum": self.sums[s]} for s, c in self.counts.items()}

    def add(self, snapshot: Mapping[str, Any]) -> None:
        for status, values in snapshot.items():
            counts = self.counts.setdefault(status, [0] * (len(self.buckets) + 1))
            for i, n in enumerate(values["counts"][: len(counts)]):
                counts[i] += int(n)
            self.sums[status] = self.sums.get(status, 0.0) + float(values["sum"])

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        bounds = [str(b) for b in self.buckets] + ["+Inf"]  # as prometheus_client writes them
        for status in sorted(self.counts):
            total, buckets = 0, []
            for bound, n in zip(bounds, self.counts[status], strict=True):
                total += n
                buckets.append((bound, total))
            family.add_metric([status], buckets, self.sums[status])
        return family


def ping_seconds() -> Histogram:
    """``rtbridge_ping_seconds{status}``: ``POST /rtbs.json`` handler time by outcome."""
    return Histogram(
        "rtbridge_ping_seconds",
        "POST /rtbs.json handler time by outcome status (reserved, no-target, error).",
        "status",
        PING_BUCKETS,
    )


def bid_seconds() -> Histogram:
    """``rtbridge_bid_seconds{buyer}``: how long RTB buyers took to answer a bid request."""
    return Histogram(
        "rtbridge_bid_seconds", "Time RTB buyers took to answer a bid request, by buyer "
        "(answers only: a timeout is counted in rtbridge_bids_total).", "buyer", BID_BUCKETS,
    )  # fmt: skip


@dataclass
class Metrics:
    """In-process counters rendered in the Prometheus text format by ``/metrics``
    (``http.metrics``: read at scrape time), and this app's own registry."""

    # (status, ping shield hit, reason: why no-target, "" otherwise)
    reservations: Counter[tuple[str, bool, str]] = field(default_factory=Counter)
    expired: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ping_seconds: Histogram = field(default_factory=ping_seconds)
    bids: Counter[tuple[str, str]] = field(default_factory=Counter)  # (buyer, outcome)
    bid_seconds: Histogram = field(default_factory=bid_seconds)

    def count_bid(self, buyer: str, outcome: str) -> None:
        self.bids[(buyer, outcome)] += 1

    def count_reservation(self, status: str, shielded: bool, reason: str | None = None) -> None:
        self.reservations[(status, shielded, reason or "")] += 1

    def snapshot(self) -> dict[str, Any]:
        """What this process counted, as JSON (``http.workers.WorkerShare``)."""
        return {
            "reservations": [[s, sh, r, n] for (s, sh, r), n in self.reservations.items()],
            "expired": self.expired,
            "ping_seconds": self.ping_seconds.snapshot(),
            "bids": [[b, o, n] for (b, o), n in self.bids.items()],
            "bid_seconds": self.bid_seconds.snapshot(),
        }

    def add(self, snapshot: Mapping[str, Any]) -> None:
        """Add a :meth:`snapshot` (another worker's, or this slot's before a restart)."""
        for status, shielded, reason, n in snapshot.get("reservations", ()):
            self.reservations[(str(status), bool(shielded), str(reason))] += int(n)
        self.expired += int(snapshot.get("expired", 0))
        self.ping_seconds.add(snapshot.get("ping_seconds", {}))
        for buyer, outcome, n in snapshot.get("bids", ()):
            self.bids[(str(buyer), str(outcome))] += int(n)
        self.bid_seconds.add(snapshot.get("bid_seconds", {}))

    @classmethod
    def total(cls, parts: Iterable[Metrics | Mapping[str, Any]]) -> Metrics:
        """The sum of metrics and snapshots, in a new :class:`Metrics`."""
        summed = cls()
        for part in parts:
            summed.add(part.snapshot() if isinstance(part, Metrics) else part)
        return summed
