"""The audit trail: who changed what, when, old → new, with secrets redacted on the way in.

Redaction happens here, before the row is written, so neither the database file nor any
listing ever holds a password, a postback key, a token or an HA1 (an HA1 is as good as the
password for digest authentication in its realm)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from rtbridge.storage.models import AuditEntry
from rtbridge.timestamps import iso_utc, utcnow

REDACTED = "***"
# Values replaced by "***" (that a secret was set or changed is worth recording).
_SECRET = frozenset({"password", "key", "token", "bid_headers"})
# Values left out altogether: derived from a secret and useless to a reader.
_DROPPED = frozenset({"ha1_md5", "ha1_sha256", "auth_ha1_md5", "token_hash"})


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)  # as the API and the CLI show times, so a reader can compare
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def redact(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy of ``values`` with secrets replaced or dropped (nested ones too)."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in _DROPPED:
            continue
        if name in _SECRET and value is not None:
            out[name] = REDACTED
        elif isinstance(value, Mapping):
            out[name] = redact(value)
        elif isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
            out[name] = [redact(v) for v in value]
        else:
            out[name] = _plain(value)
    return out


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    resource: str,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
) -> None:
    """Add one entry to the caller's transaction (it commits or rolls back with the change)."""
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor[:128],
            action=action[:32],
            resource=resource[:256],
            old=redact(old),
            new=redact(new),
        )
    )


def entries(
    session: Session,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    resource: str | None = None,
    before: int | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Newest first. ``resource`` is a type (``publisher``), or a type and id
    (``publisher/pub-1``), matching that resource and everything under it. ``before``: only
    entries with a smaller id (the next page after the entry with that id)."""
    query = select(AuditEntry)
    if before is not None:
        query = query.where(col(AuditEntry.id) < before)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if actor:
        query = query.where(col(AuditEntry.actor) == actor)
    if resource:
        query = query.where(
            (col(AuditEntry.resource) == resource)
            | col(AuditEntry.resource).startswith(resource.rstrip("/") + "/", autoescape=True)
        )
    query = query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc()).limit(limit)
    return list(session.exec(query))


def view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "resource": entry.resource,
        "old": entry.old,
        "new": entry.new,
    }
