"""Request bodies of the admin API: JSON, or a form (``application/x-www-form-urlencoded`` or
``multipart/form-data``) as the publisher API accepts (:mod:`rtbridge.http.params`).

A form carries only strings, one per key; the admin resources have lists, booleans and
numbers. A form is turned into the JSON object it stands for and then goes through exactly
the validation a JSON body does (``config/schema.py``), so both are refused with the same
words. The turning is by field name: a name means one kind of value in every admin resource
(``ips`` is always a list, ``paused`` always a boolean), so one table says it.

- a list field takes its key repeated (``ips=10.0.0.0/8&ips=192.0.2.0/24``);
- a boolean is ``true``/``false``/``1``/``0`` (``on``/``off``/``yes``/``no`` too, as HTML
  checkboxes and people send them);
- a number is read as an integer or a decimal, then checked by the field's own rule;
- ``filters.<tag>`` keys, repeated, make the buyer's ``filters`` table;
  ``bid_headers.<name>`` keys, once each, its ``bid_headers`` (``bid_headers=`` alone: none);
- an empty value is ``null`` (a PATCH then resets that field to its default);
- anything the table does not know stays a string, so an unknown or misspelt field is still
  refused by name. A value that cannot be read as its kind is passed on as given, so the
  message is the JSON body's (``payout: must be a number``)."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from rtbridge.domain.errors import InvalidInput, UnsupportedMediaType
from rtbridge.http.params import form_pairs, json_body, multipart_pairs, read_body
from rtbridge.numerals import as_int

LISTS = frozenset({"ips", "numbers", "events", "failover"})
BOOLEANS = frozenset({"allow_overlap", "require_tls", "require_srtp",
                      "allow_missing_caller_number", "auto_confirm", "paused", "enabled", "recordings",
                      "hide_caller"})  # fmt: skip
NUMBERS = frozenset({"payout", "revenue", "seconds", "concurrency", "daily_cap", "priority", "weight",
                     "ttl_seconds", "max_attempts", "ring_timeout", "connect_timeout",
                     "bid_deadline_ms", "publisher_share", "min_bid"})  # fmt: skip
TABLES = frozenset({"filters"})  # filters.<tag>=value, repeated
HEADERS = frozenset({"bid_headers"})  # bid_headers.<name>=value, once each
JSON_ONLY = frozenset({"credentials", "buyers"})  # lists of objects: no form spelling

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})
_DECIMAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]{1,4})?")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
UNSUPPORTED = (
    "body: unsupported content type {!r} (send application/json, "
    "application/x-www-form-urlencoded or multipart/form-data)"
)


def boolean(value: str) -> bool | str:
    """``true``/``false``/``1``/``0`` (and on/off, yes/no) as a bool; anything else as given."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def number(value: str) -> int | float | str:
    """An integer or a decimal; anything else as given, for the field's rule to refuse."""
    text = value.strip()
    whole = as_int(text, signed=True)
    if whole is not None:
        return whole
    if _DECIMAL.fullmatch(text):
        return float(text)
    return value


def from_form(items: list[tuple[str, str]]) -> dict[str, Any]:
    """The JSON object a form stands for (the module docstring says how)."""
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    errors: list[str] = []
    for name, values in grouped.items():
        table, _, tag = name.partition(".")
        if table in TABLES and tag:
            out.setdefault(table, {})[tag] = [v for v in values if v.strip()]
        elif table in HEADERS and tag:
            if len(values) > 1:
                errors.append(f"{name}: given more than once")
            out.setdefault(table, {})[tag] = values[0]
        elif name in JSON_ONLY:
            errors.append(f"{name}: a list of objects; send it in a JSON body")
        elif name in LISTS:
            out[name] = [v for v in values if v.strip()]
        elif len(values) > 1:
            errors.append(f"{name}: given more than once (only {', '.join(sorted(LISTS))} repeat)")
        elif not values[0].strip():
            out[name] = None
        elif name in BOOLEANS:
            out[name] = boolean(values[0])
        elif name in NUMBERS:
            out[name] = number(values[0])
        else:
            out[name] = values[0]
    if errors:
        raise InvalidInput("; ".join(errors))
    return out


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _multipart(request: Request, raw: bytes) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for name, value in await multipart_pairs(request.scope, raw):
        if isinstance(value, UploadFile):
            raise InvalidInput(f"{name}: a file upload; send the value as a form field")
        items.append((name, value))
    return items


async def admin_body(request: Request, limit: int) -> Any:
    """The body as the admin services take it: any JSON value (an array is a bulk add), or
    the object a form stands for. Empty: ``{}``. Another content type: 415."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    ctype = media_type(request)
    if ctype == "application/json" or ctype.endswith("+json"):
        return json_body(raw)
    if not ctype:  # as the publisher API: JSON if it looks like JSON, else a form
        return json_body(raw) if raw.lstrip()[:1] in (b"{", b"[") else from_form(form_pairs(raw))
    if ctype == "application/x-www-form-urlencoded":
        return from_form(form_pairs(raw))
    if ctype == "multipart/form-data":
        return from_form(await _multipart(request, raw))
    raise UnsupportedMediaType(UNSUPPORTED.format(ctype))
