"""``GET /admin/stats``: the business figures (``storage/stats.py``) as JSON
``{"rows": [...], "totals": {...}}`` or as CSV (the rows, then a ``total`` row).

Parameters: ``group_by`` (comma-separated, of hour, day, publisher, campaign, buyer, reason;
default ``day``), ``since`` and ``until`` (ISO 8601 with an offset; the hours overlapping
``[since, until)``; default: everything), ``publisher``, ``campaign``, ``buyer``, ``format``.
Each is checked before anything is read, as in the logs (``http/admin/logs.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.config import fields as f
from rtbridge.domain.errors import InvalidInput
from rtbridge.http import csvfile
from rtbridge.http import handlers as service
from rtbridge.http.admin.logs import Query, query_time, wants_csv
from rtbridge.http.responses import json_response
from rtbridge.storage.stats import FIGURES, GROUPS, Stats, stats

PARAMS = ("group_by", "since", "until", "publisher", "campaign", "buyer", "format")


def _groups(value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    wrong = [g for g in chosen if g not in GROUPS]
    if wrong or not chosen:
        raise f.FieldError(f"comma-separated, of {', '.join(GROUPS)} (got {value!r})")
    if "hour" in chosen and "day" in chosen:
        raise f.FieldError("hour or day, not both")
    return chosen


async def get_stats(request: Request) -> Response:
    q = Query(request, PARAMS)
    group_by = q.read("group_by", _groups) or ("day",)
    query: dict[str, Any] = {
        "since": q.read("since", query_time),
        "until": q.read("until", query_time),
        "publisher": q.read("publisher", f.identifier),
        "campaign": q.read("campaign", f.identifier),
        "buyer": q.read("buyer", f.identifier),
    }
    csv = wants_csv(request, q)
    q.done()
    if query["since"] and query["until"] and query["since"] >= query["until"]:
        raise InvalidInput("until: must be after since")
    found = await service.read(request, stats, group_by=group_by, **query)
    if csv:
        return csvfile.download("stats", [*group_by, *FIGURES], _one_page(found, group_by))
    return json_response({"rows": found.rows, "totals": found.totals})


async def _one_page(found: Stats, group_by: tuple[str, ...]) -> AsyncIterator[list[dict[str, Any]]]:
    total = {g: "total" if i == 0 else None for i, g in enumerate(group_by)}
    yield [*found.rows, {**total, **found.totals}]
