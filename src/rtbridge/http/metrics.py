"""``/metrics`` through ``prometheus_client``: one registry per app, read at scrape time.

Why no multiprocess mode: it exists for pre-fork servers (gunicorn workers) whose processes
share one port, so one scrape must add up every worker's counters through files in
``PROMETHEUS_MULTIPROC_DIR``. rtbridge runs one uvicorn worker per process, and each process
(``rtbridge serve``; ``rtbridge sip --http``) serves its own ``/metrics`` on its own port and
is scraped as its own target — Prometheus adds them up with ``sum by``. So every process
keeps plain in-memory metrics.

Why a registry per app and not ``prometheus_client.REGISTRY``: tests build several apps in
one process, and each app's series must be its own (a global registry refuses the second
app's metric names as duplicates).

Why a custom collector: the counters already exist as plain snapshots — ``AppState.metrics``
(written on the event loop) and the SIP agent's ``AgentStatus`` (counters written by the
pjsua2 thread only, lock-free on its hot path). :class:`AppCollector` turns them into metric
families when Prometheus scrapes, so nothing on the call path pays for the exposition. Only
the ping latency is a histogram, kept as plain lists (``http.instruments.Histogram``).

``serve --workers N`` is the exception to "one process, one target": its workers share one
port, so a scrape reaches any one of them. Each worker writes what it counted to a file
every second (``http.workers.WorkerShare``), and the one scraped adds the others' files to
its own counts: one target again, at most a second behind.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from rtbridge import __version__
from rtbridge.domain import lifecycle as st
from rtbridge.domain.attestation import ATTESTATION_LEVELS
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.http.instruments import Metrics
from rtbridge.sip.auth.access import POLICY_CAUSES
from rtbridge.sip.auth.authenticator import CAUSES
from rtbridge.sip.status import AgentStatus
from rtbridge.storage.invite_checks import INVITE_CHECKS
from rtbridge.storage.reservations import LIVE
from rtbridge.storage.rollups import EARNED
from rtbridge.storage.sql import transaction
from rtbridge.timestamps import utcnow
from rtbridge.webhooks.outbox import pending_count as pending_deliveries
from rtbridge.webhooks.sender import Stats

if TYPE_CHECKING:  # the state holds the registry this module fills
    from rtbridge.http.state import AppState

__all__ = [
    "CONTENT_TYPE",
    "DETAILS",
    "AppCollector",
    "families_json",
    "own_families",
    "scrape",
    "watch",
]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
# rtbridge_sip_auth_failures_total{reason}: the authenticator's causes and the routing policy's
AUTH_FAILURE_REASONS = (*CAUSES, *POLICY_CAUSES)


class AppCollector:
    """Reads the app's and the SIP agent's snapshots at scrape time (see the module doc).

    Live reservations by status are one query, so the registry is collected through
    ``AppState.run`` (inline on SQLite, a worker thread on PostgreSQL): see :func:`scrape`.
    """

    def __init__(self, state: AppState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        status = state.sip() if state.sip is not None else None
        yield build_info(status)
        counted = state.metrics
        if state.share is not None:  # serve --workers N: add what the other workers counted
            counted = Metrics.total([counted, *state.share.others()])
        yield from reservation_families(
            dict(counted.reservations), counted.expired, live_reservations(state)
        )
        yield counted.ping_seconds.family()
        yield bid_family(counted.bids)
        yield counted.bid_seconds.family()
        yield from own_families(state)
        if state.share is not None and not state.share.primary:  # the primary's, a second old
            yield from families_from(state.share.primary_view().get("families", []))


def own_families(state: AppState) -> Iterator[Metric]:
    """What only this process has: its SIP agent, its watch over the agents' leases, its
    webhook sender (with ``serve --workers N``, the primary's alone)."""
    status = state.sip() if state.sip is not None else None
    if status is not None:
        yield from sip_families(status)
        yield from takeover_families(status.takeovers, status.takeover_calls)
    elif state.peers is not None:
        yield from takeover_families(state.peers.takeovers, state.peers.calls_closed)
    if state.webhooks is not None:
        yield from webhook_families(state.webhooks.stats, pending_deliveries(state.engine))
    yield from earned_families(EARNED.snapshot())


def families_json(families: Iterable[Metric]) -> list[list[Any]]:
    """Metric families as JSON, for another worker to serve (:func:`families_from`)."""
    return [
        [m.name, m.documentation, m.type, [[x.name, x.labels, x.value] for x in m.samples]]
        for m in families
    ]


def families_from(data: Iterable[list[Any]]) -> Iterator[Metric]:
    for name, documentation, kind, samples in data:
        family = Metric(name, documentation, kind)
        for sample, labels, value in samples:
            family.add_sample(sample, labels, value)
        yield family


def watch(state: AppState) -> None:
    """Register the snapshot collector in the app's registry (``state.metrics.registry``)."""
    state.metrics.registry.register(AppCollector(state))


# What a stranger's scrape leaves out (http/health.py): which rtbridge, Python and pjproject
# builds run here. The series go whole rather than losing their labels: a build_info without
# them says nothing, and a dashboard should not mistake it for an answer.
DETAILS = frozenset({"rtbridge_build_info", "rtbridge_sip_build_info"})


class _Public(Collector):
    """A registry's families less :data:`DETAILS`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return (m for m in self._registry.collect() if m.name not in DETAILS)


async def scrape(state: AppState, *, details: bool = True) -> bytes:
    """The app's registry in the Prometheus text format (0.0.4); without ``details``, less
    the build series (:data:`DETAILS`)."""
    registry = state.metrics.registry
    source = registry if details else _Public(registry)
    return await state.run(generate_latest, source)


def live_reservations(state: AppState) -> dict[str, int]:
    with transaction(state.engine, write=False) as db:
        rows = db.rows(
            f"SELECT status, count(*) AS n FROM reservation WHERE {LIVE} GROUP BY status",
            {"now": db.ts(utcnow())},
        )
    return {r["status"]: r["n"] for r in rows}


def build_info(status: AgentStatus | None) -> GaugeMetricFamily:
    """``rtbridge_build_info`` (always 1): which rtbridge on which Python, and which
    pjproject when the SIP agent runs in this process — the first thing to compare when two
    processes disagree."""
    labels = {"version": __version__, "python": platform.python_version()}
    if status is not None:
        labels["pjproject"] = str(status.library.get("pjproject", ""))
    family = GaugeMetricFamily(
        "rtbridge_build_info", "rtbridge, Python and (with the SIP agent) pjproject versions."
    )
    family.add_sample("rtbridge_build_info", labels, 1)
    return family


def reservation_families(
    reservations: Mapping[tuple[str, bool, str], int], expired: int, live: Mapping[str, int]
) -> Iterator[Metric]:
    answers = CounterMetricFamily(
        "rtbridge_reservations", "Ping and update answers by status (no-target: why)."
    )
    for (status, shielded, reason), n in sorted(reservations.items()):
        labels = {"status": status, "ping_shield": str(shielded).lower()}
        if reason:  # only no-target answers carry one
            labels["reason"] = reason
        answers.add_sample("rtbridge_reservations_total", labels, n)
    yield answers
    yield CounterMetricFamily(
        "rtbridge_reservations_expired", "Reservations the sweeper expired.", value=expired
    )
    gauge = GaugeMetricFamily(
        "rtbridge_reservations_live", "Reservations holding a buyer now, by status.",
        labels=["status"],
    )  # fmt: skip
    for status in (*st.UNCLAIMED, *st.IN_CALL):
        gauge.add_metric([status], live.get(status, 0))
    yield gauge


def takeover_families(takeovers: int, calls: int) -> Iterator[Metric]:
    """What this process's watch over the agents' leases did (sip/lease.py PeerWatch)."""
    yield CounterMetricFamily(
        "rtbridge_agent_takeovers", "Silent SIP agents whose lease this process took over.",
        value=takeovers,
    )  # fmt: skip
    yield CounterMetricFamily(
        "rtbridge_agent_takeover_calls",
        "Open calls of silent agents this process closed by taking their lease over.",
        value=calls,
    )  # fmt: skip


def sip_families(status: AgentStatus) -> Iterator[Metric]:
    """The SIP agent's series: what the build holds, what is bridged, what was refused."""
    lib = status.library
    info = GaugeMetricFamily("rtbridge_sip_build_info", "The linked pjsua2 build (always 1).")
    info.add_sample(
        "rtbridge_sip_build_info",
        {name: _label(lib.get(name, "")) for name in ("pjproject", "wheel", "rtbridge_build")},
        1,
    )
    yield info
    yield GaugeMetricFamily(
        "rtbridge_sip_call_slots", "pjsua call slots of this agent (2 per bridge).",
        value=status.call_slots,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "rtbridge_sip_bridge_capacity", "Bridged calls admitted at once.",
        value=status.bridge_capacity,
    )  # fmt: skip
    yield _labelled(GaugeMetricFamily, "rtbridge_sip_bridges", "Bridges alive now, by phase.",
                    "phase", status.bridges)  # fmt: skip
    yield GaugeMetricFamily(
        "rtbridge_sip_legs", "pjsua calls held now (call legs), of rtbridge_sip_call_slots.",
        value=status.legs,
    )  # fmt: skip
    yield CounterMetricFamily("rtbridge_sip_invites", "New INVITEs seen.", value=status.invites)
    yield _labelled(CounterMetricFamily, "rtbridge_sip_refused",
                    "INVITEs answered 503 before routing, by reason.", "reason",
                    status.refused)  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtbridge_sip_answers",
                    "Final responses sent to publishers' INVITEs, by code.", "code",
                    {str(code): n for code, n in status.answers.items()})  # fmt: skip
    # Every reason from the start (0 until it happens), so rate() and alerts see a series
    # before the first failure of its kind.
    failures = dict.fromkeys(AUTH_FAILURE_REASONS, 0) | status.auth_failures
    yield _labelled(CounterMetricFamily, "rtbridge_sip_auth_failures",
                    "INVITEs refused by authentication (challenges included), by reason.",
                    "reason", failures)  # fmt: skip
    screened = CounterMetricFamily(
        "rtbridge_sip_requests_screened",
        "SIP requests refused before pjsip's dialogs saw them, by why (method, no-dialog, "
        "info-body, replaces, rate, retransmission) and method.", labels=["why", "method"],
    )  # fmt: skip
    for (why, method), n in sorted(status.screened.items()):
        screened.add_metric([why, method], n)
    yield screened
    yield _labelled(CounterMetricFamily, "rtbridge_sip_media_moves_refused",
                    "re-INVITE/UPDATE media moves refused (488) or ended, by party.", "party",
                    dict.fromkeys(("publisher", "buyer"), 0) | status.media_refused)  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtbridge_sip_failovers",
                    "Buyer failures that asked for the next buyer of the campaign, by kind.",
                    "kind", dict.fromkeys(FAILOVER_KINDS, 0) | status.failovers)  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtbridge_sip_attestations",
                    "INVITEs routed, by STIR/SHAKEN attestation (A, B, C; none: unsigned; "
                    "failed: a signature that did not verify).", "level",
                    dict.fromkeys(ATTESTATION_LEVELS, 0) | status.attestations)  # fmt: skip
    yield _labelled(CounterMetricFamily, "rtbridge_sip_invite_checks_refused",
                    "INVITEs refused 403 before their claim, by the check: a caller list "
                    "(blocked-caller), a duplicate caller, an attestation below the campaign's.",
                    "reason", dict.fromkeys(INVITE_CHECKS, 0) | status.checks_refused)  # fmt: skip
    yield CounterMetricFamily(
        "rtbridge_sip_stray_calls", "pjsua calls no bridge owned, hung up (expected 0).",
        value=status.stray_calls,
    )  # fmt: skip
    if status.setup is not None:
        cumulative = status.setup.cumulative()
        yield HistogramMetricFamily(
            "rtbridge_sip_setup_seconds",
            "INVITE received to 200 sent (buyer ringing included).",
            buckets=[(le, float(n)) for le, n in cumulative],
            sum_value=status.setup.sum,
        )
    yield CounterMetricFamily(
        "rtbridge_sip_dtmf_relayed", "DTMF digits relayed between legs.",
        value=status.dtmf_relayed,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "rtbridge_sip_recordings", "Call recordings in progress (answered, not yet joined).",
        value=status.recordings,
    )  # fmt: skip
    yield CounterMetricFamily(
        "rtbridge_sip_recording_bytes", "Bytes of finished stereo recordings written.",
        value=status.recording_bytes,
    )  # fmt: skip
    yield CounterMetricFamily(
        "rtbridge_sip_recording_failures",
        "Call recordings that failed (directory unwritable, recorder error, disk full); "
        "their calls went on.", value=status.recording_failures,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "rtbridge_sip_draining", "1 while the agent is stopping (new INVITEs get 503).",
        value=int(status.draining),
    )  # fmt: skip
    yield CounterMetricFamily(
        "rtbridge_sip_fenced",
        "Times this agent found its lease taken over (it was silent past takeover_after): "
        "it hung up its calls unrecorded and rejoined.", value=status.fences,
    )  # fmt: skip


