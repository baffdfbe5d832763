"""The admin API (SPEC §5) under ``/admin``: bearer-token authentication for every route,
then thin handlers over :mod:`rtbridge.admin`, which the CLI verbs use too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rtbridge.admin import audit, export, offers, publishers, tokens, trunks
from rtbridge.admin.changes import validating
from rtbridge.admin.check import check
from rtbridge.config import fields as f
from rtbridge.config.schema import read_field
from rtbridge.domain.errors import InvalidInput
from rtbridge.http import handlers as service
from rtbridge.http.admin import bids as admin_bids
from rtbridge.http.admin import caller_lists as admin_caller_lists
from rtbridge.http.admin import logs as admin_logs
from rtbridge.http.admin import stats as admin_stats
from rtbridge.http.admin.openapi import openapi_document
from rtbridge.http.bodies import admin_body
from rtbridge.http.responses import json_response
from rtbridge.http.state import AppState
from rtbridge.numerals import int_or_text
from rtbridge.webhooks import subscriptions

T = TypeVar("T")

UNAUTHORIZED = "missing, unknown or revoked admin token (send Authorization: Bearer <token>)"


class AdminAuth:
    """Refuses every request under ``/admin`` without a valid token — unknown paths included,
    so not even the shape of the API leaks — and records the token's name as the actor.
    Each refusal counts against the source's limit (``http/lockout.py``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state: AppState = request.state.app
        lockout = state.lockouts.admin
        lockout.check(scope)  # 429 while this source is locked out, before any lookup
        header = request.headers.get("authorization")
        name = await state.run(tokens.authenticate, state.engine, header)
        if name is None:
            lockout.failed(scope)
            response = json_response(
                {"error": UNAUTHORIZED},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="rtbridge-admin"'},
            )
            await response(scope, receive, send)
            return
        request.state.admin = name
        await self.app(scope, receive, send)


# -- plumbing ---------------------------------------------------------------------------------


_state = service.app_state
_read = service.read
_write = service.write


async def _body(request: Request) -> Any:
    """JSON, or a form read into the object it stands for (http/bodies.py); else 415."""
    return await admin_body(request, _state(request).settings.max_body)


def _path(request: Request, name: str) -> str:
    return str(request.path_params[name])


def _no_content() -> Response:
    return Response(status_code=204)


# -- publishers, allowlist, credentials -------------------------------------------------------


async def list_publishers(request: Request) -> Response:
    return json_response({"publishers": await _read(request, publishers.list_publishers)})


async def create_publisher(request: Request) -> Response:
    raw = await _body(request)
    return json_response(await _write(request, publishers.create_publisher, raw=raw), status=201)


async def get_publisher(request: Request) -> Response:
    return json_response(
        await _read(request, publishers.get_publisher, _path(request, "publisher"))
    )


async def update_publisher(request: Request) -> Response:
    raw = await _body(request)
    pid = _path(request, "publisher")
    return json_response(
        await _write(request, publishers.update_publisher, publisher_id=pid, raw=raw)
    )


async def delete_publisher(request: Request) -> Response:
    await _write(request, publishers.delete_publisher, publisher_id=_path(request, "publisher"))
    return _no_content()


async def list_all_ips(request: Request) -> Response:
    return json_response({"ips": await _read(request, publishers.list_ips)})


async def list_ips(request: Request) -> Response:
    pid = _path(request, "publisher")
    return json_response({"ips": await _read(request, publishers.list_ips, pid)})


async def add_ip(request: Request) -> Response:
    """One entry (an object or a CIDR string: 201 or an error), or a JSON array of them:
    200 with a verdict per item, each added or refused on its own."""
    raw = await _body(request)
    pid = _path(request, "publisher")
    if isinstance(raw, list):
        results = await _write(request, publishers.add_ips, publisher_id=pid, items=raw)
        added = sum(1 for r in results if "added" in r)
        return json_response({"added": added, "refused": len(results) - added, "results": results})
    return json_response(
        await _write(request, publishers.add_ip, publisher_id=pid, raw=raw), status=201
    )


async def update_ip(request: Request) -> Response:
    raw = await _body(request)
    pid, entry = _path(request, "publisher"), service.entry_id(request)
    result = await _write(request, publishers.update_ip, publisher_id=pid, entry=entry, raw=raw)
    return json_response(result)


async def remove_ip(request: Request) -> Response:
    pid, entry = _path(request, "publisher"), service.entry_id(request)
    await _write(request, publishers.remove_ip, publisher_id=pid, entry=entry)
    return _no_content()


async def list_credentials(request: Request) -> Response:
    pid = _path(request, "publisher")
    await _read(request, publishers.get_publisher, pid)  # 404 for an unknown publisher
    return json_response({"credentials": await _read(request, publishers.list_credentials, pid)})


async def set_credential(request: Request) -> Response:
    raw = await _body(request)
    if not isinstance(raw, dict) or set(raw) - {"password"}:
        raise InvalidInput('body: must be {"password": "..."}')
    pid, username = _path(request, "publisher"), _path(request, "username")
    created = await _write(request, publishers.set_password, publisher_id=pid, username=username,
                           password=raw.get("password"))  # fmt: skip
    body = {"username": username, "publisher": pid, "created": created}
    return json_response(body, status=201 if created else 200)


