"""The buyer side and the rest of SPEC §5 in the browser: campaigns and their DID pools,
buyers, carrier trunks, all keys, and the Kamailio export — thin handlers over
:mod:`rtbridge.admin.offers` and :mod:`rtbridge.admin.trunks`, as the JSON API is.

A form sends text; the only translation here is to the shapes the ``apply`` file has
(numbers as numbers, one CIDR per line as a list, ``tag = a, b`` lines as filters,
``Name: value`` lines as an RTB buyer's bid headers). Every rule stays in the service layer,
whose messages land next to the fields they name.

Bid headers are write-only, as a trunk's password is: the form shows their names with the
values masked and an empty box; left empty, the stored ones stay; typed, they replace them
all; "clear" removes them. What was typed is not put back into a page that refuses it."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import export, offers, trunks
from rtbridge.config.fields import BID_FORMATS
from rtbridge.domain.errors import RtbError
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.http import handlers as service
from rtbridge.http.console import forms, notices
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.notices import plural
from rtbridge.http.console.templating import base_path, render
from rtbridge.numerals import as_int

_FLOAT = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")


def _to(request: Request, page: str, notice: str) -> Response:
    return notices.redirect(request, f"{base_path(request)}/{page}", notice)


def _number(value: str) -> Any:
    """``"12"`` → 12, ``"12.5"`` → 12.5; anything else stays text for the rule to refuse."""
    whole = as_int(value, signed=True)
    if whole is not None:
        return whole
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


# -- campaigns and DIDs -----------------------------------------------------------------------


async def campaigns_page(
    request: Request, *, form: dict[str, Any] | None = None, status: int = 200
) -> Response:
    campaigns = await service.read(request, offers.list_campaigns)
    buyers = await service.read(request, offers.list_buyers)
    dids = {d["number"]: d for d in await service.read(request, offers.list_dids)}
    by_campaign = {c["id"]: [b for b in buyers if b["campaign"] == c["id"]] for c in campaigns}
    form = form or {"name": "", "typed": {}, "errors": Errors().view()}
    settings = {c["id"]: failover_form(c) for c in campaigns}
    return render(request, "campaigns.html", status=status, campaigns=campaigns,
                  buyers=by_campaign, dids=dids, settings=settings, kinds=FAILOVER_KINDS,
                  form=form)  # fmt: skip


def _form(name: str, values: dict[str, str], errors: Errors) -> dict[str, Any]:
    return {"name": name, "typed": values, "errors": errors.view()}


async def create_campaign(request: Request) -> Response:
    values = await forms.read(request)
    try:
        made = await service.write(request, offers.create_campaign,
                                   raw={"id": values.get("id", "")})  # fmt: skip
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, {"id"})
        return await campaigns_page(request, form=_form("campaign", values, errors),
                                    status=exc.status)  # fmt: skip
    return _to(request, "campaigns", f"Created campaign {made['id']}.")


# A campaign's own settings in its form: failover, then the auction of its RTB buyers.
CAMPAIGN_NUMBERS = ("max_attempts", "bid_deadline_ms", "publisher_share", "min_bid",
                    "duplicate_window")  # fmt: skip
CAMPAIGN_TEXTS = ("duplicate_after", "min_attestation", "record_announcement")
CAMPAIGN_FLAGS = ("record",)  # checkboxes: unticked is no


def failover_form(campaign: dict[str, Any]) -> dict[str, str]:
    """A campaign's settings as its form shows them: a ticked box per failover kind, the
    numbers as text."""
    ticked = {f"failover-{k}": "on" for k in campaign["failover"]}
    shown = (*CAMPAIGN_NUMBERS, *CAMPAIGN_TEXTS)
    flags = {n: "on" for n in CAMPAIGN_FLAGS if campaign[n]}
    return {**ticked, **flags,
            **{n: "" if campaign[n] is None else str(campaign[n]) for n in shown}}  # fmt: skip


async def update_campaign(request: Request) -> Response:
    """The failover settings (the ticked kinds, none ticked: off; ``max_attempts``) and the
    auction's; an empty number is its default."""
    campaign = str(request.path_params["campaign"])
    values = await forms.read(request)
    raw: dict[str, Any] = {
        "failover": [k for k in FAILOVER_KINDS if values.get(f"failover-{k}") == "on"],
        **{n: _number(values[n]) if values.get(n) else None for n in CAMPAIGN_NUMBERS},
        **{n: values.get(n) or None for n in CAMPAIGN_TEXTS},
        **{n: values.get(n) == "on" for n in CAMPAIGN_FLAGS},
    }
    old = await service.read(request, offers.get_campaign, campaign)
    try:
        new = await service.write(request, offers.update_campaign, campaign_id=campaign, raw=raw)
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, {*CAMPAIGN_NUMBERS, *CAMPAIGN_TEXTS, *CAMPAIGN_FLAGS})
        return await campaigns_page(request, form=_form(f"failover:{campaign}", values, errors),
                                    status=exc.status)  # fmt: skip
    moved = notices.changes(old, new, ("failover", *CAMPAIGN_NUMBERS, *CAMPAIGN_TEXTS,
                                       *CAMPAIGN_FLAGS))  # fmt: skip
    return _to(request, "campaigns", f"Saved campaign {campaign}: {moved}.")


