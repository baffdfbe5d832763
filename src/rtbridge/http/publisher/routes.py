"""The publisher API (SPEC §3): ping, confirm/cancel, look up."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtbridge.domain.errors import InvalidInput, UnknownKey
from rtbridge.domain.ping import parse_key
from rtbridge.http import recordings
from rtbridge.http.params import request_params
from rtbridge.http.publisher.openapi import openapi_document
from rtbridge.http.publisher.ping import ping
from rtbridge.http.responses import json_response, reservation_body
from rtbridge.http.state import AppState
from rtbridge.storage.reservations import Outcome


def _uuid(request: Request) -> str:
    value = str(request.path_params["uuid"])
    if len(value) != 36:
        raise InvalidInput("uuid: not a reservation uuid")
    return value.lower()


def _respond(state: AppState, outcome: Outcome) -> Response:
    state.metrics.count_reservation(outcome.status, outcome.ping_shield, outcome.reason)
    return json_response(reservation_body(outcome))


async def lookup(request: Request) -> Response:
    state: AppState = request.state.app
    lockout = state.lockouts.keys
    lockout.check(request.scope)
    uuid = _uuid(request)
    try:
        key = parse_key(dict(request.query_params))
        outcome = await state.run(state.reservations.lookup, uuid, key)
    except UnknownKey:
        lockout.failed(request.scope)
        raise
    return json_response(reservation_body(outcome))


async def update(request: Request) -> Response:
    state: AppState = request.state.app
    lockout = state.lockouts.keys
    lockout.check(request.scope)
    uuid = _uuid(request)
    params: dict[str, Any] = await request_params(request, state.settings.max_body)
    status = params.get("status")
    try:
        key = parse_key(params)
        outcome = await state.run(
            state.reservations.update, uuid, key, status if isinstance(status, str) else None
        )
    except UnknownKey:
        lockout.failed(request.scope)
        raise
    return _respond(state, outcome)


async def openapi(_request: Request) -> Response:
    return json_response(openapi_document())


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/rtbs.json", ping, methods=["POST"]),  # answered before the router: ping.py
    Route("/rtbs/{uuid}.json", lookup, methods=["GET"]),
    Route("/rtbs/{uuid}.json", update, methods=["PUT", "PATCH"]),
    Route("/rtbs/{uuid}/recording", recordings.publishers, methods=["GET"]),
]
