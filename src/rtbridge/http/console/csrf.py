"""CSRF tokens for the console's forms.

Signed in: the token is an HMAC of the session cookie's value, so it needs no storage and no
server secret — only someone who can read the cookie (HttpOnly: not even the page's own
scripts) can compute it, and it changes with every session. Before signing in, the sign-in
form is protected by a double-submit cookie: a random value both in a cookie and in the form
(a cross-site page can make the browser send the cookie, but cannot read it to copy it into
the form). The cookies are also ``SameSite=Strict``, and a POST whose ``Origin`` is another
site is refused outright."""

from __future__ import annotations

import hashlib
import hmac
import secrets

FIELD = "csrf"
HEADER = "x-csrf-token"


def for_session(cookie: str) -> str:
    return hmac.new(cookie.encode(), b"rtbridge-console-csrf", hashlib.sha256).hexdigest()


def new_login_value() -> str:
    return secrets.token_urlsafe(24)


def matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
