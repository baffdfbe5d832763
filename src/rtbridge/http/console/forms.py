"""Reading the console's forms, and putting the service layer's errors next to the field
that caused them.

The admin service functions name the field first in every message they raise
(``cidr: not a CIDR network (10.0.0.5/8 has host bits set)``); the console shows the
message under the input of that name, and anything it cannot place above the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from rtbridge.config import fields as f
from rtbridge.domain.errors import RtbError

UTC_FORMAT = "YYYY-MM-DD HH:MM"
_UTC_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
)
_UTC_SUFFIX = re.compile(r"\s*(Z|UTC)$", re.IGNORECASE)
_NOT_UTC = f"not an ISO 8601 time in UTC: write {UTC_FORMAT}, e.g. 2026-12-31 23:59"
_FIELD = re.compile(r"^([a-z_]+)(?:\[\d+\])?(?:\.([a-z_]+))?: ")


async def read(request: Request) -> dict[str, str]:
    """The form's fields as trimmed strings (the CSRF field left out)."""
    form: FormData = await request.form()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf"}


def optional(values: dict[str, str], name: str) -> str | None:
    return values.get(name) or None


def utc_time(text: str | None) -> datetime | None:
    """What a UTC time field holds (``2026-12-31 23:59``, seconds optional), read as UTC;
    ``None`` when empty. Not a ``datetime-local`` input: the browser shows that one in its
    own locale (``12/31/2026, 11:59 PM``) and sends no zone, so a field labelled UTC would
    read as local time to whoever types in it. A time copied from a console table
    (``2026-12-31T23:59:00.000Z``) or any ISO 8601 time with an offset is read too; anything
    else raises :class:`~rtbridge.config.fields.FieldError` saying how to write it."""
    value = (text or "").strip()
    if not value:
        return None
    bare = _UTC_SUFFIX.sub("", value)
    try:
        if _UTC_TIME.fullmatch(bare):
            return datetime.fromisoformat(bare.replace(" ", "T")).replace(tzinfo=UTC)
        return f.timestamp(value)  # an explicit offset: +02:00
    except (ValueError, f.FieldError):  # 2026-02-30, or no time at all
        raise f.FieldError(_NOT_UTC) from None


@dataclass
class Errors:
    """Messages by form field; ``general`` for what belongs to no one field."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, exc: RtbError, names: set[str], aliases: dict[str, str] | None = None) -> None:
        """Split the message (``a: …; b: …``) and file each part under its field."""
        aliases = aliases or {}
        for part in exc.message.split("; "):
            match = _FIELD.match(part)
            name = None
            if match:
                for candidate in (match.group(2), match.group(1)):
                    candidate = aliases.get(candidate or "", candidate)
                    if candidate in names:
                        name = candidate
                        break
            if name is None:
                self.general.append(part)
            else:
                self.fields.setdefault(name, []).append(part[match.end() :] if match else part)

    def view(self) -> dict[str, Any]:
        return {"fields": self.fields, "general": self.general}
