"""What the publisher API (SPEC §3) takes and answers, as pydantic models.

They describe, they do not validate: the ping path stays plain dicts (``http/responses.py``
builds the answer, ``domain/ping.py`` checks the parameters, one path for one rule), because
pings are benchmarked and a model round trip per answer would cost for nothing. The models
become ``/openapi.json``'s components (``publisher_openapi.py``), and
``tests/http/test_publisher_openapi.py`` validates real answers against them, so the
handlers and this description cannot drift apart unnoticed.

A field that only some answers carry (``sip_address``, ``ping_shield``, the look-up's details)
is typed ``X | Absent = None``: left out when it does not apply, never ``null``; one that
may also be ``null`` when present is ``X | None = None``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from rtbridge.domain.failover import AttemptKind
from rtbridge.domain.ping import TAG_NAME
from rtbridge.sip.router import HangupBy

# Not in the schema: the None default is the model's way to say "may be left out".
Absent = SkipJsonSchema[None]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Answers have no defaults on the wire: drop the ``"default": null`` of Absent fields."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)


def _ping_schema(schema: dict[str, Any]) -> None:
    """Tag names as ``domain/ping.py`` accepts them (the named parameters match too)."""
    _no_null_defaults(schema)
    schema["propertyNames"] = {"pattern": f"^{TAG_NAME.pattern}$"}


# -- requests ---------------------------------------------------------------------------------


class PingParams(BaseModel):
    """``POST /rtbs.json``, in the query string, a form or a JSON object (the body wins).

    Every parameter not named here is a tag stored on the reservation and matched by buyer
    filters (caller_zip, caller_state, ...): 1-64 of A-Z a-z 0-9 _ . -, at most 50, values
    up to 256 characters. Bodies over 64 KiB, JSON that is not an object and unsupported
    content types are 422."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_ping_schema)
    __pydantic_extra__: dict[str, str]

    key: str | Absent = Field(
        default=None, description="the postback key (required, in the query or the body)"
    )
    caller_number: str | Absent = Field(
        default=None,
        description="the consumer's number; normalised to E.164 (12025550102 and "
        "+1 202-555-0102 both become +12025550102). Required unless the key has "
        "allow_missing_caller_number: then a missing one is 422 with exactly "
        '"FAILED must include caller_number (string)"',
        examples=["+12025550102"],
    )
    inbound_number: str | Absent = Field(
        default=None,
        description="E.164; returned as given when there is no caller_number (SPEC §3.3)",
        examples=["+18005551234"],
    )
    publisher_id: str | Absent = Field(default=None, description="sub-source label, stored")
    source_id: str | Absent = Field(default=None, description="sub-source label, stored")


class StatusChange(BaseModel):
    """``PUT``/``PATCH /rtbs/{uuid}.json``: confirm (renews the hold) or cancel."""

    model_config = ConfigDict(json_schema_extra=_no_null_defaults)

    key: str | Absent = Field(
        default=None,
        description="the key the reservation was made with (required, in the query or the body)",
    )
    status: Literal["confirmed", "cancelled"] | Absent = Field(
        default=None, description="required, in the query or the body"
    )


# -- answers ----------------------------------------------------------------------------------

_UUID = Field(
    description="reservation uuid (RFC 9562 version 7)",
    examples=["0c4d6f2a-1b3e-7a9d-8c7f-9e2b1a6d4f30"],
)
_TIME = "UTC, ISO 8601 with milliseconds and Z"


class AttemptPublic(_Public):
    """One buyer dialled for the call: the reservation's own first, then each one the call
    failed over to when a buyer was busy, refused, did not answer or could not be reached.
    Which buyer, and where it was dialled, is not shown."""

    n: int = Field(description="1 for the first buyer dialled, then 2, 3, ...")
    started_at: datetime = Field(description=f"the buyer was dialled; {_TIME}")
    provisional_at: datetime | None = Field(description="its first provisional answer (ringing)")
    final_code: int | None = Field(
        description="the buyer's final SIP code; 408 when it was not answered in time"
    )
    kind: AttemptKind | None = Field(
        description="how it ended: answered; no-answer, busy, rejected, unreachable (the call "
        "went on to the next buyer, if any); cancelled (the caller gave up, or the call was "
        "stopped, while it rang)"
    )
    ended_at: datetime | None = Field(description=_TIME)


class CallPublic(_Public):
    """The call that claimed the reservation, as far as it got (the look-up only)."""

    invite_at: datetime = Field(description=_TIME)
    answered_at: datetime | None = Field(description="null until the buyer answers")
    ended_at: datetime | None = Field(description="null while the call is on")
    duration: float | None = Field(description="seconds from answer to end")
    converted: bool | None = Field(description="duration reached the buyer's seconds")
    payout: float | None
    sip_code: int | None = Field(description="final SIP code sent to the publisher")
    buyer_sip_code: int | None = Field(description="the buyer's final SIP code")
    hangup_by: HangupBy | None = Field(
        description="timeout: the buyer rang too long; media-timeout: a leg stopped sending "
        "RTP; fault: the agent died during the call"
    )
    attempts: list[AttemptPublic] = Field(
        description="the buyers dialled, in order; an attempt is listed once it has ended"
    )


class ReservationPublic(_Public):
    """A reservation holding a buyer: what a ping, a confirm or cancel, and a look-up answer
    (the look-up adds caller_number, tags, created_at and, once there is a call, its
    outcome)."""

    uuid: str = _UUID
    status: Literal[
        "reserved", "confirmed", "claimed", "connected", "completed", "expired", "cancelled",
        "failed",
    ] = Field(description="as readers see it: an unclaimed reservation past its TTL is expired")  # fmt: skip
    retreaver_payout: float = Field(description="the buyer's payout")
    retreaver_seconds: int = Field(description="minimum call length to earn it")
    inbound_number: str = Field(
        description="a DID of the campaign, the key's or request's number, or "
        "sip:<uuid>@<domain> (SPEC §3.3)"
    )
    sip_address: str | Absent = Field(
        default=None, description="<uuid>@<sip-domain>; only while reserved or confirmed"
    )
    expires_at: datetime | Absent = Field(default=None, description=_TIME)
    ping_shield: Literal[True] | Absent = Field(
        default=None,
        description="only when true: an earlier live reservation for this caller and key, again",
    )
    # The look-up adds these.
    caller_number: str | None = Field(default=None, description="look-up only; E.164")
    tags: dict[str, str] | Absent = Field(default=None, description="look-up only")
    created_at: datetime | Absent = Field(default=None, description=f"look-up only; {_TIME}")
    duration: float | None = Field(default=None, description="look-up, once called")
    converted: bool | None = Field(default=None, description="look-up, once called")
    call: CallPublic | Absent = Field(default=None, description="look-up, once called")


class NoTargetPublic(_Public):
    """No buyer for this ping (or for an expired hold a confirm could not renew)."""

    uuid: str = _UUID
    status: Literal["no-target"]
    reason: str = Field(
        description="no-buyers, filters-not-matched, outside-hours, daily-cap-reached, "
        "concurrency-cap-reached, no-free-did",
        examples=["no-buyers"],
    )


class RtbRoot(_Public):
    """The same answer wrapped as ``{"rtb": {...}}``, for keys whose response_root is rtb."""

    rtb: ReservationPublic | NoTargetPublic


class ErrorPublic(_Public):
    """Every refusal: ``{"error": ...}``, never a stack trace."""

    error: str = Field(description="names the field at fault")
