"""Caller lists in the browser (SPEC §3.10): the lists (create, delete) and one list's
entries — a page at a time, filtered by how their values start; one added, changed or
removed; a CSV file uploaded — through the functions the admin API calls
(:mod:`rtbridge.admin.caller_lists`).

An upload is all or nothing, as in the API: the page answers with a verdict per line, and
when any line is invalid, with those lines and "nothing changed". It is the console's one
form with a file (``multipart/form-data``), and the guard lets it send what the API takes,
10 MB (:data:`rtbridge.http.console.guard.UPLOADS`); every other form stays under
the settings' ``max_body`` (64 KiB)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from sqlmodel import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import caller_lists as lists
from rtbridge.admin.caller_lists import scope_text, tally
from rtbridge.config import fields as f
from rtbridge.domain.caller_lists import KINDS
from rtbridge.domain.errors import InvalidInput, RtbError
from rtbridge.http import handlers as service
from rtbridge.http.admin.caller_lists import MAX_UPLOAD
from rtbridge.http.console import forms, notices
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.notices import plural
from rtbridge.http.console.templating import base_path, render
from rtbridge.timestamps import iso_utc

PAGE = 100  # entries a page shows
SHOWN = 1000  # verdicts an upload's answer lists (the rest are counted)
LIST_FIELDS = ("id", "kind", "campaign", "buyer", "note", "auto_block_converted")
ENTRY_FIELDS = ("value", "expires", "note")


def _id(request: Request) -> str:
    return str(request.path_params["list"])


def _list_path(request: Request, list_id: str) -> str:
    return f"{base_path(request)}/caller-lists/{urllib.parse.quote(list_id, safe='')}"


# -- the lists --------------------------------------------------------------------------------


async def lists_page(request: Request, *, typed: dict[str, str] | None = None,
                     errors: Errors | None = None, status: int = 200) -> Response:  # fmt: skip
    rows = await service.read(request, lists.overview)
    return render(request, "caller_lists.html", status=status, lists=rows, kinds=KINDS,
                  values=typed or {"kind": "block"}, errors=(errors or Errors()).view())  # fmt: skip


async def create_list(request: Request) -> Response:
    values = await forms.read(request)
    raw: dict[str, Any] = {name: values[name] for name in LIST_FIELDS if values.get(name)}
    raw.setdefault("id", "")
    if "auto_block_converted" in raw:
        raw["auto_block_converted"] = _whole(raw["auto_block_converted"])
    try:
        made = await service.write(request, lists.create_list, raw=raw)
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, set(LIST_FIELDS))
        return await lists_page(request, typed=values, errors=errors, status=exc.status)
    return notices.redirect(request, _list_path(request, made["id"]),
                            f"Created {made['kind']} list {made['id']} ({scope_text(made)}).")  # fmt: skip


def _whole(text: str) -> int | str:
    """``"3600"`` → 3600; anything else stays text for the rule to refuse."""
    return int(text) if text.isdigit() else text


async def delete_list(request: Request) -> Response:
    list_id = _id(request)
    await service.write(request, lists.delete_list, list_id=list_id)
    return notices.redirect(request, f"{base_path(request)}/caller-lists",
                            f"Deleted caller list {list_id} with its entries.")  # fmt: skip


# -- one list's entries -----------------------------------------------------------------------


async def list_page(
    request: Request, *, typed: dict[str, str] | None = None, errors: Errors | None = None,
    upload: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    """The list, a page of its entries (``?value=`` their start, ``?after=`` the page's
    place), the forms; ``upload``: an upload's verdicts to show."""
    list_id = _id(request)
    start = request.query_params.get("value", "").strip() or None
    after = request.query_params.get("after") or None

    def work(session: Session) -> tuple[dict[str, Any], dict[str, Any], int]:
        return (lists.get_list(session, list_id),
                lists.list_entries(session, list_id, value=start, after=after, limit=PAGE),
                lists.entry_counts(session).get(list_id, 0))  # fmt: skip

    view, page, count = await service.read(request, work)
    view["scope"] = scope_text(view)
    following = page["next_after"]
    next_query = (urllib.parse.urlencode({**({"value": start} if start else {}),
                                          "after": following}) if following else "")  # fmt: skip
    return render(request, "caller_list.html", status=status, rule=view, count=count,
                  entries=page["entries"], start=start or "", after=after,
                  next_query=next_query, values=typed or {}, errors=(errors or Errors()).view(),
                  upload=upload, max_upload=f"{MAX_UPLOAD // (1024 * 1024)} MB",
                  max_lines=f"{lists.MAX_LINES:,}")  # fmt: skip


