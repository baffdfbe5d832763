"""The console's first page: the business in figures for today (UTC) or a chosen range —
pings, no-target reasons, calls, answer and conversion rates, payout, revenue and margin,
by hour (or by day past three days) as a chart, and per publisher, campaign and buyer, each
row linking to its filtered logs; buyers with their caps in use now. Read from the rollups
(``storage/stats.py``) and the counters, never from the logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import Response

from rtbridge.config import fields as f
from rtbridge.http import handlers as service
from rtbridge.http.console import forms
from rtbridge.http.console.charts import SERIES, bars
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.templating import render
from rtbridge.storage.models import Buyer, BuyerDay, BuyerLive
from rtbridge.storage.stats import stats

BY_DAY_PAST = timedelta(days=3)


def _range(request: Request, errors: Errors, now: datetime) -> tuple[datetime, datetime]:
    chosen = {}
    for name in ("since", "until"):
        try:
            chosen[name] = forms.utc_time(request.query_params.get(name))
        except f.FieldError as exc:
            errors.fields.setdefault(name, []).append(str(exc))
    since = chosen.get("since") or now.replace(hour=0, minute=0, second=0, microsecond=0)
    until = chosen.get("until") or now
    if since >= until:
        errors.fields.setdefault("until", []).append("must be after the start")
        since, until = now.replace(hour=0, minute=0, second=0, microsecond=0), now
    return since, until


def _slots(since: datetime, until: datetime, by_day: bool) -> list[str]:
    """Every hour (``…T10:00:00Z``) or day of the range, so that a quiet one shows as empty."""
    if by_day:
        day, last = since.date(), (until - timedelta(microseconds=1)).date()
        return [(day + timedelta(days=i)).isoformat() for i in range((last - day).days + 1)]
    hour = since.replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < until:
        out.append(hour.strftime("%Y-%m-%dT%H:00:00Z"))
        hour += timedelta(hours=1)
    return out


def _rates(figures: dict[str, Any]) -> dict[str, Any]:
    calls = figures["calls"]
    return {
        **figures,
        "answer_rate": figures["answered"] / calls if calls else None,
        "conversion_rate": figures["converted"] / calls if calls else None,
    }


def _caps(session: Session, day: str) -> dict[str, dict[str, Any]]:
    """Each buyer's caps and what is in use now: live units, and today's (UTC)."""
    live = {b: n for b, n in session.exec(select(BuyerLive.buyer_id, BuyerLive.units))}
    today = {
        b: n
        for b, n in session.exec(
            select(BuyerDay.buyer_id, BuyerDay.units).where(col(BuyerDay.day) == day)
        )
    }
    return {
        b.id: {"campaign": b.campaign_id, "concurrency": b.concurrency, "daily_cap": b.daily_cap,
               "live": live.get(b.id, 0), "today": today.get(b.id, 0)}
        for b in session.exec(select(Buyer).order_by(col(Buyer.id)))
    }  # fmt: skip


async def dashboard(request: Request) -> Response:
    now = service.app_state(request).reservations.clock().astimezone(UTC)
    errors = Errors()
    since, until = _range(request, errors, now)
    by_day = until - since > BY_DAY_PAST

    def work(session: Session) -> dict[str, Any]:
        def by(group: str) -> list[dict[str, Any]]:
            found = stats(session, group_by=(group,), since=since, until=until).rows
            return [r for r in found if r[group]]  # no buyer, no reason: not a row here

        over_time = stats(session, group_by=("day",) if by_day else ("hour",), since=since,
                          until=until)  # fmt: skip
        return {
            "over_time": over_time, "reasons": by("reason"), "publishers": by("publisher"),
            "campaigns": by("campaign"), "buyers": by("buyer"),
            "caps": _caps(session, now.date().isoformat()),
        }  # fmt: skip

    found = await service.read(request, work)
    slots = _slots(since, until, by_day)
    key = "day" if by_day else "hour"
    by_slot = {row[key]: row for row in found["over_time"].rows}
    chart = bars(
        [s[:10] if by_day else s[11:13] + "h" for s in slots],
        [by_slot.get(s, {}) for s in slots],
        title=f"Pings, calls and conversions by {key} (UTC)",
    )
    window = {"since": since.strftime("%Y-%m-%d %H:%M"), "until": until.strftime("%Y-%m-%d %H:%M")}
    return render(
        request, "dashboard.html", status=422 if errors else 200, errors=errors.view(),
        totals=_rates(found["over_time"].totals), chart=chart, series=SERIES,
        reasons=found["reasons"], publishers=[_rates(r) for r in found["publishers"]],
        campaigns=[_rates(r) for r in found["campaigns"]],
        buyers=[_rates(r) for r in found["buyers"]], caps=found["caps"], window=window,
        filters={k: request.query_params.get(k, "") for k in ("since", "until")},
        today=not request.query_params.get("since") and not request.query_params.get("until"),
    )  # fmt: skip
