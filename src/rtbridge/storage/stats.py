"""The business figures as operators ask for them (``GET /admin/stats``, the console's
dashboard): the rollups (``storage/rollups.py``) summed by any of hour, day, publisher,
campaign, buyer and no-target reason, over a range of hours, with their totals.

Reads only ``rollup``, whose primary key leads with the hour: a range of days is a range
scan of a table a few hundred rows per hour, however many pings and calls made it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from rtbridge.storage.models import Rollup
from rtbridge.storage.rollups import COUNTS, MEASURES, hour_of

GROUPS = ("hour", "day", "publisher", "campaign", "buyer", "reason")
FIGURES = (*MEASURES, "margin")  # each row's and the totals' measures, in this order
_COLUMNS = {
    "hour": col(Rollup.hour),
    "day": func.substr(col(Rollup.hour), 1, 10),
    "publisher": col(Rollup.publisher_id),
    "campaign": col(Rollup.campaign_id),
    "buyer": col(Rollup.buyer_id),
    "reason": col(Rollup.reason),
}


@dataclass(frozen=True)
class Stats:
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


def hour_range(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    """The hour keys of the hours that overlap ``[since, until)``: the first one, and the
    first one past the range."""
    end = None
    if until is not None:
        start_of_hour = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = hour_of(
            start_of_hour if start_of_hour == until else start_of_hour + timedelta(hours=1)
        )
    return (hour_of(since) if since is not None else None), end


def stats(
    session: Session, *, group_by: Sequence[str] = ("day",), since: datetime | None = None,
    until: datetime | None = None, publisher: str | None = None, campaign: str | None = None,
    buyer: str | None = None,
) -> Stats:  # fmt: skip
    """The figures grouped by ``group_by`` (some of :data:`GROUPS`, in that order of
    sorting), for the hours overlapping ``[since, until)``, and their totals."""
    first, past = hour_range(since, until)
    where = []
    if first is not None:
        where.append(col(Rollup.hour) >= first)
    if past is not None:
        where.append(col(Rollup.hour) < past)
    for value, column in ((publisher, Rollup.publisher_id), (campaign, Rollup.campaign_id),
                          (buyer, Rollup.buyer_id)):  # fmt: skip
        if value is not None:
            where.append(col(column) == value)
    sums = [func.coalesce(func.sum(getattr(Rollup, m)), 0).label(m) for m in MEASURES]
    keys: list[Any] = [_COLUMNS[g].label(g) for g in group_by]
    rows = session.exec(select(*keys, *sums).where(*where).group_by(*keys).order_by(*keys)).all()
    total = session.exec(select(*sums).where(*where)).one()
    return Stats([_row(dict(r._mapping), group_by) for r in rows], _figures(dict(total._mapping)))


def _row(found: Mapping[str, Any], group_by: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for g in group_by:
        value = found[g]
        if g == "hour":
            value = f"{value[:10]}T{value[11:13]}:00:00Z"
        elif g in ("buyer", "reason"):
            value = value or None  # no buyer: no-target pings; no reason: the others
        row[g] = value
    return {**row, **_figures(found)}


def _figures(found: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {m: int(found[m] or 0) for m in COUNTS}
    out["talk_seconds"] = round(float(found["talk_seconds"] or 0), 3)
    out["payout"] = round(float(found["payout"] or 0), 2)
    out["revenue"] = round(float(found["revenue"] or 0), 2)
    out["margin"] = round(out["revenue"] - out["payout"], 2)
    return out
