"""Reading the console's forms, and putting the service layer's errors next to the field
that caused them.

The admin service functions name the field first in every message they raise
(``cidr: not a CIDR network (10.0.0.5/8 has host bits set)``); the console shows the
message under the input of that name, and anything it cannot place above the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from rtbridge.domain.errors import RtbError

_LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$")
_FIELD = re.compile(r"^([a-z_]+)(?:\[\d+\])?(?:\.([a-z_]+))?: ")


async def read(request: Request) -> dict[str, str]:
    """The form's fields as trimmed strings (the CSRF field left out)."""
    form: FormData = await request.form()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf"}


def optional(values: dict[str, str], name: str) -> str | None:
    return values.get(name) or None


def utc_time(value: str | None) -> str | None:
    """A ``datetime-local`` input has no zone: the console labels such inputs UTC."""
    if value and _LOCAL_TIME.match(value):
        return value + "Z"
    return value or None


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
