"""Watch pages: calls in progress, the RTB log, the call log (and its CSV) and one call's
detail, the agent's capacity and health, the audit trail. Read-only; every list pages by keyset
(:mod:`rtbridge.storage.listings`), so the thousandth page is as quick as the first."""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from rtbridge import __version__
from rtbridge.admin import audit, offers, publishers
from rtbridge.admin import calls as admin_calls
from rtbridge.config import fields as f
from rtbridge.domain import lifecycle as st
from rtbridge.domain.errors import InvalidInput, NotFound
from rtbridge.domain.numbers import normalise_e164
from rtbridge.http import csvfile, recordings
from rtbridge.http import handlers as service
from rtbridge.http.console import forms, notices
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.templating import base_path, render
from rtbridge.numerals import as_int
from rtbridge.storage import listings
from rtbridge.storage.catalog import read_version
from rtbridge.storage.story import story

PAGE = 50
STATUSES = [st.RESERVED, st.CONFIRMED, *st.IN_CALL, *st.TERMINAL]


def _time(request: Request, name: str, errors: Errors) -> datetime | None:
    try:
        return forms.utc_time(request.query_params.get(name))
    except f.FieldError as exc:
        errors.fields.setdefault(name, []).append(str(exc))
        return None


def _query(request: Request, **changes: Any) -> str:
    """The current filters with ``changes`` (e.g. the next page's ``before``)."""
    params = {k: v for k, v in request.query_params.items() if v}
    params.update({k: str(v) for k, v in changes.items() if v is not None})
    return urllib.parse.urlencode(params)


async def live_calls(request: Request) -> Response:
    calls = await service.read(request, listings.live_calls)
    return render(request, "live.html", calls=calls, status_line=_agent_line(request))


def _agent_line(request: Request) -> dict[str, Any] | None:
    state = service.app_state(request)
    if state.sip is None:
        return None
    status = state.sip()
    return {"bridges": status.bridges_alive, "capacity": status.bridge_capacity,
            "draining": status.draining}  # fmt: skip


def _caller(request: Request, errors: Errors) -> str | None:
    """The caller filter as the API reads it: any way of writing a number, made E.164."""
    raw = request.query_params.get("caller_number") or None
    try:
        return None if raw is None else normalise_e164(raw.strip(), field="caller_number")
    except InvalidInput as exc:
        errors.fields["caller_number"] = [str(exc).split(": ", 1)[-1]]
        return None


def _rtb_filters(request: Request, errors: Errors) -> dict[str, Any]:
    q = request.query_params
    status = q.get("status") or None
    if status and status not in STATUSES:
        errors.fields["status"] = [f"one of {', '.join(STATUSES)}"]
        status = None
    return {
        "caller_number": _caller(request, errors),
        "key_id": q.get("key") or None, "uuid": q.get("uuid") or None,
        "publisher": q.get("publisher") or None, "campaign": q.get("campaign") or None,
        "buyer": q.get("buyer") or None, "reason": q.get("reason") or None, "status": status,
        "since": _time(request, "since", errors), "until": _time(request, "until", errors),
    }  # fmt: skip


async def rtb_log(request: Request) -> Response:
    q = request.query_params
    errors = Errors()
    filters = _rtb_filters(request, errors)
    page = await service.read(
        request, listings.rtb_log, **filters, before=q.get("before") or None, limit=PAGE
    )
    keys = await service.read(request, offers.list_keys)
    hints = {k["id"]: k["hint"] for k in keys}
    return render(request, "rtb_log.html", status=422 if errors else 200, rows=page.rows,
                  hints=hints, keys=keys, statuses=STATUSES, filters=dict(q),
                  publishers=await service.read(request, publishers.list_publishers),
                  errors=errors.view(), csv_query=_query(request, before=None),
                  next_query=_query(request, before=page.next_before) if page.next_before else None)  # fmt: skip


async def rtb_log_csv(request: Request) -> Response:
    """Every ping matching the filters (not just one page), streamed in batches of 1000:
    the columns of ``GET /admin/rtbs?format=csv``."""
    errors = Errors()
    filters = _rtb_filters(request, errors)
    if errors:
        return await rtb_log(request)
    pages = service.pages(request, listings.rtb_log, before=None, **filters)
    return csvfile.download("rtbs", listings.RTB_COLUMNS, pages)


