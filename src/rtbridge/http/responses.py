"""JSON rendering, including the exact reservation shape publishers parse (SPEC §3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from rtbridge.domain import lifecycle as st
from rtbridge.domain.inbound import sip_address
from rtbridge.storage.reservations import Outcome
from rtbridge.timestamps import iso_utc


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# One encoder for every answer, orjson: a ping's answer in a tenth of the json module's time.
# Datetimes go through _default (iso_utc, the format publishers parse), not orjson's own.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_bytes(body: Any) -> bytes:
    return orjson.dumps(body, default=_default, option=_OPTIONS)


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(json_bytes(body), status, headers=headers, media_type="application/json")


def reservation_body(outcome: Outcome) -> dict[str, Any]:
    """The reservation as JSON, wrapped in ``{"rtb": ...}`` when the key asks for it."""
    body: dict[str, Any] = {"uuid": outcome.uuid, "status": outcome.status}
    if outcome.status == st.NO_TARGET:
        body["reason"] = outcome.reason
    else:
        body["retreaver_payout"] = outcome.payout
        body["retreaver_seconds"] = outcome.seconds
        body["inbound_number"] = outcome.inbound_number
        # Dialable only while it can still be claimed (SPEC §3.1: never otherwise).
        if outcome.status in st.UNCLAIMED:
            body["sip_address"] = sip_address(outcome.uuid, outcome.sip_domain)
        if outcome.expires_at is not None:
            body["expires_at"] = iso_utc(outcome.expires_at)
        if outcome.ping_shield:
            body["ping_shield"] = True
        body.update(outcome.details)
    return {"rtb": body} if outcome.response_root == "rtb" else body
