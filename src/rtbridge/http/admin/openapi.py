"""The OpenAPI 3.1 description of the admin API: public at ``/openapi/admin.json`` (beside the
publisher API's ``/openapi.json``), and at ``/admin/openapi.json`` with a token.

One table of operations; request and answer schemas are the pydantic models (request bodies
in validation mode, answers in serialization mode), collected under components/schemas.
``tests/admin/test_admin_openapi.py`` checks that it lists exactly the routes the app serves
and that real answers match their schemas, so it cannot silently fall behind."""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import BaseModel

from rtbridge.config.schema import (
    BuyerSpec,
    CallerListSpec,
    Campaign,
    IpSpec,
    ListEntrySpec,
    PublisherSpec,
    TrunkSpec,
)
from rtbridge.domain.attestation import ATTESTATION_LEVELS
from rtbridge.domain.failover import AttemptKind
from rtbridge.domain.recording import RECORDING_STATUSES
from rtbridge.http.admin import models as m
from rtbridge.http.openapi import Found, component_schemas, resolve
from rtbridge.storage.listings import BID_OUTCOMES
from rtbridge.storage.rollups import COUNTS
from rtbridge.storage.stats import FIGURES
from rtbridge.webhooks import events

_S = dict[str, Any]


def _obj(required: list[str], **props: _S) -> _S:
    """A hand-written object schema, for an entry that has no model (yet)."""
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}  # fmt: skip


_STR: _S = {"type": "string"}
_INT: _S = {"type": "integer"}
_BOOL: _S = {"type": "boolean"}
_NUM: _S = {"type": "number"}
_TIME: _S = {"type": "string", "format": "date-time", "description": "ISO 8601 with an offset"}
_CIDR: _S = {
    "type": "string",
    "description": "v4 or v6 network, e.g. 203.0.113.0/24 or 2001:db8::/32",
}

# Request bodies are the models `rtbridge apply` validates with (config/schema.py); answers are
# the "Public" models of http/admin/models.py. A model class may stand anywhere in an entry
# below: openapi_document() turns it into a $ref under components/schemas. A hand-written
# JSON Schema dict works beside it.
IP_BULK: _S = {
    "type": "array", "minItems": 1, "maxItems": 1000, "items": {"oneOf": [_CIDR, IpSpec]},
    "description": "each item is added or refused on its own; the answer (200) holds a "
    "verdict per item, in the order given",
}  # fmt: skip
_EVENTS: _S = {
    "type": "array", "minItems": 1,
    "items": {"type": "string", "enum": list(events.NAMES)},
    "description": "default: all of them",
}  # fmt: skip
_URL: _S = {"type": "string", "format": "uri", "description": "http:// or https://"}
WEBHOOK = _obj(["url"], publisher={**_STR, "description": "the owner: a publisher, or"},
               buyer={**_STR, "description": "a buyer (exactly one)"}, url=_URL, events=_EVENTS,
               enabled=_BOOL)  # fmt: skip
WEBHOOK_PATCH = _obj([], url=_URL, events=_EVENTS, enabled=_BOOL)
PATCH: _S = {"type": "object", "description": "fields to change; null resets one to its default"}
_ERROR = {"description": "error", "content": {"application/json": {"schema": m.ErrorPublic}}}


_Schema = _S | type[BaseModel]


def _form(body: _Schema) -> _Schema:
    """A body's form spelling (http/bodies.py): the object alternative, without the fields
    only JSON can hold (lists of objects; ``filters`` is sent as ``filters.<tag>`` keys). A
    model keeps its own schema: such fields in a form are refused (422) by the same rules."""
    if not isinstance(body, dict):
        return body
    objects = [
        s for s in body.get("oneOf", [body]) if isinstance(s, dict) and s.get("type") == "object"
    ]
    if not objects:
        return body
    props = {k: v for k, v in objects[0].get("properties", {}).items()
             if k not in ("credentials", "buyers", "filters")}  # fmt: skip
    required = [r for r in objects[0].get("required", []) if r in props]
    return {**objects[0], "properties": props, "required": required}


