"""The console's Jinja2 templates (packaged with rtbridge) and the filters they use."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from rtbridge.http.console import csrf
from rtbridge.timestamps import iso_utc


def _when(value: datetime | None) -> str:
    return iso_utc(value) if value is not None else ""


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
    env.filters.update(when=_when, seconds=_seconds, money=_money)
    return env


def base_path(request: Request) -> str:
    """Where the console is mounted (``/console``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    cookie = getattr(request.state, "console_cookie", None)
    page = (
        environment()
        .get_template(template)
        .render(
            base=base_path(request),
            operator=getattr(request.state, "operator", None),
            csrf_field=csrf.FIELD,
            csrf_token=csrf.for_session(cookie) if cookie else "",
            path=request.url.path,
            **context,
        )
    )
    return HTMLResponse(page, status_code=status)
