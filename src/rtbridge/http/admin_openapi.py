"""The OpenAPI 3.1 description of the admin API, served at ``/admin/openapi.json``.

Hand-built from one table of operations; ``tests/admin/test_admin_openapi.py`` checks that
it lists exactly the routes the app serves, so it cannot silently fall behind."""

from __future__ import annotations

from typing import Any

_S = dict[str, Any]


def _obj(required: list[str], **props: _S) -> _S:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": False,
    }


_STR: _S = {"type": "string"}
_INT: _S = {"type": "integer"}
_BOOL: _S = {"type": "boolean"}
_NUM: _S = {"type": "number"}
_TIME: _S = {"type": "string", "format": "date-time", "description": "ISO 8601 with an offset"}
_CIDR: _S = {
    "type": "string",
    "description": "v4 or v6 network, e.g. 203.0.113.0/24 or 2001:db8::/32",
}
_PASSWORD: _S = {
    "type": "string",
    "writeOnly": True,
    "minLength": 12,
    "description": "at least 12 characters mixing three of lower, upper, digits, symbols; "
    "stored only as digest HA1, never returned",
}

IP = _obj(
    ["cidr"], cidr=_CIDR, note=_STR,
    expires_at={**_TIME, "description": "ISO 8601 with an offset; must be in the future"},
    allow_overlap={"type": "boolean", "description": "accept a network that overlaps another "
                   "publisher's live entry (the longest prefix wins; audited, shown by check)"},
)  # fmt: skip
IP_BULK: _S = {
    "type": "array", "minItems": 1, "maxItems": 1000, "items": {"oneOf": [_CIDR, IP]},
    "description": "each item is added or refused on its own; the answer (200) is "
    '{"added": n, "refused": n, "results": [{"item", "added": entry} | {"item", "error", '
    '"status"}]} in the order given',
}  # fmt: skip
CREDENTIAL = _obj(["username", "password"], username=_STR, password=_PASSWORD)
PUBLISHER = _obj(
    ["id"], id=_STR, name=_STR,
    ips={"type": "array", "items": {"oneOf": [_CIDR, IP]}},
    credentials={"type": "array", "items": CREDENTIAL},
    require_tls={"type": "boolean", "description": "INVITEs must arrive over TLS (else 403)"},
    require_srtp={"type": "boolean", "description": "the SDP offer must ask for SRTP (else 488)"},
)  # fmt: skip
BUYER = _obj(
    ["id", "destination", "payout", "seconds"], id=_STR,
    destination={"type": "string", "description": "sip: URI or E.164 number (via a trunk)"},
    payout=_NUM, seconds=_INT, concurrency=_INT, daily_cap=_INT, priority=_INT, weight=_INT,
    hours={"type": "string", "example": "Mon-Fri 09:00-17:00 America/New_York"},
    filters={"type": "object", "additionalProperties": {"type": "array", "items": _STR}},
    trunk=_STR,
    srtp={"type": "string", "enum": ["off", "optional", "required"],
          "description": "SDES-SRTP on the leg to this buyer (TLS: a sips: or ;transport=tls URI)"},
)  # fmt: skip
NEW_BUYER = {**BUYER, "required": ["campaign", *BUYER["required"]],
             "properties": {"campaign": _STR, **BUYER["properties"]}}  # fmt: skip
CAMPAIGN = _obj(["id"], id=_STR, numbers={"type": "array", "items": _STR},
                buyers={"type": "array", "items": BUYER})  # fmt: skip
DID = _obj(
    ["number", "campaign"], number={"type": "string", "example": "+18005551234"}, campaign=_STR
)
_KEY_SETTINGS: dict[str, _S] = {
    "publisher": _STR, "campaign": _STR, "allow_missing_caller_number": _BOOL,
    "inbound_number": _STR, "ttl_seconds": _INT, "auto_confirm": _BOOL,
    "response_root": {"type": "string", "enum": ["rtb"]}, "paused": _BOOL,
}  # fmt: skip
KEY = _obj(["publisher", "campaign"], key={"type": "string", "minLength": 16,
           "description": "optional; a random one is made when left out"}, **_KEY_SETTINGS)  # fmt: skip
KEY_PATCH = _obj([], **_KEY_SETTINGS)
TRUNK = _obj(["id", "uri"], id=_STR, ips={"type": "array", "items": _CIDR},
             uri={"type": "string", "example": "sip:{number}@198.51.100.10:5060"},
             username=_STR, password={"type": "string", "writeOnly": True}, realm=_STR)  # fmt: skip
