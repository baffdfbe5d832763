"""Access pages: publishers, their allowlist entries, SIP credentials and keys, and the
"would this be accepted?" check — thin handlers over :mod:`rtbridge.admin`, like the JSON API.

Field values are checked first with the same :mod:`rtbridge.config.fields` rules the
service functions apply (so the message can sit under its own input); the service function
then checks them again and makes the change. A password or key made here is in the answer to
the form that made it and nowhere else: the page is not cached, and no later page shows it."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rtbridge.admin import offers, publishers
from rtbridge.admin.check import check
from rtbridge.config import fields as f
from rtbridge.config.schema import ConfigError, read_field
from rtbridge.domain.errors import InvalidInput, RtbError
from rtbridge.http import handlers as service
from rtbridge.http.console import forms, notices
from rtbridge.http.console.forms import Errors
from rtbridge.http.console.notices import plural
from rtbridge.http.console.templating import base_path, render
from rtbridge.numerals import int_or_text
from rtbridge.timestamps import iso_utc

# -- plumbing ---------------------------------------------------------------------------------


def _precheck(
    values: dict[str, str], rules: dict[str, Callable[[Any], Any]], errors: Errors
) -> None:
    for name, rule in rules.items():
        value = forms.optional(values, name)
        if value is None:
            continue
        try:
            read_field(name, rule, value)
        except ConfigError as exc:  # "name: message", as the API words it
            for message in exc.errors:
                errors.fields.setdefault(name, []).append(message.split(": ", 1)[-1])


def _password() -> str:
    """A generated password that passes the policy (24 characters of all four classes)."""
    alphabet = string.ascii_letters + string.digits + "-_.+!"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(24))
        try:
            return f.password(value)
        except f.FieldError:
            continue


def _back(request: Request, publisher_id: str, notice: str) -> Response:
    url = request.url_for("console_publisher", publisher=publisher_id)
    return notices.redirect(request, url.path, notice)


def _key_name(key: dict[str, Any]) -> str:
    return f"key {key['hint']} of publisher {key['publisher']} (campaign {key['campaign']})"


@dataclass(frozen=True)
class Counts:
    """A publisher's row on the publishers page. Not a dict: in a template ``counts.keys``
    would find the dict's ``keys`` method and print its repr."""

    ips: int
    credentials: int
    keys: int


@dataclass
class Form:
    """What a form section of a page re-renders with: the values typed, and the errors."""

    values: dict[str, str]
    errors: Errors


# -- publishers -------------------------------------------------------------------------------


async def publishers_page(
    request: Request, form: Form | None = None, status: int = 200
) -> Response:
    rows = await service.read(request, publishers.list_publishers)
    ips = await service.read(request, publishers.list_ips)
    creds = await service.read(request, publishers.list_credentials)
    keys = await service.read(request, offers.list_keys)
    counts = {
        p["id"]: Counts(
            ips=sum(1 for i in ips if i["publisher"] == p["id"]),
            credentials=sum(1 for c in creds if c["publisher"] == p["id"]),
            keys=sum(1 for k in keys if k["publisher"] == p["id"]),
        )
        for p in rows
    }
    form = form or Form({}, Errors())
    return render(request, "publishers.html", status=status, publishers=rows, counts=counts,
                  form=form, errors=form.errors.view())  # fmt: skip


async def create_publisher(request: Request) -> Response:
    values = await forms.read(request)
    errors = Errors()
    raw = {"id": values.get("id", "")}
    if values.get("name"):
        raw["name"] = values["name"]
    try:
        await service.write(request, publishers.create_publisher, raw=raw)
    except RtbError as exc:
        errors.add(exc, {"id", "name"})
        return await publishers_page(request, Form(values, errors), status=exc.status)
    return _back(request, raw["id"], f"Created publisher {raw['id']}.")