async def remove_credential(request: Request) -> Response:
    pid, username = _path(request, "publisher"), _path(request, "username")
    await _write(request, publishers.remove_credential, publisher_id=pid, username=username)
    return _no_content()


# -- campaigns, buyers, DIDs, keys, trunks ----------------------------------------------------


def _collection(
    name: str, lister: Callable[..., Any], creator: Callable[..., Any], *, by_campaign: bool = False
) -> list[Route]:
    async def listing(request: Request) -> Response:
        campaign = request.query_params.get("campaign") if by_campaign else None
        args = [campaign] if campaign else []
        return json_response({name: await _read(request, lister, *args)})

    async def create(request: Request) -> Response:
        raw = await _body(request)
        return json_response(await _write(request, creator, raw=raw), status=201)

    return [
        Route(f"/{name}", listing, methods=["GET"], name=f"list_{name}"),
        Route(f"/{name}", create, methods=["POST"], name=f"create_{name}"),
    ]


def _item(
    name: str,
    ident: str,
    getter: Callable[..., Any] | None,
    updater: Callable[..., Any] | None,
    deleter: Callable[..., Any],
) -> list[Route]:
    path = f"/{name}/{{{ident}}}"
    routes: list[Route] = []
    if getter is not None:
        get_fn = getter

        async def get(request: Request) -> Response:
            return json_response(await _read(request, get_fn, _path(request, ident)))

        routes.append(Route(path, get, methods=["GET"], name=f"get_{name}"))
    if updater is not None:
        update_fn = updater

        async def update(request: Request) -> Response:
            raw = await _body(request)
            kwargs = {f"{ident}_id": _path(request, ident), "raw": raw}
            return json_response(await _write(request, update_fn, **kwargs))

        routes.append(Route(path, update, methods=["PATCH"], name=f"update_{name}"))

    async def delete(request: Request) -> Response:
        await _write(request, deleter, **{f"{ident}_id": _path(request, ident)})
        return _no_content()

    routes.append(Route(path, delete, methods=["DELETE"], name=f"delete_{name}"))
    return routes


async def remove_did(request: Request) -> Response:
    await _write(request, offers.remove_did, number=_path(request, "number"))
    return _no_content()


# -- check, audit, export ---------------------------------------------------------------------


async def check_access(request: Request) -> Response:
    """GET with a query string, or POST with a JSON/form body (keeps a password out of URLs,
    which access logs and browser histories keep)."""
    state = _state(request)
    if request.method == "POST":
        body = await _body(request)
        if not isinstance(body, dict):
            raise InvalidInput("body: must be an object of ip, or username and password")
        params = {**request.query_params, **body}
    else:
        params = dict(request.query_params)
    unknown = sorted(set(params) - {"ip", "username", "password"})
    if unknown:
        raise InvalidInput(f"{unknown[0]}: unknown parameter (use ip, or username and password)")
    values = {k: (str(v) if v is not None else None) for k, v in params.items()}
    catalog = state.catalog.get()
    answer = await state.run(
        lambda: check(
            state.engine,
            catalog,
            ip=values.get("ip"),
            username=values.get("username"),
            password=values.get("password"),
        )
    )
    return json_response(answer)


def _audit_query(request: Request) -> dict[str, Any]:
    q = request.query_params
    out: dict[str, Any] = {"actor": q.get("actor"), "resource": q.get("resource")}
    with validating():
        if "since" in q:
            out["since"] = read_field("since", f.timestamp, q["since"])
        if "limit" in q:
            out["limit"] = read_field(
                "limit", lambda v: f.integer(v, minimum=1, maximum=10000), int_or_text(q["limit"])
            )
    return out


async def list_audit(request: Request) -> Response:
    query = _audit_query(request)

    def work(session: Session) -> list[dict[str, Any]]:
        return [audit.view(e) for e in audit.entries(session, **query)]

    return json_response({"entries": await _read(request, work)})


async def export_kamailio(request: Request) -> Response:
    text = await _read(request, export.kamailio_permissions)
    return Response(text, media_type="text/plain; charset=utf-8")


# -- webhooks (rtbridge/webhooks/subscriptions.py) --------------------------------------------


def _master(request: Request) -> str | None:
    return _state(request).settings.webhook_key


async def list_webhooks(request: Request) -> Response:
    return json_response({"webhooks": await _read(request, subscriptions.list_webhooks)})


async def create_webhook(request: Request) -> Response:
    raw = await _body(request)
    result = await _write(request, subscriptions.create_webhook, raw=raw, master=_master(request))
    return json_response(result, status=201)


async def get_webhook(request: Request) -> Response:
    return json_response(await _read(request, subscriptions.get_webhook, _path(request, "webhook")))


async def update_webhook(request: Request) -> Response:
    raw = await _body(request)
    wid = _path(request, "webhook")
    return json_response(
        await _write(request, subscriptions.update_webhook, webhook_id=wid, raw=raw)
    )