CHECK = _obj([], ip=_STR, username=_STR, password={"type": "string", "writeOnly": True})
_EVENTS: _S = {
    "type": "array", "minItems": 1,
    "items": {"type": "string", "enum": ["reserved", "no-target", "confirmed", "cancelled",
              "claimed", "answered", "completed", "converted", "failed"]},
    "description": "default: all of them",
}  # fmt: skip
_URL: _S = {"type": "string", "format": "uri", "description": "http:// or https://"}
WEBHOOK = _obj(["url"], publisher={**_STR, "description": "the owner: a publisher, or"},
               buyer={**_STR, "description": "a buyer (exactly one)"}, url=_URL, events=_EVENTS,
               enabled=_BOOL)  # fmt: skip
WEBHOOK_PATCH = _obj([], url=_URL, events=_EVENTS, enabled=_BOOL)
PATCH: _S = {"type": "object", "description": "fields to change; null resets one to its default"}

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": _obj(["error"], error=_STR)}},
}


def _form(body: _S) -> _S:
    """A body's form spelling (http/bodies.py): the object alternative, without the fields
    only JSON can hold (lists of objects; ``filters`` is sent as ``filters.<tag>`` keys)."""
    objects = [s for s in body.get("oneOf", [body]) if s.get("type") == "object"]
    if not objects:
        return body
    props = {k: v for k, v in objects[0].get("properties", {}).items()
             if k not in ("credentials", "buyers", "filters")}  # fmt: skip
    required = [r for r in objects[0].get("required", []) if r in props]
    return {**objects[0], "properties": props, "required": required}


def _op(summary: str, *, body: _S | None = None, ok: int = 200, params: list[_S] | None = None,
        text: bool = False, form: bool = True) -> _S:  # fmt: skip
    content_type = "text/plain" if text else "application/json"
    op: _S = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "success"} if ok == 204
            else {"description": "success", "content": {content_type: {}}},
            "401": {**_ERROR, "description": "no, unknown or revoked token (no data)"},
            "404": {**_ERROR, "description": "no such resource"},
            "409": {**_ERROR, "description": "conflicts with existing data"},
            "422": {**_ERROR, "description": "invalid input; the message names the field"},
        },
    }  # fmt: skip
    if body is not None:
        content = {"application/json": {"schema": body}}
        if form:  # repeated keys for lists, true/false/1/0, numbers as text
            content["application/x-www-form-urlencoded"] = {"schema": _form(body)}
            content["multipart/form-data"] = {"schema": _form(body)}
        op["requestBody"] = {"required": True, "content": content}
        op["responses"]["415"] = {**_ERROR, "description": "a body neither JSON nor a form"}
    if params:
        op["parameters"] = params
    return op


def _bulk(op: _S) -> _S:
    """The array form of a POST answers 200 with a verdict per item."""
    verdicts = {"description": "an array was sent: a verdict per item",
                "content": {"application/json": {}}}  # fmt: skip
    return {**op, "responses": {"200": verdicts, **op["responses"]}}


def _q(name: str, description: str) -> _S:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": _STR,
        "description": description,
    }


def _qs(name: str, schema: _S, description: str) -> _S:
    return {**_q(name, description), "schema": schema}


_PAGING = [
    _qs("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)"),
    _q("cursor", "the previous answer's next: the page after it (keyset, stable under inserts)"),
    _qs("format", {"type": "string", "enum": ["json", "csv"]}, "csv (or Accept: text/csv): "
        "every matching row from the cursor on, streamed, limit not applied"),
    _q("since", "ISO 8601 time with an offset, inclusive"),
    _q("until", "ISO 8601 time with an offset, exclusive"),
    _q("publisher", "publisher id"), _q("campaign", "campaign id"), _q("buyer", "buyer id"),
    _q("uuid", "one reservation"),
]  # fmt: skip
_NULL_STR: _S = {"type": ["string", "null"]}
_NULL_NUM: _S = {"type": ["number", "null"]}
_NULL_INT: _S = {"type": ["integer", "null"]}
_NULL_TIME: _S = {"type": ["string", "null"], "format": "date-time"}
_RTB_ITEM = _obj(
    ["uuid", "created_at", "status"], uuid=_STR, created_at={**_TIME, "description": "...Z"},
    key_id={**_STR, "description": "the key's id, as GET /admin/keys lists it"},
    publisher=_STR, campaign=_STR, buyer=_NULL_STR,
    status={"type": "string", "description": "as readers see it: an unclaimed reservation past "
            "its TTL is expired"},
    reason={**_NULL_STR, "description": "no-target only"}, caller_number=_NULL_STR,
    inbound_number=_NULL_STR, payout=_NULL_NUM, seconds=_NULL_INT, expires_at=_NULL_TIME,
    source_id=_NULL_STR, tags={"type": "object"},
)  # fmt: skip
_CALL_ITEM = _obj(
    ["id", "uuid", "invite_at"], id=_INT, uuid=_STR, publisher=_STR, campaign=_STR, buyer=_NULL_STR,
    caller_number=_NULL_STR, via={"type": "string", "enum": ["sip", "pstn"]}, source=_NULL_STR,
    agent=_NULL_STR, invite_at=_TIME, answer_at=_NULL_TIME, end_at=_NULL_TIME,
    publisher_code=_NULL_INT, buyer_code=_NULL_INT, hangup_by=_NULL_STR, duration=_NULL_NUM,
    converted={"type": ["boolean", "null"]}, payout=_NULL_NUM, status=_STR,
)  # fmt: skip


