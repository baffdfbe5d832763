"""The configuration file, and every resource of the admin API, as pydantic models (SPEC §5).

The models are the one description of each resource: ``rtbridge apply`` validates the file
with them, the admin API and CLI validate one resource with them (``read_*``), and
:mod:`rtbridge.http.admin.openapi` publishes their JSON Schema. Each field's check is a rule of
:mod:`rtbridge.config.fields`, so a value is refused with the same words everywhere.

Every problem is collected, each with its path (``keys[2].inbound_number: not an E.164
number``), so one run shows the admin everything to fix."""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from rtbridge.config import fields as f
from rtbridge.domain.failover import FAILOVER_KINDS
from rtbridge.domain.ping import TAG_NAME

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# -- error messages ---------------------------------------------------------------------------

# pydantic's own error types in the words the rules use; a rule's FieldError keeps its text.
_WORDS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
}


def error_messages(exc: ValidationError, *, root: str = "body", top: str = "") -> list[str]:
    """``path: message`` per problem: the loc ``('keys', 2, 'inbound_number')`` becomes
    ``keys[2].inbound_number``; ``root`` names the whole value (an empty loc); ``top`` replaces
    "unknown field" for a key of the outermost table (the file's sections)."""
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        kind = error["type"]
        if kind in ("value_error", "assertion_error"):
            message = str(error.get("ctx", {}).get("error", error["msg"]))
        elif kind == "extra_forbidden" and top and len(loc) == 1:
            message = top
        else:
            message = _WORDS.get(kind, error["msg"])
        out.append(f"{path or root}: {message}")
    return out


def _refs(info: ValidationInfo) -> Mapping[str, set[str]] | None:
    """The ids a file's references may name (``apply``); None for one API resource, whose
    references the admin checks against the database instead."""
    context = info.context
    return context if isinstance(context, Mapping) else None


class _Model(BaseModel):
    # Unknown keys are refused so a typo is not silently ignored; specs never change.
    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[str, f.IDENTIFIER]
Text = Annotated[str | None, f.STRING]
Flag = Annotated[bool, f.BOOLEAN]
Cidr = Annotated[str, f.CIDR]
FailoverKind = Literal["no-answer", "busy", "rejected", "unreachable"]


# -- sections ---------------------------------------------------------------------------------


class SipSection(_Model):
    """``[sip]``: the SIP domain (realm of digest challenges)."""

    domain: Annotated[str, f.DOMAIN]


class RecordingsSection(_Model):
    """``[recordings]``: where call recordings are kept, how long, in which format. Each key
    left out is its default (a flag or the agent's option may still decide it: see
    ``sip/recordings.py`` ``directory_of``)."""

    directory: Annotated[
        str | None,
        f.FILE_PATH,
        Field(description="where recordings are written, served and purged (a relative path "
              "is the file's directory's); default: recordings beside the SQLite file"),
    ] = None  # fmt: skip
    retention_days: Annotated[
        int | None,
        f.integer_rule(1, 36500),
        Field(description="completed recordings older than this are deleted (default 90)"),
    ] = None
    format: Annotated[
        Literal["wav"] | None,
        f.RECORDING_FORMAT,
        Field(description="the recordings' format: wav, stereo PCM16 (the only one)"),
    ] = None


def _uri_template(value: Any) -> str:
    uri = f.string(value)
    if "{number}" not in uri or not uri.startswith(("sip:", "sips:")):
        raise f.FieldError("must be a sip: URI template containing {number}")
    return uri