def _op(summary: str, *, body: _Schema | None = None, ok: int = 200, answer: _Schema | None = None,
        params: list[_S] | None = None, text: bool = False, form: bool = True,
        operation_id: str | None = None) -> _S:  # fmt: skip
    """One operation. ``answer``: the success body's schema (text/plain when ``text``);
    ``operation_id`` defaults to the method and path (set in openapi_document)."""
    content_type = "text/plain" if text else "application/json"
    success: _S = {"description": "success"}
    if ok != 204:
        success["content"] = {content_type: {"schema": answer} if answer is not None else {}}
    op: _S = {
        "summary": summary,
        "responses": {
            str(ok): success,
            "401": {**_ERROR, "description": "no, unknown or revoked token (no data)"},
            "404": {**_ERROR, "description": "no such resource"},
            "409": {**_ERROR, "description": "conflicts with existing data"},
            "422": {**_ERROR, "description": "invalid input; the message names the field"},
            "429": {**_ERROR, "description": "too many refused tokens from this address: every "
                    "request from it is refused until Retry-After seconds have passed",
                    "headers": {"Retry-After": {"required": True,
                                                "schema": {"type": "integer", "minimum": 1}}}},
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
    if operation_id:
        op["operationId"] = operation_id
    return op


def _entries_upload(op: _S) -> _S:
    """A bulk add of caller list entries: CSV too, and 413 for an upload too large."""
    op["requestBody"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    op["responses"]["413"] = {**_ERROR, "description": "over 10 MB or 200,000 lines"}
    return op


def _bulk(op: _S) -> _S:
    """The array form of a POST answers 200 with a verdict per item."""
    verdicts = {"description": "an array was sent: a verdict per item",
                "content": {"application/json": {"schema": m.IpBulkPublic}}}  # fmt: skip
    return {**op, "responses": {"200": verdicts, **op["responses"]}}


def _also(op: _S, status: int, description: str) -> _S:
    """A second success status with the same body (PUT: 201 created, 200 replaced)."""
    ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
    return {**op, "responses": {str(status): {**ok, "description": description},
                                **op["responses"]}}  # fmt: skip


def _recording(op: _S) -> _S:
    """A recording's download: the file, part of it, or 416 (http/recordings.py)."""
    wav = {"schema": {"type": "string", "contentMediaType": "audio/wav"}}
    op["responses"]["200"] = {"description": "the whole file", "content": {"audio/wav": wav}}
    op["responses"]["206"] = {"description": "the part the Range header asked for",
                              "content": {"audio/wav": wav}}  # fmt: skip
    op["responses"]["416"] = {"description": "Range past the end of the file"}
    return op


def _q(name: str, description: str) -> _S:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": _STR,
        "description": description,
    }


def _p(name: str, schema: _S = _STR) -> _S:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _qs(name: str, schema: _S, description: str) -> _S:
    return {**_q(name, description), "schema": schema}


_PAGING = [
    _qs("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)"),
    _q("cursor", "the previous answer's next: the page after it (keyset, stable under inserts)"),
    _qs("format", {"type": "string", "enum": ["json", "csv"]}, "csv (or Accept: text/csv): "
        "every matching row from the cursor on, streamed, limit not applied"),
    _q("since", "ISO 8601 time with an offset, inclusive"),
    _q("until", "ISO 8601 time with an offset, exclusive"),
]  # fmt: skip
_OFFERS = [_q("publisher", "publisher id"), _q("campaign", "campaign id"),
           _q("buyer", "buyer id"), _q("uuid", "one reservation")]  # fmt: skip
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
    inbound_number=_NULL_STR,
    attestation={"type": ["string", "null"], "enum": [*ATTESTATION_LEVELS, None],
                 "description": "its INVITE's STIR/SHAKEN: A, B, C, none (unsigned), failed"},
    attestation_why={**_NULL_STR, "description": "why a signature failed"},
    payout_offered={**_NULL_NUM, "description": "to the publisher, if the call converts"},
    revenue_offered={**_NULL_NUM, "description": "from the buyer, if the call converts"},
    seconds=_NULL_INT, expires_at=_NULL_TIME,
    source_id=_NULL_STR, tags={"type": "object"},
)  # fmt: skip
_ATTEMPT_ITEM = _obj(
    ["n", "buyer", "destination", "started_at", "provisional_at", "final_code", "reason", "kind",
     "ended_at"],
    n={**_INT, "description": "1: the reservation's own buyer, then each buyer failed over to"},
    buyer=_STR, destination=_STR, started_at=_TIME,
    provisional_at={**_NULL_TIME, "description": "the buyer's first provisional answer"},
    final_code={**_NULL_INT, "description": "the buyer's final answer; 408 when it was stopped"},
    reason=_NULL_STR,
    kind={"type": ["string", "null"], "enum": [*get_args(AttemptKind), None]},
    ended_at=_NULL_TIME,
)  # fmt: skip
_CALL_ITEM = _obj(
    ["id", "uuid", "invite_at", "attempts"], id=_INT, uuid=_STR, publisher=_STR, campaign=_STR,
    buyer={**_NULL_STR, "description": "the buyer that answered, or the last one tried"},
    caller_number=_NULL_STR, via={"type": "string", "enum": ["sip", "pstn"]}, source=_NULL_STR,
    attestation={"type": ["string", "null"], "enum": [*ATTESTATION_LEVELS, None],
                 "description": "its INVITE's STIR/SHAKEN: A, B, C, none (unsigned), failed"},
    attestation_why={**_NULL_STR, "description": "why a signature failed"},
    agent=_NULL_STR, invite_at=_TIME, answer_at=_NULL_TIME, end_at=_NULL_TIME,
    publisher_code=_NULL_INT, buyer_code=_NULL_INT, hangup_by=_NULL_STR, duration=_NULL_NUM,
    converted={"type": ["boolean", "null"]},
    payout_earned={**_NULL_NUM, "description": "to the publisher: the offer if converted, else 0"},
    revenue_earned={**_NULL_NUM, "description": "from the buyer: the offer if converted, else 0"},
    margin_earned={**_NULL_NUM, "description": "revenue_earned - payout_earned"},
    status=_STR,
    attempts={"type": "array", "items": _ATTEMPT_ITEM,
              "description": "every buyer dialled, in order (CSV: attempts, attempts_detail)"},
)  # fmt: skip


_RECORDING_ITEM = _obj(
    ["status", "seconds", "bytes", "sha256", "error", "purged_at"],
    status={"type": "string", "enum": list(RECORDING_STATUSES)},
    seconds={**_NULL_NUM, "description": "its length (kept when purged)"},
    bytes={**_NULL_INT, "description": "the file's size (cleared when purged)"},
    sha256={**_NULL_STR, "description": "the file's SHA-256 (kept when purged)"},
    error={**_NULL_STR, "description": "why it failed"},
    purged_at={**_NULL_TIME, "description": "when retention deleted the file"},
)  # fmt: skip


_BID_ITEM = _obj(
    ["id", "at", "rtb", "buyer", "outcome"], id=_INT,
    at={**_TIME, "description": "when the bidder was asked (...Z)"},
    rtb={**_STR, "description": "the ping's reservation uuid (GET /admin/rtbs/{uuid})"},
    buyer=_STR, outcome={"type": "string", "enum": list(BID_OUTCOMES)},
    amount={**_NULL_NUM, "description": "the bid, when there was one"},
    latency_ms={**_NULL_NUM, "description": "until its answer; null: none came"},
    reason={**_NULL_STR, "description": "why a bid was not taken (timeout, error, invalid: "
            "what was wrong)"},
    bid_id={**_NULL_STR, "description": "the bidder's own id for its bid"},
    destination={**_NULL_STR, "description": "where the bid would send the call"},
)  # fmt: skip
_STORY_RESERVATION = {
    **_RTB_ITEM,
    "properties": {
        **_RTB_ITEM["properties"],
        "source_publisher_id": {**_NULL_STR, "description": "the sub-publisher it came through"},
        "updated_at": _TIME,
        "verdicts": {"type": ["object", "null"], "additionalProperties": _STR,
                     "description": "the ping's verdict on each buyer, by id; null: not recorded"},
        "destination": {**_NULL_STR, "description": "a winning bid's destination"},
        "bid_id": {**_NULL_STR, "description": "a winning bid's id, as its bidder gave it"},
    },
}  # fmt: skip


_FIGURES = _obj(
    list(FIGURES),
    **{name: _INT for name in COUNTS},
    talk_seconds={**_NUM, "description": "of answered calls that ended"},
    payout={**_NUM, "description": "earned by publishers (converted calls)"},
    revenue={**_NUM, "description": "earned from buyers (converted calls)"},
    margin={**_NUM, "description": "revenue - payout"},
)
_STATS = _op(
    "The business in figures, from the rollups kept as events happen: per hour of the ping, "
    "summed by group_by, with totals",
    params=[
        _q("group_by", "comma-separated, of hour, day, publisher, campaign, buyer, reason "
           "(default day)"),
        _q("since", "ISO 8601 time with an offset: the hours overlapping [since, until)"),
        _q("until", "ISO 8601 time with an offset, exclusive"),
        _q("publisher", "publisher id"), _q("campaign", "campaign id"), _q("buyer", "buyer id"),
        _qs("format", {"type": "string", "enum": ["json", "csv"]},
            "csv (or Accept: text/csv): the rows, then a total row"),
    ],
    answer=_obj(["rows", "totals"], rows={"type": "array", "items": {
        "type": "object", "description": "the group_by keys (hour as ...T..:00:00Z, day as "
        "YYYY-MM-DD; buyer and reason null for none), then the figures"}}, totals=_FIGURES),
)  # fmt: skip


def _listing(summary: str, item: _S, params: list[_S], *, offers: bool = True) -> _S:
    """A page as JSON, or every matching row as a CSV download; ``offers``: the reservations'
    filters (publisher, campaign, buyer, uuid) too."""
    op = _op(summary, params=[*_PAGING, *(_OFFERS if offers else []), *params])
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


OPERATIONS: dict[str, dict[str, _S]] = {
    "/admin/openapi.json": {
        "get": _op("This description (public at /openapi/admin.json)", answer={"type": "object"})
    },
    "/admin/publishers": {
        "get": _op("List publishers", answer=m.PublisherList),
        "post": _op(
            "Create a publisher (optionally with ips and credentials)",
            body=PublisherSpec,
            ok=201,
            answer=m.PublisherDetail,
        ),
    },
    "/admin/publishers/{publisher}": {
        "get": _op(
            "A publisher with its allowlist, usernames and key hints", answer=m.PublisherDetail
        ),
        "patch": _op(
            "Change a publisher's name or TLS/SRTP requirements",
            body=m.PublisherPatch,
            answer=m.PublisherDetail,
        ),
        "delete": _op(
            "Delete a publisher, its allowlist and credentials (409 while keys use it)", ok=204
        ),
    },
    "/admin/ips": {"get": _op("Every publisher's allowlist entries", answer=m.IpList)},
    "/admin/publishers/{publisher}/ips": {
        "get": _op("A publisher's allowlist entries (expired ones flagged)", answer=m.IpList),
        "post": _bulk(
            _op(
                "Add an allowlist entry (201), or a JSON array of them (200, a verdict per item). "
                "409 when the network overlaps another publisher's live entry, unless "
                "allow_overlap; 422 when expires_at is not in the future",
                body={"oneOf": [IpSpec, _CIDR, IP_BULK]},
                ok=201,
                answer=m.IpPublic,
            )
        ),
    },
    "/admin/publishers/{publisher}/ips/{entry}": {
        "patch": _op(
            "Change an entry's cidr, note or expires_at", body=m.IpPatch, answer=m.IpPublic
        ),
        "delete": _op("Remove an allowlist entry", ok=204),
    },
    "/admin/publishers/{publisher}/credentials": {
        "get": _op("A publisher's SIP usernames", answer=m.CredentialList)
    },
    "/admin/publishers/{publisher}/credentials/{username}": {
        "put": _also(
            _op(
                "Set or rotate a password (201 created, 200 rotated)",
                body=m.PasswordSet,
                answer=m.CredentialSetPublic,
            ),
            201,
            "a new credential",
        ),
        "delete": _op("Remove a SIP credential", ok=204),
    },
    "/admin/campaigns": {
        "get": _op("List campaigns with their DIDs and buyer ids", answer=m.CampaignList),
        "post": _op(
            "Create a campaign (optionally with numbers and buyers)",
            body=Campaign,
            ok=201,
            answer=m.CampaignPublic,
        ),
    },
    "/admin/campaigns/{campaign}": {
        "get": _op("A campaign", answer=m.CampaignPublic),
        "patch": _op(
            "Change a campaign's own settings: failover, the auction, caller rules, recording "
            "(its DIDs and buyers have their own routes)",
            body=m.CampaignPatch,
            answer=m.CampaignPublic,
        ),
        "delete": _op("Delete a campaign, its buyers and DIDs (409 while keys use it)", ok=204),
    },
    "/admin/buyers": {
        "get": _op(
            "List buyers", params=[_q("campaign", "only this campaign's")], answer=m.BuyerList
        ),
        "post": _op("Create a buyer", body=BuyerSpec, ok=201, answer=m.BuyerPublic),
    },
    "/admin/buyers/{buyer}": {
        "get": _op("A buyer", answer=m.BuyerPublic),
        "patch": _op("Change a buyer (campaign included)", body=m.BuyerPatch, answer=m.BuyerPublic),
        "delete": _op("Delete a buyer", ok=204),
    },
    "/admin/dids": {
        "get": _op(
            "List DID numbers",
            params=[_q("campaign", "only this campaign's pool")],
            answer=m.DidList,
        ),
        "post": _op(
            "Add a number to a campaign's pool", body=m.DidCreate, ok=201, answer=m.DidPublic
        ),
    },
    "/admin/dids/{number}": {"delete": _op("Remove a DID", ok=204)},
    "/admin/keys": {
        "get": _op("List keys by hint (never the key)", answer=m.KeyList),
        "post": _op(
            "Create a key; the answer holds the key in clear, once",
            body=m.KeyCreate,
            ok=201,
            answer=m.KeyCreated,
        ),
    },
    "/admin/keys/{key}": {
        "get": _op("A key's settings", answer=m.KeyPublic),
        "patch": _op("Change a key's settings (not the key)", body=m.KeyPatch, answer=m.KeyPublic),
        "delete": _op("Delete a key", ok=204),
    },
    "/admin/trunks": {
        "get": _op("List trunks (never the password)", answer=m.TrunkList),
        "post": _op(
            "Create a trunk (409 when a network overlaps a publisher's live allowlist entry, "
            "unless allow_overlap)",
            body=TrunkSpec,
            ok=201,
            answer=m.TrunkPublic,
        ),
    },
    "/admin/trunks/{trunk}": {
        "get": _op("A trunk", answer=m.TrunkPublic),
        "patch": _op(
            "Change a trunk (409 when a network it gains overlaps a publisher's live allowlist "
            "entry, unless allow_overlap)",
            body=m.TrunkPatch,
            answer=m.TrunkPublic,
        ),
        "delete": _op("Delete a trunk (409 while buyers need it)", ok=204),
    },
    "/admin/caller-lists": {
        "get": _op("List caller lists (block and allow)", answer=m.CallerListList),
        "post": _op(
            "Create a caller list, with entries if given",
            body=CallerListSpec,
            ok=201,
            answer=m.CallerListPublic,
        ),
    },
    "/admin/caller-lists/{list}": {
        "get": _op("A caller list's settings", answer=m.CallerListPublic),
        "patch": _op(
            "Change a caller list's settings (entries: at .../entries)",
            body=m.CallerListPatch,
            answer=m.CallerListPublic,
        ),
        "delete": _op("Delete a caller list and every entry of it", ok=204),
    },
    "/admin/caller-lists/{list}/entries": {
        "get": _op(
            "A page of a caller list's entries, in value order",
            answer=m.ListEntryPage,
            params=[
                _q("value", "only entries starting with this"),
                _q("after", "the previous page's next_after"),
                _q("limit", "entries per page (1-1000, default 100)"),
            ],
        ),
        "post": _entries_upload(
            _op(
                "Add or update entries, all or none: a JSON array, or CSV lines value,expires,note "
                "(Content-Type: text/csv; a header line is optional); a verdict per entry. Any "
                "invalid entry: 422 with the verdicts and nothing changed; over 10 MB or 200,000 "
                "lines: 413",
                body={"type": "array", "items": ListEntrySpec.model_json_schema()},
                answer=m.ListEntryVerdicts,
                form=False,
            )
        ),
    },
    "/admin/caller-lists/{list}/entries/{value}": {
        "delete": _op("Remove one entry (URL-encode its + and *)", ok=204),
    },
    "/admin/check": {
        "get": _op(
            "Dry run: would this IP or credential be accepted, as which publisher?",
            params=[
                _q("ip", "source address"),
                _q("username", "SIP username"),
                _q("password", "avoid: URLs end up in logs; use POST"),
            ],
            answer=m.CheckAnswer,
        ),
        "post": _op(
            "The same check with the values in a JSON or form body (keeps the password "
            "out of URLs)",
            body=m.CheckQuery,
            answer=m.CheckAnswer,
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
            answer=m.AuditList,
        ),
    },
    "/admin/export/kamailio-permissions": {
        "get": _op(
            "The allowlist as a Kamailio permissions address file",
            text=True,
            answer={"type": "string"},
        )
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
                _qs(
                    "attestation",
                    {"type": "string", "enum": list(ATTESTATION_LEVELS)},
                    "its INVITE's STIR/SHAKEN attestation",
                ),
            ],
        )
    },
    "/admin/bids": {
        "get": _listing(
            "The bid log: every RTB buyer's answer to every ping, newest first",
            _BID_ITEM,
            [
                _q("rtb", "one ping's bids: its reservation uuid"),
                _q("buyer", "buyer id"),
                _qs("outcome", {"type": "string", "enum": list(BID_OUTCOMES)}, "what became of it"),
            ],
            offers=False,
        )
    },
    "/admin/rtbs/{uuid}": {
        "get": _op(
            "A reservation's whole story: the ping, its verdict on each buyer and its RTB "
            "buyers' bids, its status history, the call and every buyer dialled, the webhook "
            "deliveries it caused, the admin actions that touched it",
            answer=_obj(
                ["reservation", "bids", "history", "call", "recording", "webhooks", "audit"],
                reservation=_STORY_RESERVATION,
                bids={
                    "type": "array",
                    "items": _BID_ITEM,
                    "description": "its RTB buyers' answers: the winner first, then by amount",
                },
                history={
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "oldest first: the ping (status pinged), then each "
                    "change, and failed buyer attempts between them",
                },
                call={"oneOf": [_CALL_ITEM, {"type": "null"}]},
                recording={"oneOf": [_RECORDING_ITEM, {"type": "null"}]},
                webhooks={
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "deliveries: webhook, event, status, attempts, codes",
                },
                audit={"type": "array", "items": {"type": "object"}},
            ),
        )
    },
    "/admin/stats": {"get": _STATS},
    "/admin/calls/{uuid}/hangup": {
        "post": _op(
            "Ask the agent carrying a call to hang it up: both legs end at its next heartbeat "
            "(2 s by default), recorded hangup_by admin; audited",
            ok=202,
            form=False,
            answer=_obj(
                ["uuid", "agent", "requested_at"], uuid=_STR, agent=_NULL_STR, requested_at=_TIME
            ),
        )
    },
    "/admin/calls/{uuid}/recording": {
        "get": _recording(
            _op(
                "The call's recording: a stereo WAV (publisher left, buyer right), ETag its SHA-256; "
                "Range: bytes=a-b, a- or -n answers 206 with Content-Range, past the end 416. 404 "
                "says why there is none: not recorded, in progress, failed, purged, or file missing",
            )
        )
    },
    "/admin/refusals": {
        "get": _op(
            "Each SIP agent's last refused INVITEs (up to 50), newest first, as of its last "
            "heartbeat: when, source, code, reason, why (the authentication cause), the R-URI "
            "user and the username tried",
            params=[_q("agent", "one agent's (its agent_id)")],
            answer=_obj(["agents"], agents={"type": "array", "items": {"type": "object"}}),
        )
    },
    "/admin/webhooks": {
        "get": _op("List webhooks (never their secrets)", answer=m.WebhookList),
        "post": _op(
            "Create a webhook for a publisher's or a buyer's events; the answer holds its "
            "signing secret, once (409 while neither RTBRIDGE_SITE_KEY nor RTBRIDGE_WEBHOOK_KEY is set)",
            body=WEBHOOK,
            ok=201,
            answer=m.WebhookCreated,
        ),
    },
    "/admin/webhooks/{webhook}": {
        "get": _op("A webhook", answer=m.WebhookPublic),
        "patch": _op(
            "Change a webhook's url, events or enabled", body=WEBHOOK_PATCH, answer=m.WebhookPublic
        ),
        "delete": _op("Delete a webhook and its deliveries", ok=204),
    },
    "/admin/webhooks/{webhook}/rotate": {
        "post": _op(
            "A new signing secret, shown once (the old one stops at once)", answer=m.SecretRotated
        )
    },
    "/admin/webhooks/{webhook}/deliveries": {
        "get": _op(
            "Recent deliveries, newest first: status, attempts, last code and error",
            params=[_q("status", "pending, delivered or failed"), _q("limit", "1-1000 (100)")],
            answer=m.DeliveryList,
        )
    },
    "/admin/webhooks/{webhook}/deliveries/{delivery}/redeliver": {
        "post": _op("Send a delivery again now (same body and webhook-id)", answer=m.DeliveryPublic)
    },
}

_PATH_PARAMS = {"entry": _INT}


def _operation_id(method: str, path: str) -> str:
    """``get /admin/publishers/{publisher}/ips`` -> ``get_publishers_by_publisher_ips``."""
    words = re.sub(r"\{(\w+)\}", r"by_\1", path.removeprefix("/admin/")).replace("-", "_")
    return f"{method}_{re.sub(r'[^A-Za-z0-9_]+', '_', words)}"


def openapi_document() -> dict[str, Any]:
    found: Found = {}
    paths: dict[str, Any] = {}
    for path, ops in OPERATIONS.items():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        item: dict[str, Any] = {}
        for method, op in ops.items():
            item[method] = {
                "operationId": _operation_id(method, path),
                **resolve(op, "validation", found),
                "security": [{"bearer": []}],
            }
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
        "components": {
            "schemas": component_schemas(found),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
