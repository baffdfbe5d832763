"""The console's pages for the site's own keys to the house: admin tokens (list, create —
the token shown once —, revoke) and webhooks (each with its deliveries waiting or failed;
delete). Creating a webhook needs its signing secret shown once and the site's key: the API
and the CLI do that (docs/webhooks.md); this page is for seeing and stopping them."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select
from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import tokens
from rtbridge.domain.errors import RtbError
from rtbridge.http import handlers as service
from rtbridge.http.console import forms, notices
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.templating import base_path, render
from rtbridge.storage.models import WebhookDelivery
from rtbridge.webhooks import subscriptions


async def tokens_page(request: Request, *, errors: Errors | None = None,
                      secret: dict[str, str] | None = None, status: int = 200) -> Response:  # fmt: skip
    found = await service.read(request, tokens.listing)
    return render(request, "tokens.html", status=status, tokens=found, secret=secret,
                  errors=(errors or Errors()).view(), values={})  # fmt: skip


async def create_token(request: Request) -> Response:
    values = await forms.read(request)
    errors = Errors()
    try:
        token = await service.write(request, tokens.create, name=values.get("name", ""))
    except RtbError as exc:
        errors.add(exc, {"name"})
        return await tokens_page(request, errors=errors, status=exc.status)
    secret = {"title": f"Admin token {values.get('name', '').strip()} created",
              "label": "admin token", "value": token, "generated": ""}  # fmt: skip
    return await tokens_page(request, secret=secret)


async def revoke_token(request: Request) -> Response:
    name = str(request.path_params["name"])
    await service.write(request, tokens.revoke, name=name)
    return notices.redirect(request, f"{base_path(request)}/tokens",
                            f"Revoked admin token {name}: it no longer signs in.")  # fmt: skip


def _delivery_counts(session: Session) -> dict[tuple[int, str], int]:
    rows = session.exec(
        select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count())
        .where(col(WebhookDelivery.status).in_(("pending", "failed")))
        .group_by(col(WebhookDelivery.webhook_id), col(WebhookDelivery.status))
    )
    return {(w, s): n for w, s, n in rows}


async def webhooks_page(request: Request) -> Response:
    def work(session: Session) -> tuple[list[dict[str, Any]], dict[tuple[int, str], int]]:
        return subscriptions.list_webhooks(session), _delivery_counts(session)

    hooks, counts = await service.read(request, work)
    for hook in hooks:
        hook["pending"] = counts.get((hook["id"], "pending"), 0)
        hook["failed"] = counts.get((hook["id"], "failed"), 0)
        hook["owner"] = hook.get("publisher") or hook.get("buyer")
        hook["owner_kind"] = "publisher" if "publisher" in hook else "buyer"
    return render(request, "webhooks.html", hooks=hooks)


async def delete_webhook(request: Request) -> Response:
    wid = str(request.path_params["webhook"])
    await service.write(request, subscriptions.delete_webhook, webhook_id=wid)
    return notices.redirect(request, f"{base_path(request)}/webhooks",
                            f"Deleted webhook {wid} with its deliveries.")  # fmt: skip