class TrunkSpec(_Model):
    """``[[trunks]]``: a carrier, trusted by IP for PSTN arrivals, and its URI for numbers out."""

    id: Identifier
    ips: tuple[Cidr, ...] = ()
    uri: Annotated[str, f.Rule(_uri_template, examples=["sip:{number}@198.51.100.10:5060"])]
    username: Annotated[str | None, f.USERNAME] = None
    realm: Text = None
    # After username and realm: its check reads them (outbound digest is stored as HA1).
    password: Annotated[str | None, f.Rule(f.string, writeOnly=True, maxLength=256)] = None
    # Accept networks overlapping a publisher's allowlist (issue 17): config/overlaps.py.
    allow_overlap: Flag = False

    @field_validator("password")
    @classmethod
    def _needs_realm(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (info.data.get("username") is None or not info.data.get("realm")):
            raise f.FieldError(
                "username and realm are required with password "
                "(outbound digest is stored as HA1 for that realm)"
            )
        return value


def _filters(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise f.FieldError('must be a table such as { caller_state = ["CA", "NY"] }')
    out: dict[str, list[str]] = {}
    for tag, allowed in value.items():
        if not TAG_NAME.fullmatch(tag):
            # Same names a ping may carry; any other name could never match.
            raise f.FieldError(f"{tag!r}: tag names are 1-64 of A-Z a-z 0-9 _ . -")
        if isinstance(allowed, str):
            allowed = [allowed]
        if (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(a, str) for a in allowed)
        ):
            raise f.FieldError(f"{tag}: must be a non-empty array of strings")
        out[tag] = list(allowed)
    return out


class Buyer(_Model):
    """``[[campaigns.buyers]]``: who calls go to, at what payout, how many, when."""

    id: Identifier
    # Before destination: a phone-number destination needs a trunk (checked there).
    trunk: Annotated[str | None, f.IDENTIFIER] = None
    # An RTB buyer (bid_url) has neither: each bid brings them (checked at the end).
    destination: Annotated[str | None, f.DESTINATION] = None
    payout: Annotated[float | None, f.number_rule(0)] = None
    revenue: Annotated[
        float | None,
        f.number_rule(0),
        Field(description="what the buyer pays per converted call (default: its payout, "
              "a margin of 0); publishers never see it"),
    ] = None  # fmt: skip
    seconds: Annotated[int, f.integer_rule(0, 86400)]
    concurrency: Annotated[int | None, f.integer_rule(1)] = None
    daily_cap: Annotated[int | None, f.integer_rule(1)] = None
    priority: Annotated[int, f.integer_rule(0)] = 1
    weight: Annotated[int, f.integer_rule(1)] = 1
    hours: Annotated[str | None, f.HOURS] = None
    filters: Annotated[
        dict[str, list[str]],
        f.Rule(_filters, examples=[{"caller_state": ["CA", "NY"]}]),
    ] = Field(default_factory=dict)
    srtp: Annotated[Literal["off", "optional", "required"], f.SRTP_MODE] = "off"
    media_networks: Annotated[
        tuple[Cidr, ...],
        Field(
            description="networks (CIDR) beside its destination host where a re-INVITE or "
            "UPDATE may move its media"
        ),
    ] = ()
    ring_timeout: Annotated[
        float | None,
        f.seconds_rule(600),
        Field(description="seconds it may ring before the call moves on (default: the SIP "
              "agent's ring_timeout)"),
    ] = None  # fmt: skip
    # After ring_timeout: its check reads it.
    connect_timeout: Annotated[
        float | None,
        f.seconds_rule(60),
        Field(description="seconds to its first answer (any 1xx) before it counts as "
              "unreachable (default 2); less than ring_timeout"),
    ] = None  # fmt: skip
    bid_url: Annotated[
        str | None,
        f.HTTP_URL,
        Field(description="makes it an RTB buyer: every ping of its campaign asks this URL "
              "for a bid, which brings the destination and the price"),
    ] = None  # fmt: skip
    bid_format: Annotated[
        Literal["rtbridge", "ringba", "retreaver"],
        f.BID_FORMAT,
        Field(description="the shape of its bid requests and answers"),
    ] = "rtbridge"
    bid_headers: Annotated[
        dict[str, str],
        f.BID_HEADERS,
        Field(description="headers sent with every bid request (stored sealed; shown as ***)"),
    ] = Field(default_factory=dict)
    hide_caller: Annotated[
        bool, f.BOOLEAN, Field(description="withhold the caller's number from its bid requests")
    ] = False
    duplicate_window: Annotated[int | None, f.DUPLICATE_WINDOW] = None  # None: the campaign's
    duplicate_after: Annotated[
        Literal["ping", "connected", "converted"] | None,
        f.DUPLICATE_AFTER,
        Field(description="what a caller's earlier call must have reached to be a duplicate "
              "(default: the campaign's)"),
    ] = None  # fmt: skip
    record: Annotated[
        bool | None,
        f.BOOLEAN,
        Field(description="record its answered calls, stereo (default: the campaign's)"),
    ] = None
    record_announcement: Annotated[
        str | None,
        f.FILE_PATH,
        Field(description="a recorded call's notice (\"this call may be recorded\"), played to "
              "both parties from the answer before they are bridged: an absolute path to a "
              "mono PCM16 WAV file of at most 30 s on the SIP agent's host (in the file, a "
              "relative path is the file's directory's); default: the campaign's"),
    ] = None  # fmt: skip

    @field_validator("connect_timeout")
    @classmethod
    def _shorter_than_ringing(cls, value: float | None, info: ValidationInfo) -> float | None:
        ring = info.data.get("ring_timeout")
        if value is not None and ring is not None and value >= ring:
            # It would never apply: the ring timeout ends the attempt first.
            raise f.FieldError(
                f"{value:g} s is not less than ring_timeout ({ring:g} s): the connect timeout "
                "must be shorter than the ring timeout"
            )
        return value

    @field_validator("trunk")
    @classmethod
    def _known_trunk(cls, value: str | None, info: ValidationInfo) -> str | None:
        refs = _refs(info)
        if refs is not None and value is not None and value not in refs["trunks"]:
            raise f.FieldError(f"no trunk {value!r}")
        return value

    @field_validator("destination")
    @classmethod
    def _number_needs_trunk(cls, value: str, info: ValidationInfo) -> str:
        refs = _refs(info)
        if (
            refs is not None
            and not value.startswith("sip")
            and info.data.get("trunk") is None
            and not refs["trunks"]
        ):
            raise f.FieldError("a phone number needs a trunk; add [[trunks]]")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _static_or_bidding(cls, data: Any, handler: ModelWrapValidatorHandler[Buyer]) -> Buyer:
        """A static buyer says where and at what payout (each missing one is ``required``,
        beside the other fields' errors); an RTB buyer's bids say both."""
        missing: list[InitErrorDetails] = []
        if isinstance(data, Mapping) and data.get("bid_url") is None:
            missing = [{"type": "missing", "loc": (name,), "input": data}
                       for name in ("destination", "payout") if data.get(name) is None]  # fmt: skip
        try:
            buyer = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            found = cast(list[InitErrorDetails], exc.errors())
            raise ValidationError.from_exception_data(exc.title, [*found, *missing]) from None
        if missing:
            raise ValidationError.from_exception_data(cls.__name__, missing)
        if buyer.bid_url is None:
            if buyer.bid_headers or buyer.hide_caller:
                raise ValueError("bid_headers and hide_caller: only for a buyer with bid_url")
            return buyer
        given = [n for n in ("destination", "payout", "revenue") if getattr(buyer, n) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: not for a buyer with bid_url (each bid brings its "
                "destination, and its amount is the revenue)"
            )
        return buyer


class BuyerSpec(Buyer):
    """A buyer with the campaign it belongs to (the table it sits under, or the API's field)."""

    campaign: Identifier

    @classmethod
    def of(cls, buyer: Buyer, campaign: str) -> BuyerSpec:
        return cls.model_construct(**dict(buyer), campaign=campaign)


class Campaign(_Model):
    """``[[campaigns]]``: a DID pool and the buyers its calls are offered to."""

    id: Identifier
    numbers: tuple[Annotated[str, f.E164], ...] = ()
    failover: Annotated[tuple[FailoverKind, ...], f.FAILOVER] = FAILOVER_KINDS
    max_attempts: Annotated[
        int,
        f.integer_rule(1, 10),
        Field(description="buyers tried for one call, the reservation's own included"),
    ] = 3
    bid_deadline_ms: Annotated[
        int,
        f.integer_rule(10, 5000),
        Field(description="how long a ping waits for its RTB buyers' bids, in milliseconds"),
    ] = 250
    publisher_share: Annotated[
        float,
        f.SHARE,
        Field(description="the publisher's payout is the winning bid times this, rounded "
              "down to the cent"),
    ] = 1.0  # fmt: skip
    min_bid: Annotated[
        float, f.number_rule(0.01), Field(description="bids below this are not taken")
    ] = 0.01
    duplicate_window: Annotated[int, f.DUPLICATE_WINDOW] = 0
    duplicate_after: Annotated[
        Literal["ping", "connected", "converted"],
        f.DUPLICATE_AFTER,
        Field(
            description="what a caller's earlier call with a buyer must have reached for "
            "it to be a duplicate: its ping, its connection or its conversion"
        ),
    ] = "connected"
    min_attestation: Annotated[Literal["A", "B", "C"] | None, f.ATTESTATION] = None
    record: Annotated[
        bool,
        f.BOOLEAN,
        Field(description="record its buyers' answered calls from the answer to the end, "
              "stereo: the publisher left, the buyer right (a buyer's own record overrides it)"),
    ] = False  # fmt: skip
    record_announcement: Annotated[
        str | None,
        f.FILE_PATH,
        Field(description="its recorded calls' notice (\"this call may be recorded\"), played "
              "to both parties from the answer before they are bridged: an absolute path to a "
              "mono PCM16 WAV file of at most 30 s on the SIP agent's host (in the file, a "
              "relative path is the file's directory's); its buyers' default; none: no notice"),
    ] = None  # fmt: skip
    buyers: tuple[Buyer, ...] = ()


class CampaignSpec(Campaign):
    buyers: tuple[BuyerSpec, ...] = ()

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignSpec:
        buyers = tuple(BuyerSpec.of(b, campaign.id) for b in campaign.buyers)
        return cls.model_construct(**{**dict(campaign), "buyers": buyers})


class IpSpec(_Model):
    """An allowlist entry; in a file or a request, a bare CIDR string stands for ``{cidr}``."""

    cidr: Cidr
    note: Text = None
    expires_at: Annotated[datetime | None, f.TIMESTAMP] = None
    # Accept a network that overlaps another publisher's (issue 12): see config/overlaps.py.
    allow_overlap: Flag = False


def _ip_shorthand(value: Any) -> Any:
    if isinstance(value, str):  # checked here, so its error sits at ips[i], not ips[i].cidr
        return IpSpec.model_construct(cidr=f.cidr(value))
    if isinstance(value, dict):
        return value
    raise f.FieldError(
        'must be a CIDR string or { cidr = "...", note = "...", expires_at = ..., '
        "allow_overlap = true }"
    )


IpEntry = Annotated[IpSpec, BeforeValidator(_ip_shorthand, json_schema_input_type=Cidr | IpSpec)]


class CredentialSpec(_Model):
    """A SIP digest credential; the password is hashed to HA1 on arrival and never kept."""

    username: Annotated[str, f.USERNAME]
    password: Annotated[str, f.PASSWORD]


class PublisherSpec(_Model):
    """``[[publishers]]``: who may send calls, by source IP or by digest credentials."""

    id: Identifier
    name: Text = None
    ips: tuple[IpEntry, ...] = ()
    credentials: tuple[CredentialSpec, ...] = ()
    require_tls: Annotated[bool, f.BOOLEAN, Field(description="INVITEs must arrive over TLS")] = (
        False
    )
    require_srtp: Annotated[
        bool, f.BOOLEAN, Field(description="the SDP offer must ask for SRTP (else 488)")
    ] = False
    media_networks: Annotated[
        tuple[Cidr, ...],
        Field(
            description="networks (CIDR) beside its allowlist where a re-INVITE or UPDATE may "
            "move its calls' media"
        ),
    ] = ()


def _secret(value: Any) -> str:
    key = f.string(value, max_len=128)
    if len(key) < 16:
        raise f.FieldError("too short (at least 16 characters; it is a secret)")
    return key


def key_hint(key: str) -> str:
    """How a key is shown once stored: its first 4 characters. Eight were half of a
    16-character key; four tell a handful of keys apart and leave the rest to guess."""
    return key[:4] + "…"


class KeySpec(_Model):
    """``[[keys]]``: the postback key a publisher pings with, and how its pings are answered."""

    key: Annotated[str, f.Rule(_secret, minLength=16, maxLength=128)]
    publisher: Identifier
    campaign: Identifier
    allow_missing_caller_number: Flag = False
    inbound_number: Annotated[str | None, f.E164] = None
    ttl_seconds: Annotated[int, f.integer_rule(1, 86400)] = 60
    auto_confirm: Flag = False
    response_root: Annotated[Literal["rtb"] | None, f.RESPONSE_ROOT] = None
    paused: Flag = False
    recordings: Flag = False  # GET /rtbs/<uuid>/recording for its publisher's calls

    @field_validator("publisher", "campaign")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        refs = _refs(info)
        section = f"{info.field_name}s"
        if refs is not None and value not in refs[section]:
            raise f.FieldError(f"no {info.field_name} {value!r}")
        return value


class ListEntrySpec(_Model):
    """One entry of a caller list; in a file or a request a bare string stands for
    ``{value}``, and ``number`` or ``prefix`` may name the form instead of ``value``."""

    value: Annotated[str, f.LIST_ENTRY]
    expires: Annotated[datetime | None, f.TIMESTAMP] = None
    note: Text = None

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"value": data}
        if not isinstance(data, dict):
            raise f.FieldError(
                'must be a string or { value | number | prefix = "...", expires = ..., '
                'note = "..." }'
            )
        forms = [name for name in ("value", "number", "prefix") if name in data]
        if len(forms) != 1:
            raise f.FieldError("needs exactly one of value, number, prefix")
        rest = {k: v for k, v in data.items() if k not in forms}
        raw = data[forms[0]]
        if forms[0] == "number":
            return {**rest, "value": f.e164(raw if not isinstance(raw, str) else raw.strip())}
        if forms[0] == "prefix":
            return {**rest, "value": f.list_entry(raw, prefix=True)}
        return data


ListEntry = Annotated[ListEntrySpec, Field(json_schema_extra={"examples": ["+1900*"]})]


class CallerListSpec(_Model):
    """``[[caller_lists]]``: callers blocked, or alone allowed, globally or on a campaign or
    a buyer (SPEC §3.10; domain/caller_lists.py)."""

    id: Identifier
    kind: Annotated[Literal["block", "allow"], f.LIST_KIND]
    campaign: Identifier | None = None
    buyer: Identifier | None = None
    note: Text = None
    auto_block_converted: Annotated[int | None, f.AUTO_BLOCK] = None
    entries: tuple[ListEntry, ...] = ()

    @model_validator(mode="after")
    def _scope(self) -> CallerListSpec:
        if self.campaign is not None and self.buyer is not None:
            raise f.FieldError("a list is global, a campaign's or a buyer's: not both")
        if self.auto_block_converted is not None and self.kind != "block":
            raise f.FieldError("auto_block_converted is for block lists only")
        return self

    @field_validator("campaign")
    @classmethod
    def _known(cls, value: str | None, info: ValidationInfo) -> str | None:
        refs = _refs(info)
        if refs is not None and value is not None and value not in refs["campaigns"]:
            raise f.FieldError(f"no campaign {value!r}")
        return value


class ConfigFile(_Model):
    """The file as written. A section left out is None: that resource type is left as it is
    in the database; a section present (even empty) is the whole truth for it."""

    sip: SipSection | None = None
    recordings: RecordingsSection | None = None
    trunks: tuple[TrunkSpec, ...] | None = None
    campaigns: tuple[Campaign, ...] | None = None
    publishers: tuple[PublisherSpec, ...] | None = None
    keys: tuple[KeySpec, ...] | None = None
    caller_lists: tuple[CallerListSpec, ...] | None = None


_SECTIONS = tuple(ConfigFile.model_fields)
_UNKNOWN_SECTION = f"unknown section (expected one of {', '.join(_SECTIONS)})"
_ENTRIES: dict[str, type[BaseModel]] = {
    "trunks": TrunkSpec,
    "campaigns": Campaign,
    "publishers": PublisherSpec,
    "keys": KeySpec,
    "caller_lists": CallerListSpec,
}


@dataclass(frozen=True)
class Document:
    """The validated file, as ``apply`` uses it (None: the section was left out)."""

    sip_domain: str | None = None
    recordings: RecordingsSection | None = None  # its paths absolute
    trunks: tuple[TrunkSpec, ...] | None = None
    campaigns: tuple[CampaignSpec, ...] | None = None
    publishers: tuple[PublisherSpec, ...] | None = None
    keys: tuple[KeySpec, ...] | None = None
    buyers: tuple[BuyerSpec, ...] = field(default=())
    caller_lists: tuple[CallerListSpec, ...] | None = None


def _ids(data: Mapping[str, Any], section: str, existing: Mapping[str, set[str]]) -> set[str]:
    """Ids a reference may name: the section's own (valid entries or not, so one broken
    entry does not also break every reference to it), else what the database holds."""
    if section not in data:
        return existing.get(section, set())
    entries = data[section] if isinstance(data[section], list) else []
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)}


