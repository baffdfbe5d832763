"""Webhook subscriptions and their deliveries: the service layer the admin API and the CLI
share (same rules, same words, same audit trail). A secret is shown once, in the answer to
create and rotate; the row keeps only the salt it is derived from (``signing``).

Creating, deleting, enabling or disabling a webhook, or changing its events, bumps the
configuration version (``changes.commit``): the catalog holds who subscribes to what, and a
ping marks its reservation for the outbox only when someone does (``Catalog.wants_creation``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, col, delete, select

from rtbridge.admin import audit
from rtbridge.admin.changes import body, commit
from rtbridge.domain.errors import Conflict, InvalidInput, NotFound
from rtbridge.numerals import as_int
from rtbridge.storage.models import Buyer, Publisher, Webhook, WebhookDelivery
from rtbridge.timestamps import utcnow
from rtbridge.webhooks import events, signing

OWNERS = ("publisher", "buyer")
STATUSES = ("pending", "delivered", "failed")
_FIELDS = {"publisher", "buyer", "url", "events", "enabled"}


def webhook_view(row: Webhook) -> dict[str, Any]:
    return {
        "id": row.id,
        row.owner_kind: row.owner_id,
        "url": row.url,
        "events": list(row.events),
        "enabled": row.enabled,
        "created_at": row.created_at,
    }


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook": row.webhook_id,
        "type": row.event_type,
        "reservation": row.reservation_uuid,
        "status": row.status,
        "attempts": row.attempts,
        "next_at": row.next_at if row.status == "pending" else None,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
        "last_code": row.last_code,
        "last_error": row.last_error,
    }


# -- validation (one place for the API and the CLI) -------------------------------------------


def read_url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("url: must be an http:// or https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"url: must be an http:// or https:// URL with a host, got {value!r}")
    if len(value) > 2048 or any(c.isspace() for c in value):
        raise InvalidInput("url: at most 2048 characters, no spaces")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise InvalidInput(f"url: bad port in {value!r}") from None
    return value


def read_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"events: a non-empty list of: {', '.join(events.NAMES)}")
    unknown = [v for v in value if v not in events.TYPES]
    if unknown:
        raise InvalidInput(
            f"events: unknown event {unknown[0]!r} (known: {', '.join(events.NAMES)})"
        )
    return [name for name in events.NAMES if name in value]  # canonical order, no repeats


def _read_enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("enabled: must be true or false")
    return value


def _owner(session: Session, raw: dict[str, Any]) -> tuple[str, str]:
    given = [kind for kind in OWNERS if kind in raw]
    if len(given) != 1:
        raise InvalidInput("publisher: give exactly one owner, publisher or buyer")
    kind = given[0]
    owner = raw[kind]
    if not isinstance(owner, str) or not owner:
        raise InvalidInput(f"{kind}: must be an id")
    if session.get(Publisher if kind == "publisher" else Buyer, owner) is None:
        raise InvalidInput(f"{kind}: no {kind} {owner!r}")
    return kind, owner


def _fields(raw: Any) -> dict[str, Any]:
    fields_ = body(raw)
    unknown = sorted(set(fields_) - _FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown field (use {', '.join(sorted(_FIELDS))})")
    return fields_


def _webhook(session: Session, webhook_id: int | str) -> Webhook:
    ident = str(webhook_id)
    number = as_int(ident) if len(ident) < 10 else None  # an INTEGER column: 32 bits
    row = session.get(Webhook, number) if number is not None else None
    if row is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    return row


def _secret(master: str | None, row: Webhook) -> str:
    assert row.id is not None
    return signing.derive_secret(master, row.id, row.salt)


def _master(master: str | None) -> None:
    try:
        signing.check_master_key(master)
    except signing.MissingKey as exc:
        raise Conflict(str(exc)) from None


# -- subscriptions ----------------------------------------------------------------------------


def list_webhooks(session: Session) -> list[dict[str, Any]]:
    return [webhook_view(w) for w in session.exec(select(Webhook).order_by(col(Webhook.id)))]


def get_webhook(session: Session, webhook_id: int | str) -> dict[str, Any]:
    return webhook_view(_webhook(session, webhook_id))


def create_webhook(session: Session, *, actor: str, raw: Any, master: str | None) -> dict[str, Any]:
    """``{publisher | buyer, url, events?, enabled?}``; answers the webhook and its secret
    (the only time it is shown, with rotate)."""
    fields_ = _fields(raw)
    _master(master)
    kind, owner = _owner(session, fields_)
    url = read_url(fields_.get("url"))
    names = read_events(fields_["events"]) if "events" in fields_ else list(events.NAMES)
    enabled = _read_enabled(fields_.get("enabled", True))
    row = Webhook(owner_kind=kind, owner_id=owner, url=url, events=names, enabled=enabled,
                  salt=signing.new_salt(), created_at=utcnow())  # fmt: skip
    session.add(row)
    session.flush()  # the id, which the secret is derived from
    view = webhook_view(row)
    audit.record(session, actor=actor, action="create", resource=f"webhook/{row.id}", new=view)
    secret = _secret(master, row)
    commit(session)
    return {**view, "secret": secret}


def update_webhook(
    session: Session, *, actor: str, webhook_id: int | str, raw: Any
) -> dict[str, Any]:
    """Change ``url``, ``events`` or ``enabled`` (the owner is fixed: make another one)."""
    row = _webhook(session, webhook_id)
    fields_ = _fields(raw)
    for kind in OWNERS:
        if kind in fields_ and (kind, fields_[kind]) != (row.owner_kind, row.owner_id):
            raise InvalidInput(f"{kind}: a webhook's owner cannot change; create another")
    old = webhook_view(row)
    if "url" in fields_:
        row.url = read_url(fields_["url"])
    if "events" in fields_:
        row.events = read_events(fields_["events"])
    if "enabled" in fields_:
        row.enabled = _read_enabled(fields_["enabled"])
    new = webhook_view(row)
    if new != old:
        session.add(row)
        audit.record(session, actor=actor, action="update", resource=f"webhook/{row.id}",
                     old=old, new=new)  # fmt: skip
        if (new["events"], new["enabled"]) != (old["events"], old["enabled"]):
            commit(session)  # the catalog's subscriptions changed
        else:
            session.commit()
    return new


def delete_webhook(session: Session, *, actor: str, webhook_id: int | str) -> None:
    """The webhook and its deliveries (sent or not)."""
    row = _webhook(session, webhook_id)
    audit.record(session, actor=actor, action="delete", resource=f"webhook/{row.id}",
                 old=webhook_view(row))  # fmt: skip
    session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == row.id))
    session.delete(row)
    commit(session)


def rotate_secret(
    session: Session, *, actor: str, webhook_id: int | str, master: str | None
) -> dict[str, Any]:
    """A new salt, so a new secret, in effect for the next attempt of every delivery."""
    _master(master)
    row = _webhook(session, webhook_id)
    row.salt = signing.new_salt()
    session.add(row)
    audit.record(session, actor=actor, action="rotate", resource=f"webhook/{row.id}",
                 new={"secret": "rotated"})  # fmt: skip
    secret = _secret(master, row)
    session.commit()
    return {"id": row.id, "secret": secret}


# -- deliveries -------------------------------------------------------------------------------


def list_deliveries(
    session: Session, webhook_id: int | str, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first."""
    row = _webhook(session, webhook_id)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: one of {', '.join(STATUSES)}")
    query = select(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == row.id)
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status)
    query = query.order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
    return [delivery_view(d) for d in session.exec(query.limit(limit))]


def redeliver(
    session: Session,
    *,
    actor: str,
    webhook_id: int | str,
    delivery_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Send a delivery again now (delivered or failed ones too), with a fresh attempt count;
    same body and ``webhook-id``, so a receiver that had it can tell."""
    hook = _webhook(session, webhook_id)
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook_id != hook.id:
        raise NotFound(f"no delivery {delivery_id!r} of webhook {hook.id}")
    old = delivery_view(row)
    row.status, row.attempts, row.next_at = "pending", 0, now or utcnow()
    session.add(row)
    audit.record(session, actor=actor, action="redeliver", resource=f"webhook/{hook.id}/{row.id}",
                 old={"status": old["status"], "attempts": old["attempts"]})  # fmt: skip
    session.commit()
    return delivery_view(row)