def _call_filters(request: Request, errors: Errors) -> dict[str, Any]:
    q = request.query_params
    converted = {"yes": True, "no": False}.get(q.get("converted", ""))
    return {
        "publisher": q.get("publisher") or None,
        "buyer": q.get("buyer") or None,
        "converted": converted,
        "since": _time(request, "since", errors),
        "until": _time(request, "until", errors),
        "uuid": q.get("uuid") or None,
    }


async def call_log(request: Request) -> Response:
    errors = Errors()
    filters = _call_filters(request, errors)
    before = request.query_params.get("before", "")
    page = await service.read(
        request, listings.call_log, **filters,
        before=as_int(before), limit=PAGE,
    )  # fmt: skip
    next_before = page.next_before
    return render(request, "call_log.html", status=422 if errors else 200, rows=page.rows,
                  filters=dict(request.query_params), errors=errors.view(),
                  publishers=await service.read(request, publishers.list_publishers),
                  buyers=await service.read(request, offers.list_buyers),
                  csv_query=_query(request, before=None),
                  next_query=_query(request, before=next_before) if next_before else None)  # fmt: skip


async def call_log_csv(request: Request) -> Response:
    """Every call matching the filters (not just one page), streamed in batches of 1000."""
    errors = Errors()
    filters = _call_filters(request, errors)
    if errors:
        return await call_log(request)
    pages = service.pages(request, listings.call_log, before=None, **filters)
    return csvfile.download("calls", listings.CALL_COLUMNS, pages, listings.flat_call)


async def call_detail(request: Request) -> Response:
    """A reservation's whole story (storage/story.py): the ping, its call and every buyer it
    was offered to (a failover dials the next one), its history, the webhook deliveries it
    caused and the admin actions that touched it. Every uuid in the logs links here."""
    uuid = str(request.path_params["uuid"]).strip().lower()
    now = service.app_state(request).reservations.clock()
    found = await service.read(request, story, uuid, now=now)
    if found is None:
        raise NotFound(f"no reservation {uuid[:40]!r}")
    return render(request, "call.html", **found)


async def call_recording(request: Request) -> Response:
    """The call page's player's source: the file (Range too, so the player can seek), for a
    signed-in operator (``http/recordings.py``)."""
    uuid = str(request.path_params["uuid"]).strip().lower()
    return await recordings.serve(service.app_state(request), uuid)


async def agent(request: Request) -> Response:
    state = service.app_state(request)

    def probe(session: Session) -> dict[str, Any]:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        return {"version": read_version(session.connection())}

    try:
        database: dict[str, Any] = {"ok": True, **await service.read(request, probe)}
    except Exception as exc:  # any driver error: "not healthy", said plainly
        database = {"ok": False, "error": str(exc)[:200]}
    sip = state.sip().describe() if state.sip is not None else None
    live = await service.read(request, listings.live_calls)
    agents = await service.read(request, listings.agents) if database["ok"] else []
    return render(request, "agent.html", sip=sip, database=database, live=len(live), agents=agents,
                  dialect=state.engine.dialect.name, version=__version__,
                  expired=state.metrics.expired)  # fmt: skip


async def audit_trail(request: Request) -> Response:
    q = request.query_params
    errors = Errors()
    since = _time(request, "since", errors)
    before = q.get("before", "")

    def work(session: Session) -> list[dict[str, Any]]:
        found = audit.entries(session, since=since, actor=q.get("actor") or None,
                              resource=q.get("resource") or None,
                              before=as_int(before), limit=PAGE + 1)  # fmt: skip
        return [
            {**view, "change": notices.audit_change(view["old"], view["new"])}
            for view in map(audit.view, found)
        ]

    entries = await service.read(request, work)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    next_query = _query(request, before=entries[-1]["id"]) if more else None
    return render(request, "audit.html", status=422 if errors else 200, entries=entries,
                  filters=dict(q), errors=errors.view(), next_query=next_query)  # fmt: skip


async def hang_up_call(request: Request) -> Response:
    """Ask the call's agent to hang it up (``admin/calls.py``), then back to the live calls."""
    uuid = str(request.path_params["uuid"]).strip().lower()
    asked = await service.write(request, admin_calls.request_hangup, uuid=uuid)
    return notices.redirect(
        request, f"{base_path(request)}/live",
        f"Asked agent {asked['agent'] or '?'} to hang up call {uuid}: it ends at its next heartbeat.",
    )  # fmt: skip