async def delete_webhook(request: Request) -> Response:
    await _write(request, subscriptions.delete_webhook, webhook_id=_path(request, "webhook"))
    return _no_content()


async def rotate_webhook(request: Request) -> Response:
    wid, master = _path(request, "webhook"), _master(request)
    return json_response(
        await _write(request, subscriptions.rotate_secret, webhook_id=wid, master=master)
    )


async def list_deliveries(request: Request) -> Response:
    q = request.query_params
    with validating():
        limit = read_field(
            "limit", lambda v: f.integer(v, minimum=1, maximum=1000),
            int_or_text(q["limit"]) if "limit" in q else 100,
        )  # fmt: skip
    found = await _read(request, subscriptions.list_deliveries, _path(request, "webhook"),
                        status=q.get("status"), limit=limit)  # fmt: skip
    return json_response({"deliveries": found})


async def redeliver(request: Request) -> Response:
    wid, did = _path(request, "webhook"), _path(request, "delivery")
    return json_response(
        await _write(request, subscriptions.redeliver, webhook_id=wid, delivery_id=did)
    )


async def openapi(request: Request) -> Response:
    return json_response(openapi_document())


routes: list[BaseRoute] = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/publishers", list_publishers, methods=["GET"]),
    Route("/publishers", create_publisher, methods=["POST"]),
    Route("/publishers/{publisher}", get_publisher, methods=["GET"]),
    Route("/publishers/{publisher}", update_publisher, methods=["PATCH"]),
    Route("/publishers/{publisher}", delete_publisher, methods=["DELETE"]),
    Route("/ips", list_all_ips, methods=["GET"]),
    Route("/publishers/{publisher}/ips", list_ips, methods=["GET"]),
    Route("/publishers/{publisher}/ips", add_ip, methods=["POST"]),
    Route("/publishers/{publisher}/ips/{entry}", update_ip, methods=["PATCH"]),
    Route("/publishers/{publisher}/ips/{entry}", remove_ip, methods=["DELETE"]),
    Route("/publishers/{publisher}/credentials", list_credentials, methods=["GET"]),
    Route("/publishers/{publisher}/credentials/{username}", set_credential, methods=["PUT"]),
    Route("/publishers/{publisher}/credentials/{username}", remove_credential, methods=["DELETE"]),
    *_collection("campaigns", offers.list_campaigns, offers.create_campaign),
    *_item(
        "campaigns", "campaign", offers.get_campaign, offers.update_campaign, offers.delete_campaign
    ),
    *_collection("buyers", offers.list_buyers, offers.create_buyer, by_campaign=True),
    *_item("buyers", "buyer", offers.get_buyer, offers.update_buyer, offers.delete_buyer),
    *_collection("dids", offers.list_dids, offers.add_did, by_campaign=True),
    Route("/dids/{number}", remove_did, methods=["DELETE"]),
    *_collection("keys", offers.list_keys, offers.create_key),
    *_item("keys", "key", offers.get_key, offers.update_key, offers.delete_key),
    *_collection("trunks", trunks.list_trunks, trunks.create_trunk),
    *_item("trunks", "trunk", trunks.get_trunk, trunks.update_trunk, trunks.delete_trunk),
    *admin_caller_lists.routes,
    Route("/check", check_access, methods=["GET", "POST"]),
    Route("/audit", list_audit, methods=["GET"]),
    Route("/export/kamailio-permissions", export_kamailio, methods=["GET"]),
    Route("/rtbs", admin_logs.list_rtbs, methods=["GET"]),
    Route("/rtbs/{uuid}", admin_logs.get_rtb, methods=["GET"]),
    Route("/calls", admin_logs.list_calls, methods=["GET"]),
    Route("/calls/{uuid}/hangup", admin_logs.hang_up_call, methods=["POST"]),
    Route("/calls/{uuid}/recording", admin_logs.get_call_recording, methods=["GET"]),
    Route("/bids", admin_bids.list_bids, methods=["GET"]),
    Route("/stats", admin_stats.get_stats, methods=["GET"]),
    Route("/refusals", admin_logs.list_refusals, methods=["GET"]),
    Route("/webhooks", list_webhooks, methods=["GET"]),
    Route("/webhooks", create_webhook, methods=["POST"]),
    Route("/webhooks/{webhook}", get_webhook, methods=["GET"]),
    Route("/webhooks/{webhook}", update_webhook, methods=["PATCH"]),
    Route("/webhooks/{webhook}", delete_webhook, methods=["DELETE"]),
    Route("/webhooks/{webhook}/rotate", rotate_webhook, methods=["POST"]),
    Route("/webhooks/{webhook}/deliveries", list_deliveries, methods=["GET"]),
    Route("/webhooks/{webhook}/deliveries/{delivery}/redeliver", redeliver, methods=["POST"]),
]

mount = Mount("/admin", routes=routes, middleware=[Middleware(AdminAuth)])
# The description without a token, beside the publisher API's /openapi.json: it holds no data,
# and client generators and API gateways read it before anyone has a token.
public = Route("/openapi/admin.json", openapi, methods=["GET"])
