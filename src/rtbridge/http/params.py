"""Request parameters from the query string, a form body or a JSON body, merged with the
body winning on conflict (SPEC §3.1), with the body size capped while it is read."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope

from rtbridge.domain.errors import InvalidInput
from rtbridge.numerals import as_int

# The deepest a body may nest: every admin resource fits in 4 levels (a campaign's buyers'
# filters' values), a ping in 2.
MAX_DEPTH = 32
# A JSON string (skipped whole), or one bracket.
_STRUCTURE = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes (chunked bodies included)."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """:func:`read_body` on the ASGI level, for endpoints without a ``Request``."""
    declared = as_int(_header(scope, b"content-length"))
    if declared is not None and declared > limit:
        raise InvalidInput(f"body: larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidInput(f"body: larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    """A request header's value (the last one sent), or "": a scan of the raw list costs
    less than building Starlette's ``Headers`` for the one or two a ping needs."""
    found = b""
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found.decode("latin-1")


def _nested_deeper(body: bytes, limit: int) -> bool:
    """Whether a JSON text opens more than ``limit`` arrays or objects inside each other.
    Brackets inside strings do not count; possessive quantifiers keep the scan linear even
    for an unterminated string. A body with at most ``limit`` brackets in all (every ping)
    cannot be deeper, so it costs two ``bytes.count`` calls and no scan."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for token in _STRUCTURE.findall(body):
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def json_body(body: bytes) -> Any:
    """A JSON body, refused with a message naming the problem: not JSON, or nested deeper
    than :data:`MAX_DEPTH` (refused before ``json.loads`` would recurse into it: at ~1000
    levels that was a RecursionError and a 500). A UTF-16 or UTF-32 body, which
    ``json.loads`` reads too, is scanned as UTF-8: the depth must not depend on the
    interpreter's recursion limit (Python 3.13 parses 5,000 levels that 3.11 refused)."""
    try:
        encoding = json.detect_encoding(body)
        if encoding != "utf-8":
            body = body.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})") from None
    if _nested_deeper(body, MAX_DEPTH):
        raise InvalidInput(f"body: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body: not valid JSON ({exc})") from None


def _json_object(body: bytes) -> dict[str, Any]:
    data = json_body(body)
    if not isinstance(data, dict):
        raise InvalidInput("body: JSON must be an object of parameters, not " + type(data).__name__)
    return data


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """An urlencoded body's fields in order, repeated keys kept (the admin API makes lists
    of them; the publisher API keeps the last)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body: form data is not UTF-8") from None
    return query_pairs(text)


def query_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``, the same pairs, at a third of its cost
    on a ping's body: a name or value with neither ``%`` nor ``+`` (most of them) is taken
    as it is, the rest are unquoted as ``parse_qsl`` does."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


async def multipart_pairs(scope: Scope, body: bytes) -> list[tuple[str, str | UploadFile]]:
    """A multipart body's fields in order; ``body`` was read already (with its size cap), so
    it is replayed to Starlette's parser."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, replay).form()
    except Exception as exc:  # python-multipart raises several types for broken input
        raise InvalidInput(f"body: unreadable multipart form ({exc})") from None
    try:
        return list(form.multi_items())
    finally:
        await form.close()


async def request_params(request: Request, limit: int) -> dict[str, Any]:
    return await scope_params(request.scope, request.receive, limit)


async def scope_params(scope: Scope, receive: Receive, limit: int) -> dict[str, Any]:
    """:func:`request_params` on the ASGI level: the query string's parameters, then the
    body's over them. The last value of a repeated name wins, as in Starlette's
    ``QueryParams``."""
    query = scope["query_string"]
    params: dict[str, Any] = dict(query_pairs(query.decode("latin-1"))) if query else {}
    body = await receive_body(scope, receive, limit)
    if not body.strip():
        return params
    ctype = _header(scope, b"content-type").split(";")[0].strip().lower()
    if (
        ctype == "application/json"
        or ctype.endswith("+json")
        or (not ctype and body.lstrip()[:1] in (b"{", b"["))
    ):
        params.update(_json_object(body))
    elif ctype == "multipart/form-data":
        last = dict(await multipart_pairs(scope, body))  # the last value of a key wins
        params.update({k: v for k, v in last.items() if isinstance(v, str)})
    elif ctype in ("application/x-www-form-urlencoded", ""):
        params.update(form_pairs(body))
    else:
        raise InvalidInput(f"body: unsupported content type {ctype!r} (use JSON or form data)")
    return params
