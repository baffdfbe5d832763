"""Admin API bearer tokens: created and revoked from the terminal, stored as a digest under
the site key (``storage/sitekey.py``).

A token is 256 random bits, so a fast keyed digest (no salt, no slow hash) is enough to make
the stored value useless to someone who reads the database; a slow hash would only slow down
every API request."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from rtbridge.admin import audit
from rtbridge.admin.changes import commit, validating
from rtbridge.config import fields as f
from rtbridge.config.schema import ConfigError
from rtbridge.domain.errors import Conflict, NotFound
from rtbridge.storage import sitekey
from rtbridge.storage.models import AdminToken
from rtbridge.timestamps import utcnow

PREFIX = "rtba_"


def hash_token(session: Session, token: str) -> str:
    return sitekey.of(session).digest(sitekey.TOKEN, token)


def _name(value: Any) -> str:
    with validating():
        try:
            return f.identifier(value)
        except f.FieldError as exc:
            raise ConfigError([f"name: {exc}"]) from None


def create(session: Session, *, actor: str, name: str) -> str:
    """A new token for ``name``; the return value is the only time it exists in clear."""
    name = _name(name)
    active = session.exec(
        select(AdminToken).where(AdminToken.name == name, col(AdminToken.revoked_at).is_(None))
    ).first()
    if active is not None:
        raise Conflict(f"name: a token named {name!r} exists; revoke it first")
    token = PREFIX + secrets.token_urlsafe(32)
    row = AdminToken(
        name=name, token_hash=hash_token(session, token), hint=token[: len(PREFIX) + 4] + "…",
        created_at=utcnow(),
    )  # fmt: skip
    session.add(row)
    audit.record(session, actor=actor, action="create", resource=f"admin-token/{name}",
                 new={"name": name, "hint": row.hint, "token": token})  # fmt: skip
    commit(session)
    return token


def revoke(session: Session, *, actor: str, name: str) -> None:
    rows = list(
        session.exec(
            select(AdminToken).where(AdminToken.name == name, col(AdminToken.revoked_at).is_(None))
        )
    )
    if not rows:
        raise NotFound(f"no active admin token named {name!r}")
    for row in rows:
        row.revoked_at = utcnow()
        session.add(row)
    audit.record(session, actor=actor, action="revoke", resource=f"admin-token/{name}",
                 old={"name": name, "hint": rows[0].hint})  # fmt: skip
    commit(session)


def listing(session: Session) -> list[dict[str, Any]]:
    rows = session.exec(select(AdminToken).order_by(col(AdminToken.name), col(AdminToken.id)))
    return [
        {"name": r.name, "hint": r.hint, "created_at": r.created_at, "revoked_at": r.revoked_at}
        for r in rows
    ]


def authenticate(engine: Engine, authorization: str | None) -> str | None:
    """The token's name for an ``Authorization: Bearer <token>`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        return None
    with Session(engine) as session:
        row = find(session, token)
        return row.name if row is not None else None


def find(session: Session, token: str) -> AdminToken | None:
    """The active (not revoked) token row for a token in clear, else None."""
    if not token or len(token) > 256:
        return None
    return session.exec(
        select(AdminToken).where(
            AdminToken.token_hash == hash_token(session, token),
            col(AdminToken.revoked_at).is_(None),
        )
    ).first()
