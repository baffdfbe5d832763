"""Was any buyer ever over its caps? Answered from the status history alone, independently of
the counters the application keeps, so a test can check the counters' decisions after the
fact (issue 8: "0 over-allocations").

A reservation's creation is its row (``created_at``, unclaimed); every later transition but
expiry is a history row. Every reserve or confirm sets ``expires_at`` to its time plus the
key's TTL, so each reservation's holds are segments: an unclaimed status holds from its time
until the next transition or the TTL, whichever comes first; a call in progress holds until
its next transition; completed and failed keep their daily unit for good. A sweep over the segments gives
the most units held at any instant, per buyer (concurrency) and per buyer and UTC day of
creation (daily cap)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from rtbridge.domain import lifecycle as st
from rtbridge.storage.attempts import ATTEMPT_FAILED

_END = datetime.max.replace(tzinfo=UTC)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _peak(segments: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(s, 1) for s, _ in segments] + [(e, -1) for _, e in segments])
    peak = held = 0
    for _, step in edges:  # at equal times -1 sorts first: segments are half-open
        held += step
        peak = max(peak, held)
    return peak


def _union(segments: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """One reservation's segments merged: it holds one unit however its events interleave
    (the agent stamps a claim with the time it read the clock, which may precede a confirm
    written just before the claim)."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(segments):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return merged


def peaks(
    engine: Engine, ttl: float, now: datetime
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """(most live units per buyer, most daily units per (buyer, UTC day)) over the history."""
    with engine.connect() as conn:
        buyers: dict[str, tuple[str, str]] = {}
        history: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for r in conn.execute(
            text("SELECT uuid, buyer_id, created_at FROM reservation WHERE buyer_id IS NOT NULL")
        ):
            created = _aware(r.created_at)
            buyers[r.uuid] = (r.buyer_id, created.date().isoformat())
            history[r.uuid].append((st.RESERVED, created))
        for e in conn.execute(
            text("SELECT reservation_uuid, status, at FROM reservationevent ORDER BY id")
        ):
            # a failed buyer attempt is not a status: the call goes on, claimed
            if e.reservation_uuid in buyers and e.status != ATTEMPT_FAILED:
                history[e.reservation_uuid].append((e.status, _aware(e.at)))
    live: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    daily: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    hold = timedelta(seconds=ttl)
    for uuid, events in history.items():
        buyer, day = buyers[uuid]
        holds, used = [], []
        for i, (status, at) in enumerate(events):
            following = events[i + 1][1] if i + 1 < len(events) else now
            if status in st.UNCLAIMED:
                holds.append((at, max(at, min(following, at + hold))))
            elif status in st.IN_CALL:
                holds.append((at, max(at, following)))
            elif status in (st.COMPLETED, st.FAILED):
                used.append((at, _END))
        live[buyer] += _union(holds)
        daily[(buyer, day)] += _union(holds + used)
    return (
        {b: _peak(s) for b, s in live.items()},
        {k: _peak(s) for k, s in daily.items()},
    )


def over_allocations(
    engine: Engine, ttl: float, caps: dict[str, tuple[int | None, int | None]]
) -> list[str]:
    """Every (buyer, cap) ever exceeded; ``caps`` maps buyer -> (concurrency, daily cap)."""
    live, daily = peaks(engine, ttl, datetime.now(UTC))
    found = []
    for buyer, (concurrency, daily_cap) in caps.items():
        if concurrency is not None and live.get(buyer, 0) > concurrency:
            found.append(f"{buyer}: {live[buyer]} live units, cap {concurrency}")
        for (b, day), n in daily.items():
            if b == buyer and daily_cap is not None and n > daily_cap:
                found.append(f"{buyer}: {n} units on {day}, daily cap {daily_cap}")
    return found
