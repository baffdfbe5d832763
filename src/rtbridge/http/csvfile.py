"""CSV downloads of the listings (the console's call log, the admin API's ``/admin/rtbs`` and
``/admin/calls``): one header row, then every matching row, written page by page as the keyset
walk yields them, so an export of a million calls never sits in memory.

Cells are made safe for spreadsheets: a text cell starting with ``=``, ``+``, ``-``, ``@``
(or a tab or carriage return, which some spreadsheets skip before reading a formula) is
prefixed with ``'`` — a caller number ``+12025550123`` or a tag value typed by a publisher
must never run as a formula on an analyst's machine (OWASP "CSV injection")."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.responses import StreamingResponse

from rtbridge.timestamps import iso_utc

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv; charset=utf-8"


def cell(value: Any) -> Any:
    """One value as a CSV cell: times as the API writes them (``...Z``), tags as compact JSON,
    and no text a spreadsheet would evaluate."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


Row = dict[str, Any]


async def lines(
    columns: Sequence[str],
    pages: AsyncIterator[list[Row]],
    flat: Callable[[Row], Row] | None = None,
) -> AsyncIterator[str]:
    """The header row, then one chunk of text per page of rows (each first through
    ``flat``, for a listing whose rows nest lists a CSV row cannot hold)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    async for rows in pages:
        for row in map(flat, rows) if flat is not None else rows:
            writer.writerow([cell(row[c]) for c in columns])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if out.tell():  # nothing matched: the header alone
        yield out.getvalue()


def download(
    name: str, columns: Sequence[str], pages: AsyncIterator[list[Row]],
    flat: Callable[[Row], Row] | None = None,
) -> StreamingResponse:  # fmt: skip
    """``rtbridge-<name>-<UTC time>.csv`` as an attachment, streamed."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="rtbridge-{name}-{stamp}.csv"'}
    body = lines(columns, pages, flat)
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=headers)