def _valid_parts(data: Mapping[str, Any], refs: Mapping[str, set[str]]) -> ConfigFile:
    """The entries that validate on their own, so that duplicates are reported in the same
    run as the field errors that made the whole file fail."""
    parts: dict[str, Any] = {}
    for name, model in _ENTRIES.items():
        if name in data:
            valid = []
            for raw in data[name] if isinstance(data[name], list) else []:
                with contextlib.suppress(ValidationError):  # already reported
                    valid.append(model.model_validate(raw, context=refs))
            parts[name] = tuple(valid)
    return ConfigFile.model_construct(**parts)


def parse_document(
    data: Mapping[str, Any],
    *,
    existing: Mapping[str, set[str]] | None = None,
    base: Path | None = None,
) -> Document:
    """Validate a parsed TOML document. ``existing`` holds ids already in the database
    (``publishers``, ``campaigns``, ``trunks``) for references to sections the file omits.
    ``base``: the directory relative paths (``record_announcement``, ``[recordings]
    directory``) are resolved against, the file's (:func:`load_file`); None: the working
    directory. The document holds them absolute."""
    existing = existing or {}
    refs = {name: _ids(data, name, existing) for name in ("trunks", "campaigns", "publishers")}
    errors: list[str] = []
    try:
        file = ConfigFile.model_validate(data, context=refs)
    except ValidationError as exc:
        errors = error_messages(exc, top=_UNKNOWN_SECTION)
        file = _valid_parts(data, refs)
    folder = Path.cwd() if base is None else base.absolute()
    campaigns = None
    if file.campaigns is not None:
        campaigns = tuple(CampaignSpec.of(_resolved(c, folder)) for c in file.campaigns)
    recordings = file.recordings
    if recordings is not None and recordings.directory is not None:
        recordings = recordings.model_copy(
            update={"directory": _absolute(recordings.directory, folder)}
        )
    _unique_ids(errors, file.trunks, campaigns, file.publishers, file.keys)
    _unique_entries(errors, file.caller_lists)
    _long_paths(errors, campaigns or (), recordings)
    if errors:
        raise ConfigError(errors)
    return Document(
        sip_domain=file.sip.domain if file.sip is not None else None,
        recordings=recordings,
        trunks=file.trunks,
        campaigns=campaigns,
        publishers=file.publishers,
        keys=file.keys,
        buyers=tuple(b for c in campaigns or () for b in c.buyers),
        caller_lists=file.caller_lists,
    )