async def delete_campaign(request: Request) -> Response:
    campaign = str(request.path_params["campaign"])
    old = await service.read(request, offers.get_campaign, campaign)
    try:
        await service.write(request, offers.delete_campaign, campaign_id=campaign)
    except RtbError as exc:
        errors = Errors(general=[exc.message])
        return await campaigns_page(request, form=_form("delete", {}, errors), status=exc.status)
    buyers = f" ({', '.join(old['buyers'])})" if old["buyers"] else ""
    gone = f"{plural(len(old['buyers']), 'buyer')}{buyers} and {plural(len(old['numbers']), 'DID')}"
    return _to(request, "campaigns", f"Deleted campaign {campaign} with its {gone}.")


async def add_did(request: Request) -> Response:
    campaign = str(request.path_params["campaign"])
    values = await forms.read(request)
    try:
        raw = {"number": values.get("number", ""), "campaign": campaign}
        added = await service.write(request, offers.add_did, raw=raw)
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, {"number"})
        return await campaigns_page(request, form=_form(f"did:{campaign}", values, errors),
                                    status=exc.status)  # fmt: skip
    return _to(request, "campaigns", f"Added DID {added['number']} to campaign {campaign}.")


async def remove_did(request: Request) -> Response:
    number = str(request.path_params["number"])
    pool = {d["number"]: d["campaign"] for d in await service.read(request, offers.list_dids)}
    await service.write(request, offers.remove_did, number=number)
    return _to(request, "campaigns", f"Removed DID {number} from campaign {pool.get(number)}.")


# -- buyers -----------------------------------------------------------------------------------

BUYER_FIELDS = ("id", "destination", "payout", "revenue", "seconds", "concurrency", "daily_cap",
                "priority", "weight", "hours", "filters", "trunk", "srtp", "ring_timeout",
                "connect_timeout", "bid_url", "bid_format", "bid_headers", "hide_caller",
                "duplicate_window", "duplicate_after", "record",
                "record_announcement")  # fmt: skip
# A buyer's record as its form's select spells it: "" is the campaign's (null).
RECORD_CHOICES = {"yes": True, "no": False}
_NUMERIC = {"payout", "revenue", "seconds", "concurrency", "daily_cap", "priority", "weight",
            "ring_timeout", "connect_timeout", "duplicate_window"}  # fmt: skip


def _filters(text: str, errors: Errors) -> dict[str, list[str]] | None:
    """``caller_state = CA, NY`` per line → ``{"caller_state": ["CA", "NY"]}``."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        tag, sep, values = line.partition("=")
        if not sep or not tag.strip():
            errors.fields.setdefault("filters", []).append(
                f"{line.strip()!r}: write one filter per line as tag = value, value"
            )
            continue
        out[tag.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return out or None


def _headers(text: str, errors: Errors) -> dict[str, str] | None:
    """``Authorization: Bearer …`` per line → ``{"Authorization": "Bearer …"}``; None when
    empty (the stored ones stay)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():  # the line is not shown: it may be the secret itself
            errors.fields.setdefault("bid_headers", []).append(
                "write one header per line as Name: value"
            )
            continue
        out[name.strip()] = value.strip()
    return out or None


