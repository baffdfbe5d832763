"""The RTB log (``GET /admin/rtbs``) and the call log (``GET /admin/calls``) of the admin API:
the console's listings (:mod:`rtbridge.storage.listings`, the same filters and keyset pages)
as JSON pages or a streamed CSV download. The query, cursor and CSV pieces are public: the
bid log (``http/admin/bids.py``) and the figures (``stats.py``) read their queries alike.

A page answers ``{"items": [...], "next": cursor | null}``. The cursor is opaque to clients
(base64 of the listing's name and the last row's key), so the paging key may change without
breaking them, and one listing's cursor is refused by the other. Every query parameter is
checked before anything is read: an unknown or malformed one is a 422 naming it, with every
problem of the request in the one message."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import calls as admin_calls
from rtbridge.config import fields as f
from rtbridge.domain import lifecycle as st
from rtbridge.domain.attestation import ATTESTATION_LEVELS
from rtbridge.domain.errors import InvalidInput, NotFound
from rtbridge.domain.numbers import normalise_e164
from rtbridge.http import csvfile, recordings
from rtbridge.http import handlers as service
from rtbridge.http.bodies import boolean
from rtbridge.http.responses import json_response
from rtbridge.numerals import as_int, int_or_text
from rtbridge.storage import listings
from rtbridge.storage.story import story

T = TypeVar("T")

DEFAULT_LIMIT = 100
RTB_STATUSES = (*st.UNCLAIMED, *st.IN_CALL, *st.TERMINAL)
CALL_STATUSES = (*st.IN_CALL, st.COMPLETED, st.FAILED)
VIA = ("sip", "pstn")
FORMATS = ("json", "csv")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
# "...T10:00:00 02:00": an unescaped "+" of the offset arrives as a space in a query string
_SPACED_OFFSET = re.compile(r"(T[\d:.]+) (\d\d:?\d\d)$")

COMMON = ("limit", "cursor", "format")
RTB_PARAMS = ("publisher", "campaign", "buyer", "key", "status", "reason", "caller_number",
              "uuid", "since", "until", *COMMON)  # fmt: skip
CALL_PARAMS = ("publisher", "campaign", "buyer", "status", "converted", "hangup_by",
               "publisher_code", "buyer_code", "min_duration", "via", "attestation", "uuid", "since", "until",
               *COMMON)  # fmt: skip


class Query:
    """The query string read once, every problem collected with its parameter's name."""

    def __init__(self, request: Request, known: tuple[str, ...]) -> None:
        self.params = request.query_params
        self.errors: list[str] = []
        for name in dict.fromkeys(self.params.keys()):
            if name not in known:
                self.errors.append(f"{name}: unknown parameter (use {', '.join(known)})")
            elif len(self.params.getlist(name)) > 1:
                self.errors.append(f"{name}: given more than once")

    def text(self, name: str) -> str | None:
        """The value, or None when absent or empty (an empty filter filters nothing)."""
        return self.params.get(name, "").strip() or None

    def read(self, name: str, check: Callable[[str], T]) -> T | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return check(value)
        except (f.FieldError, InvalidInput) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else f"{name}: {exc}"
            self.errors.append(message)
            return None

    def done(self) -> None:
        if self.errors:
            raise InvalidInput("; ".join(self.errors))


def one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise f.FieldError(f"one of {', '.join(choices)}")
        return value

    return check