def _absolute(path: str, folder: Path) -> str:
    """``path`` as the file means it: relative to ``folder`` (the file's directory)."""
    return os.path.normpath(folder / path)


def _resolved(campaign: Campaign, folder: Path) -> Campaign:
    """The campaign with its and its buyers' notices as absolute paths."""
    buyers = tuple(
        b if b.record_announcement is None
        else b.model_copy(update={"record_announcement": _absolute(b.record_announcement, folder)})
        for b in campaign.buyers
    )  # fmt: skip
    own = campaign.record_announcement
    return campaign.model_copy(update={
        "buyers": buyers, "record_announcement": own if own is None else _absolute(own, folder),
    })  # fmt: skip


def _long_paths(
    errors: list[str], campaigns: tuple[CampaignSpec, ...], recordings: RecordingsSection | None
) -> None:
    """A relative path made absolute may pass the length a stored path can have."""
    paths = [(f"campaigns[{i}].record_announcement", c.record_announcement)
             for i, c in enumerate(campaigns)]  # fmt: skip
    paths += [(f"campaigns[{i}].buyers[{j}].record_announcement", b.record_announcement)
              for i, c in enumerate(campaigns) for j, b in enumerate(c.buyers)]  # fmt: skip
    if recordings is not None:
        paths.append(("recordings.directory", recordings.directory))
    for where, path in paths:
        if path is not None and len(path) > f.MAX_PATH:
            errors.append(f"{where}: {len(path)} characters once made absolute; at most "
                          f"{f.MAX_PATH}")  # fmt: skip