def _listing(summary: str, item: _S, params: list[_S]) -> _S:
    """A page as JSON, or every matching row as a CSV download."""
    op = _op(summary, params=[*_PAGING, *params])
    page = _obj(["items", "next"], items={"type": "array", "items": item},
                next={"type": ["string", "null"], "description": "cursor of the next (older) "
                      "page; null on the last"})  # fmt: skip
    op["responses"]["200"] = {
        "description": "newest first",
        "content": {"application/json": {"schema": page},
                    "text/csv": {"schema": {"type": "string"}}},
        "headers": {"Content-Disposition": {"schema": _STR,
                    "description": "CSV only: attachment; filename=rtbridge-...csv"}},
    }  # fmt: skip
    return op


def _p(name: str, schema: _S = _STR) -> _S:
    return {"name": name, "in": "path", "required": True, "schema": schema}


OPERATIONS: dict[str, dict[str, _S]] = {
    "/admin/openapi.json": {"get": _op("This description")},
    "/admin/publishers": {
        "get": _op("List publishers"),
        "post": _op(
            "Create a publisher (optionally with ips and credentials)", body=PUBLISHER, ok=201
        ),
    },
    "/admin/publishers/{publisher}": {
        "get": _op("A publisher with its allowlist, usernames and key hints"),
        "patch": _op("Change a publisher's name", body=PATCH),
        "delete": _op(
            "Delete a publisher, its allowlist and credentials (409 while keys use it)", ok=204
        ),
    },
    "/admin/ips": {"get": _op("Every publisher's allowlist entries")},
    "/admin/publishers/{publisher}/ips": {
        "get": _op("A publisher's allowlist entries (expired ones flagged)"),
        "post": _bulk(
            _op(
                "Add an allowlist entry (201), or a JSON array of them (200, a verdict per item). "
                "409 when the network overlaps another publisher's live entry, unless "
                "allow_overlap; 422 when expires_at is not in the future",
                body={"oneOf": [IP, _CIDR, IP_BULK]},
                ok=201,
            )
        ),
    },
    "/admin/publishers/{publisher}/ips/{entry}": {
        "patch": _op("Change an entry's cidr, note or expires_at", body=PATCH),
        "delete": _op("Remove an allowlist entry", ok=204),
    },
    "/admin/publishers/{publisher}/credentials": {"get": _op("A publisher's SIP usernames")},
    "/admin/publishers/{publisher}/credentials/{username}": {
        "put": _op(
            "Set or rotate a password (201 created, 200 rotated)",
            body=_obj(["password"], password=_PASSWORD),
        ),
        "delete": _op("Remove a SIP credential", ok=204),
    },
    "/admin/campaigns": {
        "get": _op("List campaigns with their DIDs and buyer ids"),
        "post": _op(
            "Create a campaign (optionally with numbers and buyers)", body=CAMPAIGN, ok=201
        ),
    },
    "/admin/campaigns/{campaign}": {
        "get": _op("A campaign"),
        "delete": _op("Delete a campaign, its buyers and DIDs (409 while keys use it)", ok=204),
    },
    "/admin/buyers": {
        "get": _op("List buyers", params=[_q("campaign", "only this campaign's")]),
        "post": _op("Create a buyer", body=NEW_BUYER, ok=201),
    },
    "/admin/buyers/{buyer}": {
        "get": _op("A buyer"),
        "patch": _op("Change a buyer (campaign included)", body=PATCH),
        "delete": _op("Delete a buyer", ok=204),
    },
    "/admin/dids": {
        "get": _op("List DID numbers", params=[_q("campaign", "only this campaign's pool")]),
        "post": _op("Add a number to a campaign's pool", body=DID, ok=201),
    },
    "/admin/dids/{number}": {"delete": _op("Remove a DID", ok=204)},
    "/admin/keys": {
        "get": _op("List keys by hint (never the key)"),
        "post": _op("Create a key; the answer holds the key in clear, once", body=KEY, ok=201),
    },
    "/admin/keys/{key}": {
        "get": _op("A key's settings"),
        "patch": _op("Change a key's settings (not the key)", body=KEY_PATCH),
        "delete": _op("Delete a key", ok=204),
    },
    "/admin/trunks": {
        "get": _op("List trunks (never the password)"),
        "post": _op("Create a trunk", body=TRUNK, ok=201),
    },
    "/admin/trunks/{trunk}": {
        "get": _op("A trunk"),
        "patch": _op("Change a trunk", body=PATCH),
        "delete": _op("Delete a trunk (409 while buyers need it)", ok=204),
    },
    "/admin/check": {
        "get": _op(
            "Dry run: would this IP or credential be accepted, as which publisher?",
            params=[
                _q("ip", "source address"),
                _q("username", "SIP username"),
                _q("password", "avoid: URLs end up in logs; use POST"),
            ],
        ),
        "post": _op(
            "The same check with the values in a JSON or form body (keeps the password "
            "out of URLs)",
            body=CHECK,
        ),
    },
    "/admin/audit": {
        "get": _op(
            "Audit trail, newest first",
            params=[
                _q("since", "ISO 8601 time"),
                _q("actor", "token name, cli:<user> or apply"),
                _q("resource", "a type (publisher) or type/id (publisher/pub-1)"),
                _q("limit", "at most this many (default 1000)"),
            ],
        ),
    },
    "/admin/export/kamailio-permissions": {
        "get": _op("The allowlist as a Kamailio permissions address file", text=True)
    },
    "/admin/rtbs": {
        "get": _listing(
            "The RTB log: every ping's reservation (no-target ones too), newest first",
            _RTB_ITEM,
            [
                _q("key", "key id (GET /admin/keys)"),
                _qs(
                    "status",
                    {
                        "type": "string",
                        "enum": [
                            "reserved",
                            "confirmed",
                            "claimed",
                            "connected",
                            "completed",
                            "expired",
                            "cancelled",
                            "failed",
                            "no-target",
                        ],
                    },
                    "as readers see it (expired: past its TTL, unclaimed)",
                ),
                _q("reason", "no-target reason, e.g. concurrency-cap-reached"),
                _q("caller_number", "E.164, normalised as in a ping"),
            ],
        )
    },
    "/admin/calls": {
        "get": _listing(
            "The call log: call records with their reservation, newest first",
            _CALL_ITEM,
            [
                _qs(
                    "status",
                    {"type": "string", "enum": ["claimed", "connected", "completed", "failed"]},
                    "the reservation's status",
                ),
                _qs("converted", {"type": "boolean"}, "true/false (1/0)"),
                _q("hangup_by", "publisher, buyer, agent, timeout, fault, media-timeout"),
                _qs(
                    "publisher_code",
                    {"type": "integer", "minimum": 100, "maximum": 699},
                    "final SIP code sent to the publisher",
                ),
                _qs(
                    "buyer_code",
                    {"type": "integer", "minimum": 100, "maximum": 699},
                    "the buyer's final SIP code",
                ),
                _qs("min_duration", {"type": "number", "minimum": 0}, "seconds, at least"),
                _qs("via", {"type": "string", "enum": ["sip", "pstn"]}, "how the call arrived"),
            ],
        )
    },
    "/admin/webhooks": {
        "get": _op("List webhooks (never their secrets)"),
        "post": _op(
            "Create a webhook for a publisher's or a buyer's events; the answer holds its "
            "signing secret, once (409 while RTBRIDGE_WEBHOOK_KEY is not set)",
            body=WEBHOOK,
            ok=201,
        ),
    },
    "/admin/webhooks/{webhook}": {
        "get": _op("A webhook"),
        "patch": _op("Change a webhook's url, events or enabled", body=WEBHOOK_PATCH),
        "delete": _op("Delete a webhook and its deliveries", ok=204),
    },
    "/admin/webhooks/{webhook}/rotate": {
        "post": _op("A new signing secret, shown once (the old one stops at once)")
    },
    "/admin/webhooks/{webhook}/deliveries": {
        "get": _op(
            "Recent deliveries, newest first: status, attempts, last code and error",
            params=[_q("status", "pending, delivered or failed"), _q("limit", "1-1000 (100)")],
        )
    },
    "/admin/webhooks/{webhook}/deliveries/{delivery}/redeliver": {
        "post": _op("Send a delivery again now (same body and webhook-id)")
    },
}

_PATH_PARAMS = {"entry": _INT}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, ops in OPERATIONS.items():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        item: dict[str, Any] = {}
        for method, op in ops.items():
            item[method] = {**op, "security": [{"bearer": []}]}
            if names:
                item[method]["parameters"] = [
                    _p(n, _PATH_PARAMS.get(n, _STR)) for n in names
                ] + list(op.get("parameters", []))
        paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtbridge admin API",
            "version": "1",
            "description": "Publishers, allowlists, SIP credentials, keys, campaigns, buyers, "
            "DIDs and trunks (SPEC §5). Every route needs Authorization: Bearer <token> "
            "(rtbridge admin-token create NAME). Every change is audited and reaches the "
            "running SIP agents within about a second.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
