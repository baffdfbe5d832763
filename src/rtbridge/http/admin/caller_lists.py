"""Caller lists in the admin API (SPEC §3.10): ``/admin/caller-lists`` and a list's entries,
paged, added in bulk as JSON or as a CSV upload (``Content-Type: text/csv``), each answered
with a verdict per entry (:mod:`rtbridge.admin.caller_lists`). A room of its own: uploads
are larger than any other admin body (:data:`MAX_UPLOAD`) and answer with their verdicts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtbridge.admin import caller_lists as lists
from rtbridge.domain.errors import InvalidInput, RtbError
from rtbridge.http import handlers as service
from rtbridge.http.admin.logs import Query, page_limit
from rtbridge.http.bodies import admin_body, media_type
from rtbridge.http.params import json_body, read_body
from rtbridge.http.responses import json_response

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of one bulk add, JSON or CSV


class TooLarge(RtbError):
    status = 413


def _id(request: Request) -> str:
    return str(request.path_params["list"])


async def list_lists(request: Request) -> Response:
    return json_response({"caller_lists": await service.read(request, lists.list_lists)})


async def create_list(request: Request) -> Response:
    raw = await admin_body(request, MAX_UPLOAD)
    return json_response(await service.write(request, lists.create_list, raw=raw), status=201)


async def get_list(request: Request) -> Response:
    return json_response(await service.read(request, lists.get_list, _id(request)))


async def update_list(request: Request) -> Response:
    raw = await admin_body(request, service.app_state(request).settings.max_body)
    return json_response(
        await service.write(request, lists.update_list, list_id=_id(request), raw=raw)
    )


async def delete_list(request: Request) -> Response:
    await service.write(request, lists.delete_list, list_id=_id(request))
    return Response(status_code=204)


async def list_entries(request: Request) -> Response:
    q = Query(request, ("value", "after", "limit"))
    value, after, limit = q.text("value"), q.text("after"), page_limit(q)
    q.done()
    page = await service.read(request, lists.list_entries, _id(request), value=value,
                              after=after, limit=limit)  # fmt: skip
    return json_response(page)


async def add_entries(request: Request) -> Response:
    """A JSON array of entries, or CSV lines ``value,expires,note``: all or nothing."""
    try:
        data = await read_body(request, MAX_UPLOAD)
    except InvalidInput as exc:
        raise TooLarge(f"{exc.message}: split the upload") from None
    parsed: list[lists.Parsed]
    if media_type(request) == "text/csv":
        parsed = lists.parse_csv(data)
    else:
        parsed = lists.parse_json(json_body(data) if data.strip() else {})
    try:
        verdicts = await service.write(request, lists.add_entries, list_id=_id(request),
                                       parsed=parsed)  # fmt: skip
    except lists.Refused as exc:
        return json_response({"error": exc.message, "verdicts": exc.verdicts}, status=422)
    return json_response({"verdicts": verdicts})


async def remove_entry(request: Request) -> Response:
    value = str(request.path_params["value"])
    await service.write(request, lists.remove_entry, list_id=_id(request), value=value)
    return Response(status_code=204)


routes = [
    Route("/caller-lists", list_lists, methods=["GET"]),
    Route("/caller-lists", create_list, methods=["POST"]),
    Route("/caller-lists/{list}", get_list, methods=["GET"]),
    Route("/caller-lists/{list}", update_list, methods=["PATCH"]),
    Route("/caller-lists/{list}", delete_list, methods=["DELETE"]),
    Route("/caller-lists/{list}/entries", list_entries, methods=["GET"]),
    Route("/caller-lists/{list}/entries", add_entries, methods=["POST"]),
    Route("/caller-lists/{list}/entries/{value}", remove_entry, methods=["DELETE"]),
]