async def update_publisher(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    values = await forms.read(request)
    raw = {"name": values.get("name") or None, "require_tls": values.get("require_tls") == "on",
           "require_srtp": values.get("require_srtp") == "on"}  # fmt: skip
    old = await service.read(request, publishers.get_publisher, pid)
    try:
        new = await service.write(request, publishers.update_publisher, publisher_id=pid, raw=raw)
    except RtbError as exc:
        errors = Errors()
        errors.add(exc, {"name"})
        return await publisher_page(request, forms_={"settings": Form(values, errors)},
                                    status=exc.status)  # fmt: skip
    return _back(request, pid, f"Saved publisher {pid}: {notices.changes(old, new, raw)}.")


async def delete_publisher(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    old = await service.read(request, publishers.get_publisher, pid)
    try:
        await service.write(request, publishers.delete_publisher, publisher_id=pid)
    except RtbError as exc:
        return await publisher_page(request, problem=exc.message, status=exc.status)
    ips = plural(len(old["ips"]), "allowlist entry", "allowlist entries")
    creds = plural(len(old["credentials"]), "SIP credential")
    text = f"Deleted publisher {pid} with its {ips} and {creds}."
    return notices.redirect(request, request.url_for("console_publishers").path, text)


async def publisher_page(
    request: Request,
    *,
    forms_: dict[str, Form] | None = None,
    secret: dict[str, str] | None = None,
    bulk: list[dict[str, str]] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    pid = str(request.path_params["publisher"])
    publisher = await service.read(request, publishers.get_publisher, pid)
    keys = [k for k in await service.read(request, offers.list_keys) if k["publisher"] == pid]
    campaigns = await service.read(request, offers.list_campaigns)
    sections = {"ip": Form({}, Errors()), "bulk": Form({}, Errors()),
                "credential": Form({}, Errors()), "key": Form({}, Errors()),
                "settings": Form({}, Errors())}  # fmt: skip
    sections.update(forms_ or {})
    return render(request, "publisher.html", status=status, publisher=publisher, keys=keys,
                  campaigns=[c["id"] for c in campaigns], forms=sections, secret=secret,
                  bulk=bulk, problem=problem)  # fmt: skip


# -- allowlist --------------------------------------------------------------------------------

_IP_RULES: dict[str, Callable[[Any], Any]] = {"cidr": f.cidr, "expires_at": f.timestamp,
                                             "note": f.string}  # fmt: skip


def _expiry(values: dict[str, str], errors: Errors) -> str:
    """The form's ``expires_at`` (typed in UTC) as the service reads times, ``""`` for none;
    a time it cannot read is an error under the field, and nothing is changed."""
    try:
        when = forms.utc_time(values.get("expires_at"))
    except f.FieldError as exc:
        errors.fields.setdefault("expires_at", []).append(str(exc))
        return ""
    return iso_utc(when) if when else ""


def _ip_raw(values: dict[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {"cidr": values.get("cidr", "")}
    if values.get("note"):
        raw["note"] = values["note"]
    if values.get("expires_at"):
        raw["expires_at"] = values["expires_at"]
    if values.get("allow_overlap") == "on":
        raw["allow_overlap"] = True
    return raw


async def add_ip(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    values = await forms.read(request)  # as typed: what the form shows again on an error
    errors = Errors()
    entry = {**values, "expires_at": _expiry(values, errors)}
    if not entry.get("cidr"):
        errors.fields["cidr"] = ["required, e.g. 203.0.113.0/24 or 2001:db8::/32"]
    _precheck(entry, _IP_RULES, errors)
    status = 422
    if not errors:
        try:
            ip = await service.write(request, publishers.add_ip, publisher_id=pid,
                                     raw=_ip_raw(entry))  # fmt: skip
            until = f", expires {notices.shown(ip['expires_at'])}" if ip["expires_at"] else ""
            return _back(request, pid, f"Added allowlist entry {ip['cidr']} (rule {ip['id']}"
                         f"{until}) to publisher {pid}.")  # fmt: skip
        except RtbError as exc:
            errors.add(exc, {"cidr", "note", "expires_at"}, {"ips": "cidr"})
            status = exc.status
    return await publisher_page(request, forms_={"ip": Form(values, errors)}, status=status)


async def add_ips_bulk(request: Request) -> Response:
    """One entry per line (``CIDR [note…]``; ``#`` starts a comment), each added on its own
    by the service's bulk add (the API's and the CLI's too) so one bad line costs only
    itself; the answer gives every line its verdict."""
    pid = str(request.path_params["publisher"])
    values = await forms.read(request)
    errors = Errors()
    expires = _expiry(values, errors)
    lines = publishers.parse_lines(values.get("lines", ""))
    if not lines:
        errors.fields.setdefault("lines", []).append("paste at least one CIDR, one per line")
    if len(lines) > publishers.MAX_BULK:
        errors.fields.setdefault("lines", []).append(
            f"at most {publishers.MAX_BULK} lines at a time"
        )
    if errors:
        return await publisher_page(request, forms_={"bulk": Form(values, errors)}, status=422)
    items = [{**item, "expires_at": expires} if expires else item for _, item in lines]
    results = await service.write(request, publishers.add_ips, publisher_id=pid, items=items,
                                  allow_overlap=values.get("allow_overlap") == "on")  # fmt: skip
    verdicts = []
    for (line, _), result in zip(lines, results, strict=True):
        if "added" in result:
            verdict = f"added as {result['added']['cidr']}"
            verdicts.append({"line": line, "ok": "yes", "verdict": verdict})
        else:
            verdicts.append({"line": line, "ok": "", "verdict": result["error"].split(": ", 1)[-1]})
    return await publisher_page(request, bulk=verdicts)


async def update_ip(request: Request) -> Response:
    """A new note or expiry for an entry (empty: none); its CIDR and rule number stay."""
    pid, entry = str(request.path_params["publisher"]), service.entry_id(request)
    values = await forms.read(request)
    errors = Errors()
    expires = _expiry(values, errors)
    status = 422
    if not errors:
        raw = {"note": values.get("note") or None, "expires_at": expires or None}
        old = {i["id"]: i for i in await service.read(request, publishers.list_ips, pid)}
        try:
            new = await service.write(request, publishers.update_ip, publisher_id=pid,
                                      entry=entry, raw=raw)  # fmt: skip
            moved = notices.changes(old.get(entry, {}), new, ("note", "expires_at"))
            return _back(request, pid, f"Saved allowlist entry {new['cidr']} of publisher "
                         f"{pid}: {moved}.")  # fmt: skip
        except RtbError as exc:
            errors.general.append(exc.message)
            status = exc.status
    errors.general[:0] = [f"expiry: {m}" for m in errors.fields.pop("expires_at", [])]
    edit = Form(values, errors)  # shown open in the entry's row, with what was typed
    return await publisher_page(request, forms_={f"edit-{entry}": edit}, status=status)


async def remove_ip(request: Request) -> Response:
    pid, entry = str(request.path_params["publisher"]), service.entry_id(request)
    old = await service.write(request, publishers.remove_ip, publisher_id=pid, entry=entry)
    return _back(request, pid, f"Removed allowlist entry {old['cidr']} from publisher {pid}.")


# -- credentials ------------------------------------------------------------------------------


async def _set_password(request: Request, username: str, values: dict[str, str]) -> Response:
    pid = str(request.path_params["publisher"])
    errors = Errors()
    generated = not values.get("password")
    password = _password() if generated else values["password"]
    _precheck({"username": username, "password": password},
              {"username": f.username, "password": f.password}, errors)  # fmt: skip
    status = 422
    if not errors:
        try:
            created = await service.write(request, publishers.set_password, publisher_id=pid,
                                          username=username, password=password)  # fmt: skip
        except RtbError as exc:
            errors.add(exc, {"username", "password"}, {"credentials": "password"})
            status = exc.status
        else:
            what = "created" if created else "rotated"
            secret = {"title": f"SIP credential {username!r} {what}", "label": "password",
                      "value": password, "generated": "yes" if generated else ""}  # fmt: skip
            return await publisher_page(request, secret=secret)
    values = {k: v for k, v in values.items() if k != "password"}  # never echoed back
    return await publisher_page(request, forms_={"credential": Form(values, errors)}, status=status)


async def add_credential(request: Request) -> Response:
    values = await forms.read(request)
    return await _set_password(request, values.get("username", ""), values)


async def rotate_credential(request: Request) -> Response:
    values = await forms.read(request)
    username = str(request.path_params["username"])
    return await _set_password(request, username, {**values, "username": username})


async def remove_credential(request: Request) -> Response:
    pid, username = str(request.path_params["publisher"]), str(request.path_params["username"])
    await service.write(request, publishers.remove_credential, publisher_id=pid, username=username)
    return _back(request, pid, f"Removed SIP credential {username} from publisher {pid}.")


# -- keys -------------------------------------------------------------------------------------

_KEY_FIELDS = {"key", "campaign", "inbound_number", "ttl_seconds", "response_root",
               "allow_missing_caller_number", "auto_confirm", "recordings"}  # fmt: skip


async def create_key(request: Request) -> Response:
    pid = str(request.path_params["publisher"])
    values = await forms.read(request)
    raw: dict[str, Any] = {"publisher": pid, "campaign": values.get("campaign", "")}
    for name in ("key", "inbound_number", "response_root"):
        if values.get(name):
            raw[name] = values[name]
    if values.get("ttl_seconds"):
        ttl = values["ttl_seconds"]
        raw["ttl_seconds"] = int_or_text(ttl)
    for flag in ("allow_missing_caller_number", "auto_confirm", "recordings"):
        raw[flag] = values.get(flag) == "on"
    errors = Errors()
    try:
        created = await service.write(request, offers.create_key, raw=raw)
    except RtbError as exc:
        errors.add(exc, _KEY_FIELDS, {"keys": "key"})
        values = {k: v for k, v in values.items() if k != "key"}
        return await publisher_page(
            request, forms_={"key": Form(values, errors)}, status=exc.status
        )
    secret = {"title": f"Key {created['hint']} created for campaign {created['campaign']}",
              "label": "postback key", "value": str(created["key"]), "generated": ""}  # fmt: skip
    return await publisher_page(request, secret=secret)


async def pause_key(request: Request) -> Response:
    values = await forms.read(request)
    key_id = str(request.path_params["key"])
    paused = values.get("paused") == "1"
    key = await service.write(request, offers.update_key, key_id=key_id, raw={"paused": paused})
    if paused:
        notice = f"Paused {_key_name(key)}: its pings now get 403."
    else:
        notice = f"Resumed {_key_name(key)}: its pings are answered again."
    if values.get("back") == "keys":
        return notices.redirect(request, f"{base_path(request)}/keys", notice)
    return _back(request, key["publisher"], notice)


async def delete_key(request: Request) -> Response:
    key_id = str(request.path_params["key"])
    values = await forms.read(request)
    key = await service.read(request, offers.get_key, key_id)
    await service.write(request, offers.delete_key, key_id=key_id)
    notice = f"Deleted {_key_name(key)}: its pings now get 401."
    if values.get("back") == "keys":
        return notices.redirect(request, f"{base_path(request)}/keys", notice)
    return _back(request, key["publisher"], notice)


# -- would this be accepted? ------------------------------------------------------------------


async def check_page(request: Request) -> Response:
    """POST only for the answer: a password must not end up in a URL (logs, history)."""
    answer = None
    values: dict[str, str] = {}
    errors = Errors()
    if request.method == "POST":
        values = await forms.read(request)
        state = service.app_state(request)
        ip, username = forms.optional(values, "ip"), forms.optional(values, "username")
        password = values.get("password") if username else None
        if ip and username:
            errors.general.append("give a source IP, or a username and password — not both")
        elif not ip and not username:
            errors.fields["ip"] = ["give a source IP (or a username and password below)"]
        else:
            catalog = state.catalog.get()
            try:
                answer = await state.run(lambda: check(state.engine, catalog, ip=ip,
                                                       username=username, password=password))  # fmt: skip
            except InvalidInput as exc:
                errors.add(exc, {"ip", "username", "password"})
        values.pop("password", None)
    return render(request, "check.html", status=422 if errors else 200, answer=answer,
                  values=values, errors=errors.view(), base_url=base_path(request))  # fmt: skip