async def add_entry(request: Request) -> Response:
    """One entry, added or (the same value again) given this expiry and note."""
    list_id = _id(request)
    values = await forms.read(request)
    errors = Errors()
    item: dict[str, Any] = {"value": values.get("value", "")}
    if values.get("note"):
        item["note"] = values["note"]
    try:
        expires = forms.utc_time(values.get("expires"))
    except f.FieldError as exc:
        errors.add(InvalidInput(f"expires: {exc}"), set(ENTRY_FIELDS))
    else:
        if expires is not None:
            item["expires"] = iso_utc(expires)
    if not errors:
        try:
            verdicts = await service.write(request, lists.add_entries, list_id=list_id,
                                           parsed=lists.parse_json([item]))  # fmt: skip
        except lists.Refused as exc:  # one entry: its problem is the answer
            problem = exc.verdicts[0]["verdict"].removeprefix("invalid: ")
            errors.add(InvalidInput(problem), set(ENTRY_FIELDS))
    if errors:
        return await list_page(request, typed=values, errors=errors, status=422)
    verdict = verdicts[0]
    return notices.redirect(request, _list_path(request, list_id),
                            f"{verdict['value']}: {verdict['verdict']} in {list_id}.")  # fmt: skip


async def remove_entry(request: Request) -> Response:
    list_id, value = _id(request), str(request.path_params["value"])
    await service.write(request, lists.remove_entry, list_id=list_id, value=value)
    return notices.redirect(request, _list_path(request, list_id),
                            f"Removed {value} from caller list {list_id}.")  # fmt: skip


async def upload(request: Request) -> Response:
    """A CSV file of ``value,expires,note`` lines: every entry, or none and why."""
    list_id = _id(request)
    form = await request.form(max_files=1, max_fields=4)
    try:
        sent = form.get("file")
        if not isinstance(sent, UploadFile) or not sent.filename:
            errors = Errors(fields={"file": ["choose a CSV file"]})
            return await list_page(request, errors=errors, status=422)
        data = await sent.read()
    finally:
        await form.close()
    try:
        parsed = lists.parse_csv(data)
        verdicts = await service.write(request, lists.add_entries, list_id=list_id,
                                       parsed=parsed)  # fmt: skip
    except lists.Refused as exc:
        bad = [v for v in exc.verdicts if v["verdict"].startswith("invalid")]
        shown = {"file": sent.filename, "refused": True, "lines": len(exc.verdicts),
                 "summary": f"{plural(len(bad), 'invalid line')} of {len(exc.verdicts)}: "
                            "nothing changed.", "verdicts": bad[:SHOWN], "more": len(bad) - SHOWN}  # fmt: skip
        return await list_page(request, upload=shown, status=exc.status)
    except InvalidInput as exc:  # not UTF-8, not CSV, too many lines
        errors = Errors(fields={"file": [exc.message.removeprefix("body: ")]})
        return await list_page(request, errors=errors, status=exc.status)
    shown = {"file": sent.filename, "refused": False, "lines": len(verdicts),
             "summary": f"{plural(len(verdicts), 'line')}: {tally(verdicts)}.",
             "verdicts": verdicts[:SHOWN], "more": len(verdicts) - SHOWN}  # fmt: skip
    return await list_page(request, upload=shown)
