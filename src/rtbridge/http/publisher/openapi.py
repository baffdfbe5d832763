"""The OpenAPI 3.1 description of the publisher API (SPEC §3), served at ``/openapi.json``.

Built like the admin one (``admin_openapi.py``): the parameters, bodies and answers are the
pydantic models of ``publisher_models.py``, collected under components/schemas by
``openapi_models.py``. The models describe the rules in words and leave the checking to
``domain/ping.py`` and ``http/params.py``, the one path for one rule.
``tests/http/test_publisher_openapi.py`` checks that it lists exactly the routes the app
serves and that real answers match it; the schemathesis test fuzzes the live server from it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rtbridge.http.openapi import Found, component_schemas, resolve
from rtbridge.http.publisher import models as m

_S = dict[str, Any]

_JSON: _S = {"application/json": {}}
_WAV: _S = {"audio/wav": {"schema": {"type": "string", "contentMediaType": "audio/wav"}}}
_UUID: _S = {
    "type": "string",
    "description": "reservation uuid (RFC 9562 version 7)",
    "example": "0c4d6f2a-1b3e-7a9d-8c7f-9e2b1a6d4f30",
}


def _params(model: type[BaseModel], *, required: tuple[str, ...] = ()) -> list[_S]:
    """A model's fields as query parameters, with the schemas and words of its properties."""
    props: dict[str, _S] = model.model_json_schema()["properties"]
    params = []
    for name, prop in props.items():
        schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
        params.append({"name": name, "in": "query", "required": name in required,
                       "description": prop.get("description", ""), "schema": schema})  # fmt: skip
    return params


ANSWER: _S = {
    "description": 'the reservation, or no-target with a reason; wrapped as {"rtb": {...}} '
    "when the key's response_root is rtb",
    "content": {
        "application/json": {
            "schema": {"oneOf": [m.ReservationPublic, m.NoTargetPublic, m.RtbRoot]}
        }
    },
}


def _error(description: str) -> _S:
    return {"description": description, "content": {"application/json": {"schema": m.ErrorPublic}}}


UNAVAILABLE = {
    **_error("the database is locked or unreachable: retry after Retry-After seconds"),
    "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}
LOCKED_OUT = {
    **_error("too many missing or unknown keys from this address: every request of the "
             "publisher API from it is refused until Retry-After seconds have passed"),
    "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}  # fmt: skip
_ERRORS = {
    "401": _error("missing or unknown key"),
    "403": _error("paused key"),
    "422": _error("malformed input; the message names the field"),
    "429": LOCKED_OUT,
    "503": UNAVAILABLE,
}
_NOT_FOUND = _error("no such reservation for this key")
_UUID_PARAM = {"name": "uuid", "in": "path", "required": True, "schema": _UUID}
_KEY_PARAM = {"name": "key", "in": "query", "required": True, "schema": {"type": "string"}}


def _update(operation_id: str) -> _S:
    return {
        "operationId": operation_id,
        "summary": "Confirm (renews the hold) or cancel a reservation (SPEC §3.6)",
        "parameters": [_UUID_PARAM, *_params(m.StatusChange)],
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": m.StatusChange},
                "application/x-www-form-urlencoded": {"schema": m.StatusChange},
            },
        },
        "responses": {
            "200": ANSWER,
            **_ERRORS,
            "404": _NOT_FOUND,
            "409": _error("a transition the current status does not allow"),
        },
    }


OPERATIONS: dict[str, dict[str, _S]] = {
    "/rtbs.json": {
        "post": {
            "operationId": "ping",
            "summary": "Ping: reserve a buyer for a caller (SPEC §3.1)",
            "description": "200 with the reservation (reserved, or confirmed when the key "
            "auto-confirms), or 200 with status no-target and a reason. Parameters may come "
            "in the query string, as form data or as a JSON object.",
            "parameters": _params(m.PingParams),
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {"schema": m.PingParams},
                    "application/x-www-form-urlencoded": {"schema": m.PingParams},
                    "multipart/form-data": {"schema": m.PingParams},
                },
            },
            "responses": {"200": ANSWER, **_ERRORS},
        }
    },
    "/rtbs/{uuid}.json": {
        "get": {
            "operationId": "get_reservation",
            "summary": "Look up a reservation, with the call's outcome once there is one",
            "parameters": [_UUID_PARAM, _KEY_PARAM],
            "responses": {"200": ANSWER, **_ERRORS, "404": _NOT_FOUND},
        },
        "put": _update("put_reservation"),
        "patch": _update("patch_reservation"),
    },
    "/rtbs/{uuid}/recording": {
        "get": {
            "operationId": "get_recording",
            "summary": "The call's recording (stereo WAV: publisher left, buyer right), when "
            "the key says recordings = true and the reservation is its publisher's",
            "description": "ETag: the file's SHA-256. Range: bytes=a-b, a- or -n answers 206 "
            "with Content-Range; past the end, 416. 404 says why there is none: the key may "
            "not fetch recordings, not this publisher's, not recorded, in progress, failed, "
            "purged, or file missing.",
            "parameters": [_UUID_PARAM, _KEY_PARAM],
            "responses": {
                "200": {"description": "the whole file", "content": _WAV},
                "206": {"description": "the part the Range header asked for", "content": _WAV},
                "416": {"description": "Range past the end of the file"},
                **{k: v for k, v in _ERRORS.items() if k != "403"},
                "404": _error("no recording file for this key (the message says why)"),
            },
        }
    },
    "/health": {
        "get": {
            "operationId": "get_health",
            "summary": "Health for load balancers; with the SIP agent in the process, its state",
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {}}},
                "503": {"description": "the database is unreachable", "content": _JSON},
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "get_metrics",
            "summary": "Prometheus text format",
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {}}},
                "503": UNAVAILABLE,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "get_openapi",
            "summary": "This description",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _JSON}},
        }
    },
}


def openapi_document() -> dict[str, Any]:
    found: Found = {}
    paths = resolve(OPERATIONS, "validation", found)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtbridge publisher API",
            "version": "1",
            "description": "Pay-per-call real-time bidding (SPEC §3): ping for a buyer, "
            'confirm, cancel and look up reservations. Errors are {"error": ...}; never a '
            "500 for input. The admin API has its own description at /openapi/admin.json.",
        },
        "components": {"schemas": component_schemas(found)},
        "paths": paths,
    }
