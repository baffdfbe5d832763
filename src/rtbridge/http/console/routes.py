"""The console's route table, mounted at ``/console`` behind :class:`ConsoleGuard`. Every
``…/delete`` answers a GET with its "are you sure?" page (:mod:`confirm`) and a POST by doing it."""

from __future__ import annotations

from importlib.resources import files

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from rtbridge.http.console import (
    access,
    caller_lists,
    confirm,
    dashboard,
    house,
    offers,
    signin,
    watch,
)
from rtbridge.http.console.guard import ConsoleGuard


async def stylesheet(request: Request) -> Response:
    css = files("rtbridge.http.console").joinpath("static/console.css").read_text()
    return Response(css, media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "max-age=300"})  # fmt: skip


P = "/publishers/{publisher}"
L = "/caller-lists/{list}"

routes: list[BaseRoute] = [
    Route("/login", signin.login_form, methods=["GET"], name="console_login"),
    Route("/login", signin.login, methods=["POST"]),
    Route("/logout", signin.logout, methods=["POST"], name="console_logout"),
    Route("/static/console.css", stylesheet, methods=["GET"], name="console_css"),
    Route("/", dashboard.dashboard, methods=["GET"], name="console_home"),
    Route("/publishers", access.publishers_page, methods=["GET"], name="console_publishers"),
    Route("/publishers", access.create_publisher, methods=["POST"]),
    Route(P, access.publisher_page, methods=["GET"], name="console_publisher"),
    Route(f"{P}/settings", access.update_publisher, methods=["POST"]),
    Route(f"{P}/delete", confirm.delete_publisher, methods=["GET"]),
    Route(f"{P}/delete", access.delete_publisher, methods=["POST"]),
    Route(f"{P}/ips", access.add_ip, methods=["POST"]),
    Route(f"{P}/ips/bulk", access.add_ips_bulk, methods=["POST"]),
    Route(f"{P}/ips/{{entry}}", access.update_ip, methods=["POST"]),
    Route(f"{P}/ips/{{entry}}/delete", confirm.remove_ip, methods=["GET"]),
    Route(f"{P}/ips/{{entry}}/delete", access.remove_ip, methods=["POST"]),
    Route(f"{P}/credentials", access.add_credential, methods=["POST"]),
    Route(f"{P}/credentials/{{username}}/rotate", access.rotate_credential, methods=["POST"]),
    Route(f"{P}/credentials/{{username}}/delete", confirm.remove_credential, methods=["GET"]),
    Route(f"{P}/credentials/{{username}}/delete", access.remove_credential, methods=["POST"]),
    Route(f"{P}/keys", access.create_key, methods=["POST"]),
    Route("/keys", offers.keys_page, methods=["GET"], name="console_keys"),
    Route("/keys/{key}/pause", access.pause_key, methods=["POST"]),
    Route("/keys/{key}/delete", confirm.delete_key, methods=["GET"]),
    Route("/keys/{key}/delete", access.delete_key, methods=["POST"]),
    Route("/campaigns", offers.campaigns_page, methods=["GET"], name="console_campaigns"),
    Route("/campaigns", offers.create_campaign, methods=["POST"]),
    Route("/campaigns/{campaign}/settings", offers.update_campaign, methods=["POST"]),
    Route("/campaigns/{campaign}/delete", confirm.delete_campaign, methods=["GET"]),
    Route("/campaigns/{campaign}/delete", offers.delete_campaign, methods=["POST"]),
    Route("/campaigns/{campaign}/dids", offers.add_did, methods=["POST"]),
    Route("/dids/{number}/delete", confirm.remove_did, methods=["GET"]),
    Route("/dids/{number}/delete", offers.remove_did, methods=["POST"]),
    Route("/campaigns/{campaign}/buyers/new", offers.buyer_page, methods=["GET"]),
    Route("/campaigns/{campaign}/buyers", offers.save_buyer, methods=["POST"]),
    Route("/buyers/{buyer}", offers.buyer_page, methods=["GET"], name="console_buyer"),
    Route("/buyers/{buyer}", offers.save_buyer, methods=["POST"]),
    Route("/buyers/{buyer}/delete", confirm.delete_buyer, methods=["GET"]),
    Route("/buyers/{buyer}/delete", offers.delete_buyer, methods=["POST"]),
    Route("/trunks", offers.trunks_page, methods=["GET"], name="console_trunks"),
    Route("/trunks", offers.save_trunk, methods=["POST"]),
    Route("/trunks/{trunk}", offers.save_trunk, methods=["POST"]),
    Route("/trunks/{trunk}/delete", confirm.delete_trunk, methods=["GET"]),
    Route("/trunks/{trunk}/delete", offers.delete_trunk, methods=["POST"]),
    Route("/caller-lists", caller_lists.lists_page, methods=["GET"], name="console_caller_lists"),
    Route("/caller-lists", caller_lists.create_list, methods=["POST"]),
    Route(L, caller_lists.list_page, methods=["GET"], name="console_caller_list"),
    Route(f"{L}/delete", confirm.delete_caller_list, methods=["GET"]),
    Route(f"{L}/delete", caller_lists.delete_list, methods=["POST"]),
    Route(f"{L}/entries", caller_lists.add_entry, methods=["POST"]),
    Route(f"{L}/entries/{{value}}/delete", confirm.remove_list_entry, methods=["GET"]),
    Route(f"{L}/entries/{{value}}/delete", caller_lists.remove_entry, methods=["POST"]),
    Route(f"{L}/upload", caller_lists.upload, methods=["POST"]),
    Route("/export/kamailio-permissions", offers.kamailio_export, methods=["GET"]),
    Route("/check", access.check_page, methods=["GET", "POST"], name="console_check"),
    Route("/live", watch.live_calls, methods=["GET"], name="console_live"),
    Route("/live/{uuid}/hangup", confirm.hang_up_call, methods=["GET"]),
    Route("/live/{uuid}/hangup", watch.hang_up_call, methods=["POST"]),
    Route("/rtb", watch.rtb_log, methods=["GET"], name="console_rtb"),
    Route("/rtb.csv", watch.rtb_log_csv, methods=["GET"], name="console_rtb_csv"),
    Route("/calls", watch.call_log, methods=["GET"], name="console_calls"),
    Route("/calls.csv", watch.call_log_csv, methods=["GET"], name="console_calls_csv"),
    Route("/calls/{uuid}", watch.call_detail, methods=["GET"], name="console_call"),
    Route("/calls/{uuid}/recording", watch.call_recording, methods=["GET"]),
    Route("/rtbs/{uuid}", watch.call_detail, methods=["GET"], name="console_reservation"),
    Route("/agent", watch.agent, methods=["GET"], name="console_agent"),
    Route("/tokens", house.tokens_page, methods=["GET"], name="console_tokens"),
    Route("/tokens", house.create_token, methods=["POST"]),
    Route("/tokens/{name}/delete", confirm.revoke_token, methods=["GET"]),
    Route("/tokens/{name}/delete", house.revoke_token, methods=["POST"]),
    Route("/webhooks", house.webhooks_page, methods=["GET"], name="console_webhooks"),
    Route("/webhooks/{webhook}/delete", confirm.delete_webhook, methods=["GET"]),
    Route("/webhooks/{webhook}/delete", house.delete_webhook, methods=["POST"]),
    Route("/audit", watch.audit_trail, methods=["GET"], name="console_audit"),
]

mount = Mount("/console", routes=routes, middleware=[Middleware(ConsoleGuard)])