def _unique(errors: list[str], what: str, items: list[tuple[str, str]]) -> None:
    """``items`` are (path, value); report every value seen twice."""
    first: dict[str, str] = {}
    for path, value in items:
        if value in first:
            errors.append(f"{path}: duplicate {what} {value!r} (also {first[value]})")
        else:
            first[value] = path


def _unique_ids(
    errors: list[str],
    trunks: tuple[TrunkSpec, ...] | None,
    campaigns: tuple[CampaignSpec, ...] | None,
    publishers: tuple[PublisherSpec, ...] | None,
    keys: tuple[KeySpec, ...] | None,
) -> None:
    """What one entry cannot see alone: the same id, number, username or network twice."""
    t, c, p, k = trunks or (), campaigns or (), publishers or (), keys or ()
    _unique(errors, "trunk id", [(f"trunks[{i}].id", x.id) for i, x in enumerate(t)])
    _unique(errors, "campaign id", [(f"campaigns[{i}].id", x.id) for i, x in enumerate(c)])
    _unique(errors, "DID", [(f"campaigns[{i}].numbers", n) for i, x in enumerate(c)
                            for n in x.numbers])  # fmt: skip
    _unique(errors, "buyer id", [(f"campaigns[{i}].buyers[{j}].id", b.id)
                                 for i, x in enumerate(c) for j, b in enumerate(x.buyers)])  # fmt: skip
    _unique(errors, "publisher id", [(f"publishers[{i}].id", x.id) for i, x in enumerate(p)])
    _unique(errors, "SIP username", [(f"publishers[{i}].credentials", cred.username)
                                     for i, x in enumerate(p) for cred in x.credentials])  # fmt: skip
    # Across publishers too: one network on two publishers would make "which publisher is
    # this source?" a coin toss (the admin API refuses it with 409 as well).
    _unique(errors, "CIDR", [(f"publishers[{i}].ips", ip.cidr) for i, x in enumerate(p)
                             for ip in x.ips])  # fmt: skip
    _unique(errors, "key", [(f"keys[{i}].key", x.key) for i, x in enumerate(k)])


