"""Serving a call's recording file (issue 24), the one way for every door that may: the admin
API (token), the console (session), a publisher key allowed ``recordings``, and a signed link
(``domain/recording_links.py``). Each door decides who may; this module decides what is
served: the file the call record names, if it is there, as ``audio/wav`` with ``Range``.

Starlette's ``FileResponse`` does the byte ranges (``bytes=a-b``, ``a-``, ``-n``; 206 with
``Content-Range``, 416 past the end, ``If-Range``) and ``HEAD``; the ETag is the file's
SHA-256 from the call record, so a client can check what it fetched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from rtbridge.domain.errors import Forbidden, NotFound, UnknownKey
from rtbridge.domain.ping import parse_key
from rtbridge.domain.recording import RecordingOutcome
from rtbridge.http.state import AppState
from rtbridge.sip.recordings import stored_file
from rtbridge.storage.recordings import recording_of

WHY_NOT: dict[str, str] = {
    "recording": "its recording is still in progress (or waits for its agent's restart)",
    "failed": "its recording failed",
    "purged": "its recording was purged (retention)",
}


def completed(uuid: str, outcome: RecordingOutcome | None) -> RecordingOutcome:
    """``outcome`` when its file should be there; else the 404 saying why not."""
    if outcome is None:
        raise NotFound(f"call {uuid} has no recording: it was not recorded (or no such call)")
    if outcome.status != "completed" or not outcome.path:
        why = WHY_NOT.get(outcome.status, f"its recording is {outcome.status}")
        detail = f": {outcome.error}" if outcome.status == "failed" and outcome.error else ""
        raise NotFound(f"call {uuid} has no recording file: {why}{detail}")
    return outcome


def file_response(directory: Path, uuid: str, outcome: RecordingOutcome | None) -> Response:
    """The recording of call ``uuid`` as ``outcome`` (its call record) names it."""
    found = completed(uuid, outcome)
    assert found.path is not None  # completed() says so
    path = stored_file(directory, found.path)
    try:
        if path is None:
            raise FileNotFoundError(found.path)
        stat_result = os.stat(path)
        if not stat.S_ISREG(stat_result.st_mode):
            raise FileNotFoundError(found.path)
    except OSError:
        raise NotFound(f"call {uuid}'s recording: file missing ({found.path})") from None
    headers = {"cache-control": "private, no-store"}
    if found.sha256:
        headers["etag"] = f'"{found.sha256}"'
    return FileResponse(
        path, headers=headers, media_type="audio/wav", stat_result=stat_result,
        filename=f"{uuid}.wav", content_disposition_type="inline",
    )  # fmt: skip


async def serve(state: AppState, uuid: str, publisher: str | None = None) -> Response:
    """The recording of call ``uuid`` read from its call record now (with ``publisher``:
    only if the reservation is that publisher's)."""
    outcome = await state.run(recording_of, state.engine, uuid, publisher)
    return file_response(state.recordings, uuid, outcome)


async def publishers(request: Request) -> Response:
    """``GET /rtbs/<uuid>/recording?key=``: a publisher's own call's recording, when its key
    says ``recordings = true``; 404 otherwise, as for another publisher's reservation (a key
    learns nothing of others' calls). A paused key may still fetch, as it may look up."""
    state: AppState = request.state.app
    lockout = state.lockouts.keys
    lockout.check(request.scope)
    uuid = str(request.path_params["uuid"]).lower()
    try:
        key = state.catalog.get().key(parse_key(dict(request.query_params)))
        if key is None:
            raise UnknownKey("key: unknown postback key")
    except UnknownKey:
        lockout.failed(request.scope)
        raise
    if not key.recordings:
        raise NotFound(f"recording of {uuid}: this key may not fetch recordings "
                       "(its recordings setting is off)")  # fmt: skip
    return await serve(state, uuid, key.publisher_id)


async def signed(request: Request) -> Response:
    """``GET /recordings/<uuid>.wav?expires=&sig=``: a webhook's link, no token; 403 unless
    its signature is right and unexpired (``domain/recording_links.py``)."""
    state: AppState = request.state.app
    uuid = str(request.path_params["uuid"]).lower()
    query = request.query_params
    links = state.links
    now = state.reservations.clock()
    if links is None or not links.valid(uuid, query.get("expires", ""), query.get("sig", ""), now):
        raise Forbidden("recording link: invalid or expired signature")
    return await serve(state, uuid)


routes = [Route("/recordings/{uuid}.wav", signed, methods=["GET"])]
