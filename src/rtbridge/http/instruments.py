"""The app's instruments: what request handlers and the lifespan count while they work —
counters of reservation outcomes, the ping latency histogram — and the registry they live
in. ``/metrics`` reads them at scrape time (:mod:`rtbridge.http.metrics`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram

# Upper bounds (seconds) of the ping latency histogram: a ping is 1-100 ms (group commit,
# SQLite on the loop or PostgreSQL round trips); the last two catch a locked database.
PING_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 1.0)


class PingSeconds:
    """``rtbridge_ping_seconds{status}``: ``POST /rtbs.json`` handler time by outcome.

    The labelled child of each status is looked up once and kept, so a ping pays one
    ``observe`` (a lock and a bucket search), not a label lookup as well."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "rtbridge_ping_seconds",
            "POST /rtbs.json handler time by outcome status (reserved, no-target, error).",
            ["status"],
            buckets=PING_BUCKETS,
            registry=registry,
        )
        self._children: dict[str, Histogram] = {}

    def observe(self, status: str, seconds: float) -> None:
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = self._histogram.labels(status)
        child.observe(seconds)


@dataclass
class Metrics:
    """In-process counters rendered in the Prometheus text format by ``/metrics``
    (``http.metrics``: read at scrape time), and this app's own registry."""

    # (status, ping shield hit, reason: why no-target, "" otherwise)
    reservations: Counter[tuple[str, bool, str]] = field(default_factory=Counter)
    expired: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    ping_seconds: PingSeconds = field(init=False)

    def __post_init__(self) -> None:
        self.ping_seconds = PingSeconds(self.registry)

    def count_reservation(self, status: str, shielded: bool, reason: str | None = None) -> None:
        self.reservations[(status, shielded, reason or "")] += 1
