"""The OpenAPI 3.1 description of the publisher API (SPEC §3), served at ``/openapi.json``.

Hand-built like the admin one (``admin_openapi.py``). It describes the rules rather than
restating them: what a parameter means and where its rule lives is said in words, and the
validation itself stays in ``domain/ping.py`` and ``http/params.py``, the one path for one
rule. ``tests/http/test_publisher_openapi.py`` checks it lists exactly the routes the app
serves, and the schemathesis test fuzzes the live server from it."""

from __future__ import annotations

from typing import Any

_S = dict[str, Any]

_STR: _S = {"type": "string"}
_JSON: _S = {"application/json": {}}
_E164: _S = {"type": "string", "example": "+18005551234"}
_UUID: _S = {
    "type": "string",
    "description": "reservation uuid (RFC 9562 version 7)",
    "example": "0c4d6f2a-1b3e-4a9d-8c7f-9e2b1a6d4f30",
}
_TIME: _S = {"type": "string", "description": "UTC, ISO 8601 with milliseconds and Z"}
_NULL_TIME: _S = {"type": ["string", "null"]}

_PING_FIELDS: dict[str, _S] = {
    "key": {"type": "string", "description": "the postback key (required, here or in the query)"},
    "caller_number": {
        "type": "string",
        "description": "the consumer's number; normalised to E.164 (12025550102 and "
        "+1 202-555-0102 both become +12025550102). Required unless the key has "
        "allow_missing_caller_number: then a missing one is 422 with exactly "
        '"FAILED must include caller_number (string)"',
    },
    "inbound_number": {
        "type": "string",
        "description": "E.164; returned as given when there is no caller_number (SPEC §3.3)",
    },
    "publisher_id": {"type": "string", "description": "sub-source label, stored"},
    "source_id": {"type": "string", "description": "sub-source label, stored"},
}
PING = {
    "type": "object",
    "properties": _PING_FIELDS,
    "additionalProperties": {"type": "string"},
    "description": "Every parameter not named here is a tag stored on the reservation and "
    "matched by buyer filters (caller_zip, caller_state, ...). Query string and body merge; "
    "the body wins. Bodies over 64 KiB, JSON that is not an object and unsupported content "
    "types are 422.",
}
_STATUS_CHANGE: _S = {"type": "string", "enum": ["reserved", "confirmed", "cancelled"]}
UPDATE = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "description": "the key the reservation was made with"},
        "status": _STATUS_CHANGE,
    },
}

_BASE = {
    "uuid": _UUID,
    "status": {
        "type": "string",
        "enum": ["reserved", "confirmed", "claimed", "connected", "completed", "expired",
                 "cancelled", "failed", "no-target"],
    },
}  # fmt: skip
RESERVATION = {
    "type": "object",
    "required": ["uuid", "status"],
    "properties": {
        **_BASE,
        "retreaver_payout": {"type": "number"},
        "retreaver_seconds": {"type": "integer", "description": "minimum call length to earn it"},
        "inbound_number": {
            "type": "string",
            "description": "a DID of the campaign, the key's or request's number, or "
            "sip:<uuid>@<domain> (SPEC §3.3)",
        },
        "sip_address": {
            "type": "string",
            "description": "<uuid>@<sip-domain>; only while reserved or confirmed",
        },
        "expires_at": _TIME,
        "ping_shield": {
            "type": "boolean",
            "description": "true: an earlier live reservation for this caller and key, again",
        },
        "reason": {
            "type": "string",
            "description": "no-target only: no-buyers, filters-not-matched, outside-hours, "
            "daily-cap-reached, concurrency-cap-reached, no-free-did",
        },
        # The look-up adds these.
        "caller_number": {"type": ["string", "null"]},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "created_at": _TIME,
        "duration": {"type": ["number", "null"]},
        "converted": {"type": ["boolean", "null"]},
        "call": {
            "type": "object",
            "properties": {
                "invite_at": _NULL_TIME,
                "answered_at": _NULL_TIME,
                "ended_at": _NULL_TIME,
                "duration": {"type": ["number", "null"]},
                "converted": {"type": ["boolean", "null"]},
                "payout": {"type": ["number", "null"]},
                "sip_code": {"type": ["integer", "null"], "description": "final code to the publisher"},
                "buyer_sip_code": {"type": ["integer", "null"]},
                "hangup_by": {"type": ["string", "null"], "enum": ["publisher", "buyer", "agent",
                                                                  "timeout", None]},
            },
        },
    },
}  # fmt: skip
ANSWER = {
    "description": 'the reservation; wrapped as {"rtb": {...}} when the key\'s response_root '
    "is rtb",
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    RESERVATION,
                    {
                        "type": "object",
                        "required": ["rtb"],
                        "properties": {"rtb": RESERVATION},
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
}

_ERROR_BODY = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "names the field at fault"}},
    "additionalProperties": False,
}


