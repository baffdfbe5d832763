"""The line a change leaves on the page it lands on, naming what changed: ``Removed allowlist
entry 10.0.0.0/8 from publisher p1``, ``Saved buyer b1: payout 75.0 → 80.0``.

A change answers with a redirect (so a reload does not send the form again), and the notice
travels in its query with a signature keyed by the session cookie, as the CSRF token is
(:mod:`csrf`): a link made elsewhere cannot put its own words in the console's green box
("Session expired: sign in again at …"), and the notice needs no storage."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse

from rtbridge.timestamps import iso_utc

MAX = 600  # characters: a notice is a line, and it rides in a URL
_LABELS = {"require_tls": "require TLS", "require_srtp": "require SRTP", "srtp": "SRTP",
           "max_attempts": "buyers tried per call", "expires_at": "expires", "uri": "URI",
           "ips": "source CIDRs", "has_password": "password set"}  # fmt: skip


def _signature(request: Request, text: str) -> str:
    cookie = str(getattr(request.state, "console_cookie", "") or "")
    message = b"rtbridge-console-notice\0" + text.encode()
    return hmac.new(cookie.encode(), message, hashlib.sha256).hexdigest()[:32]


def redirect(request: Request, path: str, text: str) -> RedirectResponse:
    """303 to ``path`` (a console page), which shows ``text`` above its content."""
    text = text if len(text) <= MAX else text[: MAX - 1] + "…"
    query = urllib.parse.urlencode({"notice": text, "sig": _signature(request, text)})
    return RedirectResponse(f"{path}?{query}", status_code=303)


def read(request: Request) -> str | None:
    """The notice the page was sent with, if this session signed it."""
    text, given = request.query_params.get("notice"), request.query_params.get("sig")
    if not text or not given or not getattr(request.state, "console_cookie", None):
        return None
    return text if hmac.compare_digest(_signature(request, text), given) else None


def shown(value: Any) -> str:
    """A value as a notice writes it: ``none`` for nothing, ``yes``/``no``, times in UTC."""
    if value is None or value == "" or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):  # a buyer's filters, braced: a change list uses "; " too
        pairs = (f"{k} = {', '.join(map(str, v))}" for k, v in sorted(value.items()))
        return "{" + "; ".join(pairs) + "}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def changes(old: Mapping[str, Any], new: Mapping[str, Any], names: Iterable[str]) -> str:
    """``payout 75.0 → 80.0; seconds 90 → 120``; ``nothing changed`` when so."""
    moved = [f"{_LABELS.get(n, n.replace('_', ' '))} {shown(old.get(n))} → {shown(new.get(n))}"
             for n in names if shown(old.get(n)) != shown(new.get(n))]  # fmt: skip
    return "; ".join(moved) if moved else "nothing changed"


def audit_change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """An audit entry as the trail shows it: an update as what moved (``payout 75.0 →
    80.0``), a creation or a deletion as the values it had (``payout 75.0; seconds 90``),
    never a whole JSON document to compare by eye."""
    if old and new:
        moved = changes(old, new, dict.fromkeys([*old, *new]))
        return "a secret changed" if moved == "nothing changed" else moved
    values = new or old or {}
    return "; ".join(f"{_LABELS.get(k, k.replace('_', ' '))} {shown(v)}"
                     for k, v in values.items() if shown(v) != "none")  # fmt: skip


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"