def _token(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise f.FieldError("1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def reservation_uuid(value: str) -> str:
    if not _UUID.fullmatch(value.lower()):
        raise f.FieldError("not a reservation uuid (8-4-4-4-12 hex digits)")
    return value.lower()


def query_time(value: str) -> datetime:
    return f.timestamp(_SPACED_OFFSET.sub(r"\1+\2", value))


def _integer(minimum: int, maximum: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        return f.integer(int_or_text(value, signed=True), minimum=minimum, maximum=maximum)

    return check


def _duration(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise f.FieldError("must be a number of seconds") from None
    return f.number(seconds if seconds == seconds else value, minimum=0)


def _converted(value: str) -> bool:
    answer = boolean(value)
    if not isinstance(answer, bool):
        raise f.FieldError("must be true or false")
    return answer


def _caller(value: str) -> str:
    return normalise_e164(value, field="caller_number")


# -- cursors ----------------------------------------------------------------------------------


def next_cursor(listing: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{listing}:{key}".encode()).decode().rstrip("=")


def cursor_key(listing: str, check: Callable[[str], T]) -> Callable[[str], T]:
    def read(value: str) -> T:
        try:
            text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            name, _, key = text.partition(":")
            if name == listing:
                return check(key)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise f.FieldError(f"not a cursor of /admin/{listing} (pass back 'next' as it came)")

    return read


def integer_key(key: str) -> int:
    value = as_int(key)
    if value is None:
        raise ValueError(key)
    return value


def _rtb_key(key: str) -> str:
    if not _UUID.fullmatch(key):
        raise ValueError(key)
    return key


# -- answers ----------------------------------------------------------------------------------


def wants_csv(request: Request, q: Query) -> bool:
    chosen = q.read("format", one_of(FORMATS))
    if chosen is not None:
        return chosen == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


def page_limit(q: Query) -> int:
    return q.read("limit", _integer(1, listings.MAX_PAGE)) or DEFAULT_LIMIT


async def list_rtbs(request: Request) -> Response:
    q = Query(request, RTB_PARAMS)
    filters = {
        "publisher": q.read("publisher", f.identifier),
        "campaign": q.read("campaign", f.identifier),
        "buyer": q.read("buyer", f.identifier),
        "key_id": q.read("key", _token),
        "status": q.read("status", one_of(RTB_STATUSES)),
        "reason": q.read("reason", _token),
        "caller_number": q.read("caller_number", _caller),
        "uuid": q.read("uuid", reservation_uuid),
        "since": q.read("since", query_time),
        "until": q.read("until", query_time),
        "now": service.app_state(request).reservations.clock(),
    }
    before = q.read("cursor", cursor_key("rtbs", _rtb_key))
    limit, csv = page_limit(q), wants_csv(request, q)
    q.done()
    if csv:
        pages = service.pages(request, listings.rtb_log, before=before, **filters)
        return csvfile.download("rtbs", listings.RTB_COLUMNS, pages)
    page = await service.read(request, listings.rtb_log, **filters, before=before, limit=limit)
    cursor = next_cursor("rtbs", page.next_before) if page.next_before else None
    return json_response({"items": page.rows, "next": cursor})


async def list_calls(request: Request) -> Response:
    q = Query(request, CALL_PARAMS)
    filters = {
        "publisher": q.read("publisher", f.identifier),
        "campaign": q.read("campaign", f.identifier),
        "buyer": q.read("buyer", f.identifier),
        "status": q.read("status", one_of(CALL_STATUSES)),
        "converted": q.read("converted", _converted),
        "hangup_by": q.read("hangup_by", _token),
        "publisher_code": q.read("publisher_code", _integer(100, 699)),
        "buyer_code": q.read("buyer_code", _integer(100, 699)),
        "min_duration": q.read("min_duration", _duration),
        "via": q.read("via", one_of(VIA)),
        "attestation": q.read("attestation", one_of(ATTESTATION_LEVELS)),
        "uuid": q.read("uuid", reservation_uuid),
        "since": q.read("since", query_time),
        "until": q.read("until", query_time),
    }
    before = q.read("cursor", cursor_key("calls", integer_key))
    limit, csv = page_limit(q), wants_csv(request, q)
    q.done()
    if csv:
        pages = service.pages(request, listings.call_log, before=before, **filters)
        return csvfile.download("calls", listings.CALL_COLUMNS, pages, listings.flat_call)
    page = await service.read(request, listings.call_log, **filters, before=before, limit=limit)
    cursor = next_cursor("calls", page.next_before) if page.next_before is not None else None
    return json_response({"items": page.rows, "next": cursor})


async def get_rtb(request: Request) -> Response:
    """One reservation's whole story (``storage/story.py``); 404 for an unknown uuid."""
    try:
        uuid = reservation_uuid(request.path_params["uuid"])
    except f.FieldError as exc:
        raise InvalidInput(f"uuid: {exc}") from None
    now = service.app_state(request).reservations.clock()
    found = await service.read(request, story, uuid, now=now)
    if found is None:
        raise NotFound(f"no reservation {uuid}")
    return json_response(found)


async def list_refusals(request: Request) -> Response:
    """Each SIP agent's last refused INVITEs, newest first, as of its last heartbeat
    (``sip/recent_refusals.py``): ``{"agents": [{"agent", "state", "seen_at",
    "refusals": [...]}]}``; ``agent`` narrows it to one."""
    q = Query(request, ("agent",))
    name = q.read("agent", _token)
    q.done()
    found = await service.read(request, listings.agents)
    return json_response({"agents": [
        {"agent": a["name"], "state": a["state"], "seen_at": a["seen_at"], "refusals": a["refusals"]}
        for a in found if name is None or a["name"] == name
    ]})  # fmt: skip


async def get_call_recording(request: Request) -> Response:
    """The call's recording file (``http/recordings.py``): ``audio/wav`` with ``Range``;
    404 saying why when there is none (not recorded, in progress, failed, purged, missing)."""
    try:
        uuid = reservation_uuid(request.path_params["uuid"])
    except f.FieldError as exc:
        raise InvalidInput(f"uuid: {exc}") from None
    return await recordings.serve(service.app_state(request), uuid)


async def hang_up_call(request: Request) -> Response:
    """Ask the call's agent to hang it up (``admin/calls.py``): 202, as its next heartbeat
    does it; 404 without such a call, 409 once it ended."""
    try:
        uuid = reservation_uuid(request.path_params["uuid"])
    except f.FieldError as exc:
        raise InvalidInput(f"uuid: {exc}") from None
    asked = await service.write(request, admin_calls.request_hangup, uuid=uuid)
    return json_response(asked, status=202)
