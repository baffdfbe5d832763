"""The business figures as operators ask for them (``GET /admin/stats``, the console's
dashboard): the rollups (``storage/rollups.py``) summed by any of hour, day, publisher,
campaign, buyer and no-target reason, over a range of hours, with their totals.

Reads only the rollups (``rollup`` by hour, ``rollupday`` by day), whose primary keys lead
with the time: a range is a range scan of rows a few hundred per hour or day, however many
pings and calls made them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from rtbridge.storage.models import Rollup, RollupDay
from rtbridge.storage.rollups import COUNTS, MEASURES, hour_of

GROUPS = ("hour", "day", "publisher", "campaign", "buyer", "reason")
FIGURES = (*MEASURES, "margin")  # each row's and the totals' measures, in this order
_FILTERS = ("publisher", "campaign", "buyer")


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
    sorting), for the hours overlapping ``[since, until)``, and their totals.

    Whole days come from ``rollupday`` unless the hours are asked for; the partial days at
    either end of the range from ``rollup``. The parts are added up here, by group."""
    first, past = hour_range(since, until)
    filters = dict(zip(_FILTERS, (publisher, campaign, buyer), strict=True))
    found: dict[tuple[Any, ...], dict[str, float]] = {}
    for table, lo, hi in _parts(first, past, by_hour="hour" in group_by):
        for key, figures in _sums(session, table, group_by, lo, hi, filters):
            into = found.get(key)
            if into is None:
                found[key] = figures
            else:
                for m in MEASURES:
                    into[m] += figures[m]
    rows = [_row(dict(zip(group_by, key, strict=True)), found[key]) for key in sorted(found)]
    totals = {m: sum(f[m] for f in found.values()) for m in MEASURES}
    return Stats(rows, _figures(totals))


_Part = tuple[type[Rollup] | type[RollupDay], str | None, str | None]


def _parts(first: str | None, past: str | None, *, by_hour: bool) -> list[_Part]:
    """Which table answers which part of the hours ``[first, past)``: (table, first key,
    key past the part); a day's key is ``YYYY-MM-DD``, an hour's ``YYYY-MM-DD HH``."""
    if by_hour:
        return [(Rollup, first, past)]
    # the whole days: from the first midnight at or after ``first`` to the last before ``past``
    day_first = first if first is None or first.endswith(" 00") else _next_day(first)
    day_past = None if past is None else past[:10]
    if day_first is not None and day_past is not None and day_first[:10] >= day_past:
        return [(Rollup, first, past)]  # no whole day in the range
    parts: list[_Part] = [(RollupDay, day_first and day_first[:10], day_past)]
    if first is not None and day_first != first:
        parts.append((Rollup, first, day_first))
    if past is not None and not past.endswith(" 00"):
        parts.append((Rollup, f"{day_past} 00", past))
    return parts


def _next_day(hour: str) -> str:
    return (datetime.strptime(hour[:10], "%Y-%m-%d") + timedelta(days=1)).strftime("%Y-%m-%d 00")


def _sums(
    session: Session, table: type[Rollup] | type[RollupDay], group_by: Sequence[str],
    first: str | None, past: str | None, filters: Mapping[str, str | None],
) -> list[tuple[tuple[Any, ...], dict[str, float]]]:  # fmt: skip
    """One table's figures for ``[first, past)``, summed by ``group_by``."""
    when = col(Rollup.hour) if table is Rollup else col(RollupDay.day)
    columns: dict[str, Any] = {
        "hour": when,
        "day": when if table is RollupDay else func.substr(when, 1, 10),
        "publisher": col(table.publisher_id),
        "campaign": col(table.campaign_id),
        "buyer": col(table.buyer_id),
        "reason": col(table.reason),
    }
    where = []
    if first is not None:
        where.append(when >= first)
    if past is not None:
        where.append(when < past)
    where += [columns[name] == value for name, value in filters.items() if value is not None]
    keys = [columns[g].label(g) for g in group_by]
    sums = [func.sum(getattr(table, m)).label(m) for m in MEASURES]
    found = session.exec(select(*keys, *sums).where(*where).group_by(*keys)).all()
    return [
        (tuple(r[: len(keys)]), {m: r[len(keys) + i] or 0 for i, m in enumerate(MEASURES)})
        for r in found
    ]


def _row(keys: Mapping[str, Any], figures: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for g, value in keys.items():
        if g == "hour":
            value = f"{value[:10]}T{value[11:13]}:00:00Z"
        elif g in ("buyer", "reason"):
            value = value or None  # no buyer: no-target pings; no reason: the others
        row[g] = value
    return {**row, **_figures(figures)}


def _figures(found: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {m: int(found[m] or 0) for m in COUNTS}
    out["talk_seconds"] = round(float(found["talk_seconds"] or 0), 3)
    out["payout"] = round(float(found["payout"] or 0), 2)
    out["revenue"] = round(float(found["revenue"] or 0), 2)
    out["margin"] = round(out["revenue"] - out["payout"], 2)
    return out
