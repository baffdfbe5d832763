"""Validation of single values, shared by ``apply``, the admin API, the console and the CLI
verbs, so one rule gives one message wherever the value comes from.

Each rule is a plain function (``identifier(value) -> str``, raising :class:`FieldError`) and,
wrapped in :class:`Rule`, pydantic metadata: the models of :mod:`rtbridge.config.schema` run
the function (its words become the error) and publish the JSON Schema keywords beside it in
OpenAPI, so the check and its description sit together."""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from rtbridge.domain.attestation import LEVELS
from rtbridge.domain.caller_lists import KINDS as LIST_KINDS
from rtbridge.domain.caller_lists import entry_value
from rtbridge.domain.errors import InvalidInput
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.domain.hours import HoursError, parse_hours
from rtbridge.domain.numbers import is_e164

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9_.\-+]{1,128}")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
)
MIN_PASSWORD = 12


class FieldError(ValueError):
    """One value is wrong; the caller prefixes the path (``keys[2].inbound_number``)."""


def identifier(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FieldError("must be 1-64 characters of A-Z a-z 0-9 _ . - (starting alphanumeric)")
    return value


def string(value: Any, *, max_len: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise FieldError(f"must be a non-empty string of at most {max_len} characters")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("must be true or false")
    return value


def integer(value: Any, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise FieldError(f"must be {bound}")
    return value


def number(value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("must be a number")
    if not math.isfinite(value):  # JSON's 1e999 reads as inf: a payout must be a real amount
        raise FieldError("must be a finite number")
    if value < minimum:
        raise FieldError(f"must be >= {minimum}")
    return float(value)


def seconds(value: Any, *, maximum: float) -> float:
    """A timeout: more than 0 seconds (0 would give up at once) and at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("must be a number of seconds")
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise FieldError(f"must be more than 0 and at most {maximum:g} seconds")
    return float(value)


def e164(value: Any) -> str:
    if not isinstance(value, str) or not is_e164(value):
        raise FieldError("not an E.164 number (e.g. +18005551234)")
    return value


def sip_uri(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"sips?:[^\s<>\"]+@?[^\s<>\"]*", value):
        raise FieldError("not a SIP URI (e.g. sip:queue@buyer.example.net:5060)")
    return value


def destination(value: Any) -> str:
    """A buyer destination: a SIP URI, or an E.164 number sent through a trunk."""
    if isinstance(value, str) and is_e164(value):
        return value
    try:
        return sip_uri(value)
    except FieldError:
        raise FieldError("must be a SIP URI (sip:...) or an E.164 number (+1...)") from None


def http_url(value: Any) -> str:
    """An ``http://`` or ``https://`` URL with a host (an RTB buyer's ``bid_url``)."""
    if not isinstance(value, str) or len(value) > 512 or any(c.isspace() for c in value):
        raise FieldError("must be an http:// or https:// URL of at most 512 characters")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError(f"must be an http:// or https:// URL with a host, got {value!r}")
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise FieldError(f"bad port in {value!r}") from None
    if parts.username or parts.password:
        raise FieldError("no credentials in the URL: put them in bid_headers, which are sealed")
    return value


BID_FORMATS = ("rtbridge", "ringba", "retreaver")


def bid_format(value: Any) -> str:
    if value not in BID_FORMATS:
        raise FieldError(f"must be one of {', '.join(BID_FORMATS)}")
    return str(value)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_HOP_BY_HOP = {"host", "content-length", "content-type", "connection", "transfer-encoding",
               "te", "upgrade", "keep-alive", "proxy-authorization", "trailer"}  # fmt: skip


def bid_headers(value: Any) -> dict[str, str]:
    """Extra headers on every bid request: ``{name = "value"}``, at most 16, each value a
    printable string of at most 1024 characters. The ones the client sets are refused."""
    if not isinstance(value, dict) or len(value) > 16:
        raise FieldError("must be a table of at most 16 header names and string values")
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise FieldError(f"{name!r}: not an HTTP header name")
        if name.lower() in _HOP_BY_HOP:
            raise FieldError(f"{name}: set by rtbridge itself")
        if not isinstance(text, str) or len(text) > 1024 or not text.isprintable():
            raise FieldError(f"{name}: must be a printable string of at most 1024 characters")
    return dict(value)


DUPLICATE_POINTS = ("ping", "connected", "converted")


def duplicate_after(value: Any) -> str:
    if value not in DUPLICATE_POINTS:
        raise FieldError(f"must be one of {', '.join(DUPLICATE_POINTS)}")
    return str(value)


ATTESTATIONS = LEVELS  # STIR/SHAKEN levels, strongest first (RFC 8588)


def attestation(value: Any) -> str:
    if value not in ATTESTATIONS:
        raise FieldError(f"must be one of {', '.join(ATTESTATIONS)} (or absent: any call)")
    return str(value)


def list_entry(value: Any, *, prefix: bool = False) -> str:
    """A caller list's entry (domain/caller_lists.py) in its stored form."""
    try:
        return entry_value(value, prefix=prefix)
    except InvalidInput as exc:
        raise FieldError(exc.message) from None


def list_kind(value: Any) -> str:
    if value not in LIST_KINDS:
        raise FieldError(f"must be one of {', '.join(LIST_KINDS)}")
    return str(value)


def share(value: Any) -> float:
    """A fraction in (0, 1]: the publisher's share of a winning bid."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError("must be a number")
    if not 0 < value <= 1:
        raise FieldError("must be more than 0 and at most 1")
    return float(value)


def domain(value: Any) -> str:
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise FieldError("not a host name (e.g. sip.rtb.example.com)")
    return value.lower()


def cidr(value: Any) -> str:
    """A v4 or v6 network in canonical form; a bare address is a /32 or /128."""
    if not isinstance(value, str):
        raise FieldError("must be a CIDR string such as 203.0.113.0/24 or 2001:db8::/32")
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise FieldError(f"not a CIDR network ({exc})") from None
    return str(net)


def timestamp(value: Any) -> datetime:
    """A TOML datetime or ISO 8601 text, returned as aware UTC (an offset is required)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FieldError("not an ISO 8601 time (e.g. 2026-12-31T23:59:00Z)") from None
    if not isinstance(value, datetime):
        raise FieldError("must be a date-time such as 2026-12-31T23:59:00Z")
    if value.tzinfo is None:
        raise FieldError("needs a time zone offset (e.g. ...Z or ...+02:00)")
    return value.astimezone(UTC)


def hours(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("must be a string such as 'Mon-Fri 09:00-17:00 America/New_York'")
    try:
        parse_hours(value)
    except HoursError as exc:
        raise FieldError(str(exc)) from None
    return value


def username(value: Any) -> str:
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise FieldError("must be 1-128 characters of A-Z a-z 0-9 _ . - +")
    return value


def password(value: Any) -> str:
    """At least 12 characters with three of: lower, upper, digit, other. Digest passwords are
    attackable offline from one captured exchange, so length is what protects them."""
    if not isinstance(value, str):
        raise FieldError("must be a string")
    classes = sum(
        bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if len(value) < MIN_PASSWORD or classes < 3:
        raise FieldError(
            f"too weak: use at least {MIN_PASSWORD} characters mixing three of lower case, "
            "upper case, digits and symbols"
        )
    if len(value) > 256 or any(c in value for c in "\r\n\x00"):
        raise FieldError("must be at most 256 printable characters")
    return value


def response_root(value: Any) -> str | None:
    if value in (None, "", "none"):
        return None
    if value != "rtb":
        raise FieldError('must be "rtb" or absent')
    return "rtb"


SRTP_MODES = ("off", "optional", "required")


def srtp_mode(value: Any) -> str:
    """SDES-SRTP on a buyer's leg: "off" (plain RTP), "optional" (offer both), "required"."""
    if value not in SRTP_MODES:
        raise FieldError('must be "off", "optional" or "required"')
    return str(value)


def failover(value: Any) -> tuple[str, ...]:
    """The buyer failures that send a call on to the next buyer; ``[]`` turns failover off.
    Returned in the one order of :data:`FAILOVER_KINDS`, so a set has one spelling: the same
    kinds listed in another order are no change (``apply``, the audit trail)."""
    allowed = ", ".join(FAILOVER_KINDS)
    if not isinstance(value, list | tuple):
        raise FieldError(f"must be an array of failure kinds ({allowed}), or [] for no failover")
    seen: list[str] = []
    for item in value:
        if item not in FAILOVER_KINDS:
            raise FieldError(f"{item!r} is not a failure kind (allowed: {allowed})")
        if item in seen:
            raise FieldError(f"{item!r} is listed twice")
        seen.append(item)
    return tuple(k for k in FAILOVER_KINDS if k in seen)


MAX_PATH = 1024  # characters of a stored file or directory path (storage/models.py)


def file_path(value: Any) -> str:
    """A path on the host: a file (a recording notice) or a directory (the recordings').
    Whether it exists, and what it holds, is judged where it is used; the file resolves a
    relative one against its own directory (``config/schema.py``)."""
    path = string(value, max_len=MAX_PATH)
    if "\0" in path or path != path.strip():
        raise FieldError("must be a path without NUL or surrounding spaces")
    return path


RECORDING_FORMATS = ("wav",)


def recording_format(value: Any) -> str:
    if value not in RECORDING_FORMATS:
        raise FieldError('only "wav" (stereo PCM16: publisher left, buyer right) is supported')
    return str(value)


# -- the rules as pydantic metadata -----------------------------------------------------------


class Rule:
    """``Annotated[str, Rule(identifier, pattern=...)]``: ``check`` validates before pydantic's
    own type check (so ``"5"`` for an integer gets this module's words, not a coercion), and
    ``schema`` adds JSON Schema keywords that describe the same rule."""

    __slots__ = ("check", "schema")

    def __init__(self, check: Callable[[Any], Any], **schema: Any) -> None:
        self.check = check
        self.schema = schema

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        # The check refuses null (an optional field is left out, not sent as null), so the
        # description does not offer it either.
        options = [o for o in out.get("anyOf", ()) if o != {"type": "null"}]
        if "anyOf" in out and len(options) == 1:
            del out["anyOf"]
            out.update(options[0])
        out.update(self.schema)
        return out


def integer_rule(minimum: int, maximum: int | None = None) -> Rule:
    bounds = {"minimum": minimum} | ({"maximum": maximum} if maximum is not None else {})
    return Rule(partial(integer, minimum=minimum, maximum=maximum), **bounds)


def number_rule(minimum: float) -> Rule:
    return Rule(partial(number, minimum=minimum), minimum=minimum)


def seconds_rule(maximum: float) -> Rule:
    return Rule(partial(seconds, maximum=maximum), exclusiveMinimum=0, maximum=maximum)


def string_rule(max_len: int = 256) -> Rule:
    return Rule(partial(string, max_len=max_len), minLength=1, maxLength=max_len)


IDENTIFIER = Rule(identifier, pattern=f"^{_ID.pattern}$", minLength=1, maxLength=64)
STRING = string_rule()
BOOLEAN = Rule(boolean)
E164 = Rule(e164, pattern=r"^\+[1-9][0-9]{6,14}$", examples=["+18005551234"])
DESTINATION = Rule(
    destination,
    description="a SIP URI (sip:queue@buyer.example.net) or an E.164 number (via a trunk)",
)
HTTP_URL = Rule(http_url, description="an http:// or https:// URL",
                examples=["https://bids.buyer.example/rtb"])  # fmt: skip
BID_FORMAT = Rule(bid_format, enum=list(BID_FORMATS))
BID_HEADERS = Rule(bid_headers, examples=[{"Authorization": "Bearer …"}])
SHARE = Rule(share, exclusiveMinimum=0, maximum=1)
DUPLICATE_AFTER = Rule(duplicate_after, enum=list(DUPLICATE_POINTS))
ATTESTATION = Rule(
    attestation,
    enum=list(ATTESTATIONS),
    description="the least STIR/SHAKEN attestation a call needs (A > B > C); calls below it, "
    "unsigned or failing verification included, are refused 403; absent: every call",
)
DUPLICATE_WINDOW = Rule(
    partial(integer, minimum=0, maximum=366 * 86400),
    minimum=0,
    maximum=366 * 86400,
    description="seconds during which a caller is a duplicate for a buyer; 0: off",
)
LIST_ENTRY = Rule(
    list_entry,
    description="an E.164 number, a prefix (+ and 1 to 14 digits then *; a bare +1900 of "
    "at most 6 digits is one too) or anonymous",
    examples=["+13125550100", "+1900*", "anonymous"],
)
LIST_PREFIX = Rule(partial(list_entry, prefix=True), description="+ and 1 to 14 digits",
                   examples=["+1900555"])  # fmt: skip
LIST_KIND = Rule(list_kind, enum=list(LIST_KINDS))
AUTO_BLOCK = Rule(
    partial(integer, minimum=1, maximum=10 * 366 * 86400),
    minimum=1,
    maximum=10 * 366 * 86400,
    description="a block list's: the caller of each conversion in its scope is added for "
    "these seconds",
)
DOMAIN = Rule(domain, description="a host name", examples=["sip.rtb.example.com"])
CIDR = Rule(cidr, description="a v4 or v6 network (a bare address is a /32 or /128)",
            examples=["203.0.113.0/24", "2001:db8::/32"])  # fmt: skip
TIMESTAMP = Rule(timestamp, description="ISO 8601 with a time zone offset")
HOURS = Rule(hours, examples=["Mon-Fri 09:00-17:00 America/New_York"])
USERNAME = Rule(username, pattern=f"^{_USERNAME.pattern}$")
PASSWORD = Rule(
    password,
    writeOnly=True,
    minLength=MIN_PASSWORD,
    maxLength=256,
    description=f"at least {MIN_PASSWORD} characters mixing three of lower, upper, digits, "
    "symbols; stored only as digest HA1, never returned",
)
RESPONSE_ROOT = Rule(response_root)
SRTP_MODE = Rule(srtp_mode)
FILE_PATH = Rule(file_path, minLength=1, maxLength=MAX_PATH)
RECORDING_FORMAT = Rule(recording_format, enum=list(RECORDING_FORMATS))
FAILOVER = Rule(
    failover,
    uniqueItems=True,
    description="the buyer failures that move a call on to the next buyer: no-answer (rang "
    "past its ring timeout), busy (486 or 600), rejected (any other final answer 300-699), "
    "unreachable (no answer at all within connect_timeout, or a transport error); [] turns "
    "failover off",
)
