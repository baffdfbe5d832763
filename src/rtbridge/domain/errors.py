"""Typed errors raised by the rules; the HTTP layer turns them into responses at one boundary."""

from __future__ import annotations


class RtbError(Exception):
    """A request the rules refuse. ``status`` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RtbError):
    """A malformed value; the message names the field."""

    status = 422


class MissingCallerNumber(RtbError):
    """The key requires ``caller_number``; publishers match this exact text (SPEC §3.1)."""

    status = 422

    def __init__(self) -> None:
        super().__init__("FAILED must include caller_number (string)")


class UnsupportedMediaType(RtbError):
    """A body in a content type the endpoint does not read (the admin API: JSON or forms)."""

    status = 415


class UnknownKey(RtbError):
    status = 401


class PausedKey(RtbError):
    status = 403


class TooManyFailures(RtbError):
    """Too many failed authentications from one source address: everything of that kind
    from it is refused, right secrets too, for ``retry_after`` seconds (``http/lockout.py``)."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentications from this address; retry after {retry_after} seconds"
        )
        self.retry_after = retry_after


class NotFound(RtbError):
    status = 404


class Conflict(RtbError):
    """The reservation is in a state that does not allow the requested change."""

    status = 409


class Unauthorized(RtbError):
    """No admin token, an unknown one, or a revoked one: the answer carries no data."""

    status = 401


class Forbidden(RtbError):
    """A request whose credential is wrong in itself (a recording link's bad or expired
    signature): no lockout count, nothing to retry with."""

    status = 403