def _bid_headers(values: dict[str, str], errors: Errors, raw: dict[str, Any]) -> None:
    """Typed headers replace the stored ones, "clear" removes them, neither keeps them."""
    typed = _headers(values.get("bid_headers", ""), errors)
    if values.get("bid_headers_clear") == "on":
        if typed is not None:
            errors.fields.setdefault("bid_headers", []).append(
                "type new headers or tick clear, not both"
            )
        raw["bid_headers"] = None
    elif typed is not None:
        raw["bid_headers"] = typed


def _buyer_raw(values: dict[str, str], errors: Errors, *, editing: bool) -> dict[str, Any]:
    """Empty optional fields are ``null`` when editing: back to the default, as in the API."""
    raw: dict[str, Any] = {}
    for name in BUYER_FIELDS:
        if editing and name == "id":
            continue
        value = values.get(name, "")
        if name == "filters":
            parsed = _filters(value, errors)
            if parsed is not None or editing:
                raw[name] = parsed
        elif name == "bid_headers":
            _bid_headers(values, errors, raw)
        elif name == "hide_caller":  # a checkbox: unticked is no
            raw[name] = value == "on"
        elif name == "record":  # yes, no, or the campaign's ("": null)
            if value or editing:
                raw[name] = RECORD_CHOICES.get(value, value or None)
        elif value:
            raw[name] = _number(value) if name in _NUMERIC else value
        elif editing:
            raw[name] = None
    return raw


def _buyer_values(buyer: dict[str, Any]) -> dict[str, str]:
    values = {k: "" if buyer.get(k) is None else str(buyer[k]) for k in BUYER_FIELDS}
    values["filters"] = "\n".join(f"{t} = {', '.join(v)}" for t, v in buyer["filters"].items())
    values["bid_headers"] = ""  # write-only: the page lists the stored names beside the box
    values["hide_caller"] = "on" if buyer["hide_caller"] else ""
    values["record"] = {True: "yes", False: "no"}.get(buyer["record"], "")
    return values


_SHOWN = tuple(n for n in BUYER_FIELDS if n != "bid_headers")  # by value in a notice


def _headers_notice(raw: dict[str, Any], old: dict[str, Any], moved: str) -> str:
    """The notice's change list, with what became of the bid headers (never their values)."""
    if "bid_headers" not in raw or (raw["bid_headers"] is None and not old["bid_headers"]):
        return moved
    what = "bid headers cleared" if raw["bid_headers"] is None else "bid headers replaced"
    return what if moved == "nothing changed" else f"{what}; {moved}"


async def buyer_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: Errors | None = None,
    status: int = 200,
) -> Response:
    """``/campaigns/{campaign}/buyers/new`` or ``/buyers/{buyer}``: one form for both."""
    buyer_id = request.path_params.get("buyer")
    managed_by, stored = None, {}
    if buyer_id is not None:
        buyer = await service.read(request, offers.get_buyer, str(buyer_id))
        campaign, managed_by = str(buyer["campaign"]), buyer["managed_by"]
        stored = buyer["bid_headers"]
        values = values if values is not None else _buyer_values(buyer)
    else:
        campaign = str(request.path_params["campaign"])
        await service.read(request, offers.get_campaign, campaign)  # 404 for an unknown one
        values = values if values is not None else {"priority": "1", "weight": "1", "srtp": "off",
                                                    "bid_format": "rtbridge"}  # fmt: skip
    trunk_ids = [t["id"] for t in await service.read(request, trunks.list_trunks)]
    return render(request, "buyer.html", status=status, buyer_id=buyer_id, campaign=campaign,
                  values=values, errors=(errors or Errors()).view(), trunks=trunk_ids,
                  managed_by=managed_by, stored_headers=stored,
                  bid_formats=BID_FORMATS)  # fmt: skip


async def save_buyer(request: Request) -> Response:
    values = await forms.read(request)
    buyer_id = request.path_params.get("buyer")
    errors = Errors()
    raw = _buyer_raw(values, errors, editing=buyer_id is not None)
    values["bid_headers"] = ""  # typed secrets are not put back into the page
    if errors:
        return await buyer_page(request, values=values, errors=errors, status=422)
    try:
        if buyer_id is None:
            raw["campaign"] = str(request.path_params["campaign"])
            made = await service.write(request, offers.create_buyer, raw=raw)
            notice = f"Added buyer {made['id']} to campaign {made['campaign']}."
        else:
            old = await service.read(request, offers.get_buyer, str(buyer_id))
            new = await service.write(request, offers.update_buyer, buyer_id=str(buyer_id),
                                      raw=raw)  # fmt: skip
            moved = _headers_notice(raw, old, notices.changes(old, new, _SHOWN))
            notice = f"Saved buyer {buyer_id} of campaign {new['campaign']}: {moved}."
    except RtbError as exc:
        errors.add(exc, set(BUYER_FIELDS), {"buyers": "id"})
        return await buyer_page(request, values=values, errors=errors, status=exc.status)
    return _to(request, "campaigns", notice)


