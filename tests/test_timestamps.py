"""One format for every time users read: the API's ``2026-06-17T14:32:05.000Z``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone

from sqlmodel import Session

from rtbridge.admin.audit import redact
from rtbridge.admin.export import kamailio_permissions
from rtbridge.logs import JsonFormatter
from rtbridge.storage.database import open_database
from rtbridge.timestamps import iso_utc

NEW_YORK_SUMMER = timezone(timedelta(hours=-4))


def test_utc_milliseconds_and_z_whatever_the_offset() -> None:
    assert iso_utc(datetime(2026, 6, 17, 14, 32, 5, tzinfo=UTC)) == "2026-06-17T14:32:05.000Z"
    assert (
        iso_utc(datetime(2026, 6, 17, 10, 32, 5, 123456, tzinfo=NEW_YORK_SUMMER))
        == "2026-06-17T14:32:05.123Z"
    )
    assert iso_utc(datetime(2026, 6, 17, 14, 32, 5)) == "2026-06-17T14:32:05.000Z"  # naive: UTC


def test_log_lines_audit_values_and_the_export_header_use_it() -> None:
    record = logging.LogRecord("rtbridge", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 6, 17, 14, 32, 5, 250000, tzinfo=UTC).timestamp()
    assert json.loads(JsonFormatter().format(record))["ts"] == "2026-06-17T14:32:05.250Z"

    when = datetime(2099, 6, 30, 20, 0, tzinfo=NEW_YORK_SUMMER)
    assert redact({"expires_at": when}) == {"expires_at": "2099-07-01T00:00:00.000Z"}


def test_export_header(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    try:
        with Session(engine) as session:
            text = kamailio_permissions(session, now=datetime(2026, 6, 17, 14, 32, 5, tzinfo=UTC))
    finally:
        engine.dispose()
    assert "# generated 2026-06-17T14:32:05.000Z; expired entries left out" in text