def _unique_entries(errors: list[str], lists: tuple[CallerListSpec, ...] | None) -> None:
    """A list id twice, or one value twice in a list (``+1900`` and ``+1900*`` are one)."""
    lists = lists or ()
    _unique(errors, "caller list id", [(f"caller_lists[{i}].id", x.id)
                                       for i, x in enumerate(lists)])  # fmt: skip
    for i, x in enumerate(lists):
        _unique(errors, "entry", [(f"caller_lists[{i}].entries[{j}]", e.value)
                                  for j, e in enumerate(x.entries)])  # fmt: skip


def load_file(path: Path, *, existing: Mapping[str, set[str]] | None = None) -> Document:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    except RecursionError:  # tomllib recurses per nested array or table
        raise ConfigError([f"{path}: nested too deeply to be a configuration file"]) from None
    return parse_document(data, existing=existing, base=path.absolute().parent)


# -- one resource at a time: the admin API and CLI validate with the same models, so a value
# refused by `rtbridge apply` is refused with the same words everywhere. The path starts at
# the resource (``payout: must be >= 0``) instead of ``campaigns[0].buyers[1].payout``.


def _one(model: type[M], raw: Any, *, root: str = "body") -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(error_messages(exc, root=root)) from None


def read_trunk(raw: Any) -> TrunkSpec:
    return _one(TrunkSpec, raw)