async def delete_buyer(request: Request) -> Response:
    """Read first: the notice names the buyer's campaign."""
    buyer = await service.read(request, offers.get_buyer, str(request.path_params["buyer"]))
    await service.write(request, offers.delete_buyer, buyer_id=buyer["id"])
    return _to(
        request, "campaigns", f"Deleted buyer {buyer['id']} of campaign {buyer['campaign']}."
    )


# -- trunks -----------------------------------------------------------------------------------

TRUNK_FIELDS = ("id", "ips", "uri", "username", "password", "realm", "allow_overlap")
_TRUNK_SHOWN = ("ips", "uri", "username", "realm", "has_password", "allow_overlap")


async def trunks_page(
    request: Request, *, form: dict[str, Any] | None = None, status: int = 200
) -> Response:
    rows = await service.read(request, trunks.list_trunks)
    form = form or {"name": "", "typed": {}, "errors": Errors().view()}
    return render(request, "trunks.html", status=status, trunks=rows, form=form)


async def save_trunk(request: Request) -> Response:
    """Create, or (with ``{trunk}`` in the path) change: an empty password keeps the stored
    HA1, an empty username switches outbound authentication off."""
    values = await forms.read(request)
    trunk_id = request.path_params.get("trunk")
    raw: dict[str, Any] = {
        "ips": [line.strip() for line in values.get("ips", "").splitlines() if line.strip()],
        "uri": values.get("uri", ""),
    }
    if values.get("allow_overlap") == "on":  # unticked: as stored (an update checks new ips)
        raw["allow_overlap"] = True
    for name in ("username", "realm", "password"):
        if values.get(name):
            raw[name] = values[name]
        elif trunk_id is not None and name != "password":
            raw[name] = None
    try:
        if trunk_id is None:
            raw["id"] = values.get("id", "")
            made = await service.write(request, trunks.create_trunk, raw=raw)
            notice = f"Added trunk {made['id']}."
        else:
            old = await service.read(request, trunks.get_trunk, str(trunk_id))
            new = await service.write(request, trunks.update_trunk, trunk_id=str(trunk_id),
                                      raw=raw)  # fmt: skip
            moved = notices.changes(old, new, _TRUNK_SHOWN)
            if raw.get("password"):  # only its HA1 is kept: "changed", never the value
                moved = "password replaced" + ("" if moved == "nothing changed" else f"; {moved}")
            notice = f"Saved trunk {trunk_id}: {moved}."
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, set(TRUNK_FIELDS), {"trunks": "id"})
        kept = {k: v for k, v in values.items() if k != "password"}
        name = f"trunk:{trunk_id}" if trunk_id else "trunk"
        return await trunks_page(request, form=_form(name, kept, errors), status=exc.status)
    return _to(request, "trunks", notice)


async def delete_trunk(request: Request) -> Response:
    trunk_id = str(request.path_params["trunk"])
    try:
        await service.write(request, trunks.delete_trunk, trunk_id=trunk_id)
    except RtbError as exc:
        errors = Errors(general=[exc.message])
        return await trunks_page(request, form=_form("delete", {}, errors), status=exc.status)
    return _to(request, "trunks", f"Deleted trunk {trunk_id}.")


# -- keys and the Kamailio export -------------------------------------------------------------


async def keys_page(request: Request) -> Response:
    rows = await service.read(request, offers.list_keys)
    return render(request, "keys.html", keys=rows)


async def kamailio_export(request: Request) -> Response:
    text = await service.read(request, export.kamailio_permissions)
    headers = {"Content-Disposition": 'attachment; filename="rtbridge-permissions.address"'}
    return Response(text, media_type="text/plain; charset=utf-8", headers=headers)
