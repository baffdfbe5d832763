"""The console's one door: every request under ``/console`` passes here before any page.

Unknown paths included, nothing but the sign-in page and the style sheet answers without a
session; every request that is not a GET or HEAD must carry the CSRF token (a form field or
the ``X-CSRF-Token`` header) and must not come from another origin. Enforcing it here, and not
in each handler, means a new page cannot forget it (``tests/console/test_guard.py`` walks the
route table to prove it)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtbridge.admin import sessions
from rtbridge.domain.errors import InvalidInput, RtbError
from rtbridge.http.admin.caller_lists import MAX_UPLOAD
from rtbridge.http.console import csrf
from rtbridge.http.console.templating import base_path, render
from rtbridge.http.params import multipart_pairs
from rtbridge.http.state import AppState

SESSION_COOKIE = "rtbridge_console"
LOGIN_COOKIE = "rtbridge_console_login"
# (path inside the mount, method) reachable without a session.
PUBLIC = frozenset({("/login", "GET"), ("/login", "POST"), ("/static/console.css", "GET")})
SAFE_METHODS = frozenset({"GET", "HEAD"})
_TOO_LARGE = "The form is too large."
# The forms that send a file (multipart/form-data), and the bytes each may send: a caller
# list's CSV as the admin API takes it. The only bodies over ``max_body`` (64 KiB), read once the
# session is known, so nobody signed out can make the console hold 10 MB.
UPLOADS = ((re.compile(r"/caller-lists/[^/]+/upload"), MAX_UPLOAD),)

# No script runs on these pages at all; forms post only here; nobody may frame them.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show passwords and keys once: keep them out of caches
}


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def secure(request: Request) -> bool:
    """Behind TLS (uvicorn's proxy headers turn X-Forwarded-Proto into the scheme)."""
    return request.url.scheme == "https"


def _same_origin(request: Request) -> bool:
    """Browsers say where a request comes from in ``Sec-Fetch-Site``, which proxies leave
    alone: only ``same-origin`` (and ``none``, typed by the user) may change anything. Older
    browsers send only ``Origin``, compared with the request's own origin (a proxy in front
    must then pass the Host header on). Neither header (curl, scripts): the CSRF token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


async def _buffer(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The whole body (so the guard can read the token and the page can read the form)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _taken(receive: Receive, limit: int) -> tuple[bytes, Receive] | None:
    """The whole body and a ``receive`` that gives it again to the page; None when it is over
    ``limit`` bytes or the client went away."""
    body, whole = await _buffer(receive, limit)
    return (body, _replay(body)) if whole else None


def upload_limit(path: str) -> int | None:
    """The bytes a file upload to ``path`` may send (:data:`UPLOADS`); None: no file there."""
    return next((limit for pattern, limit in UPLOADS if pattern.fullmatch(path)), None)


def body_limit(path: str, max_body: int) -> int:
    """The most a form to ``path`` may send: ``max_body`` (the settings' 64 KiB), or an upload's."""
    limit = upload_limit(path)
    return max_body if limit is None else max(limit, max_body)


async def _form_value(request: Request, body: bytes) -> str | None:
    header = request.headers.get(csrf.HEADER)
    if header:
        return header
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data" and upload_limit(route_path(request.scope)) is not None:
        try:
            fields = await multipart_pairs(request.scope, body)
        except InvalidInput:
            return None
        return next((v for k, v in fields if k == csrf.FIELD and isinstance(v, str)), None)
    if kind != "application/x-www-form-urlencoded":
        return None  # the console's forms are urlencoded, but for its uploads; nothing else
    values = urllib.parse.parse_qs(body.decode("latin-1"), keep_blank_values=True)
    found = values.get(csrf.FIELD)
    return found[0] if found else None


def _refuse(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", status=status, title="Refused", message=message)


class ConsoleGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        request = Request(scope)
        state: AppState = request.state.app
        method = request.method
        path = route_path(scope)
        if method not in SAFE_METHODS and not _same_origin(request):
            await _refuse(request, 403, "This form was sent from another site.")(
                scope, receive, send
            )
            return
        cookie = request.cookies.get(SESSION_COOKIE)
        if (path, method) in PUBLIC:
            body = b""
            if method not in SAFE_METHODS:
                taken = await _taken(receive, state.settings.max_body)
                if taken is None:
                    await _refuse(request, 413, _TOO_LARGE)(scope, receive, send)
                    return
                body, receive = taken
            if method == "POST" and not csrf.matches(
                request.cookies.get(LOGIN_COOKIE), await _form_value(request, body)
            ):
                response = _refuse(
                    request, 403, "The sign-in form expired: reload the page and sign in again."
                )
                await response(scope, receive, send)
                return
            await self._run(scope, receive, send)
            return
        operator = await state.run(sessions.resolve, state.engine, cookie)
        if operator is None:
            await _to_sign_in(request)(scope, receive, send)
            return
        assert cookie is not None
        if method not in SAFE_METHODS:  # the body only now: an upload's size is for operators
            taken = await _taken(receive, body_limit(path, state.settings.max_body))
            if taken is None:
                await _refuse(request, 413, _TOO_LARGE)(scope, receive, send)
                return
            body, receive = taken
            if not csrf.matches(csrf.for_session(cookie), await _form_value(request, body)):
                response = _refuse(request, 403, "Missing or wrong CSRF token: reload the page.")
                await response(scope, receive, send)
                return
        request.state.operator = operator
        request.state.admin = operator.actor  # the audit trail's actor, as in the API
        request.state.console_cookie = cookie
        await self._run(scope, receive, send)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette answers a route's exception inside the route, with the app's handlers
        # (wrap_app_handling_exceptions): the APIs' JSON. Under /console an RtbError (an unknown
        # publisher in a link, a key deleted meanwhile…) is a page instead.
        handlers, by_status = scope.get("starlette.exception_handlers", ({}, {}))
        scope["starlette.exception_handlers"] = ({**handlers, RtbError: _not_possible}, by_status)
        await self.app(scope, receive, send)


async def _not_possible(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RtbError)
    return render(request, "error.html", status=exc.status, title="Not possible",
                  message=exc.message)  # fmt: skip


def _to_sign_in(request: Request) -> Response:
    """Pages go to the sign-in form and come back after; anything else is plainly 401."""
    if request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urllib.parse.urlencode({"next": target})
        return RedirectResponse(f"{base_path(request)}/login?{query}", status_code=303)
    return HTMLResponse("Sign in first.", status_code=401)


def _with_headers(send: Send) -> Callable[[Message], Awaitable[None]]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in _HEADERS.items():
                headers.setdefault(name, value)
        await send(message)

    return wrapped


def set_cookie(response: Response, request: Request, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(name, value, path=base_path(request) or "/", httponly=True,
                        samesite="strict", secure=secure(request), **kw)  # fmt: skip


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=base_path(request) or "/", httponly=True,
                           samesite="strict", secure=secure(request))  # fmt: skip