def _labelled(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, int],
) -> Metric:
    family = kind(name, documentation, labels=[label])
    for value, n in sorted(values.items()):
        family.add_metric([value], n)
    return family


def _label(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def webhook_families(stats: Stats, pending: int) -> Iterator[Metric]:
    """The webhook sender of this process: what it delivered, retried and gave up on, and
    how many deliveries wait (site-wide: the outbox is shared by every sender)."""
    results = CounterMetricFamily(
        "rtbridge_webhook_deliveries", "Webhook POSTs by result (retried: will be tried again; "
        "failed: attempts exhausted).", labels=["result"],
    )  # fmt: skip
    for result in ("delivered", "retried", "failed"):
        results.add_metric([result], getattr(stats, result))
    yield results
    yield CounterMetricFamily(
        "rtbridge_webhook_events_dispatched",
        "Reservation events this process turned into deliveries.", value=stats.dispatched,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "rtbridge_webhook_pending", "Deliveries waiting for a 2xx (all senders).", value=pending
    )


def bid_family(bids: Mapping[tuple[str, str], int]) -> Metric:
    """``rtbridge_bids_total{buyer,outcome}``: RTB buyers' answers, by how they ended (won,
    lost, no-bid, timeout, error, invalid); buyers are the configured ones (bounded)."""
    family = CounterMetricFamily("rtbridge_bids", "RTB buyers' bid answers by buyer and "
                                 "outcome.", labels=["buyer", "outcome"])  # fmt: skip
    for (buyer, outcome), n in sorted(bids.items()):
        family.add_metric([buyer, outcome], n)
    return family


def earned_families(
    earned: Mapping[tuple[str, str], tuple[float, float, float]],
) -> Iterator[Metric]:
    """What the calls this process ended earned, by campaign and buyer (labels bounded by
    the catalog): the counters of the business figures (``GET /admin/stats`` has them
    site-wide, by hour)."""
    families = (
        CounterMetricFamily("rtbridge_calls_converted", "Calls that converted (lasted the "
                            "buyer's seconds).", labels=["campaign", "buyer"]),
        CounterMetricFamily("rtbridge_payout_earned", "Payout earned by publishers "
                            "(converted calls).", labels=["campaign", "buyer"]),
        CounterMetricFamily("rtbridge_revenue_earned", "Revenue earned from buyers "
                            "(converted calls).", labels=["campaign", "buyer"]),
    )  # fmt: skip
    for (campaign, buyer), figures in sorted(earned.items()):
        for family, value in zip(families, figures, strict=True):
            family.add_metric([campaign, buyer], value)
    yield from families
