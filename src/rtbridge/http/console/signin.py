"""Signing in with an admin token, and out again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rtbridge.admin import sessions
from rtbridge.domain.errors import TooManyFailures
from rtbridge.http.console import csrf, forms
from rtbridge.http.console.guard import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    set_cookie,
)
from rtbridge.http.console.templating import base_path, render
from rtbridge.http.state import AppState


def _next(request: Request, value: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    base = base_path(request)
    if value and value.startswith(base + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return base + "/"


def _form(request: Request, status: int = 200, error: str | None = None) -> Response:
    value = csrf.new_login_value()
    response = render(request, "login.html", status=status, login_csrf=value, error=error,
                      next=_next(request, request.query_params.get("next")))  # fmt: skip
    set_cookie(response, request, LOGIN_COOKIE, value, max_age=3600)
    return response


async def login_form(request: Request) -> Response:
    return _form(request)


async def login(request: Request) -> Response:
    """Sign-ins take admin tokens, so their failures count with the admin API's
    (``http/lockout.py``): while the source is locked out, every sign-in is refused, unread."""
    state: AppState = request.state.app
    lockout = state.lockouts.admin
    try:
        lockout.check(request.scope)
    except TooManyFailures as exc:
        response = _form(request, exc.status, "Too many failed sign-ins from this address: "
                         f"try again in {exc.retry_after} seconds.")  # fmt: skip
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    values = await forms.read(request)
    token = values.get("token", "")
    found = await state.run(sessions.sign_in, state.engine, token) if token else None
    if found is None:
        lockout.failed(request.scope)
        # One message for every failure: which tokens exist is not for a guesser to learn.
        return _form(request, 401, "That token is unknown or revoked.")
    cookie, _actor = found
    response = RedirectResponse(_next(request, values.get("next")), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, cookie,
               max_age=int(sessions.LIFETIME.total_seconds()))  # fmt: skip
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


async def logout(request: Request) -> Response:
    state: AppState = request.state.app
    await state.run(sessions.sign_out, state.engine, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{base_path(request)}/login", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response