def read_campaign(raw: Any) -> CampaignSpec:
    return CampaignSpec.of(_one(Campaign, raw))


def read_buyer(raw: Any, *, campaign: str) -> BuyerSpec:
    return BuyerSpec.of(_one(Buyer, raw), campaign)


def read_publisher(raw: Any) -> PublisherSpec:
    return _one(PublisherSpec, raw)


def read_key(raw: Any) -> KeySpec:
    return _one(KeySpec, raw)


def read_field(name: str, check: Callable[[Any], T], raw: Any) -> T:
    """One value checked by a :mod:`fields` rule, the error prefixed with its name."""
    try:
        return check(raw)
    except f.FieldError as exc:
        raise ConfigError([f"{name}: {exc}"]) from None


_IP = TypeAdapter(IpEntry)


def read_ip(raw: Any) -> IpSpec:
    """An allowlist entry: a CIDR string or ``{cidr, note, expires_at}``, as in ``ips``."""
    try:
        return _IP.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(error_messages(exc, root="ips")) from None


def read_caller_list(raw: Any) -> CallerListSpec:
    return _one(CallerListSpec, raw)


def read_list_entry(raw: Any, *, root: str = "body") -> ListEntrySpec:
    return _one(ListEntrySpec, raw, root=root)


def read_credential(raw: Any) -> CredentialSpec:
    """``{username, password}`` with the password policy of ``credentials``."""
    return _one(CredentialSpec, raw, root="credentials")
