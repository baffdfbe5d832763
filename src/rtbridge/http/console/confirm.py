""" "Are you sure?" for every Remove and Delete: the button on a list is a link to a page that
names the item and what goes with it, and holds the one form that removes it (POSTing to the
same path). The pages run no script — the Content-Security-Policy allows none
(:mod:`guard`) — so the question is a page of its own, not a ``confirm()`` dialog; reading it
changes nothing, and the POST alone still works for scripts with the CSRF token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import caller_lists, offers, publishers, tokens, trunks
from rtbridge.domain.errors import NotFound
from rtbridge.http import handlers as service
from rtbridge.http.console.notices import plural
from rtbridge.http.console.templating import base_path, render
from rtbridge.storage import listings
from rtbridge.webhooks import subscriptions


@dataclass
class Question:
    """``verb`` the ``what`` (``Remove`` / ``allowlist entry 10.0.0.0/8 from publisher p1``),
    what else it does, and the page to go back to (``back``, under the console's root)."""

    verb: str
    what: str
    back: str
    back_label: str
    consequences: list[str] = field(default_factory=list)
    hidden: dict[str, str] = field(default_factory=dict)
    yes: str = ""  # the button's words when "Yes, <verb> it" does not read


def _ask(request: Request, q: Question) -> Response:
    return render(request, "confirm.html", q=q, action=request.url.path,
                  back=f"{base_path(request)}{q.back}")  # fmt: skip


def _keys(keys: list[dict[str, Any]]) -> list[str]:
    """The service refuses the delete while keys use the item: say so before, not after."""
    if not keys:
        return []
    hints = ", ".join(k["hint"] for k in keys)
    return [f"Refused while keys use it: delete {plural(len(keys), 'key')} ({hints}) first."]


async def _ip(request: Request, pid: str) -> dict[str, Any]:
    entry = service.entry_id(request)
    for ip in await service.read(request, publishers.list_ips, pid):
        if ip["id"] == entry:
            return ip
    raise NotFound(f"no allowlist entry {entry} for publisher {pid!r}")


async def remove_ip(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    ip = await _ip(request, pid)
    return _ask(
        request,
        Question(
            verb="Remove",
            what=f"allowlist entry {ip['cidr']} (rule {ip['id']}) from publisher {pid}",
            back=f"/publishers/{pid}#allowlist",
            back_label=pid,
            consequences=[
                f"INVITEs from {ip['cidr']} then need SIP credentials (401), unless another "
                "entry covers them."
            ],
        ),
    )


async def remove_credential(request: Request) -> Response:
    pid, username = str(request.path_params["publisher"]), str(request.path_params["username"])
    publisher = await service.read(request, publishers.get_publisher, pid)
    if not any(c["username"] == username for c in publisher["credentials"]):
        raise NotFound(f"no SIP username {username!r} for publisher {pid!r}")
    return _ask(
        request,
        Question(
            verb="Remove",
            what=f"SIP credential {username} from publisher {pid}",
            back=f"/publishers/{pid}#credentials",
            back_label=pid,
            consequences=[f"INVITEs authenticating as {username} are then refused (403)."],
        ),
    )


async def delete_publisher(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    p = await service.read(request, publishers.get_publisher, pid)
    ips = plural(len(p["ips"]), "allowlist entry", "allowlist entries")
    creds = plural(len(p["credentials"]), "SIP credential")
    return _ask(
        request,
        Question(
            verb="Delete",
            what=f"publisher {pid}",
            back=f"/publishers/{pid}",
            back_label=pid,
            consequences=[f"Its {ips} and {creds} go with it.", *_keys(p["keys"])],
        ),
    )


async def delete_key(request: Request) -> Response:
    key = await service.read(request, offers.get_key, str(request.path_params["key"]))
    from_keys = request.query_params.get("back") == "keys"  # the Keys page, not the publisher's
    return _ask(
        request,
        Question(
            verb="Delete",
            what=f"key {key['hint']} of publisher {key['publisher']} (campaign {key['campaign']})",
            back="/keys" if from_keys else f"/publishers/{key['publisher']}#keys",
            back_label="Keys" if from_keys else key["publisher"],
            consequences=["Its pings then get 401. To refuse them for a while, pause it (403)."],
            hidden={"back": "keys"} if from_keys else {},
        ),
    )


async def delete_campaign(request: Request) -> Response:
    c = await service.read(request, offers.get_campaign, str(request.path_params["campaign"]))
    keys = [k for k in await service.read(request, offers.list_keys) if k["campaign"] == c["id"]]
    buyers = f" ({', '.join(c['buyers'])})" if c["buyers"] else ""
    dids = plural(len(c["numbers"]), "DID")
    return _ask(
        request,
        Question(
            verb="Delete",
            what=f"campaign {c['id']}",
            back=f"/campaigns#campaign-{c['id']}",
            back_label="Campaigns",
            consequences=[
                f"Its {plural(len(c['buyers']), 'buyer')}{buyers} and {dids} go with it.",
                *_keys(keys),
            ],
        ),
    )


async def remove_did(request: Request) -> Response:
    number = str(request.path_params["number"])
    pool = {d["number"]: d["campaign"] for d in await service.read(request, offers.list_dids)}
    if number not in pool:
        raise NotFound(f"no DID {number!r}")
    return _ask(
        request,
        Question(
            verb="Remove",
            what=f"DID {number} from campaign {pool[number]}",
            back=f"/campaigns#campaign-{pool[number]}",
            back_label="Campaigns",
            consequences=[f"Pings on {pool[number]} no longer get this number."],
        ),
    )


async def delete_buyer(request: Request) -> Response:
    b = await service.read(request, offers.get_buyer, str(request.path_params["buyer"]))
    return _ask(
        request,
        Question(
            verb="Delete",
            what=f"buyer {b['id']} of campaign {b['campaign']}",
            back=f"/buyers/{b['id']}",
            back_label=b["id"],
            consequences=[f"Pings on {b['campaign']} no longer reserve it."],
        ),
    )


async def delete_trunk(request: Request) -> Response:
    t = await service.read(request, trunks.get_trunk, str(request.path_params["trunk"]))
    return _ask(
        request,
        Question(
            verb="Delete",
            what=f"trunk {t['id']}",
            back=f"/trunks#trunk-{t['id']}",
            back_label="Trunks",
            consequences=[
                f"Calls from {', '.join(t['ips']) or 'its networks'} are no longer trusted as "
                "PSTN arrivals. Refused while a buyer uses it, or while it is the last trunk "
                "and a buyer dials numbers."
            ],
        ),
    )


async def hang_up_call(request: Request) -> Response:
    uuid = str(request.path_params["uuid"]).strip().lower()
    live = [c for c in await service.read(request, listings.live_calls) if c["uuid"] == uuid]
    if not live:
        raise NotFound(f"no call in progress for reservation {uuid[:40]!r}")
    call = live[0]
    return _ask(
        request,
        Question(
            "Hang up", f"the call {uuid} of publisher {call['publisher']} to buyer {call['buyer']}",
            "/live", "Live calls",
            [f"Its agent ({call['agent'] or '?'}) ends both legs at its next heartbeat (2 s by "
             "default); the call is recorded as hung up by an admin, earning what its duration "
             "earns."],
            yes="Yes, hang it up",
        ),
    )  # fmt: skip


async def revoke_token(request: Request) -> Response:
    name = str(request.path_params["name"])
    if not [t for t in await service.read(request, tokens.listing)
            if t["name"] == name and t["revoked_at"] is None]:  # fmt: skip
        raise NotFound(f"no active admin token named {name!r}")
    return _ask(request, Question(
        "Revoke", f"admin token {name}", "/tokens", "Admin tokens",
        ["It stops signing in to the console and the admin API at once; a console session "
         "signed in with it ends (yours too, if it is the one you used)."],
    ))  # fmt: skip


async def delete_webhook(request: Request) -> Response:
    wid = str(request.path_params["webhook"])
    hook = await service.read(request, subscriptions.get_webhook, wid)
    owner = hook.get("publisher") or hook.get("buyer")
    return _ask(request, Question(
        "Delete", f"webhook {hook['id']} to {hook['url']}", "/webhooks", "Webhooks",
        [f"Events of {owner} stop going there, and its deliveries, waiting or past, go too."],
    ))  # fmt: skip


async def delete_caller_list(request: Request) -> Response:
    rule = await service.read(request, caller_lists.get_list, str(request.path_params["list"]))
    count = (await service.read(request, caller_lists.entry_counts)).get(rule["id"], 0)
    effect = ("its callers are then taken again" if rule["kind"] == "block"
              else "callers it did not name are then taken again")  # fmt: skip
    return _ask(request, Question(
        "Delete", f"{rule['kind']} list {rule['id']} ({caller_lists.scope_text(rule)})",
        "/caller-lists", "Caller lists",
        [f"Its {plural(count, 'entry', 'entries')} go with it: {effect}."],
    ))  # fmt: skip


async def remove_list_entry(request: Request) -> Response:
    list_id, value = str(request.path_params["list"]), str(request.path_params["value"])
    rule = await service.read(request, caller_lists.get_list, list_id)
    found = await service.read(request, lambda s: caller_lists.list_entries(
        s, list_id, value=value, limit=1)["entries"])  # fmt: skip
    if not found or found[0]["value"] != value:
        raise NotFound(f"no entry {value!r} in caller list {list_id!r}")
    effect = "no longer refused by it" if rule["kind"] == "block" else "no longer admitted by it"
    return _ask(request, Question(
        "Remove", f"{value} from {rule['kind']} list {list_id}", f"/caller-lists/{list_id}",
        list_id, [f"Callers it matches are {effect} (other lists still apply)."],
    ))  # fmt: skip