def _error(description: str) -> _S:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_BODY}}}


UNAVAILABLE = {
    **_error("the database is locked or unreachable: retry after Retry-After seconds"),
    "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}
_ERRORS = {
    "401": _error("missing or unknown key"),
    "403": _error("paused key"),
    "422": _error("malformed input; the message names the field"),
    "503": UNAVAILABLE,
}


def _query(name: str, schema: _S, *, required: bool = False) -> _S:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_BODY = {
    "required": False,
    "content": {
        "application/json": {"schema": PING},
        "application/x-www-form-urlencoded": {"schema": PING},
        "multipart/form-data": {"schema": PING},
    },
}
_UUID_PARAM = {"name": "uuid", "in": "path", "required": True, "schema": _UUID}

OPERATIONS: dict[str, dict[str, _S]] = {
    "/rtbs.json": {
        "post": {
            "summary": "Ping: reserve a buyer for a caller (SPEC §3.1)",
            "description": "200 with the reservation (reserved, or confirmed when the key "
            "auto-confirms), or 200 with status no-target and a reason. Parameters may come "
            "in the query string, as form data or as a JSON object.",
            "parameters": [_query(name, schema) for name, schema in _PING_FIELDS.items()],
            "requestBody": _BODY,
            "responses": {"200": ANSWER, **_ERRORS},
        }
    },
    "/rtbs/{uuid}.json": {
        "get": {
            "summary": "Look up a reservation, with the call's outcome once there is one",
            "parameters": [_UUID_PARAM, _query("key", _STR, required=True)],
            "responses": {
                "200": ANSWER,
                **_ERRORS,
                "404": _error("no such reservation for this key"),
            },
        },
        **{
            method: {
                "summary": "Confirm (renews the hold) or cancel a reservation (SPEC §3.6)",
                "parameters": [
                    _UUID_PARAM,
                    _query("key", _STR),
                    _query("status", _STATUS_CHANGE),
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {"schema": UPDATE},
                        "application/x-www-form-urlencoded": {"schema": UPDATE},
                    },
                },
                "responses": {
                    "200": ANSWER,
                    **_ERRORS,
                    "404": _error("no such reservation for this key"),
                    "409": _error("a transition the current status does not allow"),
                },
            }
            for method in ("put", "patch")
        },
    },
    "/health": {
        "get": {
            "summary": "Health for load balancers; with the SIP agent in the process, its state",
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {}}},
                "503": {"description": "the database is unreachable", "content": _JSON},
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text format",
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {}}},
                "503": UNAVAILABLE,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This description",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _JSON}},
        }
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtbridge publisher API",
            "version": "1",
            "description": "Pay-per-call real-time bidding (SPEC §3): ping for a buyer, "
            'confirm, cancel and look up reservations. Errors are {"error": ...}; never a '
            "500 for input. The admin API has its own description at /admin/openapi.json.",
        },
        "paths": OPERATIONS,
    }
