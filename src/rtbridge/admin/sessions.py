"""Operator console sessions: signing in with an admin token, who a cookie is, signing out.

The cookie carries 256 random bits; the database keeps only their digest under the site key
(as for tokens), so neither a database dump nor a log line can be turned into a session. A session acts as its
token's name, and ends with the token's revocation, on sign-out, after ``IDLE`` without a
request, or ``LIFETIME`` after signing in, whichever comes first. Nothing here needs a
server-side secret but the site key every process has, so any number of API processes share
the sessions through the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from rtbridge.admin import audit, tokens
from rtbridge.admin.changes import write_session
from rtbridge.storage import sitekey
from rtbridge.storage.models import AdminToken, ConsoleSession
from rtbridge.timestamps import utcnow

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
# last_seen_at is written at most this often: a page view must not always be a write.
_TOUCH = timedelta(seconds=60)


@dataclass(frozen=True)
class Operator:
    actor: str  # the admin token's name: the audit trail's actor
    session_id: int


def _hash(engine: Engine, cookie: str) -> str:
    return sitekey.for_engine(engine).digest(sitekey.SESSION, cookie)


def sign_in(engine: Engine, token: str, *, now: datetime | None = None) -> tuple[str, str] | None:
    """``(cookie value, actor)`` for a valid admin token, else None. Sessions past their end
    are deleted on the way (sign-ins are rare; the table stays small)."""
    now = now or utcnow()
    token = token.strip()
    with write_session(engine) as session:
        row = tokens.find(session, token)
        if row is None or row.id is None:
            return None
        session.exec(delete(ConsoleSession).where(col(ConsoleSession.expires_at) <= now))
        cookie = secrets.token_urlsafe(32)
        session.add(
            ConsoleSession(
                session_hash=_hash(engine, cookie), token_id=row.id, actor=row.name, created_at=now,
                last_seen_at=now, expires_at=now + LIFETIME,
            )
        )  # fmt: skip
        # Not a configuration change (no version bump), but who was at the console matters.
        audit.record(session, actor=row.name, action="sign-in", resource=f"console/{row.name}")
        session.commit()
        return cookie, row.name


def resolve(engine: Engine, cookie: str | None, *, now: datetime | None = None) -> Operator | None:
    """Who this cookie is, or None (unknown, signed out, idle, past its end, token revoked)."""
    if not cookie or len(cookie) > 128:
        return None
    now = now or utcnow()
    with Session(engine) as session:
        found = session.exec(
            select(ConsoleSession, AdminToken)
            .join(AdminToken, col(AdminToken.id) == col(ConsoleSession.token_id))
            .where(ConsoleSession.session_hash == _hash(engine, cookie))
        ).first()
        if found is None:
            return None
        row, token = found
        if token.revoked_at is not None or now >= row.expires_at or now >= row.last_seen_at + IDLE:
            return None
        assert row.id is not None
        operator = Operator(actor=row.actor, session_id=row.id)
    if now - row.last_seen_at >= _TOUCH:
        with write_session(engine) as session:
            fresh = session.get(ConsoleSession, operator.session_id)
            if fresh is not None:
                fresh.last_seen_at = now
                session.add(fresh)
                session.commit()
    return operator


def sign_out(engine: Engine, cookie: str | None) -> None:
    if not cookie:
        return
    with write_session(engine) as session:
        row = session.exec(
            select(ConsoleSession).where(ConsoleSession.session_hash == _hash(engine, cookie))
        ).first()
        if row is None:
            return
        audit.record(session, actor=row.actor, action="sign-out", resource=f"console/{row.actor}")
        session.delete(row)
        session.commit()
