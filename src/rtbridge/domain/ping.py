"""The parameters of a ping (SPEC §3.1), validated into a :class:`PingRequest`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rtbridge.domain.bids import BidAnswer
from rtbridge.domain.errors import InvalidInput, MissingCallerNumber, UnknownKey
from rtbridge.domain.numbers import normalise_e164

NAMED_PARAMS = frozenset({"key", "caller_number", "inbound_number", "publisher_id", "source_id"})
TAG_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_TAGS = 50
MAX_TAG_VALUE = 256
MAX_LABEL = 128


@dataclass(frozen=True)
class PingRequest:
    key: str
    caller_number: str | None
    inbound_number: str | None
    publisher_id: str | None = None
    source_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # Set by the auction (bidding/) before the ping joins its batch: the reservation's uuid,
    # which its bid requests named, and each asked RTB buyer's answer by buyer id.
    uuid: str | None = None
    bids: Mapping[str, BidAnswer] | None = None

    def require_caller(self, allow_missing: bool) -> None:
        """Refuse with the exact text publishers expect when the key needs a caller."""
        if self.caller_number is None and not allow_missing:
            raise MissingCallerNumber()


def _scalar(name: str, value: object, *, limit: int) -> str:
    """A parameter as text: strings as given, JSON integers/floats printed, nothing else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{name}: must be a string")
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        raise InvalidInput(f"{name}: longer than {limit} characters")
    return text


def _optional(params: Mapping[str, object], name: str, *, limit: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    text = _scalar(name, value, limit=limit).strip()
    return text or None


def _number(params: Mapping[str, object], name: str) -> str | None:
    """A phone-number parameter in E.164, or None when absent or empty (an empty form field)."""
    raw = params.get(name)
    if raw is None:
        return None
    if isinstance(raw, float):
        # str(12025550102.0) is "12025550102.0": its "." is a separator to normalise_e164, so
        # the number would silently gain a digit. JSON integers are fine; floats are not numbers.
        raise InvalidInput(f"{name}: must be a string")
    text = _scalar(name, raw, limit=MAX_LABEL)
    # Not stripped first: a leading space is an unescaped '+' from a query string.
    return normalise_e164(text, field=name) if text.strip() else None


def parse_key(params: Mapping[str, object]) -> str:
    """The postback key; a missing key is the same as an unknown one (401)."""
    key = _optional(params, "key", limit=MAX_LABEL)
    if key is None:
        raise UnknownKey("key: missing postback key")
    return key


def parse_ping(params: Mapping[str, object]) -> PingRequest:
    """Validate every parameter before anything is looked up or written."""
    key = parse_key(params)
    caller = _number(params, "caller_number")
    inbound = _number(params, "inbound_number")
    tags: dict[str, str] = {}
    for name, value in params.items():
        if name in NAMED_PARAMS:
            continue
        if not TAG_NAME.fullmatch(name):
            raise InvalidInput(f"tag {name[:64]!r}: names are 1-64 of A-Z a-z 0-9 _ . -")
        tags[name] = _scalar(f"tag {name}", value, limit=MAX_TAG_VALUE)
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"tags: at most {MAX_TAGS} extra parameters")
    return PingRequest(
        key=key,
        caller_number=caller,
        inbound_number=inbound,
        publisher_id=_optional(params, "publisher_id", limit=MAX_LABEL),
        source_id=_optional(params, "source_id", limit=MAX_LABEL),
        tags=tags,
    )
