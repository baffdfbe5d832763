"""The clock (:func:`utcnow`), and the one way a time is written where users read it: UTC,
milliseconds, ``Z``.

The publisher API's ``expires_at`` set the format (publishers parse it); the admin API, the
CLI's tables, the audit trail, the console, the export header and the logs use the same
function so that a time copied from one can be pasted into another (``--since``, ``?since=``)
and compared by eye. Inputs still accept any ISO 8601 time with an offset
(:func:`rtbridge.config.fields.timestamp`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC, the form every timestamp column takes and returns."""
    return datetime.now(UTC)


def iso_utc(value: datetime) -> str:
    """``2026-06-17T14:32:05.000Z``. A naive value is taken as UTC (SQLite gives them back
    naive; every stored time is UTC)."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
