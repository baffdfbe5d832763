"""Structured logs: one JSON object per line on stderr (SPEC §6). Never pass secrets here."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from rtbridge.timestamps import iso_utc

# uvicorn adds color_message, an ANSI-coloured twin of msg: not for a JSON log.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


# Fields every line of this process carries (the SIP agent's ``agent`` id): set_context.
_context: dict[str, object] = {}


def set_context(**fields: object) -> None:
    """Add fields to every log line of the process from now on (a line's own win)."""
    _context.update(fields)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso_utc(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context,
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
