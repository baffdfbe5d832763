"""The console's Jinja2 templates (packaged with rtbridge) and the filters they use."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from rtbridge.http.console import csrf, forms, notices
from rtbridge.timestamps import iso_utc


def _when(value: datetime | None) -> str:
    return iso_utc(value) if value is not None else ""


def _utc_input(value: datetime | None) -> str:
    """A time as a UTC field shows it and reads it back (:func:`forms.utc_time`):
    ``2026-12-31 23:59``, with the seconds only when there are some, so saving a form
    unchanged leaves the time as it was."""
    if value is None:
        return ""
    value = value.astimezone(UTC) if value.tzinfo else value  # SQLite's are naive UTC
    text = value.strftime("%Y-%m-%d %H:%M")
    if value.microsecond:
        return text + value.strftime(":%S.%f").rstrip("0")
    return text + value.strftime(":%S") if value.second else text


def _seconds(value: float | None) -> str:
    """``75.2`` → ``1:15``; ``3725`` → ``1:02:05``."""
    if value is None:
        return ""
    whole = max(0, int(value))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _rate(value: float | None) -> str:
    """A share as a percentage; empty when there was nothing to share (no calls)."""
    return "" if value is None else f"{value:.1%}"


@cache
def environment() -> Environment:
    # Autoescape everything: publisher names, notes and tags come from other people.
    env = Environment(
        loader=PackageLoader("rtbridge.http.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, seconds=_seconds, money=_money, rate=_rate, utc_input=_utc_input)
    return env


def base_path(request: Request) -> str:
    """Where the console is mounted (``/console``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` as the page, with what every page has: the operator, the CSRF token, and
    the notice the request came with (:mod:`notices`)."""
    cookie = getattr(request.state, "console_cookie", None)
    context.setdefault("notice", notices.read(request))
    page = (
        environment()
        .get_template(template)
        .render(
            base=base_path(request),
            operator=getattr(request.state, "operator", None),
            csrf_field=csrf.FIELD,
            csrf_token=csrf.for_session(cookie) if cookie else "",
            path=request.url.path,
            utc_format=forms.UTC_FORMAT,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status)
